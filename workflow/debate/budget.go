package debate

import (
	"fmt"

	"github.com/ultramcp/durable/llm"
	"github.com/ultramcp/durable/workflow"
)

// A debate's budget is checked before each round, on the estimate of its
// calls, and before the moderator: what has been spent is read from the
// answers in the journal, so a replay stops where the run did.

// spentOf is what the answers of rounds cost, and extra's.
func spentOf(rounds []Round, extra []Response) workflow.Spend {
	var t llm.Tally
	for _, r := range rounds {
		for _, resp := range r.Responses {
			if !resp.Failed {
				t.Add(resp.Usage)
			}
		}
	}
	for _, resp := range extra {
		t.Add(resp.Usage)
	}
	return spendOfTally(t)
}

func spendOfTally(t llm.Tally) workflow.Spend {
	return workflow.Spend{CostUSD: t.CostUSD, Tokens: t.TokensIn + t.TokensOut, Calls: t.Calls}
}

// roundEstimate is round n's calls, estimated.
func (r *debateRun) roundEstimate(n int) workflow.Spend {
	reqs := make([]llm.Request, len(r.in.Participants))
	for i, p := range r.in.Participants {
		reqs[i] = participantRequest(r.c.WorkflowID(), r.in, p, n, r.previous)
	}
	return workflow.EstimateOf(r.plan.Participants, reqs)
}

// roundOverBudget is why round n may not start, or "".
func (r *debateRun) roundOverBudget(n int) string {
	field, used := r.in.Budget.Over(spentOf(r.res.Rounds, nil), r.roundEstimate(n))
	if field == "" {
		return ""
	}
	return fmt.Sprintf("budget reached (%s): %s after round %d; round %d and the moderator were not asked", field, used, n-1, n)
}

// moderatorOverBudget is why the moderator may not be asked after round
// n, whose answers are responses, or "".
func (r *debateRun) moderatorOverBudget(n int, responses []Response) string {
	if r.in.Budget == nil {
		return ""
	}
	req := moderatorRequest(r.c.WorkflowID(), r.in, responses, WeightedVote(responses))
	field, used := r.in.Budget.Over(spentOf(r.res.Rounds, responses), workflow.EstimateOf([]llm.Ref{r.plan.Moderator}, []llm.Request{req}))
	if field == "" {
		return ""
	}
	return fmt.Sprintf("budget reached (%s): %s after round %d; the moderator was not asked", field, used, n)
}

// budgetUse is the budget and what res spent of it, when it has one.
func budgetUse(in Input, res Result) *workflow.BudgetUse {
	if in.Budget == nil {
		return nil
	}
	return &workflow.BudgetUse{Budget: *in.Budget, Spent: spendOfTally(res.Totals.Tally)}
}

// CheckBudget refuses, at submit, a budget the first round would pass:
// the debate could make no call. refs are the participants' models.
func (in Input) CheckBudget(refs []llm.Ref) error {
	if in.Budget == nil {
		return nil
	}
	reqs := make([]llm.Request, len(in.Participants))
	for i, p := range in.Participants {
		reqs[i] = participantRequest("", in, p, 1, nil)
	}
	return in.Budget.CheckFirst(workflow.EstimateOf(refs, reqs), fmt.Sprintf("the first round (%d calls side by side)", len(reqs)))
}

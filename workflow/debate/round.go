package debate

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"github.com/ultramcp/durable/engine"
	"github.com/ultramcp/durable/llm"
	"github.com/ultramcp/durable/workflow"
	"github.com/ultramcp/durable/workflow/writebehind"
)

// A round is one journaled step, "round-R": its calls run side by side
// inside it, and with a store that keeps answers (workflow.Memo) each
// answer is written to the store, with its row, the moment it comes. A
// retry of the step after a crash reads back the answers its interrupted
// attempt had and asks again only the calls that had not answered; once
// the step is journaled, the journal has them all. The round that ends the
// debate asks the moderator in the same step. The journal holds one entry
// per round and nothing else.
//
// Without a store (the direct engine of unit tests, the bench's column
// without one; the service always has a store) nothing outside the journal
// remembers answers: a round the engine retried would ask every call
// again. The engine never retries one, since a round is tried once
// (participantStep) and each call retries its provider's transient faults
// inside itself; an attempt that ends (a crash) does, on Restate, and only
// the bench runs Restate without a store.

// debateRun is one debate as it runs: what its rounds share.
type debateRun struct {
	d      *Debate
	c      engine.Context
	in     Input
	writes *writebehind.Writes
	plan   *modelPlan
	last   int // the last round, unless they agree first

	res      Result     // the rounds so far, with their full reasoning
	progress Progress   // as last published
	previous []Response // the round before
	earlier  recall     // what earlier attempts of this run answered
	lag      int        // the writes the next round waits for: those before the previous round's rows
	before   int        // the writes before this round's rows, which its moderator waits for

	synthesis *ModeratorResult // the moderator's, from the last round's step
	stopped   bool             // the budget ended it
	concluded *Result          // the result, when the last round's step came to it here
}

// recall is what a run's earlier attempts had answered. On a journaling
// engine only the first step an attempt runs can find any (every step
// before it is in the journal, and no attempt got past it), so the store is
// read once per attempt, when that step starts, not once per step.
type recall struct {
	read     bool
	answered map[string]json.RawMessage
}

// take returns the earlier answers, reading them on the first call; none
// without a memo.
func (m *recall) take(ctx context.Context, memo workflow.Memo, workflowID, run string) (map[string]json.RawMessage, error) {
	if m.read || memo == nil {
		return m.answered, nil
	}
	err := writebehind.RetryStore(ctx, func(ctx context.Context) (err error) {
		m.answered, err = memo.Answers(ctx, workflowID, run)
		return err
	})
	if err != nil {
		return nil, err
	}
	m.read = true
	return m.answered, nil
}

// roundResult is a round journaled as one step: the participants' answers,
// and the moderator's synthesis when the round ended the debate.
type roundResult struct {
	Responses []Response       `json:"responses"`
	Moderator *ModeratorResult `json:"moderator,omitempty"`
	// Stopped says why the moderator was not asked (the budget).
	Stopped string `json:"stopped,omitempty"`
}

// reseed drops the model plan from a replayed round 1: a run derived from
// another plans its models from its own request (another moderator, say),
// and keeps only the answers.
func reseed(step string, recorded json.RawMessage) (json.RawMessage, error) {
	if step != "round-1" {
		return recorded, nil
	}
	out, err := engine.Decode[roundResult](step, recorded)
	if err != nil {
		return nil, err
	}
	if len(out.Responses) > 0 {
		out.Responses[0].Plan = nil
	}
	return json.Marshal(out)
}

// round runs round n as one step and returns it. The calls of a step
// that ran here got their rows as they answered; those of a step read
// back from the journal get them again (idempotent upserts).
func (r *debateRun) round(n int) (Round, error) {
	// The writes before this round's rows: the next round waits for them,
	// and so does this round's moderator.
	mark := r.writes.Mark()
	r.before = mark
	var fresh *roundResult // what the step made, when it ran here
	name := fmt.Sprintf("round-%d", n)
	raw, err := r.c.Run(engine.TypedStep[roundResult]{Name: name, Opts: participantStep, Fn: func(ctx context.Context) (roundResult, error) {
		out, err := r.runRound(ctx, n)
		fresh = &out
		return out, err
	}}.Raw())
	if err != nil {
		// A step that failed made no rows of calls that did not answer.
		return Round{}, err
	}
	out := roundResult{}
	if fresh != nil {
		// The step's own value, not its journaled copy decoded again: a
		// replay decodes the same (replay.Check compares the two).
		out = *fresh
	} else if out, err = engine.Decode[roundResult](name, raw); err != nil {
		return Round{}, err
	}
	responses := out.Responses
	if n == 1 && len(responses) > 0 && responses[0].Plan != nil {
		// The journaled plan, which a replay reads back.
		r.plan = responses[0].Plan
		responses[0].Plan = nil
	}
	r.lag = mark
	r.synthesis = out.Moderator
	if out.Stopped != "" {
		r.stop(out.Stopped)
	}
	if fresh == nil {
		r.writes.Rows(rowsOf(r.c.WorkflowID(), n, r.in.Participants, responses))
		if out.Moderator != nil {
			r.writes.Rows([]workflow.Execution{moderatorRow(r.c.WorkflowID(), *out.Moderator)})
		}
	}
	return Round{Number: n, Responses: responses, Agreement: Agree(responses)}, nil
}

// runRound is round n's step: every participant that has not answered in
// an earlier attempt asked side by side, then, if the round ends the
// debate, the moderator.
func (r *debateRun) runRound(ctx context.Context, n int) (roundResult, error) {
	answered, err := r.earlier.take(ctx, r.writes.Memo(), r.c.WorkflowID(), r.c.RunID())
	if err != nil {
		return roundResult{}, err
	}
	responses, err := r.ask(ctx, n, answered)
	if err != nil {
		return roundResult{}, err
	}
	out := roundResult{Responses: responses}
	round := Round{Number: n, Responses: responses, Agreement: Agree(responses)}
	if r.res.Mode == ModeVote || (n < r.last && !round.Agreement) {
		return out, nil
	}
	if _, asked := answered[moderatorStep]; !asked {
		if out.Stopped = r.moderatorOverBudget(n, responses); out.Stopped != "" {
			return out, nil
		}
	}
	mod, err := r.moderate(ctx, n, round, answered)
	if err != nil {
		return roundResult{}, err
	}
	out.Moderator = &mod
	r.concludeAhead(n, round, mod)
	return out, nil
}

// ask asks round n's participants side by side, but those answered holds.
func (r *debateRun) ask(ctx context.Context, n int, answered map[string]json.RawMessage) ([]Response, error) {
	wf, run := r.c.WorkflowID(), r.c.RunID()
	responses := make([]Response, len(r.in.Participants))
	errs := make([]error, len(r.in.Participants))
	var wg sync.WaitGroup
	for i, p := range r.in.Participants {
		if a, ok := answered[stepName(n, p.Name)]; ok && json.Unmarshal(a, &responses[i]) == nil {
			continue
		}
		req := participantRequest(wf, r.in, p, n, r.previous)
		wg.Go(func() {
			resp, err := r.d.ask(ctx, p.Name, r.plan.Participants[i], req)
			if err != nil {
				errs[i] = fmt.Errorf("round %d, participant %s: %w", n, p.Name, err)
				return
			}
			if n == 1 && i == 0 {
				resp.Plan = r.plan
			}
			responses[i] = resp
			r.writes.Answered([]workflow.Execution{answerRow(rowOf(wf, n, p, resp), run, resp)})
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err // the first participant's, as listed
		}
	}
	return responses, nil
}

// moderate publishes that the synthesis is being written and asks the
// moderator, unless an earlier attempt had its answer.
func (r *debateRun) moderate(ctx context.Context, n int, round Round, answered map[string]json.RawMessage) (ModeratorResult, error) {
	if r.writes.Memo() != nil {
		p := r.progress
		p.CompletedRounds = append(slices.Clip(p.CompletedRounds), round.forProgress())
		p.Round, p.Phase, p.Message = n, "synthesis", "moderator is writing the synthesis"
		if err := r.writes.Progress(n, p); err != nil {
			return ModeratorResult{}, err
		}
	}
	var mod ModeratorResult
	if a, ok := answered[moderatorStep]; ok && json.Unmarshal(a, &mod) == nil {
		return mod, nil
	}
	// As before a round: the rows of the rounds before this one are in,
	// so a store that is down holds the debate here.
	if err := r.writes.WaitFor(r.before); err != nil {
		return ModeratorResult{}, err
	}
	mod, err := r.d.askModerator(ctx, r.c.WorkflowID(), r.in, r.plan.Moderator, round.Responses, WeightedVote(round.Responses))
	if err != nil {
		return ModeratorResult{}, err
	}
	r.writes.Answered([]workflow.Execution{answerRow(moderatorRow(r.c.WorkflowID(), mod), r.c.RunID(), mod)})
	return mod, nil
}

// concludeAhead comes to the debate's result inside the last round's step,
// when it does not wait for a human: the transcript and the workflow's end
// are then written while the step's result is being journaled, not after.
// The body returns this very result (end returns concluded).
func (r *debateRun) concludeAhead(n int, round Round, mod ModeratorResult) {
	if r.d.Records == nil {
		return
	}
	res := r.res
	res.Rounds = append(slices.Clip(r.res.Rounds), round.withoutPlan())
	res.StoppedEarly = round.Agreement && n < r.last && r.res.Mode == ModeDebate
	res.Vote = WeightedVote(round.Responses)
	transcript, err := json.Marshal(res.Rounds)
	if err != nil {
		return // the body writes it, and the end, after the step
	}
	ref := r.writes.Artifact(transcriptName, transcript)
	res = conclude(res, r.in, mod, &ref)
	if !(r.in.Escalate && res.Synthesis.Contested) {
		if output, err := json.Marshal(res); err == nil {
			r.writes.Ending(output)
		}
	}
	r.concluded = &res
}

// withoutPlan is the round as the result keeps it: the plan its first
// answer carried into the journal left out.
func (r Round) withoutPlan() Round {
	if len(r.Responses) == 0 || r.Responses[0].Plan == nil {
		return r
	}
	r.Responses = slices.Clone(r.Responses)
	r.Responses[0].Plan = nil
	return r
}

// answerRow is a call's row with its answer, for the run that made it.
func answerRow(e workflow.Execution, run string, answer any) workflow.Execution {
	b, err := json.Marshal(answer)
	if err != nil {
		return e // a row without its answer: a retry asks again
	}
	e.RunID, e.Answer = run, b
	return e
}

// participantRequest is what participant p is asked in round r.
func participantRequest(workflowID string, in Input, p Participant, r int, previous []Response) llm.Request {
	prompt := firstRoundPrompt(in)
	if r > 1 {
		prompt = laterRoundPrompt(in, p.Name, r, previous)
	}
	return llm.Request{
		System:   systemPrompt(p),
		Messages: []llm.Message{{Role: "user", Content: prompt}},
		JSON:     true,
		Label:    workflowID + "/" + stepName(r, p.Name),
		Batch:    in.Priority == workflow.PriorityBatch,
	}
}

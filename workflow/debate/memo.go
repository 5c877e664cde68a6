package debate

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"github.com/ultramcp/durable/engine"
	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/llm"
	"github.com/ultramcp/durable/workflow"
)

// With a store that keeps answers (workflow.Memo), a round is one journaled
// step, "round-R": its calls run side by side inside it, and each answer is
// written to the store, with its row, the moment it comes. A retry of the
// step after a crash reads back the answers its interrupted attempt had and
// asks again only the calls that had not answered; once the step is
// journaled, the journal has them all. The round that ends the debate asks
// the moderator in the same step, and progress goes to the store: the
// journal holds one entry per round and nothing else, where a step per
// call held three, plus a progress entry per round.

// recall is what a run's earlier attempts had answered. On a journaling
// engine only the first step an attempt runs can find any (every step
// before it is in the journal, and no attempt got past it), so the store is
// read once per attempt, when that step starts, not once per step.
type recall struct {
	read     bool
	answered map[string]json.RawMessage
}

// take returns the earlier answers, reading them on the first call.
func (m *recall) take(ctx context.Context, memo workflow.Memo, workflowID, run string) (map[string]json.RawMessage, error) {
	if m.read {
		return m.answered, nil
	}
	err := workflow.RetryStore(ctx, func(ctx context.Context) (err error) {
		m.answered, err = memo.Answers(ctx, workflowID, run)
		return err
	})
	if err != nil {
		return nil, err
	}
	m.read = true
	return m.answered, nil
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

// roundResult is a round journaled as one step: the participants' answers,
// and the moderator's synthesis when the round ended the debate.
type roundResult struct {
	Responses []Response       `json:"responses"`
	Moderator *ModeratorResult `json:"moderator,omitempty"`
}

// memoRound runs round r as one step. lag is the writes the moderator, if
// the round asks it, waits for first: the rows of the rounds before. ran
// reports whether the step ran in this attempt (its calls' rows were then
// written as they answered) rather than being read back from the journal;
// if it ran and ended the debate, concluded is the debate's result (its
// transcript written), the one the body would come to.
func (d *Debate) memoRound(c engine.Context, w *workflow.Writes, earlier *recall, concluded *Result, lag int, sofar Result, in Input, plan *modelPlan, r, rounds int, previous []Response, progress Progress) (out roundResult, ran bool, err error) {
	wf, run := c.WorkflowID(), c.RunID()
	var fresh *roundResult // what the step made, when it ran here
	name := fmt.Sprintf("round-%d", r)
	step := engine.TypedStep[roundResult]{Name: name, Opts: participantStep, Fn: func(ctx context.Context) (roundResult, error) {
		answered, err := earlier.take(ctx, w.Memo(), wf, run)
		if err != nil {
			return roundResult{}, err
		}
		responses := make([]Response, len(in.Participants))
		errs := make([]error, len(in.Participants))
		var wg sync.WaitGroup
		for i, p := range in.Participants {
			step := stepName(r, p.Name)
			if a, ok := answered[step]; ok && json.Unmarshal(a, &responses[i]) == nil {
				continue
			}
			req := participantRequest(c.WorkflowID(), in, p, r, previous)
			wg.Go(func() {
				resp, err := d.ask(ctx, p.Name, plan.Participants[i], req)
				if err != nil {
					errs[i] = fmt.Errorf("round %d, participant %s: %w", r, p.Name, err)
					return
				}
				if r == 1 && i == 0 {
					resp.Plan = plan
				}
				responses[i] = resp
				w.Answered([]workflow.Execution{answerRow(rowOf(wf, r, p, resp), run, resp)})
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return roundResult{}, err
			}
		}
		out := roundResult{Responses: responses}
		round := Round{Number: r, Responses: responses, Agreement: Agree(responses)}
		mode := in.ModeOrDefault()
		if mode == ModeVote || (r < rounds && !round.Agreement) {
			fresh = &out
			return out, nil
		}
		progress.CompletedRounds = append(progress.CompletedRounds, round.forProgress())
		progress.Round, progress.Phase, progress.Message = r, "synthesis", "moderator is writing the synthesis"
		if err := w.Progress(r, progress); err != nil {
			return roundResult{}, err
		}
		vote := WeightedVote(responses)
		var mod ModeratorResult
		if a, ok := answered[moderatorStep]; !ok || json.Unmarshal(a, &mod) != nil {
			// As before a round: the rows of the rounds before this one
			// are in, so a store that is down holds the debate here.
			if err := w.WaitFor(lag); err != nil {
				return roundResult{}, err
			}
			if mod, err = d.askModerator(ctx, c.WorkflowID(), in, plan.Moderator, responses, vote); err != nil {
				return roundResult{}, err
			}
			w.Answered([]workflow.Execution{answerRow(moderatorRow(wf, mod), run, mod)})
		}
		out.Moderator = &mod
		// The debate's result is known now, unless it waits for a human:
		// the transcript and the workflow's end land while this step's
		// result is being journaled, not after (the body returns the same
		// result, byte for byte, or the end is written again).
		res := sofar
		res.Rounds = append(slices.Clip(sofar.Rounds), round.withoutPlan())
		res.StoppedEarly = round.Agreement && r < rounds && mode == ModeDebate
		res.Vote = vote
		transcript, err := json.Marshal(res.Rounds)
		if err != nil {
			return roundResult{}, fault.Wrap(fault.Internal, err, "encode transcript")
		}
		ref := w.Artifact(transcriptName, transcript)
		res = conclude(res, in, mod, &ref)
		if !(in.Escalate && res.Synthesis.Contested) {
			if output, err := json.Marshal(res); err == nil {
				w.Ending(output)
			}
		}
		*concluded = res
		fresh = &out
		return out, nil
	}}
	raw, err := c.Run(step.Raw())
	if err != nil {
		// A step that failed made no rows of calls that did not answer.
		return roundResult{}, false, err
	}
	if fresh != nil {
		// The step's own value, not its journaled copy decoded again: a
		// replay decodes the same (replay.Check compares the two).
		return *fresh, true, nil
	}
	out, err = engine.Decode[roundResult](name, raw)
	return out, false, err
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
	}
}

// Package debate is the chain-of-debate workflow: several LLM participants
// answer a topic independently, then revise over rounds while seeing each
// other's positions (Du et al. 2023; Liang et al. 2023), stop early once they
// agree, and end with a confidence-weighted vote (ReConcile, Chen et al. 2024)
// and a moderator's synthesis.
//
// Journaled steps, in order (round.go): one "round-R" step per round, its
// participants' calls run side by side inside it, each answer written to the
// store as it comes, so that a retried round asks only those that had not
// answered; "pause-after-round-R" (durable sleep) between rounds; the round
// that ends the debate also asks the moderator. Progress, the transcript and
// the rows go to the store, outside the journal (writebehind.Writes). Which
// models answer for whom is decided at the start and rides in the first
// participant's round-1 answer. A participant's call retries transient
// provider faults inside itself, so a flaky participant never re-runs the
// others. Terminal: invalid input (before any step), a provider refusing for
// good (401/403/400), or a provider still failing after its retry budget.
package debate

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ultramcp/durable/engine"
	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/llm"
	"github.com/ultramcp/durable/workflow"
	"github.com/ultramcp/durable/workflow/writebehind"
)

// Response is one participant's answer in one round.
type Response struct {
	Participant string `json:"participant"`
	llm.Usage
	Position   string   `json:"position"`
	Reasoning  string   `json:"reasoning,omitempty"`
	Confidence *float64 `json:"confidence,omitempty"`
	Structured bool     `json:"structured,omitempty"`
	Simulated  bool     `json:"simulated,omitempty"`
	Failed     bool     `json:"failed,omitempty"`
	Attempts   int      `json:"attempts,omitempty"` // provider calls it took
	// Plan is the models the debate runs on, as resolved when its first
	// round started: carried by the first participant's round-1 answer, so
	// that the journal keeps it without a step of its own.
	Plan *modelPlan `json:"plan,omitempty"`
	// StartedAt and FinishedAt bracket the model call (read inside the step).
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
}

// Round is one round of the debate.
type Round struct {
	Number    int        `json:"number"`
	Responses []Response `json:"responses"`
	Agreement bool       `json:"agreement"`
}

// ModeratorResult is the synthesis plus what it cost.
type ModeratorResult struct {
	Synthesis
	llm.Usage
	Simulated bool `json:"simulated,omitempty"`
	// FinishedAt is when the moderator answered (zero in vote mode).
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	// Contested is true when agreement stays below the consensus threshold.
	Contested bool `json:"contested"`
}

// ParticipantTotal is what one participant cost.
type ParticipantTotal struct {
	Participant string `json:"participant"`
	llm.Tally
}

// Totals sums the debate's cost.
type Totals struct {
	llm.Tally
	Unpriced       bool               `json:"unpriced,omitempty"` // some model had no known price
	WallMS         int64              `json:"wallMs"`
	PerParticipant []ParticipantTotal `json:"perParticipant"`
}

// Result is the debate's output.
type Result struct {
	ID           string          `json:"id"`
	Topic        string          `json:"topic"`
	Mode         string          `json:"mode"`
	Simulated    bool            `json:"simulated,omitempty"` // some answer came from the offline provider
	Rounds       []Round         `json:"rounds"`
	StoppedEarly bool            `json:"stoppedEarly"`
	Vote         Vote            `json:"vote"`
	Synthesis    ModeratorResult `json:"synthesis"`
	Totals       Totals          `json:"totals"`
	StartedAt    time.Time       `json:"startedAt"`
	FinishedAt   time.Time       `json:"finishedAt"`
	// Decision is the human decision of an escalated debate, or the
	// fallback to the vote when none came in time.
	Decision *Decision `json:"decision,omitempty"`
	// Partial is a debate its budget stopped; Incomplete says where.
	Partial    bool                `json:"partial,omitempty"`
	Incomplete []string            `json:"incomplete,omitempty"`
	Budget     *workflow.BudgetUse `json:"budget,omitempty"`
	// Transcript is the full transcript in the store, when there is one;
	// then Rounds carry reasoning cut to ReasoningInResult characters, so
	// that the result (a journal entry) stays small however long the
	// debate.
	Transcript *workflow.ArtifactRef `json:"transcript,omitempty"`
}

// Decision closes an escalated debate.
type Decision struct {
	Decision string `json:"decision"`
	By       string `json:"by,omitempty"`
	// Source is "human", or "timeout" when the vote's winner stood in.
	Source string `json:"source"`
}

// ReasoningInResult bounds each reasoning in a result whose full transcript
// is in the store.
const ReasoningInResult = 280

// Progress is what a running debate publishes after every round. Before the
// first round ends there is none; once the result exists, it is final.
type Progress struct {
	Phase           string  `json:"phase"` // "round", "pause", "synthesis", "awaiting-decision"
	Round           int     `json:"round"`
	Rounds          int     `json:"rounds"`
	CompletedRounds []Round `json:"completedRounds"`
	Message         string  `json:"message"`
}

// Debate runs debates; its fields are its dependencies.
type Debate struct {
	Models llm.Models
	// Records, if set, is the metadata store: every answered call gets its
	// row, and the full transcript is kept there as an artifact.
	Records workflow.Records
}

// modelPlan is the models a debate runs on, fixed at its start.
type modelPlan struct {
	Participants []llm.Ref `json:"participants"`
	Moderator    llm.Ref   `json:"moderator"`
}

// participantStep: a round's step is tried once by the engine, because
// each provider call in it already retried transient faults with backoff.
var participantStep = engine.StepOptions{MaxAttempts: 1}

// Run is the workflow body: the rounds, then the end (the vote, the
// synthesis, the transcript and, when escalated, the human decision).
func (d *Debate) Run(c engine.Context, in Input) (Result, error) {
	r, err := d.begin(c, in)
	if err != nil {
		return Result{}, err
	}
	if err := r.rounds(); err != nil {
		return Result{}, r.writes.Done(err)
	}
	res, err := r.end()
	if err != nil {
		return Result{}, r.writes.Done(err)
	}
	if err := r.writes.Done(nil); err != nil {
		return Result{}, err
	}
	return res, nil
}

// begin checks the input and resolves the models. Which model answers for
// whom is decided once and kept in the journal, in the first participant's
// first answer: a replay after a restart with another default model or
// provider reads it back and keeps the models the debate started with.
// Resolving here first refuses an unknown model before any call, and a
// provider the service no longer has fails the debate at once, naming the
// setting.
func (d *Debate) begin(c engine.Context, in Input) (*debateRun, error) {
	if err := in.Validate(); err != nil {
		return nil, err
	}
	refs, modRef, err := d.resolveModels(in)
	if err != nil {
		return nil, err
	}
	r := &debateRun{d: d, c: c, in: in, plan: &modelPlan{Participants: refs, Moderator: modRef},
		res: Result{ID: c.WorkflowID(), Topic: in.Topic, Mode: in.ModeOrDefault()}, last: in.RoundsOrDefault()}
	if r.res.Mode == ModeVote {
		r.last = 1 // self-consistency: independent answers, then the vote
	}
	r.progress = Progress{Phase: "round", Rounds: r.last}
	if err := in.Budget.CheckFirst(r.roundEstimate(1), "the first round"); err != nil {
		return nil, err
	}
	// The store's rows and the transcript are written in the background,
	// outside the journal, as each round's answers come. They lag behind
	// the calls by one round at most: a round (or the moderator) starts
	// once the rows of the round before the previous one are in, so a
	// store that is down stops the debate within a round instead of
	// letting it spend on; it goes on when the store is back.
	r.writes = writebehind.NewWrites(c, d.Records)
	return r, nil
}

// rounds runs the rounds, with the durable pause between two, until the
// last or until the participants agree.
func (r *debateRun) rounds() error {
	for n := 1; n <= r.last; n++ {
		if n > 1 {
			if reason := r.roundOverBudget(n); reason != "" {
				r.stop(reason)
				return nil
			}
		}
		if err := r.writes.WaitFor(r.lag); err != nil {
			return err
		}
		round, err := r.round(n)
		if err != nil {
			return err
		}
		r.res.Rounds = append(r.res.Rounds, round)
		if r.stopped {
			return nil
		}
		// Progress keeps positions, not reasoning: it is rewritten every
		// round, and watchers print positions.
		r.progress.CompletedRounds = append(r.progress.CompletedRounds, round.forProgress())
		r.previous = round.Responses
		if round.Agreement && n < r.last && r.res.Mode == ModeDebate {
			r.res.StoppedEarly = true
			return nil
		}
		if n == r.last {
			return nil
		}
		if err := r.pause(n); err != nil {
			return err
		}
	}
	return nil
}

// stop ends the debate early for reason (its budget): the result is
// partial, with the vote of the rounds done.
func (r *debateRun) stop(reason string) {
	r.stopped = true
	r.res.Partial, r.res.Incomplete = true, append(r.res.Incomplete, reason)
}

// pause publishes that round n is done and sleeps, durably, until the next.
func (r *debateRun) pause(n int) error {
	delay := r.in.Delay()
	r.progress.Round = n + 1
	r.progress.Phase, r.progress.Message = "round", fmt.Sprintf("round %d of %d done; round %d running", n, r.last, n+1)
	if delay > 0 {
		r.progress.Phase, r.progress.Message = "pause", fmt.Sprintf("round %d of %d done; next round in %s", n, r.last, delay)
	}
	if err := r.publish(n, r.progress); err != nil {
		return err
	}
	if delay > 0 {
		return r.c.Sleep(fmt.Sprintf("pause-after-round-%d", n), delay) // an error: cancelled in the pause
	}
	return nil
}

// end comes to the result once the rounds are over: the vote, the
// synthesis the last round's step brought, the transcript, and the human
// decision of an escalated debate.
func (r *debateRun) end() (Result, error) {
	res := r.res
	res.Vote = WeightedVote(r.previous)
	lastRound := len(res.Rounds)
	if r.synthesis == nil || r.writes.Memo() == nil {
		// Else the last round's step published it, in the store.
		r.progress.Round, r.progress.Phase, r.progress.Message = lastRound, "synthesis", "moderator is writing the synthesis"
		if res.Mode == ModeVote {
			r.progress.Message = "vote counted"
		}
		if err := r.publish(lastRound, r.progress); err != nil {
			return Result{}, err
		}
	}
	synthesis := ModeratorResult{Synthesis: Synthesis{Consensus: res.Vote.Winner, Agreement: res.Vote.Share, Recommendation: res.Vote.Winner}}
	if r.synthesis != nil {
		synthesis = *r.synthesis
	}
	switch {
	case r.concluded != nil: // the last round's step came to it, its transcript written
		res = *r.concluded
	case r.d.Records != nil:
		encoded, err := json.Marshal(res.Rounds)
		if err != nil {
			return Result{}, fault.Wrap(fault.Internal, err, "encode transcript")
		}
		ref := r.writes.Artifact(transcriptName, encoded)
		res = conclude(res, r.in, synthesis, &ref)
	default:
		res = conclude(res, r.in, synthesis, nil)
	}
	if r.in.Escalate && res.Synthesis.Contested {
		return r.escalate(res, lastRound)
	}
	return res, nil
}

// escalate waits for a human decision on a contested debate; without one
// in time, the vote's winner stands.
func (r *debateRun) escalate(res Result, lastRound int) (Result, error) {
	r.progress.Phase = "awaiting-decision"
	r.progress.Message = fmt.Sprintf("agreement %.2f is below %.2f: waiting up to %s for a decision (ultramcp decide %s --decision …)",
		res.Synthesis.Agreement, r.in.Threshold(), r.in.DecisionTimeout(), r.c.WorkflowID())
	if err := r.publish(lastRound+1, r.progress); err != nil {
		return Result{}, err
	}
	// The decision may take days: what was paid for is in the store
	// before the wait.
	if err := r.writes.Wait(nil); err != nil {
		return Result{}, err
	}
	raw, ok, err := r.c.Await(workflow.DecisionPromise, r.in.DecisionTimeout())
	if err != nil {
		return Result{}, err
	}
	res.Decision = parseDecision(raw, ok, res.Vote.Winner)
	return res, nil
}

// publish makes p the debate's progress (writebehind.Writes.Publish); seq
// orders the store's publications.
func (r *debateRun) publish(seq int, p Progress) error { return r.writes.Publish(seq, p) }

// conclude is the result of a debate whose rounds (with their full
// reasoning) and vote are in res, given its synthesis and, when the store
// keeps it, the transcript (the result then keeps reasoning cut short). It
// changes nothing it was given.
func conclude(res Result, in Input, synthesis ModeratorResult, transcript *workflow.ArtifactRef) Result {
	res.Synthesis = synthesis
	if res.Synthesis.Agreement < 0 { // the moderator gave no score: use the vote's
		res.Synthesis.Agreement = res.Vote.Share
	}
	res.Synthesis.Contested = res.Synthesis.Agreement < in.Threshold()
	if transcript != nil {
		res.Transcript = transcript
		rounds := make([]Round, len(res.Rounds))
		for i, r := range res.Rounds {
			rounds[i] = r.withReasoning(ReasoningInResult)
		}
		res.Rounds = rounds
	}
	// The times come from inside the journaled steps, so no extra clock
	// step (one more round trip to Restate) is needed.
	res.StartedAt, res.FinishedAt = span(res)
	res.Totals = totals(res)
	res.Simulated = simulated(res)
	res.Totals.WallMS = res.FinishedAt.Sub(res.StartedAt).Milliseconds()
	res.Budget = budgetUse(in, res)
	return res
}

const progressKey = workflow.ProgressKey

// transcriptName is the transcript's artifact.
const transcriptName = "transcript.json"

func simulated(res Result) bool {
	for _, r := range res.Rounds {
		for _, resp := range r.Responses {
			if resp.Simulated {
				return true
			}
		}
	}
	return res.Synthesis.Simulated
}

func (d *Debate) resolveModels(in Input) ([]llm.Ref, llm.Ref, error) {
	refs := make([]llm.Ref, len(in.Participants))
	for i, p := range in.Participants {
		ref, err := d.Models.Resolve(p.Model)
		if err != nil {
			return nil, llm.Ref{}, fault.Invalidf(fmt.Sprintf("participants[%d].model", i), "%v", err)
		}
		refs[i] = ref
	}
	mod, err := d.Models.Resolve(in.Moderator)
	if err != nil {
		return nil, llm.Ref{}, fault.Invalidf("moderator", "%v", err)
	}
	return refs, mod, nil
}

func stepName(round int, participant string) string {
	return fmt.Sprintf("round-%d/%s", round, participant)
}

// rowsOf are the store rows of a round's calls.
func rowsOf(workflowID string, round int, ps []Participant, responses []Response) []workflow.Execution {
	var execs []workflow.Execution
	for i, resp := range responses {
		if resp.Failed {
			continue // no answer, nothing paid
		}
		execs = append(execs, rowOf(workflowID, round, ps[i], resp))
	}
	return execs
}

// rowOf is the store row of participant p's call in round r.
func rowOf(workflowID string, round int, p Participant, resp Response) workflow.Execution {
	e := execution(workflowID, stepName(round, p.Name), resp.Participant, resp.Usage, resp.StartedAt)
	e.Attempt = resp.Attempts
	return e
}

func execution(workflowID, step, agent string, u llm.Usage, at time.Time) workflow.Execution {
	return workflow.Execution{WorkflowID: workflowID, AgentName: agent, Step: step, Status: workflow.StatusCompleted,
		DurationMS: u.LatencyMS, TokensIn: u.TokensIn, TokensOut: u.TokensOut, CostUSD: u.CostUSD, CreatedAt: at}
}

func (d *Debate) ask(ctx context.Context, participant string, ref llm.Ref, req llm.Request) (Response, error) {
	start := time.Now()
	out, err := d.Models.Complete(ctx, ref, req)
	if err != nil {
		return Response{}, err
	}
	a := ParseAnswer(out.Text)
	resp := Response{
		Participant: participant, Usage: llm.UsageOf(out, time.Since(start)),
		Position: a.Position, Reasoning: a.Reasoning, Confidence: a.Confidence, Structured: a.Structured,
		Simulated: out.Simulated, Attempts: out.Attempts,
		StartedAt: start.UTC(), FinishedAt: time.Now().UTC(),
	}
	return resp, nil
}

// moderatorStep is the moderator's step, and its call's row.
const moderatorStep = "moderator"

// moderatorRow is the store row of the moderator's call.
func moderatorRow(workflowID string, s ModeratorResult) workflow.Execution {
	return execution(workflowID, moderatorStep, "moderator", s.Usage, s.FinishedAt.Add(-time.Duration(s.LatencyMS)*time.Millisecond))
}

// askModerator makes the moderator's call.
func (d *Debate) askModerator(ctx context.Context, workflowID string, in Input, ref llm.Ref, final []Response, vote Vote) (ModeratorResult, error) {
	req := moderatorRequest(workflowID, in, final, vote)
	start := time.Now()
	out, err := d.Models.Complete(ctx, ref, req)
	if err != nil {
		return ModeratorResult{}, fmt.Errorf("moderator: %w", err)
	}
	return ModeratorResult{
		Synthesis: ParseSynthesis(out.Text), Usage: llm.UsageOf(out, time.Since(start)), Simulated: out.Simulated,
		FinishedAt: time.Now().UTC(),
	}, nil
}

// moderatorRequest is what the moderator is asked after the final round.
func moderatorRequest(workflowID string, in Input, final []Response, vote Vote) llm.Request {
	return llm.Request{
		System:   moderatorSystem,
		Messages: []llm.Message{{Role: "user", Content: moderatorPrompt(in, final, vote)}},
		JSON:     true,
		Label:    workflowID + "/" + moderatorStep,
		Batch:    in.Priority == workflow.PriorityBatch,
	}
}

// parseDecision reads a decision sent as {"decision": …, "by": …} or as a
// plain JSON string; without one, the vote's winner stands.
func parseDecision(raw json.RawMessage, ok bool, fallback string) *Decision {
	if !ok {
		return &Decision{Decision: fallback, Source: "timeout"}
	}
	d := Decision{Source: "human"}
	var text string
	if json.Unmarshal(raw, &text) == nil {
		d.Decision = text
	} else if json.Unmarshal(raw, &d) != nil || d.Decision == "" {
		d.Decision = string(raw)
	}
	d.Source = "human"
	d.Decision = truncate(d.Decision, MaxPositionChars)
	d.By = truncate(d.By, MaxNameChars)
	return &d
}

// forProgress is the round as progress shows it: who said what, how sure
// and how fast. Each progress value is a journal entry holding every round
// so far, so it keeps no more than the watchers print.
func (r Round) forProgress() Round {
	out := Round{Number: r.Number, Agreement: r.Agreement, Responses: make([]Response, len(r.Responses))}
	for i, resp := range r.Responses {
		out.Responses[i] = Response{Participant: resp.Participant, Usage: llm.Usage{Model: resp.Model, LatencyMS: resp.LatencyMS}, Position: resp.Position, Confidence: resp.Confidence, Simulated: resp.Simulated, Failed: resp.Failed}
	}
	return out
}

// withReasoning returns a copy of the round with each reasoning cut to n
// characters.
func (r Round) withReasoning(n int) Round {
	out := r
	out.Responses = make([]Response, len(r.Responses))
	for i, resp := range r.Responses {
		resp.Reasoning = truncate(resp.Reasoning, n)
		out.Responses[i] = resp
	}
	return out
}

// span is the debate's first call start and last answer.
func span(res Result) (start, end time.Time) {
	for _, r := range res.Rounds {
		for _, resp := range r.Responses {
			if start.IsZero() || resp.StartedAt.Before(start) {
				start = resp.StartedAt
			}
			if resp.FinishedAt.After(end) {
				end = resp.FinishedAt
			}
		}
	}
	if res.Synthesis.FinishedAt.After(end) {
		end = res.Synthesis.FinishedAt
	}
	return start, end
}

func totals(res Result) Totals {
	var t Totals
	per := map[string]*ParticipantTotal{}
	var order []string
	add := func(name string, u llm.Usage, simulated bool) {
		p, ok := per[name]
		if !ok {
			p = &ParticipantTotal{Participant: name}
			per[name] = p
			order = append(order, name)
		}
		p.Add(u)
		t.Add(u)
		if _, priced := llm.EstimateCost(u.Model, 0, 0); !priced && !simulated {
			t.Unpriced = true
		}
	}
	for _, r := range res.Rounds {
		for _, resp := range r.Responses {
			add(resp.Participant, resp.Usage, resp.Simulated)
		}
	}
	if s := res.Synthesis; s.Model != "" {
		add("moderator", s.Usage, s.Simulated)
	}
	for _, name := range order {
		t.PerParticipant = append(t.PerParticipant, *per[name])
	}
	return t
}

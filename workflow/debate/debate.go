// Package debate is the chain-of-debate workflow: several LLM participants
// answer a topic independently, then revise over rounds while seeing each
// other's positions (Du et al. 2023; Liang et al. 2023), stop early once they
// agree, and end with a confidence-weighted vote (ReConcile, Chen et al. 2024)
// and a moderator's synthesis.
//
// Journaled steps, in order: "models" (which model answers for whom), per
// round one "round-R/NAME" step per participant, run concurrently, each
// writing its call's store row itself, and "pause-after-round-R" (durable
// sleep) between rounds; then "moderator", which writes its row and the
// transcript too. Only when the store is too slow for a step does a
// "record-round-R" step (beside the next round) or "save-transcript" write
// what the steps could not; in vote mode "save-transcript" keeps the
// transcript. A participant
// step retries transient provider faults inside itself, so a flaky
// participant never re-runs the others. Terminal: invalid input (before any
// step), a provider refusing for good (401/403/400), or a provider still
// failing after its retry budget.
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
)

// Response is one participant's answer in one round.
type Response struct {
	Participant string   `json:"participant"`
	Model       string   `json:"model"`
	Position    string   `json:"position"`
	Reasoning   string   `json:"reasoning,omitempty"`
	Confidence  *float64 `json:"confidence,omitempty"`
	Structured  bool     `json:"structured"`
	TokensIn    int      `json:"tokensIn"`
	TokensOut   int      `json:"tokensOut"`
	CostUSD     float64  `json:"costUSD"`
	LatencyMS   int64    `json:"latencyMs"`
	Simulated   bool     `json:"simulated,omitempty"`
	Failed      bool     `json:"failed,omitempty"`
	Attempts    int      `json:"attempts,omitempty"` // provider calls it took
	// Unrecorded: the step that made the call could not write its store row
	// in time; a later step writes it.
	Unrecorded bool `json:"unrecorded,omitempty"`
	// StartedAt and FinishedAt bracket the model call (read inside the step).
	StartedAt  time.Time `json:"startedAt"`
	FinishedAt time.Time `json:"finishedAt"`
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
	Model     string  `json:"model,omitempty"`
	TokensIn  int     `json:"tokensIn"`
	TokensOut int     `json:"tokensOut"`
	CostUSD   float64 `json:"costUSD"`
	LatencyMS int64   `json:"latencyMs"`
	Simulated bool    `json:"simulated,omitempty"`
	// FinishedAt is when the moderator answered (zero in vote mode).
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	// Contested is true when agreement stays below the consensus threshold.
	Contested bool `json:"contested"`
	// Unrecorded: the moderator's step could not write its store row in
	// time; Transcript is the transcript that step saved, if it could.
	Unrecorded bool                  `json:"unrecorded,omitempty"`
	Transcript *workflow.ArtifactRef `json:"transcript,omitempty"`
}

// ParticipantTotal is what one participant cost.
type ParticipantTotal struct {
	Participant string  `json:"participant"`
	Calls       int     `json:"calls"`
	TokensIn    int     `json:"tokensIn"`
	TokensOut   int     `json:"tokensOut"`
	CostUSD     float64 `json:"costUSD"`
}

// Totals sums the debate's cost.
type Totals struct {
	Calls          int                `json:"calls"`
	TokensIn       int                `json:"tokensIn"`
	TokensOut      int                `json:"tokensOut"`
	CostUSD        float64            `json:"costUSD"`
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
	// Records, if set, is the metadata store: every call's row is written
	// by the step that made it, and the full transcript is kept there as an
	// artifact.
	Records workflow.Records
}

// modelPlan is the models a debate runs on, fixed at its start.
type modelPlan struct {
	Participants []llm.Ref `json:"participants"`
	Moderator    llm.Ref   `json:"moderator"`
}

// planStep resolves models from the configuration: nothing to retry.
var planStep = engine.StepOptions{MaxAttempts: 1}

// stepOptions for participant calls: the engine tries once, because the
// provider client already retried transient faults with backoff.
var participantStep = engine.StepOptions{MaxAttempts: 1}

// Run is the workflow body.
func (d *Debate) Run(c engine.Context, in Input) (Result, error) {
	if err := in.Validate(); err != nil {
		return Result{}, err
	}
	// Which model answers for whom is decided once, in a journaled step:
	// a replay after a restart with another default model or provider
	// keeps the models the debate started with.
	plan, err := engine.Run(c, "models", planStep, func(context.Context) (modelPlan, error) {
		refs, mod, err := d.resolveModels(in)
		return modelPlan{Participants: refs, Moderator: mod}, err
	})
	if err != nil {
		return Result{}, err
	}
	refs, modRef := plan.Participants, plan.Moderator
	res := Result{ID: c.WorkflowID(), Topic: in.Topic, Mode: in.ModeOrDefault()}
	rounds := in.RoundsOrDefault()
	if res.Mode == ModeVote {
		rounds = 1 // self-consistency: independent answers, then the vote
	}
	// Progress is published once per round, when the round is done: each
	// publish is a journal entry, so it says at once what finished and what
	// runs next.
	progress := Progress{Phase: "round", Rounds: rounds}

	var previous []Response
	// The calls whose steps could not write their rows (a slow store): each
	// round's are written beside the next batch of calls, the last ones with
	// the transcript. Usually none.
	var pending []workflow.Execution
	recordName := ""
	for r := 1; r <= rounds; r++ {
		responses, err := d.round(c, in, refs, r, previous, d.recordStep(recordName, pending))
		if err != nil {
			// The calls that answered were paid for: they get their rows
			// whatever becomes of the debate.
			return Result{}, d.recordPaid(c, append(pending, unrecorded(c.WorkflowID(), r, in.Participants, responses)...), err)
		}
		pending, recordName = unrecorded(c.WorkflowID(), r, in.Participants, responses), fmt.Sprintf("record-round-%d", r)
		round := Round{Number: r, Responses: responses, Agreement: Agree(responses)}
		res.Rounds = append(res.Rounds, round)
		// Progress keeps positions, not reasoning: it is rewritten every
		// round, and watchers print positions.
		progress.CompletedRounds = append(progress.CompletedRounds, round.withReasoning(0))
		previous = responses
		if round.Agreement && r < rounds && res.Mode == ModeDebate {
			res.StoppedEarly = true
			break
		}
		if r == rounds {
			break
		}
		progress.Round = r + 1
		progress.Phase, progress.Message = "round", fmt.Sprintf("round %d of %d done; round %d running", r, rounds, r+1)
		if in.Delay() > 0 {
			progress.Phase, progress.Message = "pause", fmt.Sprintf("round %d of %d done; next round in %s", r, rounds, in.Delay())
		}
		if err := c.Publish(progressKey, progress); err != nil {
			return Result{}, err
		}
		if in.Delay() > 0 {
			if err := c.Sleep(fmt.Sprintf("pause-after-round-%d", r), in.Delay()); err != nil {
				return Result{}, d.recordPaid(c, pending, err) // cancelled in the pause
			}
		}
	}

	res.Vote = WeightedVote(previous)
	progress.Phase, progress.Message = "synthesis", "moderator is writing the synthesis"
	if res.Mode == ModeVote {
		progress.Message = "vote counted"
	}
	if err := c.Publish(progressKey, progress); err != nil {
		return Result{}, err
	}
	if res.Mode == ModeVote {
		res.Synthesis = ModeratorResult{Synthesis: Synthesis{Consensus: res.Vote.Winner, Agreement: res.Vote.Share, Recommendation: res.Vote.Winner}}
	} else {
		transcript, err := json.Marshal(res.Rounds)
		if err != nil {
			return Result{}, fault.Wrap(fault.Internal, err, "encode transcript")
		}
		res.Synthesis, err = d.moderate(c, in, modRef, previous, res.Vote, transcript, d.recordStep(recordName, pending))
		if err != nil {
			return Result{}, d.recordPaid(c, pending, err)
		}
		pending = nil
		if res.Synthesis.Unrecorded {
			pending = []workflow.Execution{moderatorRow(c.WorkflowID(), res.Synthesis)}
		}
	}
	if res.Synthesis.Agreement < 0 { // the moderator gave no score: use the vote's
		res.Synthesis.Agreement = res.Vote.Share
	}
	res.Synthesis.Contested = res.Synthesis.Agreement < in.Threshold()
	if in.Escalate && res.Synthesis.Contested {
		progress.Phase = "awaiting-decision"
		progress.Message = fmt.Sprintf("agreement %.2f is below %.2f: waiting up to %s for a decision (ultramcp decide %s --decision …)",
			res.Synthesis.Agreement, in.Threshold(), in.DecisionTimeout(), c.WorkflowID())
		if err := c.Publish(progressKey, progress); err != nil {
			return Result{}, err
		}
		// The decision may take days: the moderator's call is recorded now.
		if err := d.recordPaid(c, pending, nil); err != nil {
			return Result{}, err
		}
		pending = nil
		raw, ok, err := c.Await(workflow.DecisionPromise, in.DecisionTimeout())
		if err != nil {
			return Result{}, err
		}
		res.Decision = parseDecision(raw, ok, res.Vote.Winner)
	}
	if err := d.saveTranscript(c, &res, pending); err != nil {
		return Result{}, err
	}

	// The times come from inside the journaled steps, so no extra clock
	// step (one more round trip to Restate) is needed.
	res.StartedAt, res.FinishedAt = span(res)
	res.Totals = totals(res)
	res.Simulated = simulated(res)
	res.Totals.WallMS = res.FinishedAt.Sub(res.StartedAt).Milliseconds()
	return res, nil
}

const progressKey = workflow.ProgressKey

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

// recordPaid writes the rows of calls already paid for that no step has
// written yet, in a step of its own, and returns cause: a debate that
// fails, is cancelled or waits long still accounts for every call. Rows
// are upserts, so a call written twice is one row.
func (d *Debate) recordPaid(c engine.Context, execs []workflow.Execution, cause error) error {
	if d.Records == nil || len(execs) == 0 {
		return cause
	}
	if _, err := c.Run(workflow.ExecutionsStep(d.Records, "record-paid-calls", execs)); err != nil && cause == nil {
		return err
	}
	return cause
}

// round asks every participant concurrently, one journaled step each; the
// previous round's record step, if any, runs in the same batch.
func (d *Debate) round(c engine.Context, in Input, refs []llm.Ref, r int, previous []Response, pending *engine.Step) ([]Response, error) {
	steps := make([]engine.Step, 0, len(in.Participants)+1)
	for i, p := range in.Participants {
		prompt := firstRoundPrompt(in)
		if r > 1 {
			prompt = laterRoundPrompt(in, p.Name, r, previous)
		}
		name := stepName(r, p.Name)
		req := llm.Request{
			System:   systemPrompt(p),
			Messages: []llm.Message{{Role: "user", Content: prompt}},
			JSON:     true,
			Label:    c.WorkflowID() + "/" + name,
		}
		ref := refs[i]
		steps = append(steps, engine.TypedStep[Response]{Name: name, Opts: participantStep, Fn: func(ctx context.Context) (Response, error) {
			resp, err := d.ask(ctx, p.Name, ref, req)
			if err != nil {
				return resp, err
			}
			// The call's row rides in the step that made it: an upsert keyed
			// by workflow and step, so a step run again rewrites the same
			// row, and no step of its own is needed unless the store is slow.
			resp.Unrecorded = !d.recordInStep(ctx, rowOf(c.WorkflowID(), name, resp))
			return resp, nil
		}}.Raw())
	}
	results, errs, err := runBeside(c, steps, pending)
	if err != nil {
		return nil, err
	}
	responses := make([]Response, len(in.Participants))
	var first error
	for i := range in.Participants {
		err := errs[i]
		if err == nil {
			responses[i], err = engine.Decode[Response](steps[i].Name, results[i])
		}
		if err != nil {
			responses[i] = Response{Participant: in.Participants[i].Name, Failed: true}
			if first == nil {
				first = fmt.Errorf("round %d, participant %s: %w", r, in.Participants[i].Name, err)
			}
		}
	}
	// On failure the responses that came are returned too: they were paid.
	return responses, first
}

func stepName(round int, participant string) string {
	return fmt.Sprintf("round-%d/%s", round, participant)
}

// unrecorded are the store rows of a round's calls that their steps could
// not write.
func unrecorded(workflowID string, round int, ps []Participant, responses []Response) []workflow.Execution {
	var execs []workflow.Execution
	for i, resp := range responses {
		if resp.Failed || !resp.Unrecorded {
			continue // no answer, nothing paid; or written already
		}
		execs = append(execs, rowOf(workflowID, stepName(round, ps[i].Name), resp))
	}
	return execs
}

// rowOf is the store row of a participant's call.
func rowOf(workflowID, step string, resp Response) workflow.Execution {
	e := execution(workflowID, step, resp.Participant, resp.LatencyMS, resp.TokensIn, resp.TokensOut, resp.CostUSD, resp.StartedAt)
	e.Attempt = resp.Attempts
	return e
}

// recordInStep writes rows from inside the step that paid for them, trying
// for about a second: a store that does not answer must not hold a paid
// answer back from the journal. It reports whether they were written.
func (d *Debate) recordInStep(ctx context.Context, rows ...workflow.Execution) bool {
	if d.Records == nil {
		return true
	}
	return workflow.TryStore(ctx, func(ctx context.Context) error { return d.Records.RecordExecutions(ctx, rows) }) == nil
}

// recordStep is the step that writes execs to the store beside the next
// batch of calls; nil without a store or without rows.
func (d *Debate) recordStep(name string, execs []workflow.Execution) *engine.Step {
	if d.Records == nil || len(execs) == 0 {
		return nil
	}
	s := workflow.ExecutionsStep(d.Records, name, execs)
	return &s
}

// runBeside runs steps in one batch with record, if any, and fails if the
// record cannot be written.
func runBeside(c engine.Context, steps []engine.Step, record *engine.Step) ([][]byte, []error, error) {
	if record == nil {
		results, errs := c.RunAll(steps)
		return results, errs, nil
	}
	n := len(steps)
	results, errs := c.RunAll(append(steps, *record))
	if errs[n] != nil {
		return nil, nil, fmt.Errorf("%s: %w", record.Name, errs[n])
	}
	return results[:n], errs[:n], nil
}

func execution(workflowID, step, agent string, ms int64, in, out int, cost float64, at time.Time) workflow.Execution {
	return workflow.Execution{WorkflowID: workflowID, AgentName: agent, Step: step, Status: workflow.StatusCompleted,
		DurationMS: ms, TokensIn: in, TokensOut: out, CostUSD: cost, CreatedAt: at}
}

func (d *Debate) ask(ctx context.Context, participant string, ref llm.Ref, req llm.Request) (Response, error) {
	start := time.Now()
	out, err := d.Models.Complete(ctx, ref, req)
	if err != nil {
		return Response{}, err
	}
	a := ParseAnswer(out.Text)
	cost, _ := llm.EstimateCost(out.Model, out.TokensIn, out.TokensOut)
	resp := Response{
		Participant: participant, Model: out.Model,
		Position: a.Position, Reasoning: a.Reasoning, Confidence: a.Confidence, Structured: a.Structured,
		TokensIn: out.TokensIn, TokensOut: out.TokensOut, CostUSD: cost,
		LatencyMS: time.Since(start).Milliseconds(), Simulated: out.Simulated, Attempts: out.Attempts,
		StartedAt: start.UTC(), FinishedAt: time.Now().UTC(),
	}
	return resp, nil
}

// moderatorRow is the store row of the moderator's call.
func moderatorRow(workflowID string, s ModeratorResult) workflow.Execution {
	return execution(workflowID, "moderator", "moderator", s.LatencyMS, s.TokensIn, s.TokensOut, s.CostUSD, s.FinishedAt.Add(-time.Duration(s.LatencyMS)*time.Millisecond))
}

// moderate asks the moderator; the last round's record step runs beside
// it. The moderator's step writes its own row and saves the transcript
// (the rounds, which its answer closes), so the debate needs no step of
// its own for either unless the store is slow.
func (d *Debate) moderate(c engine.Context, in Input, ref llm.Ref, final []Response, vote Vote, transcript []byte, pending *engine.Step) (ModeratorResult, error) {
	req := llm.Request{
		System:   moderatorSystem,
		Messages: []llm.Message{{Role: "user", Content: moderatorPrompt(in, final, vote)}},
		JSON:     true,
		Label:    c.WorkflowID() + "/moderator",
	}
	steps := []engine.Step{engine.TypedStep[ModeratorResult]{Name: "moderator", Opts: participantStep, Fn: func(ctx context.Context) (ModeratorResult, error) {
		start := time.Now()
		out, err := d.Models.Complete(ctx, ref, req)
		if err != nil {
			return ModeratorResult{}, fmt.Errorf("moderator: %w", err)
		}
		cost, _ := llm.EstimateCost(out.Model, out.TokensIn, out.TokensOut)
		res := ModeratorResult{
			Synthesis: ParseSynthesis(out.Text), Model: out.Model,
			TokensIn: out.TokensIn, TokensOut: out.TokensOut, CostUSD: cost,
			LatencyMS: time.Since(start).Milliseconds(), Simulated: out.Simulated,
			FinishedAt: time.Now().UTC(),
		}
		if d.Records != nil {
			res.Unrecorded = !d.recordInStep(ctx, moderatorRow(c.WorkflowID(), res))
			_ = workflow.TryStore(ctx, func(ctx context.Context) error {
				ref, err := d.Records.PutArtifact(ctx, c.WorkflowID(), "transcript.json", transcript)
				res.Transcript = &ref
				return err
			})
			if res.Transcript != nil && res.Transcript.ID == "" {
				res.Transcript = nil // not saved: the debate saves it in a step of its own
			}
		}
		return res, nil
	}}.Raw()}
	results, errs, err := runBeside(c, steps, pending)
	if err != nil {
		return ModeratorResult{}, err
	}
	if errs[0] != nil {
		return ModeratorResult{}, errs[0]
	}
	return engine.Decode[ModeratorResult]("moderator", results[0])
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

// saveTranscript keeps the full rounds in the store, with the last calls
// not yet recorded, and shortens the rounds in the result.
func (d *Debate) saveTranscript(c engine.Context, res *Result, execs []workflow.Execution) error {
	if d.Records == nil {
		return nil
	}
	if saved := res.Synthesis.Transcript; saved != nil && len(execs) == 0 {
		// The moderator's step saved it.
		res.Transcript, res.Synthesis.Transcript = saved, nil
		res.trimRounds()
		return nil
	}
	full, err := json.Marshal(res.Rounds)
	if err != nil {
		return fault.Wrap(fault.Internal, err, "encode transcript")
	}
	ref, err := workflow.Record(c, "save-transcript", func(ctx context.Context) (workflow.ArtifactRef, error) {
		if err := d.Records.RecordExecutions(ctx, execs); err != nil {
			return workflow.ArtifactRef{}, err
		}
		return d.Records.PutArtifact(ctx, c.WorkflowID(), "transcript.json", full)
	})
	if err != nil {
		return err
	}
	res.Transcript, res.Synthesis.Transcript = &ref, nil
	res.trimRounds()
	return nil
}

// trimRounds shortens the reasoning in the result: the transcript keeps it.
func (res *Result) trimRounds() {
	for i := range res.Rounds {
		res.Rounds[i] = res.Rounds[i].withReasoning(ReasoningInResult)
	}
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
	add := func(name, model string, in, out int, cost float64, simulated bool) {
		p, ok := per[name]
		if !ok {
			p = &ParticipantTotal{Participant: name}
			per[name] = p
			order = append(order, name)
		}
		p.Calls++
		p.TokensIn += in
		p.TokensOut += out
		p.CostUSD += cost
		t.Calls++
		t.TokensIn += in
		t.TokensOut += out
		t.CostUSD += cost
		if _, priced := llm.EstimateCost(model, 0, 0); !priced && !simulated {
			t.Unpriced = true
		}
	}
	for _, r := range res.Rounds {
		for _, resp := range r.Responses {
			add(resp.Participant, resp.Model, resp.TokensIn, resp.TokensOut, resp.CostUSD, resp.Simulated)
		}
	}
	if s := res.Synthesis; s.Model != "" {
		add("moderator", s.Model, s.TokensIn, s.TokensOut, s.CostUSD, s.Simulated)
	}
	for _, name := range order {
		t.PerParticipant = append(t.PerParticipant, *per[name])
	}
	return t
}

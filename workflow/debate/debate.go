// Package debate is the chain-of-debate workflow: several LLM participants
// answer a topic independently, then revise over rounds while seeing each
// other's positions (Du et al. 2023; Liang et al. 2023), stop early once they
// agree, and end with a confidence-weighted vote (ReConcile, Chen et al. 2024)
// and a moderator's synthesis.
//
// Journaled steps, in order: "clock" (start), per round one "round-R/NAME"
// step per participant, run concurrently, and "pause-after-round-R" (durable
// sleep) between rounds; then "moderator" and "clock" (end). A participant
// step retries transient provider faults inside itself, so a flaky
// participant never re-runs the others. Terminal: invalid input (before any
// step), a provider refusing for good (401/403/400), or a provider still
// failing after its retry budget.
package debate

import (
	"context"
	"fmt"
	"time"

	"github.com/ultramcp/durable/engine"
	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/llm"
	"github.com/ultramcp/durable/workflow"
)

// Models is how the debate reaches LLMs: the llm.Router, or a fake in tests.
type Models interface {
	Resolve(ref string) (llm.Ref, error)
	Complete(ctx context.Context, ref llm.Ref, req llm.Request) (llm.Response, error)
}

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
}

// Progress is what a running debate publishes after every round. Before the
// first round ends there is none; once the result exists, it is final.
type Progress struct {
	Phase           string  `json:"phase"` // "round", "pause", "synthesis"
	Round           int     `json:"round"`
	Rounds          int     `json:"rounds"`
	CompletedRounds []Round `json:"completedRounds"`
	Message         string  `json:"message"`
}

// Debate runs debates; its fields are its dependencies.
type Debate struct {
	Models Models
	// Recorder, if set, is told about every participant call and status
	// change (the metadata store). Calls happen inside journaled steps.
	Recorder Recorder
}

// Recorder receives the debate's events for the metadata store.
type Recorder interface {
	RecordCall(ctx context.Context, workflowID, step string, r Response) error
}

// stepOptions for participant calls: the engine tries once, because the
// provider client already retried transient faults with backoff.
var participantStep = engine.StepOptions{MaxAttempts: 1}

// Run is the workflow body.
func (d *Debate) Run(c engine.Context, in Input) (Result, error) {
	if err := in.Validate(); err != nil {
		return Result{}, err
	}
	refs, modRef, err := d.resolveModels(in)
	if err != nil {
		return Result{}, err
	}
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
	for r := 1; r <= rounds; r++ {
		responses, err := d.round(c, in, refs, r, previous)
		if err != nil {
			return Result{}, err
		}
		round := Round{Number: r, Responses: responses, Agreement: Agree(responses)}
		res.Rounds = append(res.Rounds, round)
		progress.CompletedRounds = append(progress.CompletedRounds, round)
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
				return Result{}, err
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
		res.Synthesis, err = d.moderate(c, in, modRef, previous, res.Vote)
		if err != nil {
			return Result{}, err
		}
	}
	if res.Synthesis.Agreement < 0 { // the moderator gave no score: use the vote's
		res.Synthesis.Agreement = res.Vote.Share
	}
	res.Synthesis.Contested = res.Synthesis.Agreement < in.Threshold()

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

// round asks every participant concurrently, one journaled step each.
func (d *Debate) round(c engine.Context, in Input, refs []llm.Ref, r int, previous []Response) ([]Response, error) {
	steps := make([]engine.TypedStep[Response], len(in.Participants))
	for i, p := range in.Participants {
		prompt := firstRoundPrompt(in)
		if r > 1 {
			prompt = laterRoundPrompt(in, p.Name, r, previous)
		}
		name := fmt.Sprintf("round-%d/%s", r, p.Name)
		req := llm.Request{
			System:   systemPrompt(p),
			Messages: []llm.Message{{Role: "user", Content: prompt}},
			JSON:     true,
			Label:    c.WorkflowID() + "/" + name,
		}
		ref := refs[i]
		steps[i] = engine.TypedStep[Response]{Name: name, Opts: participantStep, Fn: func(ctx context.Context) (Response, error) {
			return d.ask(ctx, c.WorkflowID(), name, p.Name, ref, req)
		}}
	}
	responses, errs := engine.RunAll(c, steps)
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("round %d, participant %s: %w", r, in.Participants[i].Name, err)
		}
	}
	return responses, nil
}

func (d *Debate) ask(ctx context.Context, workflowID, step, participant string, ref llm.Ref, req llm.Request) (Response, error) {
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
		LatencyMS: time.Since(start).Milliseconds(), Simulated: out.Simulated,
		StartedAt: start.UTC(), FinishedAt: time.Now().UTC(),
	}
	if d.Recorder != nil {
		if err := d.Recorder.RecordCall(ctx, workflowID, step, resp); err != nil {
			return Response{}, err
		}
	}
	return resp, nil
}

func (d *Debate) moderate(c engine.Context, in Input, ref llm.Ref, final []Response, vote Vote) (ModeratorResult, error) {
	req := llm.Request{
		System:   moderatorSystem,
		Messages: []llm.Message{{Role: "user", Content: moderatorPrompt(in, final, vote)}},
		JSON:     true,
		Label:    c.WorkflowID() + "/moderator",
	}
	return engine.Run(c, "moderator", participantStep, func(ctx context.Context) (ModeratorResult, error) {
		start := time.Now()
		out, err := d.Models.Complete(ctx, ref, req)
		if err != nil {
			return ModeratorResult{}, fmt.Errorf("moderator: %w", err)
		}
		cost, _ := llm.EstimateCost(out.Model, out.TokensIn, out.TokensOut)
		return ModeratorResult{
			Synthesis: ParseSynthesis(out.Text), Model: out.Model,
			TokensIn: out.TokensIn, TokensOut: out.TokensOut, CostUSD: cost,
			LatencyMS: time.Since(start).Milliseconds(), Simulated: out.Simulated,
			FinishedAt: time.Now().UTC(),
		}, nil
	})
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

package debate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ultramcp/durable/engine"
	"github.com/ultramcp/durable/engine/direct"
	"github.com/ultramcp/durable/engine/replay"
	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/llm"
	"github.com/ultramcp/durable/workflow"
)

// scripted is a fake Models: each participant answers from a script, one
// entry per round, and every call is recorded.
type scripted struct {
	mu      sync.Mutex
	script  map[string][]string // participant → answer per round
	calls   []string            // labels, in call order
	latency time.Duration
	fail    func(label string) error
	active  atomic.Int32
	peak    atomic.Int32
}

func (s *scripted) Resolve(ref string) (llm.Ref, error) {
	if strings.HasPrefix(ref, "bogus:") {
		return llm.Ref{}, errors.New(`unknown provider "bogus"`)
	}
	return llm.Ref{Provider: "fake", Model: ref}, nil
}

func (s *scripted) Complete(ctx context.Context, ref llm.Ref, req llm.Request) (llm.Response, error) {
	n := s.active.Add(1)
	defer s.active.Add(-1)
	for {
		p := s.peak.Load()
		if n <= p || s.peak.CompareAndSwap(p, n) {
			break
		}
	}
	s.mu.Lock()
	s.calls = append(s.calls, req.Label)
	s.mu.Unlock()
	if s.latency > 0 {
		time.Sleep(s.latency)
	}
	if s.fail != nil {
		if err := s.fail(req.Label); err != nil {
			return llm.Response{}, err
		}
	}
	parts := strings.Split(req.Label, "/")
	last := parts[len(parts)-1]
	if last == "moderator" {
		return llm.Response{Text: `{"consensus":"c","disagreements":["d"],"recommendation":"r","agreement":0.9}`, Model: "fake:mod", TokensIn: 10, TokensOut: 5}, nil
	}
	var round int
	fmt.Sscanf(parts[len(parts)-2], "round-%d", &round)
	answers := s.script[last]
	text := answers[min(round-1, len(answers)-1)]
	return llm.Response{Text: text, Model: "openai:gpt-4o-mini", TokensIn: 100, TokensOut: 20}, nil
}

func answer(pos string, conf float64) string {
	return fmt.Sprintf(`{"position":%q,"reasoning":"because","confidence":%v}`, pos, conf)
}

func rounds(n int) *int { return &n }

func zeroDelay() *Duration { d := Duration(0); return &d }

// run runs the debate through the replay checker: once on the direct
// engine, then again against the recorded journal, as Restate would after a
// crash; a difference fails the test.
func run(t *testing.T, m llm.Models, in Input) (Result, error) {
	t.Helper()
	res, err := replay.Check(context.Background(), "d1", func(c engine.Context) (Result, error) {
		return (&Debate{Models: m}).Run(c, in)
	})
	if err != nil && strings.Contains(err.Error(), "journal mismatch") || err != nil && strings.Contains(err.Error(), "replay differs") {
		t.Fatalf("not deterministic: %v", err)
	}
	return res, err
}

func TestDebateConvergesAndStopsEarly(t *testing.T) {
	m := &scripted{script: map[string][]string{
		"a": {answer("yes", 0.9), answer("yes", 0.95)},
		"b": {answer("no", 0.7), answer("yes", 0.8)},
		"c": {answer("yes", 0.6), answer("yes", 0.9)},
	}}
	res, err := run(t, m, Input{Topic: "t", Participants: []Participant{{Name: "a"}, {Name: "b"}, {Name: "c"}}, Rounds: rounds(5), DelayBetweenRounds: zeroDelay()})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rounds) != 2 || !res.StoppedEarly {
		t.Fatalf("rounds = %d, stoppedEarly = %v; want 2, true", len(res.Rounds), res.StoppedEarly)
	}
	if res.Rounds[0].Agreement || !res.Rounds[1].Agreement {
		t.Errorf("agreement flags = %v, %v", res.Rounds[0].Agreement, res.Rounds[1].Agreement)
	}
	if res.Vote.Winner != "yes" || res.Vote.Share != 1 {
		t.Errorf("vote = %+v", res.Vote)
	}
	if res.Synthesis.Consensus != "c" || res.Synthesis.Agreement != 0.9 || res.Synthesis.Contested {
		t.Errorf("synthesis = %+v", res.Synthesis)
	}
	// 3 participants × 2 rounds + moderator.
	if res.Totals.Calls != 7 || res.Totals.TokensIn != 610 || res.Totals.TokensOut != 125 {
		t.Errorf("totals = %+v", res.Totals)
	}
	if res.Totals.CostUSD <= 0 || len(res.Totals.PerParticipant) != 4 {
		t.Errorf("cost %v, per participant %d", res.Totals.CostUSD, len(res.Totals.PerParticipant))
	}
}

func TestLaterRoundsSeeOthersPositions(t *testing.T) {
	m := &scripted{script: map[string][]string{
		"a": {answer("alpha plan", 0.9)},
		"b": {answer("beta plan", 0.7)},
	}}
	var prompts []string
	var mu sync.Mutex
	rec := &recordingModels{Models: m, prompts: &prompts, mu: &mu}
	if _, err := run(t, rec, Input{Topic: "t", Participants: []Participant{{Name: "a"}, {Name: "b"}}, Rounds: rounds(2), DelayBetweenRounds: zeroDelay()}); err != nil {
		t.Fatal(err)
	}
	var aRound2 string
	for _, p := range prompts {
		if strings.HasPrefix(p, "d1/round-2/a\n") {
			aRound2 = p
		}
	}
	if !strings.Contains(aRound2, `"beta plan" held by b`) || !strings.Contains(aRound2, `Your previous position: "alpha plan"`) {
		t.Errorf("round-2 prompt of a lacks the others' and its own positions:\n%s", aRound2)
	}
}

type recordingModels struct {
	llm.Models
	prompts *[]string
	mu      *sync.Mutex
}

func (r *recordingModels) Complete(ctx context.Context, ref llm.Ref, req llm.Request) (llm.Response, error) {
	r.mu.Lock()
	*r.prompts = append(*r.prompts, req.Label+"\n"+req.Messages[0].Content)
	r.mu.Unlock()
	return r.Models.Complete(ctx, ref, req)
}

func TestParticipantsRunConcurrently(t *testing.T) {
	script := map[string][]string{}
	var ps []Participant
	for _, n := range []string{"a", "b", "c", "d"} {
		script[n] = []string{answer(n+" way", 0.5)}
		ps = append(ps, Participant{Name: n})
	}
	m := &scripted{script: script, latency: 50 * time.Millisecond}
	if _, err := run(t, m, Input{Topic: "t", Participants: ps, Rounds: rounds(1)}); err != nil {
		t.Fatal(err)
	}
	if got := m.peak.Load(); got != 4 {
		t.Errorf("peak concurrent calls = %d, want 4", got)
	}
}

func TestTerminalProviderErrorFailsDebate(t *testing.T) {
	m := &scripted{script: map[string][]string{"a": {answer("x", 1)}, "b": {answer("y", 1)}},
		fail: func(label string) error {
			if strings.HasSuffix(label, "/b") {
				return fault.New(fault.Permanent, "openai: 401 unauthorized (check the API key)")
			}
			return nil
		}}
	_, err := run(t, m, Input{Topic: "t", Participants: []Participant{{Name: "a"}, {Name: "b"}}, Rounds: rounds(2)})
	if err == nil || fault.KindOf(err) != fault.Permanent || !strings.Contains(err.Error(), "participant b") || !strings.Contains(err.Error(), "401") {
		t.Fatalf("err = %v (kind %v)", err, fault.KindOf(err))
	}
	if len(m.calls) != 2 {
		t.Errorf("calls = %v: a permanent error must not be retried", m.calls)
	}
}

func TestVoteModeIsOneIndependentRound(t *testing.T) {
	m := &scripted{script: map[string][]string{
		"a": {answer("yes", 1.0)}, "b": {answer("no", 0.7)}, "c": {answer("yes", 0.65)},
	}}
	res, err := run(t, m, Input{Topic: "t", Mode: ModeVote, Participants: []Participant{{Name: "a"}, {Name: "b"}, {Name: "c"}}, Rounds: rounds(3)})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rounds) != 1 || len(m.calls) != 3 {
		t.Fatalf("rounds %d calls %d: vote mode asks each participant once and no moderator", len(res.Rounds), len(m.calls))
	}
	// ReConcile weights: 1.0→1.0, 0.65→0.3, 0.7→0.3: yes has 1.3 of 1.6.
	if res.Vote.Winner != "yes" || fmt.Sprintf("%.3f", res.Vote.Share) != "0.812" {
		t.Errorf("vote = %+v", res.Vote)
	}
	if res.Synthesis.Agreement != res.Vote.Share {
		t.Errorf("agreement %v, want the vote share", res.Synthesis.Agreement)
	}
}

func TestUnknownModelIsInvalidBeforeAnyCall(t *testing.T) {
	m := &scripted{}
	_, err := run(t, m, Input{Topic: "t", Participants: []Participant{{Name: "a", Model: "bogus:x"}, {Name: "b"}}})
	if fault.KindOf(err) != fault.Invalid || fault.FieldOf(err) != "participants[0].model" {
		t.Fatalf("err = %v, field %q", err, fault.FieldOf(err))
	}
	if len(m.calls) != 0 {
		t.Errorf("made %d calls", len(m.calls))
	}
}

func TestProgressIsPublishedPerRound(t *testing.T) {
	m := &scripted{script: map[string][]string{"a": {answer("x", 0.5)}, "b": {answer("y", 0.5)}}}
	c := direct.New(context.Background(), "d1", nil)
	if _, err := (&Debate{Models: m}).Run(c, Input{Topic: "t", Participants: []Participant{{Name: "a"}, {Name: "b"}}, Rounds: rounds(2), DelayBetweenRounds: zeroDelay()}); err != nil {
		t.Fatal(err)
	}
	var p Progress
	if err := json.Unmarshal(c.Published(progressKey), &p); err != nil {
		t.Fatal(err)
	}
	if p.Phase != "synthesis" || len(p.CompletedRounds) != 2 || p.Rounds != 2 {
		t.Errorf("progress = %+v", p)
	}
}

// memRecords is an in-memory workflow.Records.
type memRecords struct {
	mu        sync.Mutex
	execs     map[string]workflow.Execution
	writes    int
	artifacts map[string][]byte
}

func (m *memRecords) Started(context.Context, string, string, []byte, time.Time) error { return nil }
func (m *memRecords) Finished(context.Context, string, string, string, []byte, string, time.Time) error {
	return nil
}
func (m *memRecords) RecordExecutions(_ context.Context, execs []workflow.Execution) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range execs {
		m.execs[e.Step] = e
		m.writes++
	}
	return nil
}
func (m *memRecords) LinkChildren(context.Context, string, []workflow.Child, time.Time) error {
	return nil
}
func (m *memRecords) Withdraw(context.Context, string, string, string) error { return nil }
func (m *memRecords) NamedArtifact(_ context.Context, wf, name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.artifacts[name], nil
}
func (m *memRecords) PutArtifact(_ context.Context, wf, name string, content []byte) (workflow.ArtifactRef, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.artifacts[name] = content
	return workflow.ArtifactRef{ID: "x", Name: name, Bytes: len(content)}, nil
}

func TestEveryCallIsRecordedOnce(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mode  string
		steps []string
	}{
		{"debate stopping early", ModeDebate, []string{"moderator", "round-1/a", "round-1/b", "round-2/a", "round-2/b"}},
		{"vote", ModeVote, []string{"round-1/a", "round-1/b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &scripted{script: map[string][]string{"a": {answer("x", 0.9), answer("y", 0.9)}, "b": {answer("y", 0.9), answer("y", 0.9)}}}
			rec := &memRecords{execs: map[string]workflow.Execution{}, artifacts: map[string][]byte{}}
			res, err := replay.Check(context.Background(), "d1", func(c engine.Context) (Result, error) {
				return (&Debate{Models: m, Records: rec}).Run(c, Input{Topic: "t", Mode: tc.mode, Participants: []Participant{{Name: "a"}, {Name: "b"}}, Rounds: rounds(4), DelayBetweenRounds: zeroDelay()})
			})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for step := range rec.execs {
				got = append(got, step)
			}
			sort.Strings(got)
			// replay.Check runs the body, then replays it: the rows are
			// written outside the journal, so the replay writes the same
			// rows again (upserts), once each per run.
			if strings.Join(got, ",") != strings.Join(tc.steps, ",") || rec.writes != 2*len(tc.steps) {
				t.Errorf("recorded %v in %d writes, want %v once each per run (%d)", got, rec.writes, tc.steps, 2*len(tc.steps))
			}
			if res.Transcript == nil || len(rec.artifacts["transcript.json"]) == 0 {
				t.Error("no transcript artifact")
			}
		})
	}
}

func TestEscalationWaitsForADecision(t *testing.T) {
	disagree := map[string][]string{"a": {answer("yes", 0.9)}, "b": {answer("no", 0.9)}}
	in := func(timeout time.Duration) Input {
		d := Duration(timeout)
		threshold := 0.95 // the moderator says 0.9: contested
		return Input{Topic: "t", Participants: []Participant{{Name: "a"}, {Name: "b"}}, Rounds: rounds(1),
			Escalate: true, EscalateTimeout: &d, ConsensusThreshold: &threshold}
	}
	t.Run("a human decides", func(t *testing.T) {
		c := direct.New(context.Background(), "d1", nil)
		go func() {
			for {
				var p Progress
				if json.Unmarshal(c.Published(progressKey), &p) == nil && p.Phase == "awaiting-decision" &&
					c.Resolve(workflow.DecisionPromise, json.RawMessage(`{"decision":"ship it","by":"alice"}`)) == nil {
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
		res, err := (&Debate{Models: &scripted{script: disagree}}).Run(c, in(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if d := res.Decision; d == nil || d.Decision != "ship it" || d.By != "alice" || d.Source != "human" {
			t.Errorf("decision = %+v", res.Decision)
		}
	})
	t.Run("the vote stands after the timeout", func(t *testing.T) {
		res, err := replay.Check(context.Background(), "d2", func(c engine.Context) (Result, error) {
			return (&Debate{Models: &scripted{script: disagree}}).Run(c, in(20*time.Millisecond))
		})
		if err != nil {
			t.Fatal(err)
		}
		if d := res.Decision; d == nil || d.Source != "timeout" || d.Decision != res.Vote.Winner {
			t.Errorf("decision = %+v, vote %q", res.Decision, res.Vote.Winner)
		}
	})
	t.Run("no wait when they agree", func(t *testing.T) {
		agree := map[string][]string{"a": {answer("yes", 0.9)}, "b": {answer("yes", 0.9)}}
		x := in(time.Hour)
		threshold := 0.5
		x.ConsensusThreshold = &threshold
		res, err := (&Debate{Models: &scripted{script: agree}}).Run(direct.New(context.Background(), "d3", nil), x)
		if err != nil || res.Decision != nil {
			t.Errorf("decision %+v err %v", res.Decision, err)
		}
	})
}

// Every call that answered has its row, whatever becomes of the debate: a
// participant failing for good in round 2 leaves round 1 and the others'
// round-2 calls recorded.
func TestPaidCallsRecordedWhenARoundFails(t *testing.T) {
	m := &scripted{script: map[string][]string{"a": {answer("x", 0.9), answer("y", 0.9)}, "b": {answer("y", 0.9)}, "c": {answer("z", 0.9)}},
		fail: func(label string) error {
			if label == "d1/round-2/b" {
				return fault.New(fault.Permanent, "openai: 401 unauthorized")
			}
			return nil
		}}
	rec := &memRecords{execs: map[string]workflow.Execution{}, artifacts: map[string][]byte{}}
	_, err := replay.Check(context.Background(), "d1", func(c engine.Context) (Result, error) {
		return (&Debate{Models: m, Records: rec}).Run(c, Input{Topic: "t", Participants: []Participant{{Name: "a"}, {Name: "b"}, {Name: "c"}}, Rounds: rounds(3), DelayBetweenRounds: zeroDelay()})
	})
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("err = %v", err)
	}
	var got []string
	for step := range rec.execs {
		got = append(got, step)
	}
	sort.Strings(got)
	if want := "round-1/a,round-1/b,round-1/c,round-2/a,round-2/c"; strings.Join(got, ",") != want {
		t.Errorf("recorded %v, want %s", got, want)
	}
}

package debate

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ultramcp/durable/engine"
	"github.com/ultramcp/durable/engine/direct"
	"github.com/ultramcp/durable/engine/replay"
	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/workflow"
	"github.com/ultramcp/durable/workflow/writebehind"
)

// memoRecords is memRecords that also keeps answers and progress
// (workflow.Memo), as the real store does.
type memoRecords struct {
	memRecords
	pmu      sync.Mutex
	progress []int // the seq of each progress write, in order
	latest   json.RawMessage
	ends     []string // each end written: status and output
}

func newMemoRecords() *memoRecords {
	return &memoRecords{memRecords: memRecords{execs: map[string]workflow.Execution{}, artifacts: map[string][]byte{}}}
}

// RecordExecutions keeps a row's answer when a later write of it has none,
// as the store's upsert does.
func (m *memoRecords) RecordExecutions(ctx context.Context, execs []workflow.Execution) error {
	m.mu.Lock()
	for i, e := range execs {
		if old, ok := m.execs[e.Step]; ok && e.Answer == nil {
			execs[i].RunID, execs[i].Answer = old.RunID, old.Answer
		}
	}
	m.mu.Unlock()
	return m.memRecords.RecordExecutions(ctx, execs)
}

func (m *memoRecords) Finished(_ context.Context, _, _, status string, output []byte, _ string, _ time.Time) error {
	m.pmu.Lock()
	defer m.pmu.Unlock()
	m.ends = append(m.ends, status+" "+string(output))
	return nil
}

func (m *memoRecords) Answers(_ context.Context, workflowID, runID string) (map[string]json.RawMessage, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]json.RawMessage{}
	for step, e := range m.execs {
		if e.WorkflowID == workflowID && e.RunID == runID && e.Answer != nil {
			out[step] = e.Answer
		}
	}
	return out, nil
}

func (m *memoRecords) Progress(_ context.Context, _ string, seq int, value []byte) error {
	m.pmu.Lock()
	defer m.pmu.Unlock()
	m.progress = append(m.progress, seq)
	m.latest = value
	return nil
}

var _ workflow.Memo = (*memoRecords)(nil)

// sameRun is another attempt of one run: a fresh body over the same run id.
type sameRun struct {
	engineContext
	run string
}

// engineContext names the embedded context so that its Context method is
// promoted.
type engineContext = engine.Context

func (s sameRun) RunID() string { return s.run }

func threeRounds() Input {
	return Input{Topic: "t", Participants: []Participant{{Name: "a"}, {Name: "b"}}, Rounds: rounds(3), DelayBetweenRounds: zeroDelay()}
}

func disagreeing() map[string][]string {
	return map[string][]string{"a": {answer("x", 0.9)}, "b": {answer("y", 0.9)}}
}

// With a store that keeps answers, a round is one step, the moderator rides
// in the last, progress goes to the store and not the journal, and the
// result is the one a step per call gives.
func TestMemoRoundIsOneStep(t *testing.T) {
	rec := newMemoRecords()
	var names []string
	res, err := replay.Check(context.Background(), "d1", func(c engine.Context) (Result, error) {
		out, err := (&Debate{Models: &scripted{script: disagreeing()}, Records: rec}).Run(stepNames{c, &names}, threeRounds())
		return out, err
	})
	if err != nil {
		t.Fatal(err)
	}
	// Once as run, once as replayed.
	if got := strings.Join(names, ","); got != "round-1,round-2,round-3,round-1,round-2,round-3" {
		t.Errorf("steps %s, want one per round", got)
	}
	plain, err := run(t, &scripted{script: disagreeing()}, threeRounds())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rounds) != 3 || res.Synthesis.Consensus != plain.Synthesis.Consensus || res.Vote.Winner != plain.Vote.Winner || res.Vote.Share != plain.Vote.Share || res.Totals.Calls != 7 {
		t.Errorf("memo result %+v differs from a step per call %+v", res, plain)
	}
	var steps []string
	for step, e := range rec.execs {
		steps = append(steps, step)
		if e.Answer == nil || e.RunID == "" {
			t.Errorf("row %s keeps no answer for its run", step)
		}
	}
	if len(steps) != 7 || rec.writes != 14 {
		t.Errorf("rows %v in %d writes, want 7 once each per run", steps, rec.writes)
	}
	// After round 1, after round 2, before the moderator; the replay
	// publishes the first two again. The writes go out side by side (the
	// store keeps the highest seq), so the run's three come in any order.
	got := rec.progress
	first := slices.Sorted(slices.Values(got[:min(3, len(got))]))
	if len(got) != 5 || !slices.Equal(first, []int{1, 2, 3}) {
		t.Errorf("progress seqs %v", got)
	}
}

// stepNames records the steps a body runs.
type stepNames struct {
	engineContext
	names *[]string
}

func (s stepNames) Run(step engine.Step) ([]byte, error) {
	*s.names = append(*s.names, step.Name)
	return s.engineContext.Run(step)
}

// An attempt that ends inside a round (here: one participant's call fails)
// leaves the answers that came in the store; the next attempt of the run
// asks only the participant that had not answered, and the moderator.
func TestRetriedRoundAsksOnlyWhoDidNotAnswer(t *testing.T) {
	rec := newMemoRecords()
	failed := false
	m := &scripted{script: disagreeing(), fail: func(label string) error {
		if label == "d1/round-2/b" && !failed {
			failed = true
			return fault.New(fault.Permanent, "the service died")
		}
		return nil
	}}
	first := direct.New(context.Background(), "d1", nil)
	if _, err := (&Debate{Models: m, Records: rec}).Run(first, threeRounds()); err == nil {
		t.Fatal("the first attempt should end in round 2")
	}
	again := sameRun{direct.New(context.Background(), "d1", nil), first.RunID()}
	res, err := (&Debate{Models: m, Records: rec}).Run(again, threeRounds())
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, l := range m.calls {
		count[l]++
	}
	for label, want := range map[string]int{"d1/round-1/a": 1, "d1/round-1/b": 1, "d1/round-2/a": 1, "d1/round-2/b": 2, "d1/round-3/a": 1, "d1/moderator": 1} {
		if count[label] != want {
			t.Errorf("%s called %d times, want %d (calls %v)", label, count[label], want, m.calls)
		}
	}
	if len(res.Rounds) != 3 || res.Rounds[1].Responses[0].Position != "x" {
		t.Errorf("result %+v", res.Rounds)
	}
	// Another run of the same workflow id does not reuse this run's answers.
	other := direct.New(context.Background(), "d1", nil)
	before := len(m.calls)
	if _, err := (&Debate{Models: m, Records: rec}).Run(other, threeRounds()); err != nil {
		t.Fatal(err)
	}
	if n := len(m.calls) - before; n != 7 {
		t.Errorf("a new run made %d calls, want all 7", n)
	}
}

// The last round's step knows the debate's result: the workflow's end is
// written from there, once, with the very output the body returns.
func TestEndWrittenByTheLastStep(t *testing.T) {
	rec := newMemoRecords()
	early := false // the end was written before the body returned
	body := writebehind.Tracked(rec, workflow.ChainOfDebate, func(c engine.Context, in Input) (Result, error) {
		res, err := (&Debate{Models: &scripted{script: disagreeing()}, Records: rec}).Run(c, in)
		for range 100 {
			rec.pmu.Lock()
			early = len(rec.ends) == 1
			rec.pmu.Unlock()
			if early {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		return res, err
	})
	res, err := body(direct.New(context.Background(), "d1", nil), threeRounds())
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(res)
	if !early {
		t.Error("the end was not written by the last round's step")
	}
	if len(rec.ends) != 1 || rec.ends[0] != "completed "+string(want) {
		t.Errorf("ends written: %q, want once: completed %s", rec.ends, want)
	}
}

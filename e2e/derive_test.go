package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ultramcp/durable/internal/llmtest"
	"github.com/ultramcp/durable/workflow"
)

// roundsOf is a debate result's rounds as they were encoded.
func roundsOf(t *testing.T, out json.RawMessage) []json.RawMessage {
	t.Helper()
	var r struct {
		Rounds []json.RawMessage `json:"rounds"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("decode %s: %v", out, err)
	}
	return r.Rounds
}

// A debate replayed from round 2 with another moderator reuses round 1 as
// it was, byte for byte, and pays only for rounds 2 and 3 and the
// moderator; the new run names the run it derives from. Bad replays are
// refused with the field at fault.
func TestReplayFromARoundPaysOnlyFromThere(t *testing.T) {
	t.Parallel()
	fake := llmtest.New(llmtest.Behavior{})
	defer fake.Close()
	env := fakeStack(t, fake)
	c := cliFor(t, env)
	names := disagreeing(3)
	body := fmt.Sprintf(`{"topic":"Replay me","participants":["%s"],"rounds":3,"delayBetweenRounds":"0s"}`, strings.Join(names, `","`))
	startDebate(t, env, "orig-1", body)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	first, err := env.Client.Attach(ctx, workflow.ChainOfDebate, "orig-1")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(roundsOf(t, first)); n != 3 {
		t.Fatalf("the original ran %d rounds, want 3 (the fake's participants disagree)", n)
	}

	// Without Jaeger, trace draws the run from Restate's journal.
	waterfall := c.must("trace", "orig-1")
	for _, want := range []string{"from Restate's journal", "step round-1", "step round-2", "step round-3", "█"} {
		if !strings.Contains(waterfall, want) {
			t.Errorf("ultramcp trace without Jaeger does not show %q:\n%s", want, waterfall)
		}
	}
	var tr struct {
		Source string
		Spans  []struct {
			Name   string
			TookMS float64 `json:"tookMs"`
		}
	}
	if err := json.Unmarshal([]byte(c.must("trace", "orig-1", "--format", "json")), &tr); err != nil || tr.Source != "journal" || len(tr.Spans) < 4 {
		t.Errorf("trace --format json: %v %+v", err, tr)
	}

	c.must("replay", "orig-1", "--from", "round-2", "--id", "again-1", "--set", "moderator=openai:other-moderator")
	second, err := env.Client.Attach(ctx, workflow.ChainOfDebate, "again-1")
	if err != nil {
		t.Fatal(err)
	}
	r1, r2 := roundsOf(t, first), roundsOf(t, second)
	if len(r2) != 3 {
		t.Fatalf("the replay has %d rounds, want 3", len(r2))
	}
	if string(r1[0]) != string(r2[0]) {
		t.Errorf("round 1 changed in the replay:\n%s\n%s", r1[0], r2[0])
	}
	calls := fake.Calls("again-1/")
	for _, n := range names {
		if calls["again-1/round-1/"+n] != 0 {
			t.Errorf("the replay asked %s again in round 1: %v", n, calls)
		}
		for _, round := range []string{"round-2", "round-3"} {
			if calls["again-1/"+round+"/"+n] != 1 {
				t.Errorf("%s of the replay asked %s %d times, want 1: %v", round, n, calls["again-1/"+round+"/"+n], calls)
			}
		}
	}
	if calls["again-1/moderator"] != 1 {
		t.Errorf("the replay's moderator was asked %d times, want 1: %v", calls["again-1/moderator"], calls)
	}
	if !strings.Contains(string(second), "other-moderator") {
		t.Errorf("the replay's synthesis is not the new moderator's:\n%s", second)
	}
	var st struct {
		DerivedFrom struct{ Workflow, Step string } `json:"derivedFrom"`
	}
	if err := json.Unmarshal([]byte(c.must("status", "again-1", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.DerivedFrom.Workflow != "orig-1" || st.DerivedFrom.Step != "round-2" {
		t.Errorf("status of the replay: derived from %+v, want orig-1 from round-2", st.DerivedFrom)
	}

	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"replay", "orig-1", "--from", "round-9"}, `has no step "round-9"; its steps are: round-1, round-2, round-3`},
		{[]string{"replay", "orig-1", "--from", "round-2", "--set", "moderatr=x"}, `"moderatr" names no field`},
		{[]string{"replay", "never-ran", "--from", "round-2"}, "not retained by Restate"},
	} {
		out, err := c.run(bad.args...)
		if err == nil || !strings.Contains(out, bad.want) {
			t.Errorf("ultramcp %s: err %v, want an error saying %q:\n%s", strings.Join(bad.args, " "), err, bad.want, out)
		}
	}
}

// pause holds a debate between rounds: it stays paused past the time its
// durable pause between rounds ends, runs no round meanwhile, and resume
// finishes it.
func TestPauseHoldsADebateUntilResume(t *testing.T) {
	t.Parallel()
	fake := llmtest.New(llmtest.Behavior{})
	defer fake.Close()
	env := fakeStack(t, fake)
	c := cliFor(t, env)
	names := disagreeing(2)
	const between = 2 * time.Second
	startDebate(t, env, "paused-1", fmt.Sprintf(`{"topic":"Pause me","participants":["%s"],"rounds":2,"delayBetweenRounds":"%s"}`, strings.Join(names, `","`), between))
	waitPhase(t, env, "paused-1", "pause")
	pausedAt := time.Now()
	c.must("pause", "paused-1")
	waitFor(t, time.Minute, func() bool {
		inv, err := env.Client.Find(context.Background(), workflow.ChainOfDebate, "paused-1")
		return err == nil && inv.Status == "paused"
	})
	if out := c.must("status", "paused-1"); !strings.Contains(out, "ultramcp resume paused-1") {
		t.Errorf("status of a paused debate does not say how to go on:\n%s", out)
	}
	// The durable pause between the rounds ends while the debate is held:
	// round 2 must not start.
	time.Sleep(time.Until(pausedAt.Add(2 * between)))
	if calls := fake.Attempts("paused-1/round-2/"); len(calls) != 0 {
		t.Fatalf("the paused debate ran round 2: %v", calls)
	}
	if inv, err := env.Client.Find(context.Background(), workflow.ChainOfDebate, "paused-1"); err != nil || inv.Status != "paused" {
		t.Fatalf("the debate is no longer paused: %+v %v", inv, err)
	}
	c.must("resume", "paused-1")
	res, err := attach(t, env, "paused-1", 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rounds) != 2 || res.Synthesis.Recommendation == "" {
		t.Errorf("the resumed debate did not finish: %d rounds, synthesis %+v", len(res.Rounds), res.Synthesis)
	}
	if calls := fake.Calls("paused-1/round-1/"); len(calls) != len(names) || calls["paused-1/round-1/"+names[0]] != 1 {
		t.Errorf("round 1 ran again after the resume: %v", calls)
	}
	if out, err := c.run("resume", "paused-1"); err == nil || !strings.Contains(out, "is not paused") {
		t.Errorf("resume of a finished debate: %v\n%s", err, out)
	}
}

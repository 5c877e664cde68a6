package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ultramcp/durable/internal/llmtest"
	"github.com/ultramcp/durable/live"
	"github.com/ultramcp/durable/workflow"
)

// The event stream carries each answer as the model writes it: token
// events of a call before the call has completed. After kill -9 of the
// service mid-stream, the reader that reconnects sees the call start again
// (a restart marker on its first piece), then the whole answer once.
func TestAnswersStreamAndRestartAfterKill(t *testing.T) {
	t.Parallel()
	fake := llmtest.New(llmtest.Behavior{ChunkEvery: 150 * time.Millisecond})
	t.Cleanup(fake.Close)
	env := fakeStack(t, fake)
	c := newAPIClient(t, env, "")
	names := disagreeing(2)
	body := fmt.Sprintf(`{"topic":"Stream it","participants":["%s"],"rounds":1,"mode":"vote"}`, strings.Join(names, `","`))
	if ans := c.do("POST", "/chain-of-debate", "/chain-of-debate", []byte(body), map[string]string{"Idempotency-Key": "stream-1"}); ans.Status != 202 {
		t.Fatalf("start: %d %s", ans.Status, ans.Body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var first live.Token
	c.events(ctx, "stream-1", "", func(e sseEvent) bool {
		if e.Type != "token" {
			return true
		}
		if err := json.Unmarshal([]byte(e.Raw), &first); err != nil || first.Delta == "" {
			t.Fatalf("token event %q: %v", e.Raw, err)
		}
		return false
	})
	label := "stream-1/" + first.Step
	if done := fake.Calls(label)[label]; done != 0 || first.Round != 1 || first.Participant == "" {
		t.Fatalf("a token of %s (%+v) after the call completed (%d)", label, first, done)
	}
	// The call asked again after the kill waits at the endpoint until the
	// reader is back.
	hold := make(chan struct{})
	fake.Set("stream-1/", llmtest.Behavior{ChunkEvery: 50 * time.Millisecond, Hold: hold})
	env.Kill(t, "service")
	env.Up(t)
	waitFor(t, time.Minute, func() bool { return fake.Attempts(label)[label] >= 2 })
	var text strings.Builder
	restarted := false
	released := false
	c.events(ctx, "stream-1", "", func(e sseEvent) bool {
		if !released {
			// The reader is back (its first event is the run's state):
			// let the call go on.
			released = true
			close(hold)
		}
		switch e.Type {
		case "token":
			var tok live.Token
			_ = json.Unmarshal([]byte(e.Raw), &tok)
			if tok.Step != first.Step {
				return true
			}
			if tok.Restart {
				restarted = true
				text.Reset()
			}
			text.WriteString(tok.Delta)
		case "result", "failed":
			return false
		}
		return true
	})
	if !restarted {
		t.Errorf("no restart marker for %s after the kill", first.Step)
	}
	if got := text.String(); strings.Count(got, "Here is my answer") != 1 || !strings.HasSuffix(strings.TrimSpace(got), "```") {
		t.Errorf("the answer streamed after the restart, once and whole: %q", got)
	}
	out, err := env.Client.Attach(ctx, workflow.ChainOfDebate, "stream-1")
	if err != nil || !strings.Contains(string(out), `"rounds"`) {
		t.Fatalf("result: %v %.300s", err, out)
	}
}

// `run --follow` prints the answers as they are written, on stderr, a line
// at a time; stdout keeps the result alone.
func TestFollowPrintsTheAnswersAsWritten(t *testing.T) {
	t.Parallel()
	fake := llmtest.New(llmtest.Behavior{ChunkEvery: 60 * time.Millisecond})
	t.Cleanup(fake.Close)
	env := fakeStack(t, fake)
	names := disagreeing(2)
	stdout, stderr, err := cliFor(t, env).stdout("run", "chain-of-debate", "--topic", "Follow me", "--participants", strings.Join(names, ","),
		"--rounds", "1", "--mode", "vote", "--id", "follow-1", "--follow")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "✎ round 1, ") || !strings.Contains(stderr, "```") {
		t.Errorf("no answer as written on stderr:\n%s", stderr)
	}
	if strings.Contains(stdout, "✎") {
		t.Errorf("the pieces went to stdout:\n%s", stdout)
	}
}

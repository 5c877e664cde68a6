package replay_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ultramcp/durable/engine"
	"github.com/ultramcp/durable/engine/replay"
)

// A body that publishes what its steps returned replays; one that publishes
// a clock it read itself does not.
func TestCheckCatchesAClockReadInTheBody(t *testing.T) {
	deterministic := func(c engine.Context) (string, error) {
		at, err := engine.Run(c, "clock", engine.StepOptions{}, func(context.Context) (time.Time, error) { return time.Now(), nil })
		if err != nil {
			return "", err
		}
		if err := c.Publish("progress", map[string]any{"at": at}); err != nil {
			return "", err
		}
		return at.String(), nil
	}
	if _, err := replay.Check(context.Background(), "ok", deterministic); err != nil {
		t.Fatalf("a deterministic body failed the check: %v", err)
	}
	planted := func(c engine.Context) (string, error) {
		start := time.Now()
		if _, err := engine.Run(c, "work", engine.StepOptions{}, func(context.Context) (int, error) {
			time.Sleep(time.Millisecond)
			return 1, nil
		}); err != nil {
			return "", err
		}
		return "", c.Publish("progress", map[string]any{"tookNs": time.Since(start).Nanoseconds()})
	}
	_, err := replay.Check(context.Background(), "clock", planted)
	if err == nil || !strings.Contains(err.Error(), "journal mismatch") || !strings.Contains(err.Error(), "set progress") {
		t.Fatalf("the planted clock read passed: %v", err)
	}
	reordered := 0
	branchy := func(c engine.Context) (int, error) {
		reordered++
		name := "a"
		if reordered > 1 { // a path that depends on something outside the journal
			name = "b"
		}
		return engine.Run(c, name, engine.StepOptions{}, func(context.Context) (int, error) { return 1, nil })
	}
	if _, err := replay.Check(context.Background(), "path", branchy); err == nil || !strings.Contains(err.Error(), "the first run made run a, the replay attempts run b") {
		t.Fatalf("a changed path passed: %v", err)
	}
}

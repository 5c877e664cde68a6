package direct

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ultramcp/durable/engine"
	"github.com/ultramcp/durable/fault"
)

func TestRunRetriesOnlyRetryableErrors(t *testing.T) {
	c := New(context.Background(), "w", nil)
	var calls atomic.Int32
	out, err := c.Run(engine.Step{Name: "flaky", Opts: engine.StepOptions{MaxAttempts: 3, InitialBackoff: time.Millisecond}, Fn: func(context.Context) ([]byte, error) {
		if calls.Add(1) < 3 {
			return nil, fault.New(fault.Unavailable, "busy")
		}
		return []byte(`1`), nil
	}})
	if err != nil || string(out) != "1" || calls.Load() != 3 {
		t.Fatalf("out %s err %v calls %d", out, err, calls.Load())
	}
	calls.Store(0)
	_, err = c.Run(engine.Step{Name: "bad", Opts: engine.StepOptions{MaxAttempts: 3}, Fn: func(context.Context) ([]byte, error) {
		calls.Add(1)
		return nil, fault.New(fault.Permanent, "401")
	}})
	if calls.Load() != 1 || fault.KindOf(err) != fault.Permanent {
		t.Errorf("permanent error retried: calls %d err %v", calls.Load(), err)
	}
}

func TestRunAllIsConcurrentAndIndependent(t *testing.T) {
	c := New(context.Background(), "w", nil)
	var active, peak atomic.Int32
	step := func(fail bool) engine.Step {
		return engine.Step{Name: "s", Opts: engine.StepOptions{MaxAttempts: 1}, Fn: func(context.Context) ([]byte, error) {
			n := active.Add(1)
			defer active.Add(-1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(20 * time.Millisecond)
			if fail {
				return nil, errors.New("boom")
			}
			return []byte(`true`), nil
		}}
	}
	results, errs := c.RunAll([]engine.Step{step(false), step(true), step(false)})
	if peak.Load() != 3 {
		t.Errorf("peak concurrency %d, want 3", peak.Load())
	}
	if errs[1] == nil || errs[0] != nil || errs[2] != nil || string(results[2]) != "true" {
		t.Errorf("results %q errs %v", results, errs)
	}
}

// As on Restate, cancellation reaches a workflow at its waits; a single
// step still runs, so compensations can.
func TestCancellationReachesWaitsNotSteps(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	c := New(ctx, "w", nil)
	cancel()
	if err := c.Sleep("nap", time.Hour); fault.KindOf(err) != fault.Cancelled {
		t.Errorf("sleep: %v", err)
	}
	if _, errs := c.RunAll([]engine.Step{{Name: "s", Fn: func(context.Context) ([]byte, error) { return nil, nil }}}); fault.KindOf(errs[0]) != fault.Cancelled {
		t.Errorf("run all: %v", errs[0])
	}
	out, err := c.Run(engine.Step{Name: "undo", Fn: func(ctx context.Context) ([]byte, error) { return []byte("true"), ctx.Err() }})
	if err != nil || string(out) != "true" {
		t.Errorf("a compensation after cancel: %q %v", out, err)
	}
}

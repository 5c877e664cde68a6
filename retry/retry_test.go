package retry

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ultramcp/durable/fault"
)

func TestDoRetriesTransientFaultsOnly(t *testing.T) {
	p := Policy{Initial: time.Millisecond, Max: 4 * time.Millisecond, Attempts: 5}
	calls := 0
	n, err := p.Do(context.Background(), func(context.Context) error {
		if calls++; calls < 3 {
			return fault.New(fault.Unavailable, "down")
		}
		return nil
	})
	if err != nil || n != 3 || calls != 3 {
		t.Errorf("transient twice then success: attempts %d, calls %d, err %v", n, calls, err)
	}
	calls = 0
	n, err = p.Do(context.Background(), func(context.Context) error { calls++; return fault.New(fault.Permanent, "bad key") })
	if fault.KindOf(err) != fault.Permanent || n != 1 || calls != 1 {
		t.Errorf("a permanent fault was retried: attempts %d, err %v", n, err)
	}
	n, err = p.Do(context.Background(), func(context.Context) error { return fault.New(fault.Unavailable, "down") })
	if n != 5 || fault.KindOf(err) != fault.Unavailable {
		t.Errorf("spent budget: attempts %d, err %v", n, err)
	}
}

func TestDoStopsWhenTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	heard := 0
	p := Policy{Initial: time.Hour, OnRetry: func(int, error) { heard++; cancel() }}
	n, err := p.Do(ctx, func(context.Context) error { return Again("not yet") })
	if n != 1 || heard != 1 || err == nil {
		t.Errorf("attempts %d, heard %d, err %v", n, heard, err)
	}
}

func TestWaitsGrowToTheCeiling(t *testing.T) {
	var at []time.Time
	p := Policy{Initial: 2 * time.Millisecond, Max: 8 * time.Millisecond, Attempts: 6, Retryable: func(error) bool { return true }}
	p.Do(context.Background(), func(context.Context) error { at = append(at, time.Now()); return errors.New("x") })
	for i := 1; i < len(at); i++ {
		want := min(2*time.Millisecond<<(i-1), 8*time.Millisecond)
		if got := at[i].Sub(at[i-1]); got < want {
			t.Errorf("wait %d: %v, want at least %v", i, got, want)
		}
	}
}

func TestPollGivesUpWithin(t *testing.T) {
	start := time.Now()
	n, err := Poll(time.Millisecond, 20*time.Millisecond).Do(context.Background(), func(context.Context) error { return Again("port %d busy", 80) })
	if took := time.Since(start); took < 20*time.Millisecond || n < 5 || err == nil || err.Error() != "port 80 busy" {
		t.Errorf("took %v, %d attempts, err %v", took, n, err)
	}
}

// An error that asks for a longer wait (a 429's Retry-After) gets it.
func TestAfterLengthensTheWait(t *testing.T) {
	start := time.Now()
	p := Policy{Initial: time.Millisecond, Attempts: 2, Retryable: func(error) bool { return true },
		After: func(error) time.Duration { return 30 * time.Millisecond }}
	_, _ = p.Do(context.Background(), func(context.Context) error { return errors.New("429") })
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Errorf("waited %s, want the 30ms the error asked for", d)
	}
}

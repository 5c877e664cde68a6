// Package retry is the one retry policy of UltraMCP: how many attempts,
// and how long to wait between them (exponential, capped, optionally
// jittered). Every loop that tries again, a model call, a store write, a
// step on the direct engine, a poll for a process, uses it and says in
// one line why its limits are what they are.
package retry

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/telemetry"
)

// Policy says how an operation is tried again.
type Policy struct {
	Initial time.Duration // first wait
	Max     time.Duration // ceiling of a wait; 0 is no ceiling
	// Attempts bounds the tries, the first included; 0 tries until the
	// context ends.
	Attempts int
	// Within bounds the time from the first attempt after which no other
	// starts; 0 is no bound.
	Within time.Duration
	// Jitter waits a random time in [wait/2, wait], so that many clients
	// do not retry in step.
	Jitter bool
	// Retryable tells which errors are worth another try; nil is
	// fault.IsRetryable (a transient fault, not a permanent one).
	Retryable func(error) bool
	// OnRetry, when set, hears of each failed attempt that will be tried
	// again, before the wait (to log an outage, say).
	OnRetry func(attempt int, err error)
	// Cause, when set, counts each retry in the retries metric under this
	// name ("model-openai", "store", …).
	Cause string
	// After, when set, is the least wait an error asks for before the
	// next attempt (a 429's Retry-After); the backoff's wait if longer.
	After func(err error) time.Duration
}

// Do runs op until it succeeds, fails with an error that is not
// retryable, runs out of attempts or ctx ends; it returns op's last error
// (ctx's error when ctx ended before op ever ran) and the attempts made.
func (p Policy) Do(ctx context.Context, op func(ctx context.Context) error) (attempts int, err error) {
	retryable := p.Retryable
	if retryable == nil {
		retryable = fault.IsRetryable
	}
	wait, start := p.Initial, time.Now()
	for attempts = 1; ; attempts++ {
		if err = op(ctx); err == nil || !retryable(err) || attempts == p.Attempts || p.Within > 0 && time.Since(start) >= p.Within {
			return attempts, err
		}
		if p.Cause != "" {
			telemetry.Retries.WithLabelValues(p.Cause).Inc()
		}
		if p.OnRetry != nil {
			p.OnRetry(attempts, err)
		}
		d := wait
		if p.Jitter && d > 1 {
			d = d/2 + rand.N(d/2+1)
		}
		if p.After != nil {
			d = max(d, p.After(err))
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return attempts, err
		case <-t.C:
		}
		if wait *= 2; p.Max > 0 && wait > p.Max {
			wait = p.Max
		}
	}
}

// Poll is the policy of a wait for something to happen (a process to be
// healthy, a port to be free): a try every interval for as long as within.
func Poll(every, within time.Duration) Policy {
	return Policy{Initial: every, Max: every, Within: within}
}

// Again is the retryable error a poll returns while what it waits for has
// not happened yet: what names it.
func Again(what string, args ...any) error { return fault.New(fault.Unavailable, what, args...) }

package limits

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/ultramcp/durable/telemetry"
)

// Outcome is how a call with a permit went.
type Outcome struct {
	OK bool // it was answered
	// Throttled: the provider answered 429 (or 503 with Retry-After); the
	// key waits RetryAfter (a second when it said none) and its calls at
	// once are halved for every process.
	Throttled  bool
	RetryAfter time.Duration
}

// Usage is one key's counts, for `ultramcp limits` and /metrics.
type Usage struct {
	Limit
	InFlight     int       `json:"inFlight"`
	Allowed      int       `json:"allowed"` // calls at once now allowed (AIMD), at most Concurrency
	Requests     int       `json:"requestsLastMinute"`
	Tokens       int       `json:"tokensLastMinute"`
	Throttled    int       `json:"throttledLastMinute"` // 429s met
	CoolingUntil time.Time `json:"coolingUntil,omitzero"`
}

// Ledger keeps the counts every process shares.
type Ledger interface {
	// Take grants holder a permit of l for a call of about tokens, if l
	// allows one more now: its lease, or "" with why not ("concurrency",
	// "rpm", "tpm", "retry-after") and when to ask again.
	Take(ctx context.Context, l Limit, holder string, tokens int, now time.Time) (lease, why string, again time.Duration, err error)
	// Return gives a lease back with the tokens the call used and how it
	// went.
	Return(ctx context.Context, l Limit, lease string, used int, o Outcome, now time.Time) error
	// Renew extends every lease of holder to until.
	Renew(ctx context.Context, holder string, until time.Time) error
	// Usage reports the counts of the keys of t.
	Usage(ctx context.Context, t Table, now time.Time) ([]Usage, error)
}

// Limiter hands out the permits of one process's calls: each key's
// waiters queue here, and only the first asks the ledger, so a thousand
// waiting calls make one query at a time, not a thousand.
type Limiter struct {
	table  Table
	ledger Ledger
	local  *Memory // this process's own counts, while the ledger does not answer
	holder string
	mu     sync.Mutex
	queues map[string]*queue
	stop   chan struct{}
}

// queue is the calls of one key waiting in this process, in arrival order.
type queue struct {
	waiting []chan struct{} // the head's is closed when it is its turn
	kick    chan struct{}   // a permit came back here: the head asks again at once
}

// New returns the limiter of t over ledger, renewing this process's leases
// until Close.
func New(t Table, ledger Ledger) *Limiter {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	host, _ := os.Hostname()
	l := &Limiter{table: t, ledger: ledger, local: NewMemory(), holder: fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b)), queues: map[string]*queue{}, stop: make(chan struct{})}
	go l.renew()
	return l
}

// Close stops renewing the leases (they run out within Lease).
func (l *Limiter) Close() { close(l.stop) }

func (l *Limiter) renew() {
	t := time.NewTicker(Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), Lease/3)
			_ = l.ledger.Renew(ctx, l.holder, time.Now().Add(Lease))
			cancel()
		}
	}
}

// Release gives a permit back: the tokens the call used, and how it went.
type Release func(used int, o Outcome)

func noRelease(int, Outcome) {}

// Acquire waits for a permit of a call of about tokens to model of
// provider, as long as ctx lets it, and returns what gives it back and how
// long it waited. A key without a limit costs nothing.
func (l *Limiter) Acquire(ctx context.Context, provider, model string, tokens int) (Release, time.Duration, error) {
	if l == nil {
		return noRelease, 0, nil
	}
	lim, ok := l.table.For(provider, model)
	if !ok {
		return noRelease, 0, nil
	}
	start := time.Now()
	ledger := l.ledger
	lease, why, again, err := ledger.Take(ctx, lim, l.holder, tokens, start)
	if err != nil {
		// The shared ledger (the store) does not answer: an outage of the
		// store delays no model call, so this process keeps the limits by
		// itself until it is back.
		ledger = l.local
		if lease, why, again, err = ledger.Take(ctx, lim, l.holder, tokens, start); err != nil {
			return nil, 0, err
		}
	}
	if lease == "" {
		if lease, err = l.wait(ctx, ledger, lim, tokens, why, again); err != nil {
			return nil, time.Since(start), err
		}
	}
	return l.release(ledger, lim, lease), time.Since(start), nil
}

func (l *Limiter) release(ledger Ledger, lim Limit, lease string) Release {
	return func(used int, o Outcome) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = ledger.Return(ctx, lim, lease, used, o, time.Now())
		l.mu.Lock()
		q := l.queues[lim.Key]
		l.mu.Unlock()
		if q != nil {
			select {
			case q.kick <- struct{}{}:
			default:
			}
		}
	}
}

// wait queues the call behind the others of its key in this process; at
// the head, it asks the ledger again when told to (again), or at once when
// a permit comes back here.
func (l *Limiter) wait(ctx context.Context, ledger Ledger, lim Limit, tokens int, why string, again time.Duration) (string, error) {
	waiters := telemetry.LimitWaiters.WithLabelValues(lim.Key)
	waiters.Inc()
	defer waiters.Dec()
	_, span := telemetry.Start(ctx, "wait for "+lim.Key, telemetry.LimitKey.String(lim.Key), telemetry.LimitReason.String(why))
	defer span.End()
	turn := make(chan struct{})
	l.mu.Lock()
	q := l.queues[lim.Key]
	if q == nil {
		q = &queue{kick: make(chan struct{}, 1)}
		l.queues[lim.Key] = q
	}
	q.waiting = append(q.waiting, turn)
	if len(q.waiting) == 1 {
		close(turn)
	}
	l.mu.Unlock()
	defer l.leave(lim.Key, q, turn)
	select {
	case <-turn:
	case <-ctx.Done():
		return "", fmt.Errorf("waiting for %s (%s): %w", lim.Key, why, ctx.Err())
	}
	// A new head asks at once: the one before it may have left because it
	// got the last permit, or because a permit came back.
	for first := true; ; first = false {
		if !first {
			timer := time.NewTimer(min(max(again, 5*time.Millisecond), 250*time.Millisecond))
			select {
			case <-ctx.Done():
				timer.Stop()
				return "", fmt.Errorf("waiting for %s (%s): %w", lim.Key, why, ctx.Err())
			case <-q.kick:
				timer.Stop()
			case <-timer.C:
			}
		}
		lease, w, a, err := ledger.Take(ctx, lim, l.holder, tokens, time.Now())
		if err != nil || lease != "" {
			return lease, err
		}
		why, again = w, a
	}
}

// leave takes turn out of q and gives the turn to the next.
func (l *Limiter) leave(key string, q *queue, turn chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, c := range q.waiting {
		if c == turn {
			q.waiting = append(q.waiting[:i], q.waiting[i+1:]...)
			if i == 0 && len(q.waiting) > 0 {
				close(q.waiting[0])
			}
			break
		}
	}
	if len(q.waiting) == 0 {
		delete(l.queues, key)
	}
}

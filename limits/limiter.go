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

// Ask is one call's request for a permit.
type Ask struct {
	Provider, Model string
	Tokens          int  // its estimate: the prompt and the longest answer
	Batch           bool // batch work (an eval): it waits behind interactive calls
	Run             string
}

// Waits is told which runs wait long for a permit, so that their status
// can say so (the store); note is "" once the run waits no more.
type Waits interface {
	Waiting(ctx context.Context, run, note string) error
}

// WaitNoted is how long a call waits before its run shows as waiting: a
// blip of contention writes nothing.
const WaitNoted = 300 * time.Millisecond

// Limiter hands out the permits of one process's calls, from the claim it
// holds of each key (ledger.go): in memory, behind one mutex a key, with a
// queue a key in which interactive calls go ahead of batch ones.
type Limiter struct {
	table  Table
	ledger Ledger
	local  *Memory // this process's own counts, while the ledger does not answer
	holder string
	waits  Waits

	mu    sync.Mutex
	pools map[string]*pool
	noted map[string]int // runs shown waiting, and how many of their calls wait

	stop chan struct{}
	done chan struct{}
}

// New returns the limiter of t over ledger; waits, if not nil, is told of
// runs that wait long. Close gives its claims back.
func New(t Table, ledger Ledger, waits Waits) *Limiter {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	host, _ := os.Hostname()
	l := &Limiter{table: t, ledger: ledger, local: NewMemory(), waits: waits,
		holder: fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b)),
		pools:  map[string]*pool{}, noted: map[string]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	go l.refresh()
	return l
}

// Close stops settling and gives this process's claims back, so that
// another process has them at once rather than when the lease runs out.
func (l *Limiter) Close() {
	close(l.stop)
	<-l.done
	l.mu.Lock()
	pools := make([]*pool, 0, len(l.pools))
	for _, p := range l.pools {
		pools = append(pools, p)
	}
	l.mu.Unlock()
	for _, p := range pools {
		p.mu.Lock()
		r := p.handOver()
		p.mu.Unlock()
		_, _ = l.settle(p.lim, Claim{}, r, time.Now())
	}
}

// refresh settles, every Refresh, each key this process holds some of:
// it renews the lease, gives back what went unused and learns whether
// others wait.
func (l *Limiter) refresh() {
	defer close(l.done)
	t := time.NewTicker(Refresh / 2)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case now := <-t.C:
			l.mu.Lock()
			for key, p := range l.pools {
				p.mu.Lock()
				switch {
				case p.idle(now):
					delete(l.pools, key)
				case !p.settling && now.Sub(p.lastSettle) >= Refresh:
					p.settling = true
					go p.settleLoop(true)
				}
				p.mu.Unlock()
			}
			l.mu.Unlock()
		}
	}
}

// settle asks the ledger, or this process's own counts while it does not
// answer: an outage of the store delays no model call.
func (l *Limiter) settle(lim Limit, want Claim, r Report, now time.Time) (Grant, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	g, err := l.ledger.Settle(ctx, lim, l.holder, want, r, now)
	if err != nil {
		return l.local.Settle(ctx, lim, l.holder, want, r, now)
	}
	return g, nil
}

// Release gives a permit back: the tokens the call used, and how it went.
type Release func(used int, o Outcome)

func noRelease(int, Outcome) {}

// Acquire waits for a permit of the call a, as long as ctx lets it, and
// returns what gives it back and how long it waited. A key without a
// limit costs nothing.
func (l *Limiter) Acquire(ctx context.Context, a Ask) (Release, time.Duration, error) {
	if l == nil {
		return noRelease, 0, nil
	}
	lim, ok := l.table.For(a.Provider, a.Model)
	if !ok || lim.Concurrency == 0 && lim.RPM == 0 && lim.TPM == 0 {
		return noRelease, 0, nil
	}
	p := l.pool(lim)
	start := time.Now()
	p.mu.Lock()
	if len(p.queue) == 0 && p.canGrant(a.Tokens, start) {
		p.take(a.Tokens, start)
		p.mu.Unlock()
		return p.release(a.Tokens), 0, nil
	}
	w := &waiter{tokens: a.Tokens, batch: a.Batch, ready: make(chan struct{})}
	p.enqueue(w)
	if !p.settling {
		p.settling = true
		go p.settleLoop(false)
	}
	p.mu.Unlock()
	if err := l.wait(ctx, p, w, a.Run); err != nil {
		return nil, time.Since(start), err
	}
	return p.release(a.Tokens), time.Since(start), nil
}

// wait waits for w's turn, with a span, the waiters' gauge and, past
// WaitNoted, the run shown waiting.
func (l *Limiter) wait(ctx context.Context, p *pool, w *waiter, run string) error {
	waiters := telemetry.LimitWaiters.WithLabelValues(p.lim.Key)
	waiters.Inc()
	defer waiters.Dec()
	_, span := telemetry.Start(ctx, "wait for "+p.lim.Key, telemetry.LimitKey.String(p.lim.Key))
	defer span.End()
	note := time.NewTimer(WaitNoted)
	defer note.Stop()
	noted := false
	defer func() {
		if noted {
			l.note(run, "")
		}
	}()
	for {
		select {
		case <-w.ready:
			span.SetAttributes(telemetry.LimitReason.String(p.reason()))
			return nil
		case <-note.C:
			if run != "" {
				noted = true
				l.note(run, fmt.Sprintf("waiting for %s (%s)", p.lim.Key, p.reason()))
			}
		case <-ctx.Done():
			why := p.reason()
			p.mu.Lock()
			if w.granted { // granted as it gave up: the permit goes back
				p.mu.Unlock()
				p.release(w.tokens)(0, Outcome{})
			} else {
				p.leave(w)
				p.mu.Unlock()
			}
			return fmt.Errorf("waiting for %s (%s): %w", p.lim.Key, why, ctx.Err())
		}
	}
}

// note tells Waits that run waits (note) or no longer does (""), once per
// run however many of its calls wait.
func (l *Limiter) note(run, note string) {
	if l.waits == nil {
		return
	}
	l.mu.Lock()
	n := l.noted[run]
	if note != "" {
		l.noted[run] = n + 1
	} else if n <= 1 {
		delete(l.noted, run)
	} else {
		l.noted[run] = n - 1
	}
	tell := note != "" && n == 0 || note == "" && n <= 1
	l.mu.Unlock()
	if tell {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = l.waits.Waiting(ctx, run, note) // a status that lags is no reason to hold a call
	}
}

func (l *Limiter) pool(lim Limit) *pool {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.pools[lim.Key]
	if p == nil {
		p = &pool{l: l, lim: lim, kick: make(chan struct{}, 1)}
		l.pools[lim.Key] = p
	}
	p.touched = time.Now() // under l.mu: refresh does not drop a pool just handed out
	return p
}

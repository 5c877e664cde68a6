package limits

import (
	"slices"
	"sync"
	"time"
)

// pool is one key's permits in this process: the claim it holds, the
// calls in flight, and the calls waiting, interactive ones first.
type pool struct {
	l   *Limiter
	lim Limit

	mu         sync.Mutex
	claim      Claim     // held; its requests and tokens are spent as calls start
	at         time.Time // when its requests and tokens were reserved
	inUse      int
	cooling    time.Time // a 429's Retry-After, known here before the ledger says it
	share      int
	why        string
	report     Report // what happened since the last settle
	queue      []*waiter
	settling   bool // a settleLoop runs
	kick       chan struct{}
	lastSettle time.Time
	lastCall   time.Time
	touched    time.Time // under Limiter.mu
}

type waiter struct {
	tokens  int
	batch   bool
	ready   chan struct{} // closed when granted
	granted bool
}

// canGrant says whether the claim has room for a call of tokens now.
func (p *pool) canGrant(tokens int, now time.Time) bool {
	switch {
	case now.Before(p.cooling),
		p.lim.Concurrency > 0 && p.inUse >= p.claim.Slots,
		now.Sub(p.at) > CreditLife,
		p.claim.Requests < 1,
		p.claim.Tokens < tokens:
		return false
	}
	return true
}

func (p *pool) take(tokens int, now time.Time) {
	p.inUse++
	p.claim.Requests--
	p.claim.Tokens -= tokens
	p.lastCall = now
	if !p.settling && (p.claim.Requests < p.chunkRequests()/4 || p.claim.Tokens < p.chunkTokens()/4) {
		// Topped up before it runs out, so that calls do not wait for it.
		p.settling = true
		go p.settleLoop(true)
	}
}

// release is what gives back a permit of a call estimated at estimate
// tokens.
func (p *pool) release(estimate int) Release {
	return func(used int, o Outcome) {
		now := time.Now()
		p.mu.Lock()
		defer p.mu.Unlock()
		p.inUse--
		p.report.Correction += used - estimate
		switch {
		case o.Throttled:
			wait := o.RetryAfter
			if wait <= 0 {
				wait = time.Second
			}
			p.report.Throttled++
			p.report.RetryAfter = max(p.report.RetryAfter, wait)
			// Held here at once; the ledger tells every other process
			// when this one settles, which it does now.
			p.cooling = later(p.cooling, now.Add(wait))
			p.claim.Slots = max(1, min(p.claim.Slots, p.inUse+1)/2)
		case o.OK:
			p.report.Answered++
		}
		p.dispatch(now)
		if len(p.queue) > 0 || o.Throttled {
			if !p.settling {
				p.settling = true
				go p.settleLoop(true)
			} else {
				select {
				case p.kick <- struct{}{}:
				default:
				}
			}
		}
	}
}

// enqueue puts w behind the waiters of its kind: an interactive call goes
// ahead of every batch one.
func (p *pool) enqueue(w *waiter) {
	i := len(p.queue)
	if !w.batch {
		i = slices.IndexFunc(p.queue, func(o *waiter) bool { return o.batch })
		if i < 0 {
			i = len(p.queue)
		}
	}
	p.queue = slices.Insert(p.queue, i, w)
}

func (p *pool) leave(w *waiter) {
	p.queue = slices.DeleteFunc(p.queue, func(o *waiter) bool { return o == w })
}

// dispatch grants the waiters in order while the claim has room.
func (p *pool) dispatch(now time.Time) {
	for len(p.queue) > 0 && p.canGrant(p.queue[0].tokens, now) {
		w := p.queue[0]
		p.queue = p.queue[1:]
		p.take(w.tokens, now)
		w.granted = true
		close(w.ready)
	}
}

// reason is why calls wait here now.
func (p *pool) reason() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case time.Now().Before(p.cooling):
		return "retry-after"
	case p.why != "":
		return p.why
	}
	return "concurrency"
}

// chunkRequests and chunkTokens are what a settle reserves beyond the
// waiting calls: a second's worth of the limit, so that a busy key
// settles about once a second.
func (p *pool) chunkRequests() int {
	if p.lim.RPM > 0 {
		return max(1, p.lim.RPM/60)
	}
	return 1000
}

func (p *pool) chunkTokens() int {
	if p.lim.TPM > 0 {
		return max(1, p.lim.TPM/60)
	}
	return 1_000_000
}

// want is the claim to ask for now: room for the calls in flight and
// waiting, a little more while the key is busy, nothing once it is idle,
// and no more than the fair share while others wait.
func (p *pool) want(now time.Time) Claim {
	demand := p.inUse + len(p.queue)
	busy := len(p.queue) > 0 || now.Sub(p.lastCall) < Refresh
	var w Claim
	if p.lim.Concurrency > 0 {
		w.Slots = demand
		if busy && p.share == 0 {
			w.Slots = max(demand+max(1, demand/4), p.claim.Slots)
		}
		w.Slots = min(w.Slots, p.lim.Concurrency)
		if p.share > 0 {
			w.Slots = min(w.Slots, p.share)
		}
	}
	if !busy {
		return w
	}
	tokens := 0
	for _, q := range p.queue {
		tokens += q.tokens
	}
	w.Requests = len(p.queue) + p.chunkRequests()
	w.Tokens = tokens + p.chunkTokens()
	if p.lim.RPM > 0 {
		w.Requests = min(w.Requests, p.lim.RPM)
	}
	if p.lim.TPM > 0 {
		w.Tokens = min(w.Tokens, p.lim.TPM)
		if len(p.queue) > 0 && p.queue[0].tokens > p.lim.TPM {
			// A call larger than the whole budget: alone, when the
			// window is empty (KeyState.grant).
			w.Requests, w.Tokens = 1, p.queue[0].tokens
		}
	}
	return w
}

// handOver is the report of a settle: what happened since the last, and
// the reserved requests and tokens not used, which go back (the claim
// keeps none until the settle grants again). p.mu is held.
func (p *pool) handOver() Report {
	r := p.report
	r.Unused = Claim{Requests: p.claim.Requests, Tokens: p.claim.Tokens}
	r.InUse, r.Waiting = p.inUse, len(p.queue)
	p.report = Report{}
	p.claim.Requests, p.claim.Tokens = 0, 0
	return r
}

// idle: nothing held, nothing to tell, nobody waiting, for a while.
func (p *pool) idle(now time.Time) bool {
	return !p.settling && p.inUse == 0 && len(p.queue) == 0 && p.claim == (Claim{}) && p.report == (Report{}) &&
		now.Sub(p.touched) > 10*Refresh && now.Sub(p.lastSettle) > 10*Refresh
}

// settleLoop settles with the ledger until no call waits: at once when
// force, then whenever the claim cannot serve the queue, every Again the
// ledger says (at most a quarter second), or at once when a permit comes
// back. Only one runs per pool (settling).
func (p *pool) settleLoop(force bool) {
	for {
		now := time.Now()
		p.mu.Lock()
		if !force && len(p.queue) == 0 {
			p.settling = false
			p.mu.Unlock()
			return
		}
		force = false
		want := p.want(now)
		r := p.handOver()
		p.mu.Unlock()

		g, _ := p.l.settle(p.lim, want, r, now) // the local ledger does not fail

		p.mu.Lock()
		p.claim, p.at, p.share, p.why, p.lastSettle = g.Claim, now, g.Share, g.Why, now
		if g.Why == "retry-after" {
			p.cooling = later(p.cooling, now.Add(g.Again))
		}
		p.dispatch(time.Now())
		waiting := len(p.queue) > 0
		grew := p.want(time.Now()) != want // more calls came while it settled
		p.mu.Unlock()
		if !waiting {
			continue
		}
		if g.Why == "" && grew {
			continue // all it asked was granted: ask for the newcomers at once
		}
		again := min(max(g.Again, 5*time.Millisecond), 250*time.Millisecond)
		if g.Why == "" {
			again = 50 * time.Millisecond // all granted, yet full: a permit coming back kicks
		}
		timer := time.NewTimer(again)
		select {
		case <-p.kick:
		case <-timer.C:
		case <-p.l.stop:
			timer.Stop()
			p.mu.Lock()
			p.settling = false
			p.mu.Unlock()
			return
		}
		timer.Stop()
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

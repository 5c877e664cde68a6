package limits

import (
	"context"
	"slices"
	"time"
)

// A process does not ask the ledger once per call: it holds a Claim of
// each key it calls (calls at once, and requests and tokens reserved in
// the window) and grants its own calls from it, in memory. It settles with
// the ledger when the claim runs short, when a 429 comes, and every
// Refresh while it holds any, which renews its lease, gives back what it
// did not use and learns whether others wait (then it keeps no more than
// its fair share). So the store is asked a few times a second per key, not
// once per call, and a permit costs a mutex.

// Claim is what one process holds of a key.
type Claim struct {
	Slots    int `json:"slots"`    // calls at once
	Requests int `json:"requests"` // requests reserved in the window
	Tokens   int `json:"tokens"`   // tokens reserved in the window
}

// Report is what a process tells the ledger when it settles: what it did
// since it last settled.
type Report struct {
	Unused     Claim // the reserved requests and tokens it did not use (Slots unused)
	Correction int   // tokens the calls used minus those reserved for them
	Answered   int
	Throttled  int           // 429s met
	RetryAfter time.Duration // the longest any of them asked
	InUse      int           // its calls in flight now
	Waiting    int           // its calls waiting for a permit now
}

// Grant is what a settle gives: the claim now held, and, when it is less
// than asked, why ("concurrency", "rpm", "tpm", "retry-after") and when
// to ask again.
type Grant struct {
	Claim
	Why   string
	Again time.Duration
	// Share is the calls at once this process should keep at most while
	// others wait for some; 0 when nobody else waits.
	Share int
}

// Ledger keeps the counts every process shares.
type Ledger interface {
	// Settle makes holder's claim of l as much of want as l allows now,
	// after counting r.
	Settle(ctx context.Context, l Limit, holder string, want Claim, r Report, now time.Time) (Grant, error)
	// Usage reports the counts of the keys of t.
	Usage(ctx context.Context, t Table, now time.Time) ([]Usage, error)
}

// Usage is one key's counts, for `ultramcp limits` and /metrics.
type Usage struct {
	Limit
	InFlight     int       `json:"inFlight"`
	Waiting      int       `json:"waiting"`
	Allowed      int       `json:"allowed"` // calls at once now allowed (AIMD), at most Concurrency
	Requests     int       `json:"requestsLastMinute"`
	Tokens       int       `json:"tokensLastMinute"`
	Throttled    int       `json:"throttledLastMinute"` // 429s met
	CoolingUntil time.Time `json:"coolingUntil,omitzero"`
}

// KeyState is what a ledger keeps of one key: its AIMD state, the claims
// of the processes calling it, and its window, a row a second (so a
// settle reads at most sixty, however many calls a minute makes).
type KeyState struct {
	Allowed   int // calls at once now allowed; at most the limit's
	Successes int // answered calls since Allowed last grew
	Cooling   time.Time
	Claims    map[string]Holding
	Window    []Second // oldest first
}

// Holding is one process's claim as the ledger keeps it.
type Holding struct {
	Claim
	Second  int64 // when its requests and tokens were reserved (Unix seconds)
	InUse   int
	Waiting int // calls it could not grant at its last settle
	Expires time.Time
}

// Second is one second's counts of a key.
type Second struct {
	At                          int64 // Unix seconds
	Requests, Tokens, Throttled int
}

// windowSpan is how long a call counts: a minute, and a second more,
// since reserved requests count at the second they were reserved and are
// made up to CreditLife later.
const windowSpan = time.Minute + CreditLife

// CreditLife is how long reserved requests and tokens may be used; a
// process settles again after it.
const CreditLife = time.Second

// Refresh is how often a process holding a claim settles anyway.
const Refresh = 500 * time.Millisecond

// Expire drops the claims whose lease ran out and the window's seconds
// that no longer count.
func (k *KeyState) Expire(now time.Time) {
	for h, c := range k.Claims {
		if now.After(c.Expires) {
			delete(k.Claims, h)
		}
	}
	cut := now.Add(-windowSpan).Unix()
	k.Window = slices.DeleteFunc(k.Window, func(s Second) bool { return s.At <= cut })
}

// sums are the window's counts.
func (k *KeyState) sums() (requests, tokens, throttled int) {
	for _, s := range k.Window {
		requests += s.Requests
		tokens += s.Tokens
		throttled += s.Throttled
	}
	return max(requests, 0), max(tokens, 0), throttled
}

// add adds d to the window's second d.At, and to changed, the seconds a
// store writes back.
func (k *KeyState) add(d Second, changed map[int64]Second) {
	i := slices.IndexFunc(k.Window, func(s Second) bool { return s.At == d.At })
	if i < 0 {
		i, _ = slices.BinarySearchFunc(k.Window, d.At, func(s Second, at int64) int { return int(s.At - at) })
		k.Window = slices.Insert(k.Window, i, Second{At: d.At})
	}
	s := &k.Window[i]
	s.Requests += d.Requests
	s.Tokens += d.Tokens
	s.Throttled += d.Throttled
	c := changed[d.At]
	c.At = d.At
	c.Requests += d.Requests
	c.Tokens += d.Tokens
	c.Throttled += d.Throttled
	changed[d.At] = c
}

// Settle is Ledger.Settle on k, which it updates; it returns the grant and
// the window's changes by second (deltas), for a store to write back. The
// caller has called Expire.
func (k *KeyState) Settle(l Limit, holder string, want Claim, r Report, now time.Time) (Grant, map[int64]Second) {
	changed := map[int64]Second{}
	if k.Claims == nil {
		k.Claims = map[string]Holding{}
	}
	self := k.Claims[holder]
	// What was reserved and not used goes back to the second it was
	// counted in: never more than that second holds.
	if i := slices.IndexFunc(k.Window, func(s Second) bool { return s.At == self.Second }); i >= 0 && (r.Unused.Requests > 0 || r.Unused.Tokens > 0) {
		s := k.Window[i]
		k.add(Second{At: s.At, Requests: -min(r.Unused.Requests, s.Requests), Tokens: -min(r.Unused.Tokens, max(s.Tokens, 0))}, changed)
	}
	sec := now.Unix()
	if r.Correction != 0 || r.Throttled > 0 {
		k.add(Second{At: sec, Tokens: r.Correction, Throttled: r.Throttled}, changed)
	}
	k.adapt(l, r, now)
	g := k.grant(l, holder, want, now)
	if g.Requests > 0 || g.Tokens > 0 {
		k.add(Second{At: sec, Requests: g.Requests, Tokens: g.Tokens}, changed)
	}
	waiting := 0
	if g.Slots < want.Slots || g.Requests < want.Requests || g.Tokens < want.Tokens {
		waiting = r.Waiting
	}
	k.Claims[holder] = Holding{Claim: g.Claim, Second: sec, InUse: r.InUse, Waiting: waiting, Expires: now.Add(Lease)}
	if g.Claim == (Claim{}) && r.InUse == 0 && waiting == 0 {
		delete(k.Claims, holder)
	}
	return g, changed
}

// adapt is AIMD on the key's calls at once: a 429 halves them (from those
// in flight) and cools the key down for its Retry-After (a second when it
// said none); every Allowed answered calls allow one more, up to the limit.
func (k *KeyState) adapt(l Limit, r Report, now time.Time) {
	if l.Concurrency == 0 {
		k.Allowed, k.Successes = 0, 0
	} else if k.Allowed <= 0 || k.Allowed > l.Concurrency {
		k.Allowed = l.Concurrency
	}
	if r.Throttled > 0 {
		wait := r.RetryAfter
		if wait <= 0 {
			wait = time.Second
		}
		if until := now.Add(wait); until.After(k.Cooling) {
			k.Cooling = until
		}
		if l.Concurrency > 0 {
			inFlight := 0
			for _, c := range k.Claims {
				inFlight += c.InUse
			}
			k.Allowed = max(1, min(k.Allowed, max(inFlight, r.InUse)+1)/2)
		}
		k.Successes = 0
		return
	}
	if l.Concurrency > 0 {
		k.Successes += r.Answered
		for k.Allowed < l.Concurrency && k.Successes >= k.Allowed {
			k.Successes -= k.Allowed
			k.Allowed++
		}
		if k.Allowed == l.Concurrency {
			k.Successes = 0
		}
	}
}

// grant is as much of want as l allows holder now.
func (k *KeyState) grant(l Limit, holder string, want Claim, now time.Time) Grant {
	g := Grant{Claim: want}
	refuse := func(why string, again time.Duration) {
		if g.Why == "" {
			g.Why, g.Again = why, again
		}
	}
	if now.Before(k.Cooling) {
		g.Claim = Claim{Slots: min(want.Slots, k.Claims[holder].Slots)}
		refuse("retry-after", k.Cooling.Sub(now))
		return g
	}
	if l.Concurrency > 0 {
		limit := max(min(k.Allowed, l.Concurrency), 1)
		others, holders, othersWait := 0, 1, false
		for h, c := range k.Claims {
			if h == holder {
				continue
			}
			others += c.Slots
			if c.Slots > 0 || c.Waiting > 0 {
				holders++
			}
			othersWait = othersWait || c.Waiting > 0
		}
		free := max(limit-others, 0)
		if othersWait {
			g.Share = (limit + holders - 1) / holders
			free = min(free, g.Share)
		}
		if want.Slots > free {
			g.Slots = free
			refuse("concurrency", 50*time.Millisecond)
		}
	}
	requests, tokens, _ := k.sums()
	oldest := now.Unix() // what is granted now counts from now
	if len(k.Window) > 0 {
		oldest = k.Window[0].At
	}
	untilOldest := max(time.Unix(oldest, 0).Add(windowSpan).Sub(now), 10*time.Millisecond)
	if l.RPM > 0 && want.Requests > l.RPM-requests {
		g.Requests = max(l.RPM-requests, 0)
		refuse("rpm", untilOldest)
	}
	if l.TPM > 0 && want.Tokens > l.TPM-tokens {
		// A call larger than the whole budget goes alone, when nothing else
		// counts: it could never go otherwise.
		if tokens > 0 || want.Requests > 1 {
			g.Tokens = max(l.TPM-tokens, 0)
			refuse("tpm", untilOldest)
		}
	}
	return g
}

// Usage is k's counts under l.
func (k *KeyState) Usage(l Limit, now time.Time) Usage {
	u := Usage{Limit: l, Allowed: k.Allowed}
	if l.Concurrency > 0 && (u.Allowed <= 0 || u.Allowed > l.Concurrency) {
		u.Allowed = l.Concurrency
	}
	reserved := Claim{}
	for _, c := range k.Claims {
		u.InFlight += c.InUse
		u.Waiting += c.Waiting
		reserved.Requests += c.Requests
		reserved.Tokens += c.Tokens
	}
	// The window counts what is reserved as soon as it is; the figures
	// say what was used.
	requests, tokens, throttled := k.sums()
	u.Requests, u.Tokens, u.Throttled = max(requests-reserved.Requests, 0), max(tokens-reserved.Tokens, 0), throttled
	if now.Before(k.Cooling) {
		u.CoolingUntil = k.Cooling
	}
	return u
}

package limits

import (
	"context"
	"strconv"
	"sync"
	"time"
)

// Memory is a Ledger for one process: the benchmark's, and the tests'.
type Memory struct {
	mu   sync.Mutex
	keys map[string]*keyState
	seq  int
}

// keyState is one key's counts: its leases, the last minute's calls, and
// the AIMD state.
type keyState struct {
	leases    map[string]memLease
	window    []second // the last minute's calls, a bucket a second, oldest first
	allowed   int      // calls at once now allowed; 0 until the first
	successes int      // answered calls since allowed last grew
	cooling   time.Time
}

type memLease struct {
	holder  string
	tokens  int
	second  int64
	expires time.Time
}

// second is one second's calls of a key: at most sixty are kept, so a
// permit sums at most sixty, however many calls a minute makes.
type second struct {
	at                          int64 // Unix seconds
	requests, tokens, throttled int
}

// NewMemory returns an empty ledger.
func NewMemory() *Memory { return &Memory{keys: map[string]*keyState{}} }

func (m *Memory) state(l Limit, now time.Time) *keyState {
	k := m.keys[l.Key]
	if k == nil {
		k = &keyState{leases: map[string]memLease{}, allowed: l.Concurrency}
		m.keys[l.Key] = k
	}
	for id, ls := range k.leases {
		if now.After(ls.expires) {
			delete(k.leases, id)
		}
	}
	cut := 0
	for cut < len(k.window) && k.window[cut].at <= now.Add(-time.Minute).Unix() {
		cut++
	}
	k.window = k.window[cut:]
	return k
}

// Take implements Ledger.
func (m *Memory) Take(_ context.Context, l Limit, holder string, tokens int, now time.Time) (string, string, time.Duration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := m.state(l, now)
	requests, used := 0, 0
	for _, b := range k.window {
		requests += b.requests
		used += b.tokens
	}
	var oldest time.Time
	if len(k.window) > 0 {
		oldest = time.Unix(k.window[0].at, 0)
	}
	if why, again := Refuse(l, now, k.cooling, len(k.leases), k.allowed, requests, used, tokens, oldest); why != "" {
		return "", why, again, nil
	}
	m.seq++
	id := strconv.Itoa(m.seq)
	sec := now.Unix()
	k.leases[id] = memLease{holder: holder, tokens: tokens, second: sec, expires: now.Add(Lease)}
	if n := len(k.window); n > 0 && k.window[n-1].at == sec {
		k.window[n-1].requests++
		k.window[n-1].tokens += tokens
	} else {
		k.window = append(k.window, second{at: sec, requests: 1, tokens: tokens})
	}
	return id, "", 0, nil
}

// Refuse says why l allows no call of tokens now, and when to ask again;
// "" when it allows one. The window's figures are the last minute's.
func Refuse(l Limit, now, cooling time.Time, inFlight, allowed, requests, used, tokens int, oldest time.Time) (string, time.Duration) {
	untilOldest := time.Minute - now.Sub(oldest)
	switch {
	case now.Before(cooling):
		return "retry-after", cooling.Sub(now)
	case l.Concurrency > 0 && inFlight >= max(min(allowed, l.Concurrency), 1):
		return "concurrency", 50 * time.Millisecond
	case l.RPM > 0 && requests >= l.RPM:
		return "rpm", untilOldest
	case l.TPM > 0 && used > 0 && used+tokens > l.TPM:
		// A call larger than the whole budget goes alone, when the window
		// is empty: it could never go otherwise.
		return "tpm", untilOldest
	}
	return "", 0
}

// Return implements Ledger.
func (m *Memory) Return(_ context.Context, l Limit, lease string, used int, o Outcome, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := m.state(l, now)
	if ls, ok := k.leases[lease]; ok {
		delete(k.leases, lease)
		// The estimate corrected: the window counts what the call used.
		for i := range k.window {
			if k.window[i].at == ls.second {
				k.window[i].tokens += used - ls.tokens
				if o.Throttled {
					k.window[i].throttled++
				}
			}
		}
	}
	k.allowed, k.successes, k.cooling = Adapt(l, k.allowed, k.successes, k.cooling, len(k.leases), o, now)
	return nil
}

// Adapt is AIMD on a key's calls at once: a 429 halves them (from those in
// flight) and cools the key down for its Retry-After; every allowed
// answered calls in a row allow one more, up to the limit.
func Adapt(l Limit, allowed, successes int, cooling time.Time, inFlight int, o Outcome, now time.Time) (int, int, time.Time) {
	if l.Concurrency == 0 {
		allowed = 0
	}
	switch {
	case o.Throttled:
		wait := o.RetryAfter
		if wait <= 0 {
			wait = time.Second
		}
		if until := now.Add(wait); until.After(cooling) {
			cooling = until
		}
		if l.Concurrency > 0 {
			allowed = max(1, min(allowed, inFlight+1)/2)
		}
		return allowed, 0, cooling
	case o.OK && l.Concurrency > 0 && allowed < l.Concurrency:
		successes++
		if successes >= allowed {
			return allowed + 1, 0, cooling
		}
	}
	return allowed, successes, cooling
}

// Renew implements Ledger.
func (m *Memory) Renew(_ context.Context, holder string, until time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range m.keys {
		for id, ls := range k.leases {
			if ls.holder == holder {
				ls.expires = until
				k.leases[id] = ls
			}
		}
	}
	return nil
}

// Usage implements Ledger.
func (m *Memory) Usage(_ context.Context, t Table, now time.Time) ([]Usage, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Usage
	for _, l := range t {
		k := m.state(l, now)
		u := Usage{Limit: l, InFlight: len(k.leases), Allowed: k.allowed}
		for _, b := range k.window {
			u.Requests += b.requests
			u.Tokens += b.tokens
			u.Throttled += b.throttled
		}
		if now.Before(k.cooling) {
			u.CoolingUntil = k.cooling
		}
		out = append(out, u)
	}
	return out, nil
}

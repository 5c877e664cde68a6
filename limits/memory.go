package limits

import (
	"context"
	"sync"
	"time"
)

// Memory is a Ledger for one process: the benchmark's and the tests', and
// a process's own while the store does not answer.
type Memory struct {
	mu   sync.Mutex
	keys map[string]*KeyState
}

// NewMemory returns an empty ledger.
func NewMemory() *Memory { return &Memory{keys: map[string]*KeyState{}} }

func (m *Memory) state(l Limit, now time.Time) *KeyState {
	k := m.keys[l.Key]
	if k == nil {
		k = &KeyState{Allowed: l.Concurrency, Claims: map[string]Holding{}}
		m.keys[l.Key] = k
	}
	k.Expire(now)
	return k
}

// Settle implements Ledger.
func (m *Memory) Settle(_ context.Context, l Limit, holder string, want Claim, r Report, now time.Time) (Grant, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	g, _ := m.state(l, now).Settle(l, holder, want, r, now)
	return g, nil
}

// Usage implements Ledger.
func (m *Memory) Usage(_ context.Context, t Table, now time.Time) ([]Usage, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Usage
	for _, l := range t {
		out = append(out, m.state(l, now).Usage(l, now))
	}
	return out, nil
}

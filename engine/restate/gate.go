package restate

import (
	"context"
	"sync"
)

// Gate lets a stopping service finish the steps it is running, so their
// results are journaled and never paid for again, while starting no new
// one: a step that would start after Close waits until the process ends,
// and Restate runs it after the restart.
type Gate struct {
	mu      sync.Mutex
	running int
	closed  bool
	idle    chan struct{} // closed when closed and nothing runs
}

// NewGate returns an open gate.
func NewGate() *Gate { return &Gate{idle: make(chan struct{})} }

// enter reports whether a step may start; every true is matched by leave.
func (g *Gate) enter() bool {
	if g == nil {
		return true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.running++
	return true
}

func (g *Gate) leave() {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.running--
	if g.closed && g.running == 0 {
		close(g.idle)
	}
}

// Close starts no more steps and waits until the running ones have
// returned, or ctx ends; it returns how many were still running.
func (g *Gate) Close(ctx context.Context) int {
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		if g.running == 0 {
			close(g.idle)
		}
	}
	g.mu.Unlock()
	select {
	case <-g.idle:
		return 0
	case <-ctx.Done():
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.running
	}
}

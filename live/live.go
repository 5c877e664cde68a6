// Package live carries what a workflow shows while it runs and never
// keeps: the text a model is writing, token by token. It is a side
// channel: nothing in it is journaled or stored, a reader that falls
// behind loses deltas rather than slowing the call, and with no reader a
// delta costs a map lookup. A process's calls publish to its Hub; the API
// in the same process streams it to a reader (the event stream, the
// dashboard).
package live

import (
	"strconv"
	"strings"
	"sync"
)

// Token is one piece of a call's answer as it comes.
type Token struct {
	Run         string `json:"-"`
	Step        string `json:"step"` // "round-2/alice", "moderator"
	Participant string `json:"participant,omitempty"`
	Round       int    `json:"round,omitempty"`
	Delta       string `json:"delta,omitempty"`
	// Restart says the call starts again (a retry, or a run resumed after
	// a crash): what was shown of it so far is to be dropped.
	Restart bool `json:"restart,omitempty"`
}

// Hub is a process's live tokens, by run.
type Hub struct {
	mu   sync.RWMutex
	subs map[string]map[chan Token]struct{}
}

// NewHub returns a hub with no reader.
func NewHub() *Hub { return &Hub{subs: map[string]map[chan Token]struct{}{}} }

// Buffer is how many tokens a reader may fall behind before it loses some.
const Buffer = 1024

// Subscribe returns the tokens of run from now on, until cancel.
func (h *Hub) Subscribe(run string) (<-chan Token, func()) {
	c := make(chan Token, Buffer)
	h.mu.Lock()
	if h.subs[run] == nil {
		h.subs[run] = map[chan Token]struct{}{}
	}
	h.subs[run][c] = struct{}{}
	h.mu.Unlock()
	return c, func() {
		h.mu.Lock()
		delete(h.subs[run], c)
		if len(h.subs[run]) == 0 {
			delete(h.subs, run)
		}
		h.mu.Unlock()
	}
}

// Publish hands t to the readers of its run, dropping it for one that is
// full.
func (h *Hub) Publish(t Token) {
	if h == nil {
		return
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	for c := range h.subs[t.Run] {
		select {
		case c <- t:
		default:
		}
	}
}

// Reading says whether run has a reader.
func (h *Hub) Reading(run string) bool {
	if h == nil {
		return false
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.subs[run]) > 0
}

// TokenOf is a token of the call labelled label ("debate-1/round-2/alice":
// the run, then the step), with the participant and round a debate's step
// names.
func TokenOf(label, delta string, restart bool) Token {
	run, step, _ := strings.Cut(label, "/")
	t := Token{Run: run, Step: step, Delta: delta, Restart: restart}
	if round, who, ok := strings.Cut(step, "/"); ok && strings.HasPrefix(round, "round-") {
		if n, err := strconv.Atoi(strings.TrimPrefix(round, "round-")); err == nil {
			t.Round, t.Participant = n, who
		}
	}
	return t
}

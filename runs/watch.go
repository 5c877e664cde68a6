package runs

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"sort"
	"time"

	"github.com/ultramcp/durable/client"
	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/workflow"
)

// Event is one change in a workflow or in one of its children, as Watch
// sees it happen.
type Event struct {
	Type     string          `json:"type"` // one of the Event… constants
	ID       string          `json:"id"`   // the child's, for a child's events
	Workflow string          `json:"workflow"`
	Role     string          `json:"role,omitempty"` // a child's role in its parent
	Status   string          `json:"status,omitempty"`
	Progress json.RawMessage `json:"progress,omitempty"`
	Output   json.RawMessage `json:"output,omitempty"`
	Error    string          `json:"error,omitempty"`
	// Waiting is the wait for a provider's limit the run is in, on
	// EventWaiting ("" when it waits no more).
	Waiting string    `json:"waiting,omitempty"`
	At      time.Time `json:"at"`
}

// Event types.
const (
	EventStatus   = "status"   // the store's status changed
	EventWaiting  = "waiting"  // the run began or ended a wait for a provider's limit
	EventProgress = "progress" // the workflow published progress (a round, a step)
	EventChild    = "child"    // a child's status or progress changed
	EventResult   = "result"   // the workflow finished with an output: the last event
	EventFailed   = "failed"   // the workflow failed or was cancelled: the last event
)

// DefaultWatchInterval is how often Watch looks.
const DefaultWatchInterval = 250 * time.Millisecond

// watched is what Watch has seen of one workflow of the tree.
type watched struct {
	id, workflow, role, progress, status, waiting string
}

// Watch follows workflow id until it finishes or ctx ends, calling fn with
// every change: the store's status, its progress, each child's status and
// progress, then its result. Each look is a query of Restate's state and of
// the store — no invocation, so readers cost the workflow nothing. It
// returns the result, or the failure.
func (s *Service) Watch(ctx context.Context, id string, interval time.Duration, fn func(Event)) (Result, error) {
	if interval <= 0 {
		interval = DefaultWatchInterval
	}
	st, release, storeErr := s.stores.Open(ctx)
	if storeErr == nil {
		defer release()
	}
	w := &watcher{s: s, ctx: ctx, st: st, root: &watched{id: id}, children: map[string]*watched{}, fn: fn}
	if err := w.findRoot(); err != nil {
		return Result{}, err
	}
	for {
		w.look()
		out, err := s.restate.Output(ctx, w.root.workflow, id)
		if err == nil {
			w.look() // what changed between the last look and the end
			w.emit(Event{Type: EventResult, ID: id, Workflow: w.root.workflow, Output: out})
			return Result{ID: id, Workflow: w.root.workflow, Output: out}, nil
		}
		if !errors.Is(err, client.ErrNotReady) {
			err = s.outputError(id, err)
			if fault.KindOf(err) == fault.Permanent {
				w.look()
				w.emit(Event{Type: EventFailed, ID: id, Workflow: w.root.workflow, Error: err.Error()})
				return Result{}, err
			}
			// Restate is briefly unreachable (restarting): keep looking.
		}
		select {
		case <-ctx.Done():
			return Result{}, ctx.Err()
		case <-time.After(interval):
		}
	}
}

// watcher is one Watch: what it has seen of the workflow's tree.
type watcher struct {
	s        *Service
	ctx      context.Context
	st       Store // nil while the store is unreachable
	root     *watched
	children map[string]*watched // by role
	fn       func(Event)
}

func (w *watcher) emit(e Event) {
	e.At = time.Now().UTC()
	w.fn(e)
}

// findRoot learns which workflow the root is: from Restate, else from the
// store.
func (w *watcher) findRoot() error {
	inv, err := w.s.Find(w.ctx, w.root.id)
	if err == nil {
		w.root.workflow = inv.Service
		return nil
	}
	if w.st == nil {
		return err
	}
	row, gerr := w.st.Get(w.ctx, w.root.id)
	if gerr != nil {
		return err
	}
	w.root.workflow = row.Workflow
	return nil
}

// look emits what changed since the last look.
func (w *watcher) look() {
	stored := w.lookStore()
	for _, ch := range w.children {
		if ch.workflow == "" {
			if inv, err := w.s.restate.Find(w.ctx, "", ch.id); err == nil {
				ch.workflow = inv.Service
			}
		}
	}
	tree := map[string]string{w.root.id: w.root.workflow}
	for _, ch := range w.children {
		if ch.workflow != "" {
			tree[ch.id] = ch.workflow
		}
	}
	progress, err := w.s.progressOf(w.ctx, stored, tree)
	if err != nil {
		return
	}
	id := w.root.id
	if p := progress[id]; string(p) != "null" && string(p) != w.root.progress {
		w.root.progress = string(p)
		w.emit(Event{Type: EventProgress, ID: id, Workflow: w.root.workflow, Progress: p})
		var published struct {
			Children map[string]string `json:"children"`
		}
		if json.Unmarshal(p, &published) == nil {
			for role, child := range published.Children {
				childOf(w.children, role, child)
			}
		}
	}
	w.emitChildren(progress)
}

// lookStore emits the store's changes of status, and returns the progress
// the tree published in the store, by id.
func (w *watcher) lookStore() map[string]json.RawMessage {
	stored := map[string]json.RawMessage{}
	if w.st == nil {
		return stored
	}
	id := w.root.id
	if row, err := w.st.Get(w.ctx, id); err == nil {
		if row.Status != w.root.status {
			w.root.status = row.Status
			w.emit(Event{Type: EventStatus, ID: id, Workflow: w.root.workflow, Status: row.Status, Error: row.Error})
		}
		if row.Waiting != w.root.waiting && workflow.Open(row.Status) {
			w.root.waiting = row.Waiting
			w.emit(Event{Type: EventWaiting, ID: id, Workflow: w.root.workflow, Status: row.Status, Waiting: row.Waiting})
		}
		if row.Progress != nil {
			stored[id] = row.Progress
		}
	}
	rows, err := w.st.Children(w.ctx, id)
	if err != nil {
		return stored
	}
	for _, row := range rows {
		childOf(w.children, row.Role, row.ID).workflow = row.Workflow
		if ch := w.children[row.Role]; row.Status != ch.status {
			ch.status = row.Status
			w.emit(Event{Type: EventChild, ID: ch.id, Workflow: ch.workflow, Role: ch.role, Status: row.Status})
		}
		if row.Progress != nil {
			stored[row.ID] = row.Progress
		}
	}
	return stored
}

// emitChildren emits each child's new progress, in the order of roles.
func (w *watcher) emitChildren(progress map[string]json.RawMessage) {
	roles := make([]string, 0, len(w.children))
	for role := range w.children {
		roles = append(roles, role)
	}
	sort.Strings(roles)
	for _, role := range roles {
		ch := w.children[role]
		p, ok := progress[ch.id]
		if !ok || string(p) == ch.progress || string(p) == "null" {
			continue // not started yet, or nothing new
		}
		ch.progress = string(p)
		w.emit(Event{Type: EventChild, ID: ch.id, Workflow: ch.workflow, Role: role, Progress: p})
	}
}

// progressOf is the one reading of progress: what each workflow of tree
// (id → its workflow) published last. A workflow publishes in the store
// when it has one that keeps progress (workflow.Memo): stored holds what
// the store had; the others publish in Restate's state, read in one query.
func (s *Service) progressOf(ctx context.Context, stored map[string]json.RawMessage, tree map[string]string) (map[string]json.RawMessage, error) {
	ask := map[string]string{}
	for id, wf := range tree {
		if stored[id] == nil {
			ask[id] = wf
		}
	}
	progress := map[string]json.RawMessage{}
	if len(ask) > 0 {
		var err error
		if progress, err = s.restate.Progresses(ctx, ask); err != nil {
			return nil, err
		}
	}
	maps.Copy(progress, stored)
	return progress, nil
}

// childOf returns the watched child of role, adding it.
func childOf(children map[string]*watched, role, id string) *watched {
	ch, ok := children[role]
	if !ok {
		ch = &watched{id: id, role: role}
		children[role] = ch
	}
	return ch
}

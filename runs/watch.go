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
	At       time.Time       `json:"at"`
}

// Event types.
const (
	EventStatus   = "status"   // the store's status changed
	EventProgress = "progress" // the workflow published progress (a round, a step)
	EventChild    = "child"    // a child's status or progress changed
	EventResult   = "result"   // the workflow finished with an output: the last event
	EventFailed   = "failed"   // the workflow failed or was cancelled: the last event
)

// DefaultWatchInterval is how often Watch looks.
const DefaultWatchInterval = 250 * time.Millisecond

// watched is what Watch has seen of one workflow of the tree.
type watched struct {
	id, workflow, role, progress, status string
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
	root := &watched{id: id}
	if inv, err := s.Find(ctx, id); err == nil {
		root.workflow = inv.Service
	} else if st != nil {
		w, gerr := st.Get(ctx, id)
		if gerr != nil {
			return Result{}, err
		}
		root.workflow = w.Workflow
	} else {
		return Result{}, err
	}
	children := map[string]*watched{}
	emit := func(e Event) {
		e.At = time.Now().UTC()
		fn(e)
	}
	look := func() {
		// What the tree published in the store (workflow.Memo), by id;
		// the rest publish in Restate's state.
		stored := map[string]json.RawMessage{}
		if st != nil {
			if w, err := st.Get(ctx, id); err == nil {
				if w.Status != root.status {
					root.status = w.Status
					emit(Event{Type: EventStatus, ID: id, Workflow: root.workflow, Status: w.Status, Error: w.Error})
				}
				if w.Progress != nil {
					stored[id] = w.Progress
				}
			}
			if rows, err := st.Children(ctx, id); err == nil {
				for _, row := range rows {
					childOf(children, row.Role, row.ID).workflow = row.Workflow
					if ch := children[row.Role]; row.Status != ch.status {
						ch.status = row.Status
						emit(Event{Type: EventChild, ID: ch.id, Workflow: ch.workflow, Role: ch.role, Status: row.Status})
					}
					if row.Progress != nil {
						stored[row.ID] = row.Progress
					}
				}
			}
		}
		// Every progress of the tree in one query: the workflow's and that
		// of each child Restate knows the service of.
		for _, ch := range children {
			if ch.workflow == "" {
				if inv, err := s.restate.Find(ctx, "", ch.id); err == nil {
					ch.workflow = inv.Service
				}
			}
		}
		tree := map[string]string{}
		if stored[id] == nil {
			tree[id] = root.workflow
		}
		for _, ch := range children {
			if ch.workflow != "" && stored[ch.id] == nil {
				tree[ch.id] = ch.workflow
			}
		}
		progress := map[string]json.RawMessage{}
		if len(tree) > 0 {
			var err error
			if progress, err = s.restate.Progresses(ctx, tree); err != nil {
				return
			}
		}
		maps.Copy(progress, stored)
		if p := progress[id]; string(p) != "null" && string(p) != root.progress {
			root.progress = string(p)
			emit(Event{Type: EventProgress, ID: id, Workflow: root.workflow, Progress: p})
			var published struct {
				Children map[string]string `json:"children"`
			}
			if json.Unmarshal(p, &published) == nil {
				for role, child := range published.Children {
					childOf(children, role, child)
				}
			}
		}
		roles := make([]string, 0, len(children))
		for role := range children {
			roles = append(roles, role)
		}
		sort.Strings(roles)
		for _, role := range roles {
			ch := children[role]
			p, ok := progress[ch.id]
			if !ok || string(p) == ch.progress || string(p) == "null" {
				continue // not started yet, or nothing new
			}
			ch.progress = string(p)
			emit(Event{Type: EventChild, ID: ch.id, Workflow: ch.workflow, Role: role, Progress: p})
		}
	}
	for {
		look()
		out, err := s.restate.Output(ctx, root.workflow, id)
		if err == nil {
			look() // what changed between the last look and the end
			emit(Event{Type: EventResult, ID: id, Workflow: root.workflow, Output: out})
			return Result{ID: id, Workflow: root.workflow, Output: out}, nil
		}
		if !errors.Is(err, client.ErrNotReady) {
			err = s.outputError(id, err)
			if fault.KindOf(err) == fault.Permanent {
				look()
				emit(Event{Type: EventFailed, ID: id, Workflow: root.workflow, Error: err.Error()})
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

// childOf returns the watched child of role, adding it.
func childOf(children map[string]*watched, role, id string) *watched {
	ch, ok := children[role]
	if !ok {
		ch = &watched{id: id, role: role}
		children[role] = ch
	}
	return ch
}

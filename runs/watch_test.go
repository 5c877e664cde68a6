package runs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ultramcp/durable/client"
	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/store"
	"github.com/ultramcp/durable/workflow"
)

// A moment of a scripted run: what the engine and the store say at one
// look of Watch. Each answer of Output moves the script on.
type moment struct {
	restate  map[string]string // id → progress in Restate's state
	output   string            // the result, once finished
	outErr   error             // what Output answers instead (ErrNotReady if neither)
	row      *store.Workflow   // the store's row of the root
	children []store.ChildRow
}

// script fakes the engine and the store of one run: the ports runs
// declares, so Watch is tested without a stack. A call the test does not
// expect panics on the nil embedded interface.
type script struct {
	Engine
	mu      sync.Mutex
	at      int
	moments []moment
	service map[string]string // id → workflow, as Find knows it
}

func (s *script) now() moment {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.moments[min(s.at, len(s.moments)-1)]
}

func (s *script) Find(_ context.Context, _, id string) (client.Invocation, error) {
	if wf, ok := s.service[id]; ok {
		return client.Invocation{ID: "inv_" + id, Service: wf, WorkflowID: id, Status: "running"}, nil
	}
	return client.Invocation{}, client.ErrNotFound
}

func (s *script) Progresses(_ context.Context, tree map[string]string) (map[string]json.RawMessage, error) {
	out := map[string]json.RawMessage{}
	for id := range tree {
		if p, ok := s.now().restate[id]; ok {
			out[id] = json.RawMessage(p)
		} else {
			out[id] = json.RawMessage("null")
		}
	}
	return out, nil
}

func (s *script) Output(context.Context, string, string) (json.RawMessage, error) {
	m := s.now()
	s.mu.Lock()
	s.at++
	s.mu.Unlock()
	switch {
	case m.output != "":
		return json.RawMessage(m.output), nil
	case m.outErr != nil:
		return nil, m.outErr
	}
	return nil, client.ErrNotReady
}

// The store's side of the script.
type scriptStore struct {
	Store
	s *script
}

func (st scriptStore) Get(_ context.Context, id string) (store.Workflow, error) {
	if m := st.s.now(); m.row != nil && m.row.ID == id {
		return *m.row, nil
	}
	return store.Workflow{}, fault.New(fault.NotFound, "workflow %s", id)
}

func (st scriptStore) Children(context.Context, string) ([]store.ChildRow, error) {
	return st.s.now().children, nil
}

func (st scriptStore) Open(context.Context) (Store, func(), error) { return st, func() {}, nil }

// failingStores is a store that cannot be opened.
type failingStores struct{}

func (failingStores) Open(context.Context) (Store, func(), error) {
	return nil, nil, fault.New(fault.Unavailable, "metadata store down")
}

func watchScript(t *testing.T, s *script, stores Stores) ([]Event, Result, error) {
	t.Helper()
	svc := New(Options{Engine: s, Stores: stores})
	var events []Event
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := svc.Watch(ctx, "full-1", time.Millisecond, func(e Event) { events = append(events, e) })
	return events, res, err
}

// what is an event in short: type, whose (root or a role), and the status
// or progress it carries.
func what(e Event) string {
	who := "root"
	if e.Role != "" {
		who = e.Role
	}
	switch {
	case e.Status != "":
		return fmt.Sprintf("%s %s %s", e.Type, who, e.Status)
	case e.Progress != nil:
		return fmt.Sprintf("%s %s %s", e.Type, who, e.Progress)
	case e.Output != nil:
		return fmt.Sprintf("%s %s %s", e.Type, who, e.Output)
	}
	return fmt.Sprintf("%s %s %s", e.Type, who, e.Error)
}

func row(status, progress string) *store.Workflow {
	w := &store.Workflow{Summary: workflow.Summary{ID: "full-1", Workflow: "full-analysis", Status: status}}
	if progress != "" {
		w.Progress = json.RawMessage(progress)
	}
	return w
}

// Watch reports each change once, in order, and the result last: the
// store's status, the root's progress (from Restate's state, or from the
// store when the workflow publishes there), a child the progress names,
// that child's status and progress, then the result.
func TestWatchReportsEachChangeOnceThenTheResult(t *testing.T) {
	child := store.ChildRow{Child: workflow.Child{ID: "analysis-1", Role: "analysis", Workflow: workflow.CodeAnalysis}, Status: workflow.StatusRunning}
	s := &script{service: map[string]string{"full-1": "full-analysis", "analysis-1": workflow.CodeAnalysis}, moments: []moment{
		{row: row(workflow.StatusPending, "")},
		{row: row(workflow.StatusRunning, ""), restate: map[string]string{"full-1": `{"phase":"analysis","children":{"analysis":"analysis-1"}}`}},
		{row: row(workflow.StatusRunning, ""), restate: map[string]string{"full-1": `{"phase":"analysis","children":{"analysis":"analysis-1"}}`, "analysis-1": `{"message":"cloning"}`}},
		{row: row(workflow.StatusRunning, ""), children: []store.ChildRow{child}, restate: map[string]string{"full-1": `{"phase":"analysis","children":{"analysis":"analysis-1"}}`, "analysis-1": `{"message":"cloning"}`}},
		{row: row(workflow.StatusRunning, `{"phase":"report"}`), children: []store.ChildRow{child}, restate: map[string]string{"full-1": `{"phase":"stale"}`, "analysis-1": `{"message":"scanning"}`}},
		{row: row(workflow.StatusCompleted, `{"phase":"report"}`), children: []store.ChildRow{child}, output: `{"ok":true}`},
	}}
	events, res, err := watchScript(t, s, scriptStore{s: s})
	if err != nil || string(res.Output) != `{"ok":true}` || res.Workflow != "full-analysis" {
		t.Fatalf("Watch = %+v, %v", res, err)
	}
	var got []string
	for _, e := range events {
		got = append(got, what(e))
	}
	want := []string{
		"status root pending",
		"status root running",
		`progress root {"phase":"analysis","children":{"analysis":"analysis-1"}}`,
		`child analysis {"message":"cloning"}`,
		"child analysis running",
		// The store's progress wins over Restate's state: the workflow
		// publishes in the store when it has one.
		`progress root {"phase":"report"}`,
		`child analysis {"message":"scanning"}`,
		"status root completed",
		`result root {"ok":true}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A failure the engine reports for good ends the watch with a failed
// event and the error; an engine that does not answer for a while (a
// restart) is waited for.
func TestWatchWaitsOutAnOutageAndEndsOnAFailure(t *testing.T) {
	s := &script{service: map[string]string{"full-1": "full-analysis"}, moments: []moment{
		{outErr: errors.New("dial unix ingress.sock: connection refused")},
		{outErr: errors.New("dial unix ingress.sock: connection refused")},
		{outErr: &client.Error{Status: 500, Message: "scanner crashed"}},
	}}
	events, _, err := watchScript(t, s, failingStores{})
	if fault.KindOf(err) != fault.Permanent || !strings.Contains(err.Error(), "scanner crashed") {
		t.Fatalf("Watch error %v, want the permanent failure", err)
	}
	if n := len(events); n == 0 || events[n-1].Type != EventFailed || !strings.Contains(events[n-1].Error, "scanner crashed") {
		t.Errorf("last event %+v, want failed", events)
	}
	if s.at < 3 {
		t.Errorf("gave up after %d looks: an outage is waited for", s.at)
	}
}

// A workflow neither Restate nor the store knows is not found at once.
func TestWatchOfAnUnknownWorkflow(t *testing.T) {
	s := &script{service: map[string]string{}, moments: []moment{{}}}
	_, _, err := watchScript(t, s, scriptStore{s: s})
	if fault.KindOf(err) != fault.NotFound {
		t.Errorf("Watch of an unknown id: %v, want not found", err)
	}
}

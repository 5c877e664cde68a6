// Package replay checks that a workflow body is deterministic, as Restate
// requires of it, the way Temporal's workflow replayer does: it records the
// commands one run makes on the direct engine (steps with their results,
// published values, sleeps, awaits) and runs the body again against the
// record, as Restate replays a journal after a crash, failing at the first
// command that differs. A value computed outside a step (a clock read, a
// random number, the service's configuration) that reaches a command shows
// up as a difference.
package replay

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ultramcp/durable/engine"
	"github.com/ultramcp/durable/engine/direct"
	"github.com/ultramcp/durable/fault"
)

// command is one journal entry as Restate would keep it.
type command struct {
	Kind  string // run, set, sleep, await
	Name  string
	Value []byte // a step's result, a published value, an awaited value
	OK    bool   // an await that got a value
	Err   *fault.Error
}

func (c command) String() string { return c.Kind + " " + c.Name }

// Check runs body once on the direct engine, recording its commands, then
// again against the record, and returns the first difference, or a
// difference between the two outputs. body must start from the same input
// each time.
func Check[O any](ctx context.Context, id string, body func(engine.Context) (O, error)) (O, error) {
	return CheckCalling(ctx, id, nil, body)
}

// CheckCalling is Check for a body that calls child workflows: the first
// run finds them in workflows; the replay answers their calls from the
// record, as Restate would.
func CheckCalling[O any](ctx context.Context, id string, workflows map[string]engine.Body, body func(engine.Context) (O, error)) (O, error) {
	rec := &recorder{inner: direct.New(ctx, id, nil).WithWorkflows(workflows)}
	first, firstErr := body(rec)
	// The replay is the same run: what the first kept under its run id is
	// the replay's too.
	rep := &replayer{ctx: ctx, id: id, run: rec.RunID(), cmds: rec.cmds}
	second, secondErr := body(rep)
	if rep.mismatch != nil {
		return first, rep.mismatch
	}
	if rep.next < len(rep.cmds) {
		return first, fmt.Errorf("journal mismatch: the replay ended after %d of %d commands; next recorded: %s", rep.next, len(rep.cmds), rep.cmds[rep.next])
	}
	a, _ := json.Marshal(first)
	b, _ := json.Marshal(second)
	if string(a) != string(b) || fmt.Sprint(firstErr) != fmt.Sprint(secondErr) {
		return first, fmt.Errorf("replay differs in its output:\nfirst run: %s %v\nreplay:    %s %v", a, firstErr, b, secondErr)
	}
	return first, firstErr
}

// recorder runs on the direct engine and keeps every command.
type recorder struct {
	inner *direct.Context
	mu    sync.Mutex
	cmds  []command
}

var _ engine.Context = (*recorder)(nil)

func (r *recorder) Context() context.Context { return r.inner.Context() }
func (r *recorder) WorkflowID() string       { return r.inner.WorkflowID() }
func (r *recorder) RunID() string            { return r.inner.RunID() }
func (r *recorder) Logger() *slog.Logger     { return r.inner.Logger() }

func (r *recorder) add(c command) {
	r.mu.Lock()
	r.cmds = append(r.cmds, c)
	r.mu.Unlock()
}

func asFault(err error) *fault.Error {
	if err == nil {
		return nil
	}
	return &fault.Error{Kind: fault.KindOf(err), Msg: err.Error()}
}

func (r *recorder) Run(step engine.Step) ([]byte, error) {
	out, err := r.inner.Run(step)
	r.add(command{Kind: "run", Name: step.Name, Value: out, Err: asFault(err)})
	return out, err
}

func (r *recorder) RunAll(steps []engine.Step) ([][]byte, []error) {
	results, errs := r.inner.RunAll(steps)
	for i, s := range steps { // journaled in the order they were started
		r.add(command{Kind: "run", Name: s.Name, Value: results[i], Err: asFault(errs[i])})
	}
	return results, errs
}

func (r *recorder) Call(children []engine.Child) ([]json.RawMessage, []error) {
	outs, errs := r.inner.Call(children)
	for i, ch := range children {
		r.add(command{Kind: "call", Name: ch.Workflow + "/" + ch.ID, Value: outs[i], Err: asFault(errs[i])})
	}
	return outs, errs
}

func (r *recorder) Sleep(name string, d time.Duration) error {
	r.add(command{Kind: "sleep", Name: name})
	return r.inner.Sleep(name, d)
}

func (r *recorder) Publish(key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	r.add(command{Kind: "set", Name: key, Value: b})
	return r.inner.Publish(key, v)
}

func (r *recorder) Await(name string, timeout time.Duration) (json.RawMessage, bool, error) {
	v, ok, err := r.inner.Await(name, timeout)
	r.add(command{Kind: "await", Name: name, Value: v, OK: ok, Err: asFault(err)})
	return v, ok, err
}

// replayer answers every command from the record and notes the first one
// that differs from it.
type replayer struct {
	ctx      context.Context
	id       string
	run      string
	mu       sync.Mutex
	cmds     []command
	next     int
	mismatch error
}

var _ engine.Context = (*replayer)(nil)

func (r *replayer) Context() context.Context { return r.ctx }
func (r *replayer) WorkflowID() string       { return r.id }
func (r *replayer) RunID() string            { return r.run }
func (r *replayer) Logger() *slog.Logger     { return slog.New(slog.DiscardHandler) }

// take returns the next recorded command if it is the one the body now
// makes; value, if not nil, must equal the recorded one byte for byte.
func (r *replayer) take(kind, name string, value []byte) (command, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mismatch != nil {
		return command{}, r.mismatch
	}
	now := command{Kind: kind, Name: name}
	switch {
	case r.next >= len(r.cmds):
		r.mismatch = fmt.Errorf("journal mismatch at command %d: the record ended, the replay attempts %s", r.next, now)
	case r.cmds[r.next].Kind != kind || r.cmds[r.next].Name != name:
		r.mismatch = fmt.Errorf("journal mismatch at command %d: the first run made %s, the replay attempts %s", r.next, r.cmds[r.next], now)
	case value != nil && string(r.cmds[r.next].Value) != string(value):
		r.mismatch = fmt.Errorf("journal mismatch at command %d (%s): the first run wrote %s, the replay writes %s", r.next, now, r.cmds[r.next].Value, value)
	}
	if r.mismatch != nil {
		return command{}, r.mismatch
	}
	c := r.cmds[r.next]
	r.next++
	return c, nil
}

func result(c command) ([]byte, error) {
	if c.Err != nil {
		return nil, c.Err
	}
	return c.Value, nil
}

func (r *replayer) Run(step engine.Step) ([]byte, error) {
	c, err := r.take("run", step.Name, nil)
	if err != nil {
		return nil, err
	}
	return result(c)
}

func (r *replayer) RunAll(steps []engine.Step) ([][]byte, []error) {
	results := make([][]byte, len(steps))
	errs := make([]error, len(steps))
	for i, s := range steps {
		results[i], errs[i] = r.Run(s)
	}
	return results, errs
}

func (r *replayer) Call(children []engine.Child) ([]json.RawMessage, []error) {
	outs := make([]json.RawMessage, len(children))
	errs := make([]error, len(children))
	for i, ch := range children {
		c, err := r.take("call", ch.Workflow+"/"+ch.ID, nil)
		if err != nil {
			errs[i] = err
			continue
		}
		outs[i], errs[i] = result(c)
	}
	return outs, errs
}

func (r *replayer) Sleep(name string, _ time.Duration) error {
	_, err := r.take("sleep", name, nil)
	return err
}

func (r *replayer) Publish(key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = r.take("set", key, b)
	return err
}

func (r *replayer) Await(name string, _ time.Duration) (json.RawMessage, bool, error) {
	c, err := r.take("await", name, nil)
	if err != nil {
		return nil, false, err
	}
	if c.Err != nil {
		return nil, false, c.Err
	}
	return c.Value, c.OK, nil
}

// Journal runs body once on the direct engine and returns the commands it
// made, each as "kind name" (run, set, sleep, await, call): the shape of
// its journal, which an upgrade must not change under a workflow in flight.
func Journal[O any](ctx context.Context, id string, workflows map[string]engine.Body, body func(engine.Context) (O, error)) ([]string, error) {
	rec := &recorder{inner: direct.New(ctx, id, nil).WithWorkflows(workflows)}
	_, err := body(rec)
	out := make([]string, len(rec.cmds))
	for i, c := range rec.cmds {
		out[i] = c.String()
	}
	return out, err
}

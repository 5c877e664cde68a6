// Package direct runs workflow logic in-process with no journal: the legacy
// orchestration that the seed compares against (the benchmarks' floor), and
// the engine of unit tests and of the replay checker. A crash loses the run.
package direct

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/ultramcp/durable/engine"
	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/retry"
)

// Context is an engine.Context that runs steps at once.
type Context struct {
	ctx    context.Context
	id     string
	run    string
	logger *slog.Logger

	mu        sync.Mutex
	published map[string]json.RawMessage
	signals   map[string]chan json.RawMessage
	awaiting  string // the gate Await waits at
	// workflows are the bodies Call finds children in; children share it.
	workflows map[string]engine.Body
	children  map[string]*Context
}

var _ engine.Context = (*Context)(nil)

// New returns a direct context for workflow id.
func New(ctx context.Context, id string, logger *slog.Logger) *Context {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Context{ctx: ctx, id: id, run: newRunID(), logger: logger.With("workflow", id), published: map[string]json.RawMessage{}, signals: map[string]chan json.RawMessage{}, children: map[string]*Context{}}
}

// WithWorkflows lets the workflow call the given workflows as children.
func (c *Context) WithWorkflows(w map[string]engine.Body) *Context {
	c.workflows = w
	return c
}

// Child returns the context of a child Call started, or nil.
func (c *Context) Child(id string) *Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.children[id]
}

// Call runs each child's body in-process, side by side, with a context of
// its own derived from this one: cancelling the parent cancels them, and
// the parent then sees Cancelled, as on Restate.
func (c *Context) Call(children []engine.Child) ([]json.RawMessage, []error) {
	outs := make([]json.RawMessage, len(children))
	errs := make([]error, len(children))
	var wg sync.WaitGroup
	for i, ch := range children {
		body, ok := c.workflows[ch.Workflow]
		if !ok {
			errs[i] = fault.New(fault.Invalid, "workflow %q is not registered", ch.Workflow)
			continue
		}
		child := New(c.ctx, ch.ID, c.logger).WithWorkflows(c.workflows)
		c.mu.Lock()
		c.children[ch.ID] = child
		c.mu.Unlock()
		wg.Go(func() { outs[i], errs[i] = body(child, ch.Input) })
	}
	wg.Wait()
	if err := c.ctx.Err(); err != nil {
		for i := range errs {
			errs[i] = fault.Wrap(fault.Cancelled, err, "cancelled")
		}
	}
	return outs, errs
}

func (c *Context) Context() context.Context { return c.ctx }
func (c *Context) WorkflowID() string       { return c.id }
func (c *Context) Logger() *slog.Logger     { return c.logger }

// RunID is random per Context: the direct engine has no retries to span.
func (c *Context) RunID() string { return c.run }

func newRunID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Run runs step, retrying retryable errors up to its attempt budget. As on
// Restate, a cancelled workflow can still run steps (its compensations):
// cancellation reaches it at its next wait (Sleep, Await, Call, RunAll).
func (c *Context) Run(step engine.Step) ([]byte, error) {
	ctx := context.WithoutCancel(c.ctx)
	attempts := step.Opts.Attempts()
	// Restate's own retry policy, as near as one process has it: the
	// step's budget, its first backoff, doubling to 10 s.
	policy := retry.Policy{Initial: step.Opts.Backoff(), Max: 10 * time.Second, Attempts: attempts,
		OnRetry: func(attempt int, err error) {
			c.logger.Warn("step failed, retrying", "step", step.Name, "attempt", attempt, "err", err)
		}}
	var out []byte
	_, err := policy.Do(ctx, func(ctx context.Context) (err error) {
		out, err = step.Fn(ctx)
		return err
	})
	if err == nil {
		return out, nil
	}
	return nil, engine.Final(step.Name, attempts, err)
}

// RunAll runs the steps on their own goroutines and waits for all; a
// cancelled workflow gets Cancelled for each, as Restate's Wait answers.
func (c *Context) RunAll(steps []engine.Step) ([][]byte, []error) {
	results := make([][]byte, len(steps))
	errs := make([]error, len(steps))
	if err := c.ctx.Err(); err != nil {
		for i := range errs {
			errs[i] = fault.Wrap(fault.Cancelled, err, "cancelled")
		}
		return results, errs
	}
	var wg sync.WaitGroup
	for i, s := range steps {
		wg.Go(func() { results[i], errs[i] = c.Run(s) })
	}
	wg.Wait()
	return results, errs
}

// Sleep waits d or until the context ends.
func (c *Context) Sleep(name string, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.ctx.Done():
		return fault.Wrap(fault.Cancelled, c.ctx.Err(), "cancelled during %s", name)
	case <-t.C:
		return nil
	}
}

// Publish stores v for Published.
func (c *Context) Publish(key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fault.Wrap(fault.Internal, err, "publish %s", key)
	}
	c.mu.Lock()
	c.published[key] = b
	c.mu.Unlock()
	return nil
}

// Published returns the last value published under key, or nil.
func (c *Context) Published(key string) json.RawMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.published[key]
}

// signal is the channel of gate name; c.mu must be held.
func (c *Context) signal(name string) chan json.RawMessage {
	ch, ok := c.signals[name]
	if !ok {
		ch = make(chan json.RawMessage, 1)
		c.signals[name] = ch
	}
	return ch
}

// Await waits for Resolve(name, …) or the timeout; the gate is open only
// while it waits.
func (c *Context) Await(name string, timeout time.Duration) (json.RawMessage, bool, error) {
	c.mu.Lock()
	c.awaiting = name
	signal := c.signal(name)
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.awaiting = ""
		c.mu.Unlock()
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case v := <-signal:
		return v, true, nil
	case <-t.C:
		return nil, false, nil
	case <-c.ctx.Done():
		return nil, false, fault.Wrap(fault.Cancelled, c.ctx.Err(), "cancelled while waiting for %s", name)
	}
}

// Resolve sends value to the Await on name; only the first value counts,
// and only while the workflow waits at that gate (as on Restate).
func (c *Context) Resolve(name string, value json.RawMessage) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.awaiting != name {
		return engine.GateClosed(name, c.awaiting)
	}
	c.awaiting = "" // the first value closes the gate
	select {
	case c.signal(name) <- value:
		return nil
	default:
		return fault.New(fault.Invalid, "%s was already given", name)
	}
}

// Package restate runs workflow logic on the Restate server: every step is a
// journaled restate.Run, concurrent steps are RunAsync futures drained with
// restate.Wait (so they really run side by side), sleeps are durable timers,
// and published progress is workflow state that a shared handler reads.
//
// It is the only package that turns fault kinds into Restate terminal errors
// and back.
package restate

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	sdk "github.com/restatedev/sdk-go"
	"github.com/restatedev/sdk-go/encoding"

	"github.com/ultramcp/durable/engine"
	"github.com/ultramcp/durable/fault"
)

// Context adapts a Restate workflow context to engine.Context.
type Context struct {
	ctx     sdk.WorkflowContext
	guard   attempts
	crashAt string
	gate    *Gate
}

var _ engine.Context = (*Context)(nil)

// newGuarded wraps ctx, counting interrupted step attempts in o.AttemptsDir.
func newGuarded(ctx sdk.WorkflowContext, o ServiceOptions) *Context {
	limit := o.StepCrashLimit
	if limit <= 0 {
		limit = DefaultStepCrashLimit
	}
	return &Context{ctx: ctx, guard: attempts{dir: o.AttemptsDir, limit: limit}, crashAt: o.CrashAtStep, gate: o.Gate}
}

func (c *Context) Context() context.Context { return c.ctx }
func (c *Context) WorkflowID() string       { return sdk.Key(c.ctx) }
func (c *Context) Logger() *slog.Logger     { return c.ctx.Log() }

// RunID is the Restate invocation's id: constant across its retries.
func (c *Context) RunID() string { return c.ctx.Request().ID }

func runOptions(step engine.Step) []sdk.RunOption {
	return []sdk.RunOption{
		sdk.WithName(step.Name),
		// A step's result is JSON already (engine.Step): journaled as is,
		// not parsed and encoded again.
		sdk.WithCodec(encoding.BinaryCodec),
		sdk.WithMaxRetryAttempts(uint(step.Opts.Attempts())),
		sdk.WithInitialRetryInterval(step.Opts.Backoff()),
		sdk.WithMaxRetryInterval(10 * time.Second),
	}
}

func (c *Context) closure(step engine.Step) func(sdk.RunContext) ([]byte, error) {
	return func(rc sdk.RunContext) ([]byte, error) {
		if !c.gate.enter() {
			// The service is stopping: this step runs after the restart.
			<-rc.Done()
			return nil, fault.Wrap(fault.Unavailable, rc.Err(), "service stopping")
		}
		defer c.gate.leave()
		interrupted, done := c.guard.begin(rc.Request().ID, step.Name)
		if interrupted >= c.guard.limit && c.guard.limit > 0 {
			done()
			err := fault.New(fault.Permanent, "step %s was interrupted %d times (the service died while it ran); giving up", step.Name, interrupted)
			rc.Log().Error("step crash-looped", "step", step.Name, "interrupted", interrupted)
			return nil, ToTerminal(err)
		}
		if c.crashAt != "" && c.crashAt == step.Name {
			crash()
		}
		out, err := step.Fn(engine.WithAttempt(rc, interrupted+1))
		done()
		if err != nil {
			// A step with one attempt retries inside itself (LLM calls), so
			// its error is final here: make it terminal in the closure rather
			// than end the invocation attempt, which would re-run siblings.
			if !fault.IsRetryable(err) || step.Opts.Attempts() == 1 {
				// Log the cause first: the terminal error keeps only the text.
				rc.Log().Warn("step failed for good", "step", step.Name, "err", err)
				return nil, ToTerminal(err)
			}
			return nil, err
		}
		return out, nil
	}
}

// Run journals one step.
func (c *Context) Run(step engine.Step) ([]byte, error) {
	out, err := sdk.Run(c.ctx, c.closure(step), runOptions(step)...)
	if err != nil {
		return nil, FromTerminal(err)
	}
	return out, nil
}

// RunAll starts every step as a RunAsync future and waits for all of them
// together; awaiting them one by one would run them one after another.
func (c *Context) RunAll(steps []engine.Step) ([][]byte, []error) {
	futs := make([]sdk.RunAsyncFuture[[]byte], len(steps))
	waitOn := make([]sdk.Future, len(steps))
	for i, s := range steps {
		futs[i] = sdk.RunAsync(c.ctx, c.closure(s), runOptions(s)...)
		waitOn[i] = futs[i]
	}
	return collect(c.ctx, waitOn, func(i int) ([]byte, error) { return futs[i].Result() })
}

// Call calls each child workflow's run handler from the parent's context:
// Restate journals each result in the parent and cancels the children with
// it. The calls are started together and awaited with Wait, so they run
// side by side.
func (c *Context) Call(children []engine.Child) ([]json.RawMessage, []error) {
	futs := make([]sdk.ResponseFuture[json.RawMessage], len(children))
	waitOn := make([]sdk.Future, len(children))
	for i, ch := range children {
		futs[i] = sdk.Workflow[json.RawMessage](c.ctx, ch.Workflow, ch.ID, engine.RunHandler).RequestFuture(ch.Input)
		waitOn[i] = futs[i]
	}
	results, errs := collect(c.ctx, waitOn, func(i int) (json.RawMessage, error) { return futs[i].Response() })
	outs := make([]json.RawMessage, len(results))
	for i, r := range results {
		outs[i] = r
	}
	return outs, errs
}

// collect waits for all the futures together (awaiting them one by one
// would run them one after another), then reads each one's result. A
// cancellation fails every pending one alike: the children of a parent
// cancelled are cancelled with it.
func collect[T ~[]byte](ctx sdk.WorkflowContext, futs []sdk.Future, result func(i int) (T, error)) ([][]byte, []error) {
	results := make([][]byte, len(futs))
	errs := make([]error, len(futs))
	for _, err := range sdk.Wait(ctx, futs...) {
		if err != nil {
			for i := range errs {
				errs[i] = FromTerminal(err)
			}
			return results, errs
		}
	}
	for i := range futs {
		out, err := result(i)
		if err != nil {
			errs[i] = FromTerminal(err)
			continue
		}
		results[i] = out
	}
	return results, errs
}

// Sleep is a durable timer.
func (c *Context) Sleep(name string, d time.Duration) error {
	return FromTerminal(sdk.Sleep(c.ctx, d, sdk.WithName(name)))
}

// Publish stores v as workflow state under key.
func (c *Context) Publish(key string, v any) error {
	sdk.Set(c.ctx, key, v)
	return nil
}

// Await races a durable promise against a durable timer. The gate is open
// (AwaitingKey names it, for the decide handler to check) only while it
// waits.
func (c *Context) Await(name string, timeout time.Duration) (json.RawMessage, bool, error) {
	sdk.Set(c.ctx, engine.AwaitingKey, name)
	p := sdk.Promise[json.RawMessage](c.ctx, name)
	timer := sdk.After(c.ctx, timeout, sdk.WithName(name+"-timeout"))
	first, err := sdk.WaitFirst(c.ctx, p, timer)
	// Not deferred: the SDK suspends an invocation by panicking out of
	// WaitFirst, and no command may follow a suspension.
	sdk.Clear(c.ctx, engine.AwaitingKey)
	if err != nil {
		return nil, false, FromTerminal(err)
	}
	if first == sdk.Future(timer) {
		return nil, false, nil
	}
	v, err := p.Result()
	if err != nil {
		return nil, false, FromTerminal(err)
	}
	return v, true, nil
}

// ToTerminal turns a final error into a Restate terminal error whose code
// says its kind.
func ToTerminal(err error) error {
	if err == nil || sdk.IsTerminalError(err) {
		return err
	}
	return sdk.ToTerminalError(errors.New(err.Error()), sdk.WithErrorCode(sdk.Code(fault.HTTPStatus(err))))
}

// FromTerminal turns a Restate terminal error back into a fault.
func FromTerminal(err error) error {
	if err == nil {
		return nil
	}
	te := sdk.AsTerminalError(err)
	if te == nil {
		return err
	}
	// Anything not named, 503 included (a step that spent its attempts on
	// a transient fault), is final: Permanent.
	return fault.New(fault.KindOfStatus(int(te.Code())), "%s", te.Error())
}

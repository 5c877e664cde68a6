// Package engine is the small interface the workflow logic is written
// against: named steps whose results are kept, steps run side by side, a
// durable sleep, published progress, awaited signals, child workflows, and
// sagas whose compensations run in reverse. Two engines implement it:
// engine/restate journals every step in Restate, so a crash resumes after the
// last completed step; engine/direct runs the same logic in-process with no
// journal (the legacy path and the baseline in benchmarks).
//
// The workflow packages import this package only, never an engine.
package engine

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/ultramcp/durable/fault"
)

// The handlers every workflow service has, the promise a decision resolves
// and the state key progress is published under: the protocol between an
// engine and its callers (package workflow names them for everyone else).
const (
	RunHandler      = "run"
	ProgressHandler = "progress"
	// DecideHandler takes a human decision for a workflow waiting on one.
	DecideHandler = "decide"
	// DecisionPromise and ApprovalPromise are the gates DecideHandler
	// opens: the durable promises an escalated debate's decision
	// ({"decision": …}) and a full-analysis's approval ({"approved": …})
	// resolve. A value is taken only while the workflow waits at that gate
	// (AwaitingKey says which): one sent before, after or to another gate
	// is refused with 409, so it can never open a later wait.
	DecisionPromise = "decision"
	ApprovalPromise = "approval"
	// AwaitingKey is the state key holding the gate a workflow waits at.
	AwaitingKey = "awaiting"
	// ProgressKey is the state key under which a workflow publishes progress.
	ProgressKey = "progress"
)

// StepOptions bound how an engine retries a failed step.
type StepOptions struct {
	// MaxAttempts is the number of times the engine runs the step before its
	// error becomes final; 0 means DefaultMaxAttempts. Steps that retry
	// transient faults inside themselves (LLM calls) use 1, so that a
	// failing participant never makes the engine re-run its siblings.
	MaxAttempts int
	// InitialBackoff before the second attempt; 0 means 100ms.
	InitialBackoff time.Duration
}

// DefaultMaxAttempts is the engine-level retry budget of a step.
const DefaultMaxAttempts = 3

// Step is a unit of work whose result the engine keeps. Fn must return the
// JSON encoding of its result. Fn receives a context that is cancelled when
// the step is abandoned.
type Step struct {
	Name string
	Fn   func(ctx context.Context) ([]byte, error)
	Opts StepOptions
}

// Context is what a workflow body sees.
type Context interface {
	// Context is the invocation's context, for cancellation and values;
	// effects must still go through Run.
	Context() context.Context
	// WorkflowID is the workflow's id (the Restate key).
	WorkflowID() string
	// RunID names this run of the workflow: the same on every attempt and
	// replay of it, another when its id is run again (after a purge). What
	// a run keeps outside the journal for itself alone (the answers a step
	// has already had) is keyed by it.
	RunID() string
	Logger() *slog.Logger
	// Run runs one step, or returns its recorded result on replay.
	Run(step Step) ([]byte, error)
	// RunAll runs the steps concurrently and returns each one's result and
	// error, in the order given. One failing step does not stop the others.
	RunAll(steps []Step) ([][]byte, []error)
	// Sleep waits durably: a crash during the sleep does not restart it.
	Sleep(name string, d time.Duration) error
	// Publish makes v readable under key by progress queries while the
	// workflow runs.
	Publish(key string, v any) error
	// Await waits durably for a value sent to the workflow at the gate
	// name (DecisionPromise or ApprovalPromise), at most timeout; ok is
	// false when the time ran out. Only while it waits is the gate open.
	Await(name string, timeout time.Duration) (value json.RawMessage, ok bool, err error)
	// Call runs child workflows side by side and returns each one's output
	// and error, in the order given. Their results are kept like a step's:
	// a replay reaches the same children (give them ids derived from the
	// parent's, ChildID) and does not run them again. Cancelling the parent
	// cancels the children it waits for.
	Call(children []Child) ([]json.RawMessage, []error)
}

// WithAttempt tells a step which attempt of it this is, counting those the
// process died in: an engine that knows sets it on the step's context.
func WithAttempt(ctx context.Context, n int) context.Context {
	return context.WithValue(ctx, attemptKey{}, n)
}

// AttemptOf is the attempt WithAttempt set, or 0.
func AttemptOf(ctx context.Context) int {
	n, _ := ctx.Value(attemptKey{}).(int)
	return n
}

type attemptKey struct{}

// Body is a workflow as the engines run it: JSON in, JSON out.
type Body func(c Context, input json.RawMessage) (json.RawMessage, error)

// Child is a workflow one workflow starts and waits for.
type Child struct {
	Workflow string          // the registered workflow's name
	ID       string          // its workflow id; see ChildID
	Input    json.RawMessage // its request
}

// ChildID is the id of the parent's child called name: derived from the
// parent's id, so every replay and every engine reaches the same child.
func ChildID(c Context, name string) string { return c.WorkflowID() + "-" + name }

// Saga collects the compensations of a workflow's steps that leave
// something behind, to undo them in reverse if the workflow does not
// finish: on failure, rejection or cancellation. Each compensation is a
// journaled step that retries until done, so a crash during the unwinding
// resumes it (the pattern of restatedev/examples' sagas).
type Saga struct {
	c     Context
	undo  []Step
	Retry StepOptions // zero: CompensationStep
}

// CompensationStep retries a compensation for a long time: it must happen.
var CompensationStep = StepOptions{MaxAttempts: 50, InitialBackoff: 200 * time.Millisecond}

// NewSaga starts an empty saga for c.
func NewSaga(c Context) *Saga { return &Saga{c: c} }

// Add registers the compensation of a step that has just succeeded.
func (s *Saga) Add(name string, undo func(ctx context.Context) error) {
	s.undo = append(s.undo, Step{Name: "undo-" + name, Fn: func(ctx context.Context) ([]byte, error) {
		if err := undo(ctx); err != nil {
			return nil, err
		}
		return []byte("true"), nil
	}})
}

// Unwind runs the compensations registered so far, the last first, each
// as a step; it returns their names in the order they ran, and the first
// that failed for good, after trying all.
func (s *Saga) Unwind() ([]string, error) {
	opts := s.Retry
	if opts == (StepOptions{}) {
		opts = CompensationStep
	}
	var ran []string
	var first error
	for i := len(s.undo) - 1; i >= 0; i-- {
		step := s.undo[i]
		step.Opts = opts
		ran = append(ran, step.Name)
		if _, err := s.c.Run(step); err != nil && first == nil {
			first = err
		}
	}
	s.undo = nil
	return ran, first
}

// Run is the typed form of Context.Run.
func Run[T any](c Context, name string, opts StepOptions, fn func(ctx context.Context) (T, error)) (T, error) {
	var out T
	raw, err := c.Run(Step{Name: name, Opts: opts, Fn: encoded(fn)})
	if err != nil {
		return out, err
	}
	return Decode[T](name, raw)
}

// TypedStep is a step of RunAll whose result has type T.
type TypedStep[T any] struct {
	Name string
	Opts StepOptions
	Fn   func(ctx context.Context) (T, error)
}

// Raw is the step in the untyped form Context.RunAll takes, so that steps
// of different result types can run in one batch; Decode reads its result.
func (s TypedStep[T]) Raw() Step { return Step{Name: s.Name, Opts: s.Opts, Fn: encoded(s.Fn)} }

// Decode reads a step result produced by a TypedStep[T].
func Decode[T any](name string, raw []byte) (T, error) {
	var out T
	if err := json.Unmarshal(raw, &out); err != nil {
		return out, fault.Wrap(fault.Internal, err, "decode result of step %s", name)
	}
	return out, nil
}

// RunAll is the typed form of Context.RunAll.
func RunAll[T any](c Context, steps []TypedStep[T]) ([]T, []error) {
	raw := make([]Step, len(steps))
	for i, s := range steps {
		raw[i] = s.Raw()
	}
	results, errs := c.RunAll(raw)
	out := make([]T, len(steps))
	for i := range steps {
		if errs[i] == nil {
			out[i], errs[i] = Decode[T](steps[i].Name, results[i])
		}
	}
	return out, errs
}

func encoded[T any](fn func(ctx context.Context) (T, error)) func(ctx context.Context) ([]byte, error) {
	return func(ctx context.Context) ([]byte, error) {
		v, err := fn(ctx)
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fault.Wrap(fault.Internal, err, "encode step result")
		}
		return b, nil
	}
}

// Attempts returns the effective attempt budget of opts.
func (o StepOptions) Attempts() int {
	if o.MaxAttempts <= 0 {
		return DefaultMaxAttempts
	}
	return o.MaxAttempts
}

// Backoff returns the effective first backoff of opts.
func (o StepOptions) Backoff() time.Duration {
	if o.InitialBackoff <= 0 {
		return 100 * time.Millisecond
	}
	return o.InitialBackoff
}

// Final is a step's error once its attempts are spent: final, so it is
// Permanent whatever its kind was (a transient fault that outlasted its
// retries is not retried again by the workflow), with the attempts said.
// Invalid, not-found and cancelled errors keep their kind. Both engines
// answer alike (the conformance suite in engine/enginetest checks it).
func Final(step string, attempts int, err error) error {
	if fault.IsRetryable(err) {
		return fault.Wrap(fault.Permanent, err, "step %s failed after %d attempt(s)", step, attempts)
	}
	return err
}

// GateOf says which gate a decision is for: ApprovalPromise for one that
// says "approved", DecisionPromise for one that says "decision", "" for
// neither.
func GateOf(value json.RawMessage) string {
	var v struct {
		Approved *bool           `json:"approved"`
		Decision json.RawMessage `json:"decision"`
	}
	if json.Unmarshal(value, &v) != nil {
		return ""
	}
	switch {
	case v.Approved != nil:
		return ApprovalPromise
	case len(v.Decision) > 0 && string(v.Decision) != "null":
		return DecisionPromise
	}
	return ""
}

// GateClosed says a decision was refused because the workflow does not
// wait at its gate; awaiting is the gate it waits at ("" for none).
func GateClosed(gate, awaiting string) error {
	what := map[string]string{DecisionPromise: "a decision", ApprovalPromise: "an approval"}
	now := "it waits for nothing now"
	if awaiting != "" {
		now = "it waits for " + what[awaiting]
	}
	return fault.New(fault.Conflict, "not waiting for %s (%s)", what[gate], now)
}

package restate

import (
	"context"
	"encoding/json"
	"time"

	sdk "github.com/restatedev/sdk-go"

	"github.com/ultramcp/durable/engine"
	"github.com/ultramcp/durable/fault"
)

// ServiceOptions tune every workflow service.
type ServiceOptions struct {
	// Retention keeps a finished workflow's output and id in Restate.
	Retention time.Duration
	// InactivityTimeout must exceed the longest step (an LLM call with its
	// retries); AbortTimeout follows it.
	InactivityTimeout time.Duration
	AbortTimeout      time.Duration
	// MaxAttempts bounds an invocation's attempts; once spent it is paused
	// with its last failure, to be resumed or killed by hand (restate
	// invocations resume|kill). Zero means DefaultMaxAttempts.
	MaxAttempts uint
	// AttemptsDir keeps the count of step attempts the process died in;
	// "" counts none. StepCrashLimit bounds them (zero: the default).
	AttemptsDir    string
	StepCrashLimit int
	// CrashAtStep makes the service kill itself when that step starts
	// (chaos tests only; see CrashAtStepEnv).
	CrashAtStep string
	// Gate, if set, is closed by a stopping service: running steps finish,
	// no new one starts.
	Gate *Gate
	// Published, if set, answers the progress handler for a workflow that
	// published nothing in Restate's state: one that publishes in its store.
	Published ProgressReader
	// CheckKey, if set, refuses a workflow id before the body runs: a
	// workflow started on the ingress socket, past the application
	// service, is held to the same rules.
	CheckKey func(id string) error
}

// ProgressReader reads what a workflow published outside Restate.
type ProgressReader interface {
	PublishedProgress(ctx context.Context, workflowID string) (json.RawMessage, error)
}

// DefaultMaxAttempts covers about half an hour of outage at the 10 s
// backoff cap: a service down for a deploy resumes its work; one that fails
// on every attempt stops being retried.
const DefaultMaxAttempts = 200

// DefaultServiceOptions: LLM steps run at most five minutes with their
// retries (llm.DefaultRetryPolicy), so Restate waits six before asking the
// service to suspend, and ten more before aborting it.
var DefaultServiceOptions = ServiceOptions{
	Retention:         24 * time.Hour,
	InactivityTimeout: 6 * time.Minute,
	AbortTimeout:      10 * time.Minute,
}

// Workflow defines a Restate workflow service named name whose "run" handler
// runs body on the Restate engine with the request's JSON (body decodes it:
// see workflow.Typed), and whose shared "progress" handler returns what
// body last published. Errors that retrying cannot fix end the workflow as
// terminal errors with their HTTP status (400 for bad input).
func Workflow[O any](name string, body func(engine.Context, json.RawMessage) (O, error), o ServiceOptions) sdk.ServiceDefinition {
	run := func(ctx sdk.WorkflowContext, raw json.RawMessage) (O, error) {
		if o.CheckKey != nil {
			if err := o.CheckKey(sdk.Key(ctx)); err != nil {
				var zero O
				return zero, ToTerminal(err)
			}
		}
		out, err := body(newGuarded(ctx, o), raw)
		if err != nil {
			ctx.Log().Error("workflow failed", "err", err)
			return out, ToTerminal(err)
		}
		return out, nil
	}
	progress := func(ctx sdk.WorkflowSharedContext, _ sdk.Void) (json.RawMessage, error) {
		p, err := sdk.Get[json.RawMessage](ctx, engine.ProgressKey)
		if err != nil {
			return nil, err
		}
		if p == nil && o.Published != nil {
			// Nothing journaled depends on this read: a replay reads again.
			var perr error
			if p, perr = o.Published.PublishedProgress(ctx, sdk.Key(ctx)); perr != nil {
				return nil, perr // retried: the store comes back
			}
		}
		if p == nil {
			return json.RawMessage("null"), nil
		}
		return p, nil
	}
	decide := func(ctx sdk.WorkflowSharedContext, value json.RawMessage) (sdk.Void, error) {
		if len(value) == 0 || string(value) == "null" || len(value) > 64<<10 {
			return sdk.Void{}, sdk.TerminalErrorf("decision: want a JSON value of at most 64 KiB")
		}
		gate := engine.GateOf(value)
		if gate == "" {
			return sdk.Void{}, ToTerminal(fault.Invalidf("decision", `want {"decision": "…"} for a debate or {"approved": true|false} for an approval`))
		}
		// Checked here, where the promise is resolved, so that no path to
		// this handler (the API, the ingress socket) can open a gate the
		// workflow does not wait at: a value resolved early would be taken
		// by a later wait without anyone having seen what it decides.
		awaiting, err := sdk.Get[string](ctx, engine.AwaitingKey)
		if err != nil {
			return sdk.Void{}, err
		}
		if awaiting != gate {
			return sdk.Void{}, ToTerminal(engine.GateClosed(gate, awaiting))
		}
		return sdk.Void{}, sdk.Promise[json.RawMessage](ctx, gate).Resolve(value)
	}
	return sdk.NewWorkflow(name,
		sdk.WithWorkflowRetention(o.Retention),
		sdk.WithInactivityTimeout(o.InactivityTimeout),
		sdk.WithAbortTimeout(o.AbortTimeout),
		// A short first retry makes recovery after a crash quick (the
		// kill -9 figures of docs/benchmarks.md); the cap keeps a broken
		// deployment from spinning.
		sdk.WithInvocationRetryPolicy(
			sdk.WithInitialRetryInterval(50*time.Millisecond),
			sdk.WithRetryIntervalFactor(2),
			sdk.WithMaxRetryInterval(10*time.Second),
			sdk.WithMaxRetryAttempts(attemptsOr(o.MaxAttempts)),
			sdk.PauseOnMaxAttempts(),
		),
	).
		Handler(engine.RunHandler, sdk.NewWorkflowHandler(run)).
		Handler(engine.ProgressHandler, sdk.NewWorkflowSharedHandler(progress)).
		Handler(engine.DecideHandler, sdk.NewWorkflowSharedHandler(decide))
}

func attemptsOr(n uint) uint {
	if n == 0 {
		return DefaultMaxAttempts
	}
	return n
}

package workflow

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"time"

	"github.com/ultramcp/durable/engine"
	"github.com/ultramcp/durable/fault"
)

// Statuses of a workflow in the metadata store.
const (
	StatusPending   = "pending"
	StatusRunning   = "running"
	StatusCompleted = "completed"
	StatusFailed    = "failed"
	StatusCancelled = "cancelled"
)

// Execution is one agent call as the metadata store keeps it; (WorkflowID,
// Step) identifies it, so recording it again updates the same row.
type Execution struct {
	WorkflowID string
	AgentName  string
	Step       string // e.g. "round-2/alice"
	Attempt    int    // provider attempts the call took (retries inside the step)
	Status     string // completed or failed
	DurationMS int64
	TokensIn   int
	TokensOut  int
	CostUSD    float64
	CreatedAt  time.Time
}

// ArtifactRef points at a large output kept out of the journal.
type ArtifactRef struct {
	ID    string `json:"id"` // sha256 of the content, hex
	Name  string `json:"name"`
	Bytes int    `json:"bytes"`
}

// Records is the long memory of workflows (the metadata store). Every
// method is idempotent: a replayed step writes the same rows again.
type Records interface {
	Started(ctx context.Context, id, workflow string, input []byte, at time.Time) error
	Finished(ctx context.Context, id, status string, output []byte, errMsg string, startedAt, at time.Time) error
	RecordExecutions(ctx context.Context, execs []Execution) error
	PutArtifact(ctx context.Context, workflowID, name string, content []byte) (ArtifactRef, error)
	NamedArtifact(ctx context.Context, workflowID, name string) ([]byte, error)
}

// RecordStep is the retry budget of a store write: generous, because a
// database outage should delay a workflow, not fail it (about ten minutes
// of attempts, backoff capped at ten seconds).
var RecordStep = engine.StepOptions{MaxAttempts: 70, InitialBackoff: 200 * time.Millisecond}

// Tracked wraps a workflow body so that the store sees it start ("running")
// and end ("completed", "failed" with the reason, or "cancelled"), each in
// its own journaled step. With rec nil it returns body unchanged.
func Tracked[I, O any](rec Records, name string, body func(engine.Context, I) (O, error)) func(engine.Context, I) (O, error) {
	if rec == nil {
		return body
	}
	return func(c engine.Context, in I) (O, error) {
		var zero O
		input, err := json.Marshal(in)
		if err != nil {
			return zero, fault.Wrap(fault.Internal, err, "encode input")
		}
		// A refused request is recorded too: a credential it carried in a
		// URL is not.
		input = RedactCredentials(input)
		started, err := engine.Run(c, "record-start", RecordStep, func(ctx context.Context) (time.Time, error) {
			now := time.Now().UTC()
			return now, rec.Started(ctx, c.WorkflowID(), name, input, now)
		})
		if err != nil {
			return zero, err
		}
		out, runErr := body(c, in)
		status, msg, output := StatusCompleted, "", []byte(nil)
		switch {
		case runErr == nil:
			if output, err = json.Marshal(out); err != nil {
				return zero, fault.Wrap(fault.Internal, err, "encode output")
			}
		case fault.KindOf(runErr) == fault.Cancelled:
			status, msg = StatusCancelled, runErr.Error()
		default:
			status, msg = StatusFailed, runErr.Error()
		}
		if _, err := engine.Run(c, "record-"+status, RecordStep, func(ctx context.Context) (bool, error) {
			return true, rec.Finished(ctx, c.WorkflowID(), status, output, msg, started, time.Now().UTC())
		}); err != nil && runErr == nil {
			return zero, err
		}
		return out, runErr
	}
}

var urlCredentials = regexp.MustCompile(`://[^/@\s"]+@`)

// RedactCredentials replaces the user information of every URL in b
// ("https://user:token@host") by "***".
func RedactCredentials(b []byte) []byte {
	return urlCredentials.ReplaceAll(b, []byte("://***@"))
}

// Decoded adapts a body taking typed input to one taking the request's JSON:
// decode validates it (naming the field at fault) before body runs any step.
func Decoded[I, O any](decode func([]byte) (I, error), body func(engine.Context, I) (O, error)) func(engine.Context, json.RawMessage) (O, error) {
	return func(c engine.Context, raw json.RawMessage) (O, error) {
		in, err := decode(raw)
		if err != nil {
			var zero O
			c.Logger().Warn("rejected input", "err", err)
			return zero, err
		}
		return body(c, in)
	}
}

// StoreRetryBudget bounds how long a store write retries inside a step
// that runs beside others (ExecutionsStep).
const StoreRetryBudget = 5 * time.Minute

// RetryStore runs write until it succeeds, a fault that retrying cannot fix
// occurs, or StoreRetryBudget is spent, backing off from 200 ms to 5 s.
func RetryStore(ctx context.Context, write func(context.Context) error) error {
	deadline := time.Now().Add(StoreRetryBudget)
	backoff := 200 * time.Millisecond
	for {
		err := write(ctx)
		if err == nil || !fault.IsRetryable(err) || time.Now().Add(backoff).After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return fault.Wrap(fault.Unavailable, ctx.Err(), "store write abandoned")
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// ExecutionsStep writes execs as a step that may run beside others (the
// next round's calls): it retries store faults inside itself, because on
// Restate a retryable error leaving one of several concurrent steps would end
// the attempt and repeat its siblings' model calls.
func ExecutionsStep(rec Records, name string, execs []Execution) engine.Step {
	return engine.Step{Name: name, Opts: engine.StepOptions{MaxAttempts: 1}, Fn: func(ctx context.Context) ([]byte, error) {
		if err := RetryStore(ctx, func(ctx context.Context) error { return rec.RecordExecutions(ctx, execs) }); err != nil {
			return nil, err
		}
		return []byte(fmt.Sprint(len(execs))), nil
	}}
}

package workflow

import (
	"context"
	"encoding/json"
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

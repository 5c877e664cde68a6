package workflow

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/ultramcp/durable/fault"
)

// Statuses of a workflow in the metadata store.
const (
	StatusPending   = "pending"
	StatusRunning   = "running"
	StatusCompleted = "completed"
	StatusFailed    = "failed"
	StatusCancelled = "cancelled"
	// StatusNotStarted is a request that could not be handed to Restate;
	// it never overwrites a stored result, and a later start succeeds.
	StatusNotStarted = "not-started"
	// StatusPaused is an invocation Restate stopped retrying (its attempts
	// spent); resumed, it runs again.
	StatusPaused = "paused"
	// StatusPartial is a workflow that finished with a part missing (a
	// scanner failed); the reason is in the error column.
	StatusPartial = "partial"
	// StatusRejected is a workflow a human rejected (or did not approve in
	// time), or whose result a rejected parent withdrew.
	StatusRejected = "rejected"
)

// EndedAs is the status a run ended in, and why, from what its body
// returned: its output's (FinishedAs), cancelled, or failed with the error.
func EndedAs(output []byte, err error) (status, reason string) {
	switch {
	case err == nil:
		return FinishedAs(output)
	case fault.KindOf(err) == fault.Cancelled:
		return StatusCancelled, err.Error()
	}
	return StatusFailed, err.Error()
}

// FinishedAs reads the conventions by which any workflow's result says how
// it ended, if not plainly completed: "rejected": true with the reason in
// "rejection"; "partial": true with the reasons in "incomplete".
func FinishedAs(output []byte) (status, reason string) {
	// Most results say neither: spare them a full decode.
	if !bytes.Contains(output, []byte(`"rejected"`)) && !bytes.Contains(output, []byte(`"partial"`)) {
		return StatusCompleted, ""
	}
	var r struct {
		Rejected   bool     `json:"rejected"`
		Rejection  string   `json:"rejection"`
		Partial    bool     `json:"partial"`
		Incomplete []string `json:"incomplete"`
	}
	switch {
	case json.Unmarshal(output, &r) != nil:
	case r.Rejected:
		return StatusRejected, "rejected: " + r.Rejection
	case r.Partial:
		return StatusPartial, "partial: " + strings.Join(r.Incomplete, "; ")
	}
	return StatusCompleted, ""
}

// Statuses lists every status, for filters to check against.
var Statuses = []string{StatusPending, StatusNotStarted, StatusRunning, StatusPaused, StatusCompleted, StatusPartial, StatusRejected, StatusFailed, StatusCancelled}

// KnownStatus reports whether status is one of Statuses.
func KnownStatus(status string) bool { return slices.Contains(Statuses, status) }

// Open reports whether a workflow in status may still change: it has not
// finished.
func Open(status string) bool {
	switch status {
	case StatusPending, StatusRunning, StatusNotStarted, StatusPaused:
		return true
	}
	return false
}

// Summary is one workflow as the store lists it: what it is, where it
// stands and what it was asked (its input as recorded, without
// credentials), not its result.
type Summary struct {
	ID          string     `json:"id"`
	Workflow    string     `json:"workflow"`
	Status      string     `json:"status"`
	Input       string     `json:"input,omitempty"`
	Error       string     `json:"error,omitempty"`
	CreatedAt   time.Time  `json:"createdAt"`
	UpdatedAt   time.Time  `json:"updatedAt"`
	CompletedAt *time.Time `json:"completedAt,omitempty"`
	DurationMS  *int64     `json:"durationMs,omitempty"`
}

// Execution is one agent call as the metadata store keeps it; (WorkflowID,
// Step) identifies it, so recording it again updates the same row.
type Execution struct {
	WorkflowID string    `json:"workflowId"`
	AgentName  string    `json:"agent"`
	Step       string    `json:"step"`    // e.g. "round-2/alice"
	Attempt    int       `json:"attempt"` // provider attempts the call took (retries inside the step)
	Status     string    `json:"status"`  // completed or failed
	DurationMS int64     `json:"durationMs"`
	TokensIn   int       `json:"tokensIn"`
	TokensOut  int       `json:"tokensOut"`
	CostUSD    float64   `json:"costUsd"`
	CreatedAt  time.Time `json:"createdAt"`
	// RunID and Answer, when set, keep what the call answered for the run
	// that made it (see Memo).
	RunID  string          `json:"-"`
	Answer json.RawMessage `json:"-"`
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
	// Started records the workflow running; the first start time stays.
	// Finished records how it ended, its duration counted from that start.
	// Both touch the row of id only if it is this workflow's.
	Finished(ctx context.Context, id, workflow, status string, output []byte, errMsg string, at time.Time) error
	RecordExecutions(ctx context.Context, execs []Execution) error
	PutArtifact(ctx context.Context, workflowID, name string, content []byte) (ArtifactRef, error)
	NamedArtifact(ctx context.Context, workflowID, name string) ([]byte, error)
	// LinkChildren records the children a workflow calls, by role.
	LinkChildren(ctx context.Context, parentID string, children []Child, at time.Time) error
	// Withdraw marks a workflow's result as no longer standing (a
	// compensation of its parent): the parent's outcome as its status
	// (rejected, cancelled, failed), with the reason.
	Withdraw(ctx context.Context, id, status, reason string) error
}

// Memo is a store that also keeps, for a run, what a step's calls
// answered and what the workflow last published, both outside the journal:
// a step that makes several calls is then journaled once, and a retry of it
// asks again only the calls that had not answered (Answers); progress costs
// the journal nothing (Progress, ordered by seq).
type Memo interface {
	Answers(ctx context.Context, workflowID, runID string) (map[string]json.RawMessage, error)
	Progress(ctx context.Context, id string, seq int, value []byte) error
}

// Child is a workflow another one calls.
type Child struct {
	ID       string `json:"id"`
	Role     string `json:"role"`
	Workflow string `json:"workflow"`
}

// RefOf is the reference of an artifact: its content's sha256, so that it
// is known before (and whether or not) the store has it.
func RefOf(name string, content []byte) ArtifactRef {
	sum := sha256.Sum256(content)
	return ArtifactRef{ID: hex.EncodeToString(sum[:]), Name: name, Bytes: len(content)}
}

// Deferring is a store that may hold a write back to commit it with
// others (the store batches its writes): Deferred is that store with its
// writes lingering while urgent reports false, for the background writes
// of a workflow that does not wait for them yet.
type Deferring interface {
	Deferred(urgent func() bool) Records
}

// Flusher is a store that can be asked to commit what it holds back.
type Flusher interface{ Flush() }

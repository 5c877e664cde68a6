package runs

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"

	"github.com/ultramcp/durable/client"
	"github.com/ultramcp/durable/limits"
	"github.com/ultramcp/durable/store"
	"github.com/ultramcp/durable/telemetry"
	"github.com/ultramcp/durable/workflow"
)

// The ports: what runs needs of the layers below it, each the few methods
// it calls. *store.Store, *client.Client and *repo.Cache are what the
// product plugs in; the tests plug in fakes.

// Store is what runs reads and writes of the metadata store.
type Store interface {
	Submitted(ctx context.Context, id, wf string, input []byte, at time.Time, maxOpen int) (fresh bool, err error)
	NotStarted(ctx context.Context, id, reason string, at time.Time) error
	Get(ctx context.Context, id string) (store.Workflow, error)
	Children(ctx context.Context, parentID string) ([]store.ChildRow, error)
	Executions(ctx context.Context, workflowID string) ([]workflow.Execution, error)
	NamedArtifact(ctx context.Context, workflowID, name string) ([]byte, error)
	List(ctx context.Context, f store.Filter) ([]store.Workflow, error)
	Purge(ctx context.Context, cutoff time.Time) (store.Purged, error)
	// Limits is the ledger of the providers' limits every service shares.
	Limits() limits.Ledger
}

// Stores gives the metadata store to each operation: a command-line call
// opens its own, the API shares one.
type Stores interface {
	// Open returns the store and what to call when done with it.
	Open(ctx context.Context) (Store, func(), error)
}

// Engine is what runs asks of the workflow engine: Restate's ingress and
// admin API.
type Engine interface {
	Start(ctx context.Context, svc, id string, input []byte) (client.Started, error)
	Find(ctx context.Context, svc, id string) (client.Invocation, error)
	Cancel(ctx context.Context, invocationID string) error
	Decide(ctx context.Context, svc, id string, decision []byte) error
	Attach(ctx context.Context, svc, id string) (json.RawMessage, error)
	Output(ctx context.Context, svc, id string) (json.RawMessage, error)
	Progress(ctx context.Context, svc, id string) (json.RawMessage, error)
	// Progresses reads the progress of several workflows (id → its
	// workflow) at once.
	Progresses(ctx context.Context, workflows map[string]string) (map[string]json.RawMessage, error)
	Services(ctx context.Context) ([]map[string]any, error)
	// Pause holds an invocation at the end of its current attempt;
	// ResumeOn lets it go on, on a deployment ("keep": its own).
	Pause(ctx context.Context, invocationID string) error
	ResumeOn(ctx context.Context, invocationID, deployment string) error
	// Journal is an invocation's journal: its steps with their results.
	Journal(ctx context.Context, invocationID string) ([]client.Entry, error)
	// InFlight counts the runs not finished, by workflow and deployment.
	InFlight(ctx context.Context) ([]client.InFlight, error)
	// Console is where the engine's own UI and admin API answer, and the
	// transport that reaches it.
	Console() (*url.URL, http.RoundTripper)
}

// Traces is where spans are stored and read back: Jaeger's query API.
type Traces interface {
	Trace(ctx context.Context, traceID string) ([]telemetry.Span, error)
}

// Checkouts is the cache of repository checkouts, pruned with the store.
type Checkouts interface {
	Prune(cutoff time.Time) (int, error)
}

// Filter selects the workflows List returns.
type Filter struct {
	Workflow string // "" for all
	Status   string // "" for all
	Limit    int    // 0 means 50
	// Before, if set, lists only those created before it: the next page
	// after a page's last.
	Before time.Time
}

// Summary is one workflow of a list (workflow.Summary).
type Summary = workflow.Summary

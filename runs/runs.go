// Package runs is UltraMCP's application service: what a user can do with
// workflows — submit one, follow it, read its status and result, list,
// cancel, decide, purge — written once, over the workflow registry, the
// metadata store and the Restate stack. The CLI, the REST API and the MCP
// server are thin adapters over it; none holds logic of its own.
package runs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/ultramcp/durable/client"
	"github.com/ultramcp/durable/config"
	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/limits"
	"github.com/ultramcp/durable/live"
	"github.com/ultramcp/durable/sanitize"
	"github.com/ultramcp/durable/store"
	"github.com/ultramcp/durable/workflow"
	"github.com/ultramcp/durable/workflow/registry"
)

// Service runs workflows for one stack.
type Service struct {
	// MaxOpen, when positive, refuses a submission while that many
	// workflows are open (the API's limit on work at once).
	MaxOpen int
	// Live is the answers as this process's calls write them, when the
	// workflows run here (serve); nil elsewhere.
	Live *live.Hub

	defs       []workflow.Definition
	restate    Engine
	stores     Stores
	checkouts  Checkouts
	traces     Traces
	limits     limits.Table
	maxCostUSD float64
	budgeted   map[string]bool // the workflows whose request takes a budget

	feedsOnce sync.Once
	feeds     *Feeds
}

// Feeds are the shared event logs of the workflows this service's callers
// follow: the API's event streams and MCP's waits read the same ones.
func (s *Service) Feeds() *Feeds {
	s.feedsOnce.Do(func() { s.feeds = NewFeeds(context.Background(), s) })
	return s.feeds
}

// PerCall opens the store of cfg for each operation without the service's
// patience: a command should answer at once.
type PerCall struct{ Config config.Config }

// Open implements Stores.
func (p PerCall) Open(ctx context.Context) (Store, func(), error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := store.Open(ctx, p.Config.DatabaseURL, p.Config.SQLitePath())
	if err != nil {
		return nil, nil, fault.Wrap(fault.Unavailable, err, "metadata store")
	}
	return st, func() { _ = st.Close() }, nil
}

// Shared is one open store, kept by its owner.
type Shared struct{ Store Store }

// Open implements Stores.
func (s Shared) Open(context.Context) (Store, func(), error) {
	return s.Store, func() {}, nil
}

// Options are what a Service is made of.
type Options struct {
	Engine    Engine
	Stores    Stores
	Checkouts Checkouts
	// Deps build the workflows' definitions, whose Validate checks a
	// request as the workflow service will: under its repository policy,
	// with its models (a request naming a model of a provider not
	// configured is refused at submit, not after its workflow started).
	Deps workflow.Deps
	// Traces reads the spans of a trace (Jaeger's query API); nil traces
	// from the engine's journal alone.
	Traces Traces
	// Limits are the providers' limits in force (config.LimitTable).
	Limits limits.Table
	// MaxCostUSD is the budget.maxCostUSD of a run submitted without a
	// budget; 0 is none.
	MaxCostUSD float64
}

// New returns the application service over o.
func New(o Options) *Service {
	s := &Service{defs: registry.All(o.Deps), restate: o.Engine, stores: o.Stores, checkouts: o.Checkouts, traces: o.Traces, limits: o.Limits, maxCostUSD: o.MaxCostUSD, budgeted: map[string]bool{}}
	// Which workflows take a budget, read once from their schemas, not on
	// every submission.
	for _, def := range s.defs {
		if schema, err := def.InputSchema(); err == nil && schema.Properties["budget"] != nil {
			s.budgeted[def.Name] = true
		}
	}
	return s
}

// Console is the engine's own UI and admin API, and the transport that
// reaches it: the API serves it behind its guards.
func (s *Service) Console() (*url.URL, http.RoundTripper) { return s.restate.Console() }

// Limits are the providers' limits in force with their use in the last
// minute, across every service on the store.
func (s *Service) Limits(ctx context.Context) ([]limits.Usage, error) {
	st, release, err := s.stores.Open(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	return st.Limits().Usage(ctx, s.limits, time.Now())
}

// InFlight counts the workflow runs the engine has not finished, by
// workflow and by the deployment each is pinned to.
func (s *Service) InFlight(ctx context.Context) ([]client.InFlight, error) {
	return s.restate.InFlight(ctx)
}

// EngineHealth says whether the engine answers.
func (s *Service) EngineHealth(ctx context.Context) error {
	_, err := s.restate.Services(ctx)
	return err
}

// Definitions are the workflows, by name.
func (s *Service) Definitions() []workflow.Definition { return s.defs }

// Definition returns the workflow called name.
func (s *Service) Definition(name string) (workflow.Definition, error) {
	if def, ok := registry.Find(s.defs, name); ok {
		return def, nil
	}
	names := make([]string, len(s.defs))
	for i, d := range s.defs {
		names[i] = d.Name
	}
	return workflow.Definition{}, fault.Invalidf("workflow", "unknown workflow %q; one of %s", name, strings.Join(names, ", "))
}

// MaxIDChars bounds a workflow id (a client's Idempotency-Key).
const MaxIDChars = workflow.MaxIDChars

// CheckID refuses an id Restate's URLs, the store and a terminal should
// not carry (workflow.CheckID, which the workflows apply to their own key
// too).
func CheckID(id string) error { return workflow.CheckID(id) }

// NewID returns a fresh id for a workflow with prefix.
func NewID(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// Submitted is a started workflow.
type Submitted struct {
	ID           string `json:"id"`
	Workflow     string `json:"workflow"`
	InvocationID string `json:"invocationId"`
	// Existing: a workflow with this id had been started before (the same
	// Idempotency-Key sent again); it was not started twice.
	Existing bool `json:"existing,omitempty"`
	// Warnings are what went wrong without stopping the start (the store
	// could not record it as pending).
	Warnings []string `json:"warnings,omitempty"`
}

// Submit validates body as a request of the workflow called name — the
// same check the workflow makes, naming the field at fault — records it as
// pending and starts it under id ("" generates one). A refused request
// starts nothing and records nothing.
func (s *Service) Submit(ctx context.Context, name string, body []byte, id string) (Submitted, error) {
	def, err := s.Definition(name)
	if err != nil {
		return Submitted{}, err
	}
	norm, err := def.Validate(s.withBudget(def, body))
	if err != nil {
		return Submitted{}, err
	}
	return s.submit(ctx, def, norm, norm, id)
}

// withBudget gives a request without a budget the service's default, when
// there is one and the workflow takes a budget.
func (s *Service) withBudget(def workflow.Definition, body []byte) []byte {
	if s.maxCostUSD <= 0 {
		return body
	}
	if !s.budgeted[def.Name] {
		return body
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(body, &fields) != nil || fields == nil || fields["budget"] != nil {
		return body // Validate names what is wrong with it
	}
	fields["budget"], _ = json.Marshal(map[string]float64{"maxCostUSD": s.maxCostUSD})
	out, err := json.Marshal(fields)
	if err != nil {
		return body
	}
	return out
}

// submit records and starts a request already validated: norm is what the
// workflow gets, recorded what the store keeps of it.
func (s *Service) submit(ctx context.Context, def workflow.Definition, norm, recorded json.RawMessage, id string) (Submitted, error) {
	if id == "" {
		id = NewID(def.Prefix)
	} else if err := CheckID(id); err != nil {
		return Submitted{}, err
	}
	sub := Submitted{ID: id, Workflow: def.Name}
	// Record the request as pending first, so the store knows of it even if
	// the send fails; a failed send is recorded as not started. The store
	// refuses, in the same transaction, an id another workflow holds, the
	// same id with another body, and a new one past MaxOpen.
	st, release, err := s.stores.Open(ctx)
	if err != nil {
		if s.MaxOpen > 0 {
			return sub, err // the limit cannot be checked
		}
		sub.Warnings = append(sub.Warnings, fmt.Sprintf("metadata store unavailable, not recording %s: %v", id, err))
	} else {
		defer release()
		// Recorded as the workflow records it (Tracked): no credential
		// in a URL.
		recorded := []byte(sanitize.URLCredentials(string(recorded)))
		if _, err := st.Submitted(ctx, id, def.Name, recorded, time.Now(), s.MaxOpen); err != nil {
			switch {
			case errors.Is(err, store.ErrBusy), fault.KindOf(err) == fault.Conflict:
				return sub, err
			case s.MaxOpen > 0:
				return sub, err // the limit could not be checked
			}
			sub.Warnings = append(sub.Warnings, fmt.Sprintf("could not record %s as pending: %v", id, err))
		}
	}
	started, err := s.restate.Start(ctx, def.Name, id, norm)
	if err != nil {
		// The send may have reached Restate before it failed (a timeout on
		// the answer): ask Restate rather than guess.
		if inv, ferr := s.restate.Find(ctx, def.Name, id); ferr == nil && inv.ID != "" {
			started, err = client.Started{InvocationID: inv.ID, Status: "PreviouslyAccepted"}, nil
		}
	}
	if err != nil {
		if st != nil {
			// Only the pending row this start made changes: a workflow that
			// already ran keeps its state and its result.
			_ = st.NotStarted(ctx, id, "could not start: "+err.Error(), time.Now())
		}
		return sub, fault.Wrap(fault.Unavailable, err, "start %s (is the stack up? run `ultramcp up`)", def.Name)
	}
	sub.InvocationID, sub.Existing = started.InvocationID, started.Status == "PreviouslyAccepted"
	return sub, nil
}

// Find returns the Restate invocation of workflow id, naming it when
// Restate knows none.
func (s *Service) Find(ctx context.Context, id string) (client.Invocation, error) {
	return s.findAs(ctx, "", id)
}

// findAs is Find of a workflow of the workflow called name ("" for any).
func (s *Service) findAs(ctx context.Context, name, id string) (client.Invocation, error) {
	inv, err := s.restate.Find(ctx, name, id)
	if errors.Is(err, client.ErrNotFound) {
		return inv, fault.Wrap(fault.NotFound, err, "workflow %s", id)
	}
	if err != nil {
		return inv, fault.Wrap(fault.Unavailable, err, "restate")
	}
	return inv, nil
}

// Cancel asks for workflow id to be cancelled: its children are cancelled
// and its compensations run. It returns the invocation cancelled.
func (s *Service) Cancel(ctx context.Context, id string) (string, error) {
	return s.onRunning(ctx, id, "cancel", "", s.restate.Cancel)
}

// onRunning does act (called verb) to the invocation of workflow id, which
// must not have finished, and returns that invocation. notRunning, if set,
// is what a finished one is said to leave nothing to.
func (s *Service) onRunning(ctx context.Context, id, verb, notRunning string, act func(ctx context.Context, invocationID string) error) (string, error) {
	inv, err := s.Find(ctx, id)
	if err != nil {
		return "", err
	}
	if inv.Status == "completed" {
		return "", fault.New(fault.Invalid, "%s already finished (%s)%s", id, inv.Outcome(), notRunning)
	}
	if err := act(ctx, inv.ID); err != nil {
		return "", fault.Wrap(fault.Unavailable, err, "%s %s", verb, id)
	}
	return inv.ID, nil
}

// Decision is what a human sends to a waiting workflow: an escalated
// debate's decision, or a full-analysis's approval.
type Decision struct {
	Decision string `json:"decision,omitempty" jsonschema:"the decision (an escalated debate)"`
	Approved *bool  `json:"approved,omitempty" jsonschema:"approve or reject (a full-analysis waiting for approval)"`
	Reason   string `json:"reason,omitempty" jsonschema:"why"`
	By       string `json:"by,omitempty" jsonschema:"who decides"`
}

// Decide resolves the decision workflow id waits for; the first counts.
// The workflow refuses it (Conflict, 409) unless it waits at that gate
// now: a debate for a decision, a full-analysis for an approval.
func (s *Service) Decide(ctx context.Context, id string, d Decision) error {
	return s.DecideAs(ctx, "", id, d)
}

// DecideAs is Decide for a workflow that must be of the workflow called
// name ("" for any).
func (s *Service) DecideAs(ctx context.Context, name, id string, d Decision) error {
	if d.Approved == nil && strings.TrimSpace(d.Decision) == "" {
		return fault.Invalidf("decision", "required")
	}
	if d.Approved != nil && d.Decision != "" {
		return fault.Invalidf("decision", "a decision or an approval, not both")
	}
	if name != "" {
		if err := s.checkTarget(name, id); err != nil {
			return err
		}
	}
	inv, err := s.findAs(ctx, name, id)
	if err != nil {
		return err
	}
	body, err := json.Marshal(d)
	if err != nil {
		return err
	}
	what := "a decision"
	if d.Approved != nil {
		what = "an approval"
	}
	if inv.Status == "completed" {
		return fault.New(fault.Conflict, "%s %s already finished (%s): nothing waits for %s", inv.Service, id, inv.Outcome(), what)
	}
	if err := s.restate.Decide(ctx, inv.Service, id, body); err != nil {
		var rerr *client.Error
		if errors.As(err, &rerr) && rerr.Status == 409 {
			return fault.New(fault.Conflict, "%s %s is %s and %s: nothing was sent", inv.Service, id, s.phase(ctx, id), rerr.Message)
		}
		if errors.As(err, &rerr) && rerr.Status == 400 {
			return fault.Invalidf("decision", "%s", rerr.Message)
		}
		return fault.Wrap(fault.Unavailable, err, "send %s to %s", what, id)
	}
	return nil
}

// phase says where a workflow is, for a refusal: its status and the phase
// its progress names.
func (s *Service) phase(ctx context.Context, id string) string {
	st, err := s.Status(ctx, id)
	if err != nil {
		return "running"
	}
	var p struct {
		Phase string `json:"phase"`
	}
	if json.Unmarshal(st.Progress, &p) == nil && p.Phase != "" {
		return st.Status + " (phase " + p.Phase + ")"
	}
	return st.Status
}

// Approve approves (or rejects) a full-analysis waiting for approval.
func (s *Service) Approve(ctx context.Context, id string, approved bool, reason, by string) error {
	return s.Decide(ctx, id, Decision{Approved: &approved, Reason: reason, By: by})
}

// List returns workflows from the store, newest first.
func (s *Service) List(ctx context.Context, f Filter) ([]Summary, error) {
	if f.Workflow != "" {
		if _, err := s.Definition(f.Workflow); err != nil {
			return nil, err
		}
	}
	if f.Status != "" && !workflow.KnownStatus(f.Status) {
		return nil, fault.Invalidf("status", "unknown status %q", f.Status)
	}
	if f.Limit < 0 || f.Limit > 1000 {
		return nil, fault.Invalidf("limit", "must be 0 to 1000")
	}
	st, release, err := s.stores.Open(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	ws, err := st.List(ctx, store.Filter(f))
	out := make([]Summary, len(ws))
	for i, w := range ws {
		out[i] = w.Summary
	}
	return out, err
}

// Purged is what Purge deleted.
type Purged struct {
	store.Purged
	Checkouts int `json:"checkouts"`
}

// Purge deletes finished workflows created more than age ago, with what
// only they use, and repository checkouts fetched before then.
func (s *Service) Purge(ctx context.Context, age time.Duration) (Purged, error) {
	if age <= 0 {
		return Purged{}, fault.Invalidf("olderThan", "must be a positive age")
	}
	st, release, err := s.stores.Open(ctx)
	if err != nil {
		return Purged{}, err
	}
	defer release()
	cutoff := time.Now().Add(-age)
	p, err := st.Purge(ctx, cutoff)
	if err != nil {
		return Purged{}, err
	}
	n, err := s.checkouts.Prune(cutoff)
	if err != nil {
		return Purged{Purged: p}, fmt.Errorf("prune checkouts: %w", err)
	}
	return Purged{Purged: p, Checkouts: n}, nil
}

// ErrBusy is a submission refused because too much is open at once.
var ErrBusy = store.ErrBusy

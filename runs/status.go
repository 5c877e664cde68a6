package runs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/ultramcp/durable/client"
	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/store"
	"github.com/ultramcp/durable/workflow"
	"github.com/ultramcp/durable/workflow/derived"
	"github.com/ultramcp/durable/workflow/registry"
)

// Status is what is known of one workflow: the store's row, its agent
// calls and cost, its children and, while it runs, Restate's view and its
// live progress.
type Status struct {
	ID       string `json:"id"`
	Workflow string `json:"workflow"`
	// Status is the store's; from Restate when the store is unreachable.
	Status string `json:"status"`
	// Waiting says the run waits for a provider's limit: "waiting for
	// openai:gpt-4o-mini (rpm)".
	Waiting string          `json:"waiting,omitempty"`
	Record  *store.Workflow `json:"record,omitempty"`
	// StoreError says why the store could not answer: a database outage
	// delays workflows, it does not hide them.
	StoreError string               `json:"storeError,omitempty"`
	Executions []workflow.Execution `json:"executions,omitempty"`
	Cost       Cost                 `json:"cost"`
	Children   []store.ChildRow     `json:"children,omitempty"`
	Progress   json.RawMessage      `json:"progress,omitempty"`
	Invocation *client.Invocation   `json:"invocation,omitempty"`
	// DerivedFrom names the run a replay derives from, and its first step
	// run again.
	DerivedFrom *derived.From `json:"derivedFrom,omitempty"`
}

// Cost sums a workflow's agent calls so far.
type Cost struct {
	Calls     int     `json:"calls"`
	TokensIn  int     `json:"tokensIn"`
	TokensOut int     `json:"tokensOut"`
	USD       float64 `json:"usd"`
}

// Status returns what is known of workflow id.
func (s *Service) Status(ctx context.Context, id string) (Status, error) {
	st, release, err := s.stores.Open(ctx)
	if err != nil {
		return s.statusFromRestate(ctx, id, err)
	}
	defer release()
	w, err := st.Get(ctx, id)
	if fault.KindOf(err) == fault.NotFound {
		// Started past the store (the raw ingress) or purged: Restate may
		// still know it.
		if out, rerr := s.statusFromRestate(ctx, id, nil); rerr == nil {
			return out, nil
		}
		return Status{}, err
	}
	if err != nil {
		return s.statusFromRestate(ctx, id, err)
	}
	execs, err := st.Executions(ctx, id)
	if err != nil {
		return s.statusFromRestate(ctx, id, err)
	}
	w.Output = "" // the result is Result's
	published := w.Progress
	w.Progress = nil // it is the Status's
	out := Status{ID: id, Workflow: w.Workflow, Status: w.Status, Record: &w, Executions: execs}
	if workflow.Open(w.Status) {
		out.Waiting = w.Waiting
	}
	if from, _, ok, err := derived.Of(json.RawMessage(w.Input)); err == nil && ok {
		out.DerivedFrom = &from
	}
	for _, e := range execs {
		out.Cost.Calls++
		out.Cost.TokensIn += e.TokensIn
		out.Cost.TokensOut += e.TokensOut
		out.Cost.USD += e.CostUSD
	}
	if children, err := st.Children(ctx, id); err == nil {
		out.Children = children
	}
	if workflow.Open(w.Status) {
		if p, err := s.progressOf(ctx, map[string]json.RawMessage{id: published}, map[string]string{id: w.Workflow}); err == nil && string(p[id]) != "null" {
			out.Progress = p[id]
		}
		if inv, err := s.restate.Find(ctx, w.Workflow, id); err == nil {
			out.Invocation = &inv
		}
	}
	return out, nil
}

func (s *Service) statusFromRestate(ctx context.Context, id string, storeErr error) (Status, error) {
	inv, err := s.Find(ctx, id)
	if err != nil {
		if storeErr != nil {
			return Status{}, fmt.Errorf("store unreachable (%v), and Restate: %w", storeErr, err)
		}
		return Status{}, err
	}
	out := Status{ID: id, Workflow: inv.Service, Status: inv.Outcome(), Invocation: &inv}
	if storeErr != nil {
		out.StoreError = storeErr.Error()
	}
	if p, err := s.progressOf(ctx, nil, map[string]string{id: inv.Service}); err == nil && string(p[id]) != "null" {
		out.Progress = p[id]
	}
	return out, nil
}

// Result is a finished workflow's output.
type Result struct {
	ID       string          `json:"id"`
	Workflow string          `json:"workflow"`
	Output   json.RawMessage `json:"output"`
}

// ErrNotFinished means the workflow has not finished yet.
var ErrNotFinished = fault.New(fault.Invalid, "the workflow has not finished yet")

// Result returns a finished workflow's output: from the store, which keeps
// it past Restate's retention, else from Restate. A workflow that failed
// returns its failure, one that runs ErrNotFinished.
func (s *Service) Result(ctx context.Context, id string) (Result, error) {
	if st, release, err := s.stores.Open(ctx); err == nil {
		defer release()
		if w, err := st.Get(ctx, id); err == nil {
			switch {
			case w.Output != "":
				return Result{ID: id, Workflow: w.Workflow, Output: json.RawMessage(w.Output)}, nil
			case w.Status == workflow.StatusFailed || w.Status == workflow.StatusCancelled:
				return Result{}, fault.New(fault.Permanent, "%s %s: %s", id, w.Status, w.Error)
			}
		}
	}
	inv, err := s.Find(ctx, id)
	if err != nil {
		return Result{}, err
	}
	out, err := s.restate.Output(ctx, inv.Service, id)
	if err != nil {
		return Result{}, s.outputError(id, err)
	}
	return Result{ID: id, Workflow: inv.Service, Output: out}, nil
}

// outputError classifies what Restate answered for an output.
func (s *Service) outputError(id string, err error) error {
	var rerr *client.Error
	switch {
	case errors.Is(err, client.ErrNotReady):
		return fmt.Errorf("%s: %w", id, ErrNotFinished)
	case errors.As(err, &rerr):
		return fault.New(fault.Permanent, "%s failed: %s", id, rerr.Message)
	}
	return fault.Wrap(fault.Unavailable, err, "%s", id)
}

// Formats a result renders in.
const (
	FormatJSON     = "json"
	FormatMarkdown = "markdown"
	FormatText     = "text"
	FormatSARIF    = "sarif"
)

// Report is a result rendered for a format.
type Report struct {
	Body        []byte
	ContentType string
}

// Render renders res in format ("" is the workflow's default): the full
// report the store saved when the result itself is cut short, else the
// workflow's own rendering, else the JSON.
func (s *Service) Render(ctx context.Context, res Result, format string) (Report, error) {
	def, _ := registry.Find(s.defs, res.Workflow)
	if format == "" && def.Render == nil {
		format = FormatJSON
	}
	if saved, ok := s.savedReport(ctx, def, res.ID, format); ok {
		return Report{saved, contentType(path.Ext(def.Reports[format]))}, nil
	}
	if format == FormatJSON {
		return Report{append(bytes.Clone(res.Output), '\n'), contentType(".json")}, nil
	}
	if def.Render == nil {
		return Report{}, fault.Invalidf("format", "%s prints as json only", res.Workflow)
	}
	var b bytes.Buffer
	if err := def.Render(&b, res.Output, format); err != nil {
		return Report{}, fault.Invalidf("format", "%s", strings.TrimPrefix(err.Error(), "format: "))
	}
	return Report{b.Bytes(), contentType("." + format)}, nil
}

// contentType is the media type of a report by its file extension (or
// format).
func contentType(ext string) string {
	switch ext {
	case ".json":
		return "application/json"
	case ".sarif":
		return "application/sarif+json"
	case ".md", ".markdown":
		return "text/markdown; charset=utf-8"
	}
	return "text/plain; charset=utf-8"
}

// savedReport returns a workflow's full report as saved in the store, for
// workflows whose result is cut short (an analysis carries at most
// codeanalysis.MaxFindingsInResult findings).
func (s *Service) savedReport(ctx context.Context, def workflow.Definition, id, format string) ([]byte, bool) {
	name := def.Reports[format]
	if name == "" {
		return nil, false
	}
	st, release, err := s.stores.Open(ctx)
	if err != nil {
		return nil, false
	}
	defer release()
	b, err := st.NamedArtifact(ctx, id, name)
	return b, err == nil
}

// Attach waits for workflow id of the workflow called name to finish and
// returns its output: the seed's `attach` request, served by the API.
func (s *Service) Attach(ctx context.Context, name, id string) (json.RawMessage, error) {
	return s.output(ctx, name, id, s.restate.Attach)
}

// Output is Attach without the wait: ErrNotFinished while it runs.
func (s *Service) Output(ctx context.Context, name, id string) (json.RawMessage, error) {
	return s.output(ctx, name, id, s.restate.Output)
}

// output reads a run's output with read (Restate's attach or output).
func (s *Service) output(ctx context.Context, name, id string, read func(ctx context.Context, svc, id string) (json.RawMessage, error)) (json.RawMessage, error) {
	if err := s.checkRun(ctx, name, id); err != nil {
		return nil, err
	}
	out, err := read(ctx, name, id)
	if err != nil {
		if errors.Is(err, client.ErrNotFound) {
			return nil, fault.Wrap(fault.NotFound, err, "workflow %s", id)
		}
		return nil, s.outputError(id, err)
	}
	return out, nil
}

// Progress is what workflow id published last ("null" before anything):
// the seed's `progress` request, served by the API.
func (s *Service) Progress(ctx context.Context, name, id string) (json.RawMessage, error) {
	if err := s.checkTarget(name, id); err != nil {
		return nil, err
	}
	p, err := s.restate.Progress(ctx, name, id)
	if err != nil {
		return nil, fault.Wrap(fault.Unavailable, err, "restate")
	}
	return p, nil
}

// checkRun is checkTarget, and that Restate knows a run of it.
func (s *Service) checkRun(ctx context.Context, name, id string) error {
	if err := s.checkTarget(name, id); err != nil {
		return err
	}
	_, err := s.findAs(ctx, name, id)
	return err
}

// checkTarget refuses an unknown workflow or an id no workflow may have.
func (s *Service) checkTarget(name, id string) error {
	if _, err := s.Definition(name); err != nil {
		return err
	}
	return CheckID(id)
}

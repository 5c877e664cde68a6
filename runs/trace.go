package runs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ultramcp/durable/client"
	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/telemetry"
)

// Trace is a workflow's run as a waterfall: each step and child with its
// start, duration and attempts, the steps a crash made the engine replay,
// and where time went waiting.
type Trace struct {
	ID       string `json:"id"`
	Workflow string `json:"workflow"`
	// Source is "jaeger" (the spans of the whole trace) or "journal"
	// (Restate's journal and the store's children: steps and their
	// timing, without attempts).
	Source  string      `json:"source"`
	TraceID string      `json:"traceId,omitempty"`
	Start   time.Time   `json:"start"`
	Took    Millis      `json:"tookMs"`
	Spans   []TraceSpan `json:"spans"`
	// Note says what this source cannot show.
	Note string `json:"note,omitempty"`
}

// Millis is a duration in JSON as milliseconds.
type Millis float64

func millis(d time.Duration) Millis { return Millis(float64(d.Microseconds()) / 1000) }

// TraceSpan is one row of the waterfall.
type TraceSpan struct {
	Depth   int    `json:"depth"`
	Name    string `json:"name"`
	Service string `json:"service,omitempty"`
	// Kind is run, sleep, await, child, chat, store, request or engine.
	Kind     string `json:"kind,omitempty"`
	StartMS  Millis `json:"startMs"` // since the trace's start
	TookMS   Millis `json:"tookMs"`
	Attempt  int    `json:"attempt,omitempty"`
	Replayed bool   `json:"replayed,omitempty"`
	// Waiting marks time spent waiting (a durable sleep, an approval),
	// not working; Suspended a wait the engine suspended the workflow in.
	Waiting   bool   `json:"waiting,omitempty"`
	Suspended bool   `json:"suspended,omitempty"`
	Detail    string `json:"detail,omitempty"` // model and tokens of a call
	Error     string `json:"error,omitempty"`
}

// Trace returns the waterfall of workflow id: from the trace store when
// there is one and it has the run's trace, else from Restate's journal.
func (s *Service) Trace(ctx context.Context, id string) (Trace, error) {
	inv, err := s.Find(ctx, id)
	if err != nil {
		return Trace{}, err
	}
	if s.traces != nil && inv.TraceID != "" {
		spans, err := s.traces.Trace(ctx, inv.TraceID)
		switch {
		case err == nil:
			t := waterfall(spans)
			t.ID, t.Workflow, t.Source, t.TraceID = id, inv.Service, "jaeger", inv.TraceID
			return t, nil
		case !errors.Is(err, telemetry.ErrNoTrace):
			// Jaeger down: the journal still answers, and says why.
			t, jerr := s.journalTrace(ctx, id, inv)
			t.Note = "the trace store did not answer (" + err.Error() + "); " + t.Note
			return t, jerr
		}
	}
	return s.journalTrace(ctx, id, inv)
}

// waterfall orders spans as a tree, each parent before its children, the
// children by start.
func waterfall(spans []telemetry.Span) Trace {
	byID := map[string]bool{}
	children := map[string][]telemetry.Span{}
	start := spans[0].Start
	var end time.Time
	for _, sp := range spans {
		byID[sp.SpanID] = true
		if sp.Start.Before(start) {
			start = sp.Start
		}
		if e := sp.Start.Add(sp.Duration); e.After(end) {
			end = e
		}
	}
	for _, sp := range spans {
		parent := sp.ParentID
		if !byID[parent] {
			parent = ""
		}
		children[parent] = append(children[parent], sp)
	}
	t := Trace{Start: start, Took: millis(end.Sub(start))}
	var walk func(parent string, depth int)
	walk = func(parent string, depth int) {
		kids := children[parent]
		sort.SliceStable(kids, func(i, j int) bool { return kids[i].Start.Before(kids[j].Start) })
		for _, sp := range kids {
			t.Spans = append(t.Spans, rowOf(sp, start, depth))
			walk(sp.SpanID, depth+1)
		}
	}
	walk("", 0)
	return t
}

func rowOf(sp telemetry.Span, start time.Time, depth int) TraceSpan {
	a := sp.Attrs
	row := TraceSpan{Depth: depth, Name: sp.Name, Service: sp.Service, StartMS: millis(sp.Start.Sub(start)), TookMS: millis(sp.Duration), Error: sp.Error}
	row.Kind, _ = a[string(telemetry.StepKind)].(string)
	row.Replayed, _ = a[string(telemetry.StepReplayed)].(bool)
	row.Suspended, _ = a[string(telemetry.StepSuspended)].(bool)
	if n, ok := a[string(telemetry.StepAttempt)].(float64); ok {
		row.Attempt = int(n)
	}
	switch {
	case a["gen_ai.operation.name"] == "chat":
		row.Kind = "chat"
		row.Detail = fmt.Sprintf("%v, %v tokens in, %v out", a["gen_ai.response.model"], a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"])
	case strings.HasPrefix(sp.Name, "store "):
		row.Kind = "store"
	case sp.Service == "Restate":
		row.Kind = "engine"
	case row.Kind == "" && strings.Contains(sp.Name, " /"):
		row.Kind = "request"
	}
	row.Waiting = row.Kind == "sleep" || row.Kind == "await"
	return row
}

// journalTrace is the waterfall Restate's journal gives: each command of
// the run and of its children from when it was journaled to when its
// result was.
func (s *Service) journalTrace(ctx context.Context, id string, inv client.Invocation) (Trace, error) {
	t := Trace{ID: id, Workflow: inv.Service, Source: "journal",
		Note: "from Restate's journal: steps and their timing; attempts, replays and model calls need the spans (ultramcp up --with-jaeger)"}
	var end time.Time
	if err := s.journalRows(ctx, &t, inv, 0, &end); err != nil {
		return Trace{}, err
	}
	t.Took = millis(end.Sub(t.Start))
	return t, nil
}

func (s *Service) journalRows(ctx context.Context, t *Trace, inv client.Invocation, depth int, end *time.Time) error {
	journal, err := s.restate.Journal(ctx, inv.ID)
	if err != nil {
		return fault.Wrap(fault.Unavailable, err, "read the journal of %s", inv.WorkflowID)
	}
	if len(journal) == 0 {
		return fault.New(fault.NotFound, "%s's journal is gone from Restate (its retention ended)", inv.WorkflowID)
	}
	if t.Start.IsZero() {
		t.Start = journal[0].At
	}
	children := s.childInvocations(ctx, inv.WorkflowID)
	t.Spans = append(t.Spans, TraceSpan{Depth: depth, Name: "invoke_workflow " + inv.Service + " " + inv.WorkflowID, Kind: "child", StartMS: millis(journal[0].At.Sub(t.Start))})
	head := len(t.Spans) - 1
	for i, e := range journal {
		kind, ok := journalKinds[e.Type]
		if !ok {
			continue
		}
		done := e.Done
		if done.IsZero() && i+1 < len(journal) {
			done = journal[i+1].At
		}
		if done.After(*end) {
			*end = done
		}
		row := TraceSpan{Depth: depth + 1, Name: strings.TrimSpace(strings.TrimPrefix(e.Type, "Command: ") + " " + e.Name), Kind: kind,
			StartMS: millis(e.At.Sub(t.Start)), TookMS: millis(done.Sub(e.At)), Waiting: kind == "sleep" || kind == "await", Error: e.Failure}
		if kind == "run" {
			row.Name = "step " + e.Name
		}
		t.Spans = append(t.Spans, row)
		if kind == "child" && len(children) > 0 {
			child := children[0]
			children = children[1:]
			if err := s.journalRows(ctx, t, child, depth+2, end); err != nil {
				return err
			}
		}
	}
	t.Spans[head].TookMS = millis(end.Sub(journal[0].At))
	return nil
}

// journalKinds are the journal commands a waterfall shows.
var journalKinds = map[string]string{
	"Command: Run": "run", "Command: Sleep": "sleep", "Command: Call": "child",
	"Command: GetPromise": "await", "Command: CompletePromise": "run",
}

// childInvocations are the run invocations of a workflow's children, in
// the order they were started.
func (s *Service) childInvocations(ctx context.Context, id string) []client.Invocation {
	st, release, err := s.stores.Open(ctx)
	if err != nil {
		return nil
	}
	defer release()
	rows, err := st.Children(ctx, id)
	if err != nil {
		return nil
	}
	var out []client.Invocation
	for _, r := range rows {
		if inv, err := s.restate.Find(ctx, r.Workflow, r.ID); err == nil {
			out = append(out, inv)
		}
	}
	slices.SortFunc(out, func(a, b client.Invocation) int { return strings.Compare(a.CreatedAt, b.CreatedAt) })
	return out
}

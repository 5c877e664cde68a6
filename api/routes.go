package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/runs"
	"github.com/ultramcp/durable/workflow"
)

// route is one handler and what the OpenAPI document says of it.
type route struct {
	Method, Pattern, Summary string
	Request                  *jsonschema.Schema // nil: no body
	Parameters               []parameter
	Responses                map[int]response
	handle                   http.HandlerFunc
}

type parameter struct {
	Name, In, Description string
	Schema                *jsonschema.Schema
}

type response struct {
	Description string
	ContentType string             // "" is application/json
	Schema      *jsonschema.Schema // of a JSON body
}

// Links point at a workflow's resources.
type Links struct {
	Status string `json:"status"`
	Result string `json:"result"`
	Events string `json:"events"`
}

// Started answers a submission.
type Started struct {
	runs.Submitted
	Links Links `json:"links"`
}

// Cancelling answers a cancellation.
type Cancelling struct {
	ID           string `json:"id"`
	InvocationID string `json:"invocationId"`
	Status       string `json:"status" jsonschema:"cancelling: the workflow's children are cancelled and its compensations run"`
}

// Decided answers a decision.
type Decided struct {
	ID     string `json:"id"`
	Status string `json:"status" jsonschema:"sent"`
}

// List answers GET /workflows.
type List struct {
	Workflows []runs.Summary `json:"workflows"`
}

// Health answers GET /health.
type Health struct {
	Status  string `json:"status" jsonschema:"ok, or degraded when Restate or the store does not answer"`
	Restate string `json:"restate"`
	Store   string `json:"store"`
}

// ApprovalRequest is the body of approve and reject.
type ApprovalRequest struct {
	Reason string `json:"reason,omitempty"`
	By     string `json:"by,omitempty"`
}

// DecisionRequest is the body of decide.
type DecisionRequest struct {
	Decision string `json:"decision"`
	By       string `json:"by,omitempty"`
}

// errs documents error answers with these statuses.
func errs(codes ...int) map[int]response {
	m := map[int]response{}
	for _, c := range codes {
		m[c] = response{Description: http.StatusText(c), Schema: workflow.SchemaOf[ErrorBody]()}
	}
	return m
}

// with adds the answer r with code to m.
func with(m map[int]response, code int, r response) map[int]response {
	m[code] = r
	return m
}

func (s *Server) routes() []route {
	idParam := parameter{Name: "id", In: "path", Description: "workflow id", Schema: &jsonschema.Schema{Type: "string"}}
	var rs []route
	for _, def := range s.runs.Definitions() {
		in, err := def.InputSchema()
		if err != nil {
			panic(err) // a definition's bug, caught by the registry's test
		}
		rs = append(rs, route{
			Method: http.MethodPost, Pattern: "/" + def.Name, Summary: def.Summary, Request: in,
			Parameters: []parameter{{Name: "Idempotency-Key", In: "header", Description: "the workflow id: the same key twice starts one workflow", Schema: &jsonschema.Schema{Type: "string", MaxLength: ptr(runs.MaxIDChars)}}},
			Responses:  with(errs(400, 401, 403, 409, 413, 415, 429, 503), http.StatusAccepted, response{Description: "started (or, with a key seen before, already started); 409 when the key is another workflow's or came with another body", Schema: workflow.SchemaOf[Started]()}),
			handle:     s.submit(def),
		})
		rs = append(rs, s.ingressRoutes(def)...)
	}
	rs = append(rs,
		route{Method: http.MethodGet, Pattern: "/workflows", Summary: "List workflows, newest first",
			Parameters: []parameter{
				{Name: "workflow", In: "query", Description: "only this workflow", Schema: &jsonschema.Schema{Type: "string"}},
				{Name: "status", In: "query", Description: "only this status", Schema: &jsonschema.Schema{Type: "string", Enum: anys(workflow.Statuses)}},
				{Name: "limit", In: "query", Description: "at most this many (default 50)", Schema: &jsonschema.Schema{Type: "integer"}},
			},
			Responses: with(errs(400, 401, 503), 200, response{Description: "the workflows", Schema: workflow.SchemaOf[List]()}),
			handle:    s.list},
		route{Method: http.MethodGet, Pattern: "/workflows/{id}", Summary: "A workflow's status, progress, children and cost so far", Parameters: []parameter{idParam},
			Responses: with(errs(401, 404, 503), 200, response{Description: "what is known of it", Schema: workflow.SchemaOf[runs.Status]()}),
			handle:    s.status},
		route{Method: http.MethodGet, Pattern: "/workflows/{id}/result", Summary: "A finished workflow's result",
			Parameters: []parameter{idParam, {Name: "format", In: "query", Description: "json, or what the workflow renders: markdown, sarif, text (default: its own)", Schema: &jsonschema.Schema{Type: "string"}}},
			Responses:  with(errs(400, 401, 404, 409, 422, 503), 200, response{Description: "the result in the format asked for", ContentType: "*/*"}),
			handle:     s.result},
		route{Method: http.MethodGet, Pattern: "/workflows/{id}/events", Summary: "Server-sent events: each status change, step, round and child's change as it happens, then the result; between them, `token` events (no id, never resumed: {step, participant, round, delta, restart}) carry each answer as the model writes it",
			Parameters: []parameter{idParam, {Name: "Last-Event-ID", In: "header", Description: "resume after this event", Schema: &jsonschema.Schema{Type: "string"}}},
			Responses:  with(errs(401, 404, 503), 200, response{Description: "an event stream; each event's data is a JSON Event", ContentType: "text/event-stream", Schema: workflow.SchemaOf[runs.Event]()}),
			handle:     s.events},
		route{Method: http.MethodDelete, Pattern: "/workflows/{id}", Summary: "Cancel a workflow (its children too; its compensations run)", Parameters: []parameter{idParam},
			Responses: with(errs(400, 401, 403, 404, 503), http.StatusAccepted, response{Description: "cancellation requested", Schema: workflow.SchemaOf[Cancelling]()}),
			handle:    s.cancel},
		route{Method: http.MethodPost, Pattern: "/workflows/{id}/approve", Summary: "Approve a full-analysis waiting for approval", Parameters: []parameter{idParam}, Request: workflow.SchemaOf[ApprovalRequest](),
			Responses: with(errs(400, 401, 403, 404, 409, 415, 503), 200, response{Description: "decision sent; 409 unless the workflow waits for exactly this now", Schema: workflow.SchemaOf[Decided]()}),
			handle:    s.approve(true)},
		route{Method: http.MethodPost, Pattern: "/workflows/{id}/reject", Summary: "Reject a full-analysis waiting for approval", Parameters: []parameter{idParam}, Request: workflow.SchemaOf[ApprovalRequest](),
			Responses: with(errs(400, 401, 403, 404, 409, 415, 503), 200, response{Description: "decision sent; 409 unless the workflow waits for exactly this now", Schema: workflow.SchemaOf[Decided]()}),
			handle:    s.approve(false)},
		route{Method: http.MethodPost, Pattern: "/workflows/{id}/decide", Summary: "Give the decision an escalated debate waits for", Parameters: []parameter{idParam}, Request: workflow.SchemaOf[DecisionRequest](),
			Responses: with(errs(400, 401, 403, 404, 409, 415, 503), 200, response{Description: "decision sent; 409 unless the workflow waits for exactly this now", Schema: workflow.SchemaOf[Decided]()}),
			handle:    s.decide},
		route{Method: http.MethodGet, Pattern: "/health", Summary: "Whether the API, Restate and the store answer (no token needed)",
			Responses: map[int]response{200: {Description: "health", Schema: workflow.SchemaOf[Health]()}},
			handle:    s.health},
		route{Method: http.MethodGet, Pattern: "/openapi.json", Summary: "This document",
			Responses: map[int]response{200: {Description: "OpenAPI 3.1"}},
			handle:    s.openapi},
	)
	return rs
}

func ptr[T any](v T) *T { return &v }

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func links(id string) Links {
	return Links{Status: "/workflows/" + id, Result: "/workflows/" + id + "/result", Events: "/workflows/" + id + "/events"}
}

// readBody reads a JSON body (an empty one is "{}").
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return nil, err
	}
	if err != nil {
		return nil, fault.Invalidf("body", "could not be read: %v", err)
	}
	if len(b) == 0 {
		return []byte("{}"), nil
	}
	return b, nil
}

func (s *Server) submit(def workflow.Definition) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(r)
		if err != nil {
			writeError(w, err)
			return
		}
		sub, err := s.runs.Submit(r.Context(), def.Name, body, r.Header.Get("Idempotency-Key"))
		if err != nil {
			if fault.FieldOf(err) == "id" {
				err = &fault.Error{Kind: fault.Invalid, Field: "Idempotency-Key", Msg: fault.Message(err)}
			}
			writeError(w, err)
			return
		}
		for _, warning := range sub.Warnings {
			s.log.Warn("submitted with a warning", "id", sub.ID, "warning", warning)
		}
		sub.Warnings = nil // the store's troubles are the operator's, in the log
		w.Header().Set("Location", "/workflows/"+sub.ID)
		writeJSON(w, http.StatusAccepted, Started{Submitted: sub, Links: links(sub.ID)})
	}
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := runs.Filter{Workflow: q.Get("workflow"), Status: q.Get("status")}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			writeError(w, fault.Invalidf("limit", "must be a number"))
			return
		}
		f.Limit = n
	}
	ws, err := s.runs.List(r.Context(), f)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, List{Workflows: append([]runs.Summary{}, ws...)})
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st, err := s.runs.Status(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) result(w http.ResponseWriter, r *http.Request) {
	res, err := s.runs.Result(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	rep, err := s.runs.Render(r.Context(), res, r.URL.Query().Get("format"))
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", rep.ContentType)
	_, _ = w.Write(rep.Body)
}

func (s *Server) cancel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	inv, err := s.runs.Cancel(r.Context(), id)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, Cancelling{ID: id, InvocationID: inv, Status: "cancelling"})
}

func (s *Server) approve(approved bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req ApprovalRequest
		if !decodeBody(w, r, &req) {
			return
		}
		s.decided(w, r, s.runs.Approve(r.Context(), r.PathValue("id"), approved, req.Reason, req.By))
	}
}

func (s *Server) decide(w http.ResponseWriter, r *http.Request) {
	var req DecisionRequest
	if !decodeBody(w, r, &req) {
		return
	}
	s.decided(w, r, s.runs.Decide(r.Context(), r.PathValue("id"), runs.Decision{Decision: req.Decision, By: req.By}))
}

func (s *Server) decided(w http.ResponseWriter, r *http.Request, err error) {
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, Decided{ID: r.PathValue("id"), Status: "sent"})
}

// decodeBody decodes a JSON body strictly, answering the error itself.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := readBody(r)
	if err == nil {
		err = workflow.DecodeStrict(body, v)
	}
	if err != nil {
		writeError(w, err)
		return false
	}
	return true
}

// HealthTimeout bounds each of the health check's probes.
var HealthTimeout = 3 * time.Second

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	h := Health{Status: "ok", Restate: "ok", Store: "ok"}
	// Each has a budget of its own, asked side by side: a Restate that
	// hangs does not make the store look down.
	probe := func(check func(context.Context) error) <-chan error {
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(r.Context(), HealthTimeout)
			defer cancel()
			done <- check(ctx)
		}()
		return done
	}
	restate := probe(func(ctx context.Context) error { return s.runs.EngineHealth(ctx) })
	st := probe(func(ctx context.Context) error { _, err := s.runs.List(ctx, runs.Filter{Limit: 1}); return err })
	if <-restate != nil {
		h.Status, h.Restate = "degraded", "unreachable"
	}
	if <-st != nil {
		h.Status, h.Store = "degraded", "unreachable"
	}
	writeJSON(w, http.StatusOK, h)
}

// Package client talks to a running stack's Restate server over HTTP on its
// unix sockets: it starts workflows on the ingress, reads their progress
// and results, and queries and cancels invocations through the admin API.
// The application service, the CLI and the tests use it; it knows service
// names, not workflow logic.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/propagation"

	"github.com/ultramcp/durable/config"
	"github.com/ultramcp/durable/telemetry"
	"github.com/ultramcp/durable/workflow"
)

// Client reaches one stack.
type Client struct {
	Ingress string // base URL of the ingress: http://restate-ingress
	Admin   string // base URL of the admin API: http://restate-admin
	HTTP    *http.Client
	// Timeout bounds each request but Attach and Call (which wait for a
	// workflow to end) when its context has no deadline of its own.
	Timeout time.Duration
}

// DefaultTimeout bounds a request to Restate.
const DefaultTimeout = 30 * time.Second

// The host names of the sockets: requests name the socket they go to.
const (
	IngressHost = "restate-ingress"
	AdminHost   = "restate-admin"
)

// New returns a client for the given base URLs (http:// on TCP).
func New(ingress, admin string) *Client {
	return &Client{Ingress: strings.TrimRight(ingress, "/"), Admin: strings.TrimRight(admin, "/"), HTTP: &http.Client{}, Timeout: DefaultTimeout}
}

// Console is the admin API's base URL (which serves the Restate UI too)
// and the transport that reaches it.
func (c *Client) Console() (*url.URL, http.RoundTripper) {
	u, _ := url.Parse(c.Admin)
	t := c.HTTP.Transport
	if t == nil {
		t = http.DefaultTransport
	}
	return u, t
}

// ForStack returns a client of the stack cfg describes, on its sockets.
func ForStack(cfg config.Config) *Client {
	c := New("http://"+IngressHost, "http://"+AdminHost)
	c.HTTP = &http.Client{Transport: Transport(cfg)}
	return c
}

// Transport dials Restate's unix sockets: http://restate-ingress/… goes to
// the ingress socket, http://restate-admin/… to the admin API's; any other
// host over TCP as usual.
func Transport(cfg config.Config) *http.Transport {
	sockets := map[string]string{IngressHost: cfg.IngressSocket(), AdminHost: cfg.AdminSocket()}
	var d net.Dialer
	d.Timeout = 5 * time.Second
	return &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, _ := net.SplitHostPort(addr)
			if sock, ok := sockets[host]; ok {
				return d.DialContext(ctx, "unix", sock)
			}
			return d.DialContext(ctx, network, addr) // the service, the API
		},
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}
}

// Error is an error answer from Restate.
type Error struct {
	Status  int    `json:"-"`
	Code    int    `json:"code"`
	Message string `json:"message"`
	Source  string `json:"source"`
}

func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("restate: HTTP %d", e.Status)
	}
	return e.Message
}

// ErrNotReady means the workflow exists but has not finished.
var ErrNotReady = errors.New("workflow has not finished yet")

// ErrNotFound means Restate knows no such workflow.
var ErrNotFound = errors.New("workflow not found")

// do makes a request bounded by c.Timeout (unless ctx has a deadline).
func (c *Client) do(ctx context.Context, method, u string, body []byte, contentType string) ([]byte, http.Header, error) {
	return c.request(ctx, method, u, body, contentType, true)
}

// request makes a request; a bounded one gets c.Timeout when ctx has no
// deadline of its own, an unbounded one (a wait for a workflow's end) waits
// as long as ctx lets it.
func (c *Client) request(ctx context.Context, method, u string, body []byte, contentType string, bounded bool) ([]byte, http.Header, error) {
	if _, has := ctx.Deadline(); bounded && !has && c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return nil, nil, err
	}
	if contentType != "" {
		req.Header.Set("content-type", contentType)
	}
	req.Header.Set("accept", "application/json")
	// The caller's trace goes on through Restate: its ingress honours a
	// traceparent, and the workflow's spans join the caller's trace.
	telemetry.Propagator.Inject(ctx, propagation.HeaderCarrier(req.Header))
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode >= 300 {
		e := &Error{Status: resp.StatusCode}
		if json.Unmarshal(out, e) != nil || e.Message == "" {
			e.Message = strings.TrimSpace(string(out))
		}
		switch resp.StatusCode {
		case 470:
			return nil, resp.Header, fmt.Errorf("%w: %s", ErrNotReady, e.Message)
		case 404:
			// A workflow that failed for a missing repository or model also
			// answers 404, from the invocation: that is its failure, not a
			// workflow Restate does not know.
			if e.Source != "invocation" {
				return nil, resp.Header, fmt.Errorf("%w: %s", ErrNotFound, e.Message)
			}
		}
		return nil, resp.Header, e
	}
	return out, resp.Header, nil
}

// Started is Restate's answer to a send.
type Started struct {
	InvocationID string `json:"invocationId"`
	Status       string `json:"status"` // Accepted or PreviouslyAccepted
}

// Start sends the run of workflow service svc with id; input is JSON.
func (c *Client) Start(ctx context.Context, svc, id string, input []byte) (Started, error) {
	var s Started
	out, _, err := c.do(ctx, http.MethodPost, c.Ingress+"/"+svc+"/"+url.PathEscape(id)+"/"+workflow.RunHandler+"/send", input, "application/json")
	if err != nil {
		return s, err
	}
	err = json.Unmarshal(out, &s)
	return s, err
}

// Call runs the workflow and waits for its result in one request; it fails
// with 409 if the id has run before (use Attach for that).
func (c *Client) Call(ctx context.Context, svc, id string, input []byte) (json.RawMessage, error) {
	out, _, err := c.request(ctx, http.MethodPost, c.Ingress+"/"+svc+"/"+url.PathEscape(id)+"/"+workflow.RunHandler, input, "application/json", false)
	return out, err
}

// Attach waits for the workflow's result.
func (c *Client) Attach(ctx context.Context, svc, id string) (json.RawMessage, error) {
	out, _, err := c.request(ctx, http.MethodGet, c.Ingress+"/restate/workflow/"+svc+"/"+url.PathEscape(id)+"/attach", nil, "", false)
	return out, err
}

// Output returns the result if the workflow has finished, ErrNotReady if not.
func (c *Client) Output(ctx context.Context, svc, id string) (json.RawMessage, error) {
	out, _, err := c.do(ctx, http.MethodGet, c.Ingress+"/restate/workflow/"+svc+"/"+url.PathEscape(id)+"/output", nil, "")
	return out, err
}

// Progress reads the progress the workflow published ("null" before any)
// from Restate's state table through the admin API: a query, not an
// invocation of the progress handler, so a reader following a workflow adds
// nothing to its journal or to the invocations listed beside the real work.
// A workflow that publishes in its service's store instead has none there:
// then the progress handler, which reads that store, answers.
func (c *Client) Progress(ctx context.Context, svc, id string) (json.RawMessage, error) {
	all, err := c.Progresses(ctx, map[string]string{id: svc})
	if err != nil {
		return nil, err
	}
	if p := all[id]; p != nil && string(p) != "null" {
		return p, nil
	}
	out, _, err := c.do(ctx, http.MethodPost, c.Ingress+"/"+svc+"/"+url.PathEscape(id)+"/"+progressHandler, nil, "")
	if err != nil {
		return nil, err
	}
	return json.RawMessage(out), nil
}

// progressHandler is engine.ProgressHandler: the client names the handler
// rather than import the engine package for one constant.
const progressHandler = "progress"

// Progresses reads the progress of several workflows (id → service) in one
// query; a workflow that published none has "null".
func (c *Client) Progresses(ctx context.Context, workflows map[string]string) (map[string]json.RawMessage, error) {
	out := make(map[string]json.RawMessage, len(workflows))
	if len(workflows) == 0 {
		return out, nil
	}
	var which []string
	for id, svc := range workflows {
		out[id] = json.RawMessage("null")
		which = append(which, fmt.Sprintf("(service_name = %s AND service_key = %s)", quote(svc), quote(id)))
	}
	rows, err := c.Query(ctx, fmt.Sprintf("SELECT service_key, value_utf8 FROM state WHERE key = %s AND (%s)", quote(workflow.ProgressKey), strings.Join(which, " OR ")))
	if err != nil {
		return nil, err
	}
	for _, row := range rows {
		id, _ := row["service_key"].(string)
		v, _ := row["value_utf8"].(string)
		if _, asked := workflows[id]; !asked || !json.Valid([]byte(v)) {
			return nil, fmt.Errorf("progress of %s is not JSON", id)
		}
		out[id] = json.RawMessage(v)
	}
	return out, nil
}

// Decide sends a decision to a workflow's decide handler.
func (c *Client) Decide(ctx context.Context, svc, id string, decision []byte) error {
	_, _, err := c.do(ctx, http.MethodPost, c.Ingress+"/"+svc+"/"+url.PathEscape(id)+"/"+workflow.DecideHandler, decision, "application/json")
	return err
}

// Query runs SQL on the admin API's introspection tables.
func (c *Client) Query(ctx context.Context, sql string) ([]map[string]any, error) {
	body, _ := json.Marshal(map[string]string{"query": sql})
	out, _, err := c.do(ctx, http.MethodPost, c.Admin+"/query", body, "application/json")
	if err != nil {
		return nil, fmt.Errorf("admin query: %w", err)
	}
	var res struct {
		Rows []map[string]any `json:"rows"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, fmt.Errorf("admin query: %w", err)
	}
	return res.Rows, nil
}

// Invocation is a workflow run as Restate records it.
type Invocation struct {
	ID          string `json:"id"` // inv_…
	Service     string `json:"service"`
	WorkflowID  string `json:"workflowId"`
	Status      string `json:"status"` // pending, running, backing-off, suspended, completed, …
	Result      string `json:"result,omitempty"`
	Failure     string `json:"failure,omitempty"`
	LastFailure string `json:"lastFailure,omitempty"`
	RetryCount  int    `json:"retryCount"`
	CreatedAt   string `json:"createdAt"`
	CompletedAt string `json:"completedAt,omitempty"`
	JournalSize int    `json:"journalSize"`
	// TraceID is the trace Restate made the invocation part of (its
	// caller's), when tracing is on.
	TraceID string `json:"traceId,omitempty"`
}

// Outcome is succeeded, failed, cancelled or the live status.
func (i Invocation) Outcome() string {
	switch {
	case i.Status != "completed":
		return i.Status
	case i.Result == "success":
		return "succeeded"
	case strings.Contains(strings.ToLower(i.Failure), "cancel"):
		return "cancelled"
	default:
		return "failed"
	}
}

const invocationColumns = `id, target_service_name, target_service_key, status, completion_result, completion_failure, last_failure, retry_count, created_at, completed_at, journal_size, trace_id`

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// Find returns the run invocation of workflow id (any service if svc is "").
func (c *Client) Find(ctx context.Context, svc, id string) (Invocation, error) {
	where := fmt.Sprintf("target_handler_name = %s AND target_service_key = %s", quote(workflow.RunHandler), quote(id))
	if svc != "" {
		where += " AND target_service_name = " + quote(svc)
	}
	list, err := c.invocations(ctx, fmt.Sprintf("SELECT %s FROM sys_invocation WHERE %s ORDER BY created_at DESC LIMIT 1", invocationColumns, where))
	if err != nil {
		return Invocation{}, err
	}
	if len(list) == 0 {
		return Invocation{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return list[0], nil
}

func (c *Client) invocations(ctx context.Context, sql string) ([]Invocation, error) {
	rows, err := c.Query(ctx, sql)
	if err != nil {
		return nil, err
	}
	str := func(r map[string]any, k string) string {
		if v, ok := r[k].(string); ok {
			return v
		}
		return ""
	}
	num := func(r map[string]any, k string) int {
		if v, ok := r[k].(float64); ok {
			return int(v)
		}
		return 0
	}
	out := make([]Invocation, 0, len(rows))
	for _, r := range rows {
		out = append(out, Invocation{
			ID: str(r, "id"), Service: str(r, "target_service_name"), WorkflowID: str(r, "target_service_key"),
			Status: str(r, "status"), Result: str(r, "completion_result"), Failure: str(r, "completion_failure"),
			LastFailure: str(r, "last_failure"), RetryCount: num(r, "retry_count"),
			CreatedAt: str(r, "created_at"), CompletedAt: str(r, "completed_at"), JournalSize: num(r, "journal_size"),
			TraceID: str(r, "trace_id"),
		})
	}
	return out, nil
}

// Cancel asks Restate to cancel an invocation; the workflow sees the
// cancellation at its next await and ends as cancelled.
func (c *Client) Cancel(ctx context.Context, invocationID string) error {
	_, _, err := c.do(ctx, http.MethodPatch, c.Admin+"/invocations/"+url.PathEscape(invocationID)+"/cancel", nil, "")
	return err
}

// Kill ends an invocation at once, without compensation: it records
// "killed" as its failure.
func (c *Client) Kill(ctx context.Context, invocationID string) error {
	_, _, err := c.do(ctx, http.MethodPatch, c.Admin+"/invocations/"+url.PathEscape(invocationID)+"/kill", nil, "")
	return err
}

// Services lists the services registered with Restate.
func (c *Client) Services(ctx context.Context) ([]map[string]any, error) {
	out, _, err := c.do(ctx, http.MethodGet, c.Admin+"/services", nil, "")
	if err != nil {
		return nil, err
	}
	var res struct {
		Services []map[string]any `json:"services"`
	}
	err = json.Unmarshal(out, &res)
	return res.Services, err
}

// Deployment is a deployment registered with Restate.
type Deployment struct {
	ID        string    `json:"id"`
	URI       string    `json:"uri"`
	CreatedAt time.Time `json:"created_at"`
}

// Deployments lists what Restate has registered.
func (c *Client) Deployments(ctx context.Context) ([]Deployment, error) {
	out, _, err := c.do(ctx, http.MethodGet, c.Admin+"/deployments", nil, "")
	if err != nil {
		return nil, fmt.Errorf("list deployments: %w", err)
	}
	var res struct {
		Deployments []Deployment `json:"deployments"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, fmt.Errorf("list deployments: %w", err)
	}
	return res.Deployments, nil
}

// Register registers the deployment at uri (POST /deployments); force
// replaces an earlier registration of the same URI.
func (c *Client) Register(ctx context.Context, uri string, force bool) error {
	body, _ := json.Marshal(map[string]any{"uri": uri, "force": force})
	if _, _, err := c.do(ctx, http.MethodPost, c.Admin+"/deployments", body, "application/json"); err != nil {
		return fmt.Errorf("register %s: %w", uri, err)
	}
	return nil
}

// RemoveDeployment removes deployment id; one already gone is no error.
// Without force Restate refuses a deployment that still has work; the
// caller that knows nothing is pinned to it may force.
func (c *Client) RemoveDeployment(ctx context.Context, id string, force bool) error {
	u := c.Admin + "/deployments/" + url.PathEscape(id)
	if force {
		u += "?force=true"
	}
	_, _, err := c.do(ctx, http.MethodDelete, u, nil, "")
	var rerr *Error
	if errors.Is(err, ErrNotFound) || errors.As(err, &rerr) && rerr.Status == http.StatusNotFound {
		return nil
	}
	return err
}

// Pause asks Restate to pause an invocation; it is paused once its current
// attempt ends. One paused already is no error.
func (c *Client) Pause(ctx context.Context, invocationID string) error {
	_, _, err := c.do(ctx, http.MethodPatch, c.Admin+"/invocations/"+url.PathEscape(invocationID)+"/pause", nil, "")
	var rerr *Error
	if errors.As(err, &rerr) && rerr.Status == http.StatusConflict {
		return nil
	}
	return err
}

// ResumeOn resumes a paused invocation on deployment ("latest", "keep" or
// a deployment id).
func (c *Client) ResumeOn(ctx context.Context, invocationID, deployment string) error {
	_, _, err := c.do(ctx, http.MethodPatch, c.Admin+"/invocations/"+url.PathEscape(invocationID)+"/resume?deployment="+url.QueryEscape(deployment), nil, "")
	return err
}

package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ultramcp/durable/client"
	"github.com/ultramcp/durable/config"
	"github.com/ultramcp/durable/internal/stacktest"
	"github.com/ultramcp/durable/runs"
	"github.com/ultramcp/durable/service"
	"github.com/ultramcp/durable/store"
)

// testServer is the API over a stack that is not running: the guards and
// the validation answer before anything would reach it.
func testServer(t *testing.T, edit func(*config.Config)) http.Handler {
	t.Helper()
	cfg := config.Default()
	cfg.Home = stacktest.Home(t)
	cfg.APIAddr = "127.0.0.1:18999"
	if edit != nil {
		edit(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return New(ctx, forStack(cfg), cfg, nil, nil).Handler()
}

// forStack is the application service of the stack cfg describes, plugged
// as the CLI plugs it.
func forStack(cfg config.Config) *runs.Service {
	deps := service.SubmitDeps(cfg)
	return runs.New(runs.Options{Engine: client.ForStack(cfg), Stores: runs.PerCall{Config: cfg}, Checkouts: deps.Checkouts, Deps: deps})
}

type call struct {
	method, path, body string
	header             map[string]string
}

func (c call) do(h http.Handler) *httptest.ResponseRecorder {
	r := httptest.NewRequest(c.method, "http://127.0.0.1:18999"+c.path, strings.NewReader(c.body))
	if c.body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for k, v := range c.header {
		if k == "Host" {
			r.Host = v
		} else {
			r.Header.Set(k, v)
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func errorOf(t *testing.T, w *httptest.ResponseRecorder) ErrorDetail {
	t.Helper()
	var e ErrorBody
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
		t.Fatalf("error body %q: %v", w.Body.String(), err)
	}
	return e.Error
}

func TestGuards(t *testing.T) {
	const token = "tok-SECRET-1"
	h := testServer(t, func(c *config.Config) {
		c.APIToken = token
		c.APIOrigins = []string{"https://app.example.com"}
		c.APIHosts = []string{"ultramcp.internal"}
	})
	auth := map[string]string{"Authorization": "Bearer " + token}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{"Authorization": "Bearer " + token}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	for _, tc := range []struct {
		name  string
		call  call
		code  int
		field string
	}{
		{"health needs no token", call{"GET", "/health", "", nil}, 200, ""},
		{"no token", call{"GET", "/workflows", "", nil}, 401, "Authorization"},
		{"wrong token", call{"GET", "/workflows", "", map[string]string{"Authorization": "Bearer " + token + "x"}}, 401, "Authorization"},
		{"not bearer", call{"GET", "/workflows", "", map[string]string{"Authorization": token}}, 401, "Authorization"},
		{"foreign host", call{"GET", "/health", "", with(map[string]string{"Host": "evil.example"})}, 403, "Host"},
		{"named host", call{"GET", "/health", "", with(map[string]string{"Host": "ultramcp.internal:18999"})}, 200, ""},
		{"foreign origin posting", call{"POST", "/chain-of-debate", `{}`, with(map[string]string{"Origin": "https://evil.example"})}, 403, "Origin"},
		{"cross-site fetch", call{"DELETE", "/workflows/x", "", with(map[string]string{"Sec-Fetch-Site": "cross-site"})}, 403, "Origin"},
		{"allowed origin reaches validation", call{"POST", "/chain-of-debate", `{"topic":""}`, with(map[string]string{"Origin": "https://app.example.com"})}, 400, "topic"},
		{"form post", call{"POST", "/chain-of-debate", "topic=x", with(map[string]string{"Content-Type": "application/x-www-form-urlencoded"})}, 415, "Content-Type"},
		{"text/plain post", call{"POST", "/workflows/x/approve", "{}", with(map[string]string{"Content-Type": "text/plain"})}, 415, "Content-Type"},
		{"big body", call{"POST", "/chain-of-debate", `{"topic":"` + strings.Repeat("x", 2<<20) + `"}`, auth}, 413, "body"},
		{"unknown field", call{"POST", "/code-analysis", `{"repository":"https://example.com/r.git","colour":1}`, auth}, 400, "colour"},
		{"bad idempotency key", call{"POST", "/chain-of-debate", `{"topic":"t","participants":["a","b"]}`, with(map[string]string{"Idempotency-Key": "a/b"})}, 400, "Idempotency-Key"},
		{"stack down", call{"POST", "/chain-of-debate", `{"topic":"t","participants":["a","b"]}`, auth}, 503, ""},
		{"unknown route", call{"GET", "/nope", "", auth}, 404, ""},
		{"bad status filter", call{"GET", "/workflows?status=done", "", auth}, 400, "status"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := tc.call.do(h)
			if w.Code != tc.code {
				t.Fatalf("%d %s, want %d", w.Code, w.Body, tc.code)
			}
			if strings.Contains(w.Body.String(), token) {
				t.Error("the answer holds the token")
			}
			if tc.code >= 400 {
				if e := errorOf(t, w); e.Field != tc.field || e.Message == "" || e.Code == "" {
					t.Errorf("error %+v, want field %q", e, tc.field)
				}
			}
		})
	}
	t.Run("CORS answers the named origin only", func(t *testing.T) {
		w := call{"OPTIONS", "/chain-of-debate", "", map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"}}.do(h)
		if w.Code != 204 || w.Header().Get("Access-Control-Allow-Origin") != "https://app.example.com" {
			t.Errorf("preflight: %d %v", w.Code, w.Header())
		}
		w = call{"GET", "/health", "", map[string]string{"Origin": "https://evil.example"}}.do(h)
		if w.Header().Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("CORS opened to a foreign origin: %v", w.Header())
		}
	})
	t.Run("a stack that is down is named, not dumped", func(t *testing.T) {
		w := call{"POST", "/chain-of-debate", `{"topic":"t","participants":["a","b"]}`, auth}.do(h)
		if e := errorOf(t, w); strings.Contains(e.Message, "connection refused") || !strings.Contains(e.Message, "unavailable") {
			t.Errorf("message %q", e.Message)
		}
	})
}

func TestRateLimitPerClient(t *testing.T) {
	h := testServer(t, func(c *config.Config) { c.APIRate = 1 })
	codes := map[int]int{}
	for range 10 {
		codes[call{"GET", "/openapi.json", "", nil}.do(h).Code]++
	}
	if codes[200] == 0 || codes[429] == 0 {
		t.Errorf("answers %v: want some 200 then 429", codes)
	}
}

// The document lists every route the handler serves, each with its
// responses, and each request body's schema.
func TestDocumentMatchesRoutes(t *testing.T) {
	cfg := config.Default()
	cfg.Home = stacktest.Home(t)
	s := New(context.Background(), forStack(cfg), cfg, nil, nil)
	doc := s.Document()
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var parsed struct {
		OpenAPI string `json:"openapi"`
		Paths   map[string]map[string]struct {
			Responses   map[string]any `json:"responses"`
			RequestBody *struct {
				Content map[string]struct {
					Schema map[string]any `json:"schema"`
				} `json:"content"`
			} `json:"requestBody"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(b, &parsed); err != nil {
		t.Fatal(err)
	}
	if parsed.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q", parsed.OpenAPI)
	}
	h := s.Handler()
	for _, r := range s.table {
		op, ok := parsed.Paths[r.Pattern][strings.ToLower(r.Method)]
		if !ok || len(op.Responses) == 0 {
			t.Errorf("%s %s: not documented with responses", r.Method, r.Pattern)
		}
		if r.Request != nil && (op.RequestBody == nil || op.RequestBody.Content["application/json"].Schema == nil) {
			t.Errorf("%s %s: its body's schema is not documented", r.Method, r.Pattern)
		}
		// The route is served: whatever it answers, it is not "no route".
		path := strings.ReplaceAll(r.Pattern, "{id}", "some-id")
		w := call{r.Method, path, "", nil}.do(h)
		if w.Code == 404 && strings.Contains(w.Body.String(), "no route") {
			t.Errorf("%s %s is documented but not served", r.Method, r.Pattern)
		}
	}
	if n := len(parsed.Paths["/chain-of-debate"]["post"].RequestBody.Content["application/json"].Schema); n == 0 {
		t.Error("the debate's request schema is empty")
	}
}

// With as many workflows open as ULTRAMCP_API_MAX_OPEN allows, a new one is
// refused with 429 and nothing recorded; the same id again is not new.
func TestOpenWorkflowLimit(t *testing.T) {
	cfg := config.Default()
	cfg.Home = stacktest.Home(t)
	cfg.APIAddr, cfg.APIMaxOpen = "127.0.0.1:18999", 1
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := cfg.PrepareHome(); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), "", cfg.SQLitePath())
	if err != nil {
		t.Fatal(err)
	}
	svc := forStack(cfg)
	svc.MaxOpen = cfg.APIMaxOpen
	body := `{"topic":"t","participants":["a","b"]}`
	def, _ := svc.Definition("chain-of-debate")
	norm, err := def.Validate([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Submitted(context.Background(), "already-open", "chain-of-debate", norm, time.Now(), 0); err != nil {
		t.Fatal(err)
	}
	st.Close()
	h := New(context.Background(), svc, cfg, nil, nil).Handler()
	w := call{"POST", "/chain-of-debate", body, map[string]string{"Idempotency-Key": "new-one"}}.do(h)
	if w.Code != 429 || !strings.Contains(errorOf(t, w).Message, "ULTRAMCP_API_MAX_OPEN") {
		t.Errorf("over the limit: %d %s", w.Code, w.Body)
	}
	// The open one again is let through to Restate (down here: 503).
	if w := (call{"POST", "/chain-of-debate", body, map[string]string{"Idempotency-Key": "already-open"}}).do(h); w.Code != 503 {
		t.Errorf("the same id again: %d %s", w.Code, w.Body)
	}
}

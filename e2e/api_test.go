package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/ultramcp/durable/config"
	"github.com/ultramcp/durable/internal/llmtest"
	"github.com/ultramcp/durable/internal/repotest"
	"github.com/ultramcp/durable/internal/stacktest"
	"github.com/ultramcp/durable/workflow"
	"github.com/ultramcp/durable/workflow/fullanalysis"
)

// apiClient calls the UltraMCP API of a stack and checks every answer
// against the API's own OpenAPI document: its status must be documented for
// the route, and a JSON body must match the documented schema.
type apiClient struct {
	t     *testing.T
	base  string
	token string
	doc   *openAPIDoc

	mu   sync.Mutex
	seen map[string]bool // "METHOD pattern" exercised
}

type openAPIDoc struct {
	Paths map[string]map[string]struct {
		Responses map[string]struct {
			Content map[string]struct {
				Schema json.RawMessage `json:"schema"`
			} `json:"content"`
		} `json:"responses"`
	} `json:"paths"`
}

type apiAnswer struct {
	Status int
	Header http.Header
	Body   []byte
}

func (a apiAnswer) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(a.Body, v); err != nil {
		t.Fatalf("decode %s: %v", a.Body, err)
	}
}

// errorField is the field an error answer names.
func (a apiAnswer) errorField() string {
	var e struct {
		Error struct{ Field string } `json:"error"`
	}
	_ = json.Unmarshal(a.Body, &e)
	return e.Error.Field
}

func newAPIClient(t *testing.T, env *stacktest.Env, token string) *apiClient {
	c := &apiClient{t: t, base: config.URL(env.Cfg.APIAddr), token: token, seen: map[string]bool{}}
	ans := c.do("GET", "/openapi.json", "/openapi.json", nil, nil)
	if ans.Status != 200 {
		t.Fatalf("openapi.json: %d %s", ans.Status, ans.Body)
	}
	c.doc = &openAPIDoc{}
	ans.json(t, c.doc)
	c.check("GET", "/openapi.json", ans)
	return c
}

// do sends a request to path, documented as pattern, and checks the answer
// against the document.
func (c *apiClient) do(method, pattern, path string, body []byte, header map[string]string) apiAnswer {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	ans := apiAnswer{Status: resp.StatusCode, Header: resp.Header, Body: b}
	if c.doc != nil {
		c.check(method, pattern, ans)
	}
	return ans
}

func (c *apiClient) check(method, pattern string, ans apiAnswer) {
	c.t.Helper()
	c.mu.Lock()
	c.seen[method+" "+pattern] = true
	c.mu.Unlock()
	op, ok := c.doc.Paths[pattern][strings.ToLower(method)]
	if !ok {
		c.t.Errorf("%s %s is not in the OpenAPI document", method, pattern)
		return
	}
	resp, ok := op.Responses[fmt.Sprint(ans.Status)]
	if !ok {
		c.t.Errorf("%s %s answered %d, which the document does not list: %s", method, pattern, ans.Status, ans.Body)
		return
	}
	media, ok := resp.Content["application/json"]
	if !ok || media.Schema == nil {
		return
	}
	var s jsonschema.Schema
	if err := json.Unmarshal(media.Schema, &s); err != nil {
		c.t.Fatalf("schema of %s %s %d: %v", method, pattern, ans.Status, err)
	}
	rs, err := s.Resolve(nil)
	if err != nil {
		c.t.Fatalf("resolve the schema of %s %s %d: %v", method, pattern, ans.Status, err)
	}
	var v any
	if err := json.Unmarshal(ans.Body, &v); err != nil {
		c.t.Errorf("%s %s %d: not JSON: %s", method, pattern, ans.Status, ans.Body)
		return
	}
	if err := rs.Validate(v); err != nil {
		c.t.Errorf("%s %s %d does not match its documented schema: %v\n%s", method, pattern, ans.Status, err, ans.Body)
	}
}

// sseEvent is one server-sent event.
type sseEvent struct {
	ID, Type string
	Data     struct {
		Type     string          `json:"type"`
		ID       string          `json:"id"`
		Status   string          `json:"status"`
		Role     string          `json:"role"`
		Progress json.RawMessage `json:"progress"`
		Output   json.RawMessage `json:"output"`
		Error    string          `json:"error"`
		At       time.Time       `json:"at"`
	}
	Raw      string // the data as sent
	Received time.Time
}

// events reads a workflow's event stream, calling fn with each event until
// fn returns false or the stream ends.
func (c *apiClient) events(ctx context.Context, id, lastEventID string, fn func(sseEvent) bool) {
	c.t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", c.base+"/workflows/"+id+"/events", nil)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("events: %v", err)
	}
	defer resp.Body.Close()
	c.mu.Lock()
	c.seen["GET /workflows/{id}/events"] = true
	c.mu.Unlock()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b, _ := io.ReadAll(resp.Body)
		c.t.Fatalf("events: %d %s", resp.StatusCode, b)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 4<<20)
	var e sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "id: "):
			e.ID = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			e.Type = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			e.Raw = strings.TrimPrefix(line, "data: ")
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &e.Data); err != nil {
				c.t.Fatalf("event data: %v: %s", err, line)
			}
		case line == "" && e.Type != "":
			e.Received = time.Now()
			if !fn(e) {
				return
			}
			e = sseEvent{}
		}
	}
}

// disagreeing returns n participant names to whom the fake model gives
// different positions, so a debate runs all its rounds.
func disagreeing(n int) []string {
	var names []string
	taken := map[uint32]bool{}
	for i := 0; len(names) < n; i++ {
		name := fmt.Sprintf("expert%d", i)
		h := fnv.New32a()
		h.Write([]byte(name))
		if pos := h.Sum32() % 3; !taken[pos] {
			taken[pos] = true
			names = append(names, name)
		}
	}
	return names
}

// rounds is how many rounds a debate's progress shows done.
func rounds(progress json.RawMessage) int {
	var p struct {
		CompletedRounds []json.RawMessage `json:"completedRounds"`
	}
	_ = json.Unmarshal(progress, &p)
	return len(p.CompletedRounds)
}

// Every route of the API on a real stack, each answer checked against the
// OpenAPI document, for every workflow; the events of a running debate as
// they happen, resumed after a reconnect; idempotency keys; bad bodies that
// start nothing.
func TestAPI(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	repotest.Build(t, base)
	addr := repotest.Daemon(t, base)
	repoURL := "git://" + addr + "/app"
	fake := llmtest.New(llmtest.Behavior{Latency: 300 * time.Millisecond})
	defer fake.Close()
	env := stacktest.Start(t, stacktest.Options{LLM: "openai", RepoHosts: []string{"127.0.0.1"},
		ServiceEnv: []string{"OPENAI_BASE_URL=" + fake.OpenAIBaseURL(), "OPENAI_API_KEY=" + fakeKey}})
	c := newAPIClient(t, env, "")
	db := openStoreDB(t, env, "")
	names, _ := json.Marshal(disagreeing(3))

	t.Run("health", func(t *testing.T) {
		ans := c.do("GET", "/health", "/health", nil, nil)
		var h struct{ Status, Restate, Store string }
		ans.json(t, &h)
		if ans.Status != 200 || h.Status != "ok" {
			t.Errorf("health: %d %s", ans.Status, ans.Body)
		}
	})

	t.Run("bad bodies start nothing", func(t *testing.T) {
		for i, tc := range []struct {
			path, body, field string
		}{
			{"/chain-of-debate", `{"topic":"","participants":["a","b"]}`, "topic"},
			{"/chain-of-debate", `{"topic":"t","participants":["a","b"],"rounds":"three"}`, "rounds"},
			{"/code-analysis", `{}`, "repository"},
			{"/code-analysis", `{"repository":"https://u:tok@example.com/r.git"}`, "repository"},
			{"/security-scan", `{"target":"` + repoURL + `","colour":"red"}`, "colour"},
			{"/full-analysis", `{"repository":"` + repoURL + `","approvalTimeout":"-1s"}`, "approvalTimeout"},
			{"/full-analysis", `not json`, "body"},
		} {
			key := fmt.Sprintf("api-bad-%d", i)
			ans := c.do("POST", tc.path, tc.path, []byte(tc.body), map[string]string{"Idempotency-Key": key})
			if ans.Status != 400 || ans.errorField() != tc.field {
				t.Errorf("POST %s %s: %d %s, want 400 naming %s", tc.path, tc.body, ans.Status, ans.Body, tc.field)
			}
			var n int
			_ = db.QueryRow(`SELECT count(*) FROM workflow_metadata WHERE id LIKE ?`, key+"%").Scan(&n)
			if n != 0 {
				t.Errorf("%s: %d store rows", key, n)
			}
			if inv, err := env.Client.Find(context.Background(), "", key); err == nil {
				t.Errorf("%s: Restate has invocation %s", key, inv.ID)
			}
		}
		ans := c.do("POST", "/chain-of-debate", "/chain-of-debate", bytes.Repeat([]byte(" "), 12<<20), nil)
		if ans.Status != 413 {
			t.Errorf("12 MB body: %d %s", ans.Status, ans.Body)
		}
		ans = c.do("POST", "/chain-of-debate", "/chain-of-debate", []byte(`topic=x`), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
		if ans.Status != 415 {
			t.Errorf("form body: %d %s", ans.Status, ans.Body)
		}
		ans = c.do("POST", "/chain-of-debate", "/chain-of-debate", []byte(`{"topic":"t","participants":["a","b"]}`), map[string]string{"Idempotency-Key": "bad key/../x"})
		if ans.Status != 400 || ans.errorField() != "Idempotency-Key" {
			t.Errorf("bad key: %d %s", ans.Status, ans.Body)
		}
	})

	t.Run("an idempotency key sent twice starts one workflow", func(t *testing.T) {
		body := []byte(`{"topic":"once","participants":["a","b"],"rounds":1}`)
		var first, second struct {
			ID       string
			Existing bool
			Links    struct{ Status, Result, Events string }
		}
		a1 := c.do("POST", "/chain-of-debate", "/chain-of-debate", body, map[string]string{"Idempotency-Key": "api-once"})
		a2 := c.do("POST", "/chain-of-debate", "/chain-of-debate", body, map[string]string{"Idempotency-Key": "api-once"})
		a1.json(t, &first)
		a2.json(t, &second)
		if a1.Status != 202 || a2.Status != 202 || first.ID != "api-once" || second.ID != "api-once" || first.Existing || !second.Existing {
			t.Fatalf("answers %d %s / %d %s", a1.Status, a1.Body, a2.Status, a2.Body)
		}
		if first.Links.Result != "/workflows/api-once/result" || a1.Header.Get("Location") != "/workflows/api-once" {
			t.Errorf("links %+v, Location %q", first.Links, a1.Header.Get("Location"))
		}
		rows, err := env.Client.Query(context.Background(), `SELECT id FROM sys_invocation WHERE target_service_key = 'api-once' AND target_handler_name = 'run'`)
		if err != nil || len(rows) != 1 {
			t.Errorf("Restate has %d run invocations of api-once (%v), want 1", len(rows), err)
		}
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM workflow_metadata WHERE id = 'api-once'`).Scan(&n); err != nil || n != 1 {
			t.Errorf("%d store rows (%v), want 1", n, err)
		}

		// The key is the debate's: another workflow type, or the same
		// type with another body, is refused, and the debate's record
		// and result stay as they were.
		waitFor(t, time.Minute, func() bool {
			var status string
			return db.QueryRow(`SELECT status FROM workflow_metadata WHERE id = 'api-once'`).Scan(&status) == nil && status == workflow.StatusCompleted
		})
		record := func() string {
			var wf, input, status, output string
			_ = db.QueryRow(`SELECT workflow, input, status, COALESCE(output, '') FROM workflow_metadata WHERE id = 'api-once'`).Scan(&wf, &input, &status, &output)
			return wf + "|" + input + "|" + status + "|" + output
		}
		before := record()
		if ans := c.do("POST", "/code-analysis", "/code-analysis", []byte(`{"repository":"`+repoURL+`"}`), map[string]string{"Idempotency-Key": "api-once"}); ans.Status != 409 || !strings.Contains(string(ans.Body), "chain-of-debate") {
			t.Errorf("another type under the key: %d %s", ans.Status, ans.Body)
		}
		if ans := c.do("POST", "/chain-of-debate", "/chain-of-debate", []byte(`{"topic":"another body","participants":["a","b"],"rounds":1}`), map[string]string{"Idempotency-Key": "api-once"}); ans.Status != 409 || !strings.Contains(string(ans.Body), "same body") {
			t.Errorf("another body under the key: %d %s", ans.Status, ans.Body)
		}
		if after := record(); after != before {
			t.Errorf("the debate's record changed:\n%s\n%s", before, after)
		}
		if rows, _ := env.Client.Query(context.Background(), `SELECT id FROM sys_invocation WHERE target_service_key = 'api-once'`); len(rows) != 1 {
			t.Errorf("Restate has %d invocations keyed api-once, want 1", len(rows))
		}
	})

	t.Run("events deliver each round as it happens and resume after a reconnect", func(t *testing.T) {
		body := fmt.Sprintf(`{"topic":"Monorepo or polyrepo?","participants":%s,"rounds":3,"delayBetweenRounds":"500ms"}`, names)
		if ans := c.do("POST", "/chain-of-debate", "/chain-of-debate", []byte(body), map[string]string{"Idempotency-Key": "api-sse"}); ans.Status != 202 {
			t.Fatalf("start: %d %s", ans.Status, ans.Body)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		roundSeen := map[int]time.Time{}
		var last string
		c.events(ctx, "api-sse", "", func(e sseEvent) bool {
			if e.Type == "token" {
				return true // the side channel: no id, not resumed
			}
			last = e.ID
			if e.Type == "progress" {
				if n := rounds(e.Data.Progress); n > 0 && roundSeen[n].IsZero() {
					roundSeen[n] = e.Received
				}
			}
			if e.Type == "result" {
				t.Fatal("the debate finished before the client disconnected after round 1")
			}
			return len(roundSeen) == 0 // disconnect after the first round
		})
		var resumed []sseEvent
		var finished time.Time
		c.events(ctx, "api-sse", last, func(e sseEvent) bool {
			if e.Type == "token" {
				return true
			}
			resumed = append(resumed, e)
			if e.Type == "progress" {
				if n := rounds(e.Data.Progress); n > 0 && roundSeen[n].IsZero() {
					roundSeen[n] = e.Received
				}
			}
			if e.Type == "result" {
				finished = e.Received
				return false
			}
			return true
		})
		if len(resumed) == 0 || finished.IsZero() {
			t.Fatalf("resumed stream: %d events, finished %v", len(resumed), finished)
		}
		epoch, seq, _ := strings.Cut(last, "-")
		var n int
		fmt.Sscan(seq, &n)
		if want := fmt.Sprintf("%s-%d", epoch, n+1); resumed[0].ID != want {
			t.Errorf("resumed at %s, want %s (the event after Last-Event-ID %s)", resumed[0].ID, want, last)
		}
		for r := 1; r <= 3; r++ {
			at := roundSeen[r]
			if at.IsZero() || !at.Before(finished) {
				t.Errorf("round %d arrived at %v, the result at %v: not before the end", r, at, finished)
			}
			t.Logf("round %d: %s before the result", r, finished.Sub(at).Round(time.Millisecond))
		}
		var res struct{ Rounds []json.RawMessage }
		if err := json.Unmarshal(resumed[len(resumed)-1].Data.Output, &res); err != nil || len(res.Rounds) != 3 {
			t.Errorf("result has %d rounds (%v)", len(res.Rounds), err)
		}
	})

	t.Run("status, result, list", func(t *testing.T) {
		ans := c.do("GET", "/workflows/{id}", "/workflows/api-sse", nil, nil)
		var st struct {
			Status string
			Cost   struct{ Calls int }
		}
		ans.json(t, &st)
		if ans.Status != 200 || st.Status != workflow.StatusCompleted || st.Cost.Calls != 10 {
			t.Errorf("status: %d %s", ans.Status, ans.Body)
		}
		ans = c.do("GET", "/workflows/{id}/result", "/workflows/api-sse/result", nil, nil)
		if ans.Status != 200 || !strings.Contains(string(ans.Body), "Monorepo or polyrepo?") || !strings.HasPrefix(ans.Header.Get("Content-Type"), "text/plain") {
			t.Errorf("result: %d %s %s", ans.Status, ans.Header.Get("Content-Type"), ans.Body)
		}
		ans = c.do("GET", "/workflows/{id}/result", "/workflows/api-sse/result?format=json", nil, nil)
		if ans.Status != 200 || ans.Header.Get("Content-Type") != "application/json" || !json.Valid(ans.Body) {
			t.Errorf("result json: %d %s", ans.Status, ans.Body)
		}
		ans = c.do("GET", "/workflows/{id}/result", "/workflows/api-sse/result?format=sarif", nil, nil)
		if ans.Status != 400 {
			t.Errorf("a debate as sarif: %d %s", ans.Status, ans.Body)
		}
		ans = c.do("GET", "/workflows", "/workflows?workflow=chain-of-debate&status=completed&limit=5", nil, nil)
		var list struct {
			Workflows []struct{ ID, Status, Output string }
		}
		ans.json(t, &list)
		found := false
		for _, w := range list.Workflows {
			found = found || w.ID == "api-sse"
			if w.Status != workflow.StatusCompleted || w.Output != "" {
				t.Errorf("listed %+v", w)
			}
		}
		if ans.Status != 200 || !found {
			t.Errorf("list: %d %s", ans.Status, ans.Body)
		}
		if ans := c.do("GET", "/workflows", "/workflows?status=bogus", nil, nil); ans.Status != 400 || ans.errorField() != "status" {
			t.Errorf("bad filter: %d %s", ans.Status, ans.Body)
		}
		if ans := c.do("GET", "/workflows/{id}", "/workflows/nope-404", nil, nil); ans.Status != 404 {
			t.Errorf("unknown id: %d %s", ans.Status, ans.Body)
		}
		if ans := c.do("GET", "/workflows/{id}/result", "/workflows/nope-404/result", nil, nil); ans.Status != 404 {
			t.Errorf("unknown id's result: %d %s", ans.Status, ans.Body)
		}
	})

	// waitDone follows a workflow's events to its end and returns the last.
	waitDone := func(t *testing.T, id string) sseEvent {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		var end sseEvent
		c.events(ctx, id, "", func(e sseEvent) bool {
			end = e
			return e.Type != "result" && e.Type != "failed"
		})
		return end
	}
	start := func(t *testing.T, path, key, body string) {
		t.Helper()
		if ans := c.do("POST", path, path, []byte(body), map[string]string{"Idempotency-Key": key}); ans.Status != 202 {
			t.Fatalf("POST %s: %d %s", path, ans.Status, ans.Body)
		}
	}

	t.Run("the analyses and the meta-workflow", func(t *testing.T) {
		start(t, "/code-analysis", "api-ca", `{"repository":"`+repoURL+`"}`)
		start(t, "/security-scan", "api-ss", `{"target":"`+repoURL+`"}`)
		for _, id := range []string{"api-ca", "api-ss"} {
			if e := waitDone(t, id); e.Type != "result" {
				t.Fatalf("%s ended with %+v", id, e.Data)
			}
		}
		ans := c.do("GET", "/workflows/{id}/result", "/workflows/api-ca/result", nil, nil)
		if ans.Status != 200 || !strings.HasPrefix(ans.Header.Get("Content-Type"), "text/markdown") || !strings.Contains(string(ans.Body), "# ") {
			t.Errorf("analysis report: %d %s", ans.Status, ans.Body)
		}
		ans = c.do("GET", "/workflows/{id}/result", "/workflows/api-ss/result?format=sarif", nil, nil)
		var sarif struct {
			Version string
			Runs    []json.RawMessage
		}
		if ans.Status != 200 || json.Unmarshal(ans.Body, &sarif) != nil || sarif.Version != "2.1.0" || len(sarif.Runs) == 0 {
			t.Errorf("sarif: %d %s", ans.Status, ans.Header.Get("Content-Type"))
		}

		// Approval: one approved, one rejected, each from the API.
		for _, tc := range []struct{ key, route, want string }{{"api-fa-yes", "approve", workflow.StatusCompleted}, {"api-fa-no", "reject", workflow.StatusRejected}} {
			start(t, "/full-analysis", tc.key, `{"repository":"`+repoURL+`","includeDebate":false,"requireApproval":true}`)
			// Its analyses run first: an approval now is refused, not
			// kept for the gate.
			if ans := c.do("POST", "/workflows/{id}/approve", "/workflows/"+tc.key+"/approve", []byte(`{"by":"too-early"}`), nil); ans.Status != 409 {
				t.Errorf("an early approval: %d %s", ans.Status, ans.Body)
			}
			if ans := c.do("POST", "/workflows/{id}/decide", "/workflows/"+tc.key+"/decide", []byte(`{"decision":"a debate's"}`), nil); ans.Status != 409 {
				t.Errorf("a decision to a full-analysis: %d %s", ans.Status, ans.Body)
			}
			waitFor(t, 2*time.Minute, func() bool {
				p, _ := env.Client.Progress(context.Background(), fullanalysis.Name, tc.key)
				return strings.Contains(string(p), `"phase":"awaiting-approval"`)
			})
			pattern := "/workflows/{id}/" + tc.route
			ans := c.do("POST", pattern, "/workflows/"+tc.key+"/"+tc.route, []byte(`{"reason":"checked by the test","by":"ci"}`), nil)
			if ans.Status != 200 {
				t.Fatalf("%s: %d %s", tc.route, ans.Status, ans.Body)
			}
			waitDone(t, tc.key)
			var status string
			waitFor(t, 30*time.Second, func() bool {
				return db.QueryRow(`SELECT status FROM workflow_metadata WHERE id = ?`, tc.key).Scan(&status) == nil && status == tc.want
			})
		}
		ans = c.do("GET", "/workflows/{id}", "/workflows/api-fa-yes", nil, nil)
		var st struct {
			Children []struct{ Role, Status string }
		}
		ans.json(t, &st)
		if len(st.Children) != 2 {
			t.Errorf("full-analysis children: %s", ans.Body)
		}
		ans = c.do("GET", "/workflows/{id}/result", "/workflows/api-fa-yes/result", nil, nil)
		if ans.Status != 200 || !strings.Contains(string(ans.Body), "## Recommendations") {
			t.Errorf("full-analysis report: %d %s", ans.Status, ans.Body)
		}
	})

	t.Run("decide an escalated debate", func(t *testing.T) {
		// Its calls wait until the early decision has been refused.
		hold := make(chan struct{})
		fake.Set("api-escalate/", llmtest.Behavior{Hold: hold})
		start(t, "/chain-of-debate", "api-escalate", fmt.Sprintf(`{"topic":"Rewrite it?","participants":%s,"rounds":1,"consensusThreshold":0.9,"escalate":true}`, names))
		// Before it escalates, the gate is closed: a decision (or an
		// approval, which a debate never takes) is refused, and not kept.
		ans := c.do("POST", "/workflows/{id}/decide", "/workflows/api-escalate/decide", []byte(`{"decision":"TOO EARLY","by":"ci"}`), nil)
		close(hold)
		if ans.Status != 409 || !strings.Contains(string(ans.Body), "not waiting") {
			t.Errorf("an early decision: %d %s", ans.Status, ans.Body)
		}
		if ans := c.do("POST", "/workflows/{id}/approve", "/workflows/api-escalate/approve", []byte(`{}`), nil); ans.Status != 409 {
			t.Errorf("an approval to a debate: %d %s", ans.Status, ans.Body)
		}
		waitFor(t, time.Minute, func() bool {
			p, _ := env.Client.Progress(context.Background(), workflow.ChainOfDebate, "api-escalate")
			return strings.Contains(string(p), `"phase":"awaiting-decision"`)
		})
		if ans := c.do("POST", "/workflows/{id}/approve", "/workflows/api-escalate/approve", []byte(`{}`), nil); ans.Status != 409 {
			t.Errorf("an approval to a debate waiting for a decision: %d %s", ans.Status, ans.Body)
		}
		if ans := c.do("POST", "/workflows/{id}/decide", "/workflows/api-escalate/decide", []byte(`{}`), nil); ans.Status != 400 || ans.errorField() != "decision" {
			t.Errorf("empty decision: %d %s", ans.Status, ans.Body)
		}
		if ans := c.do("POST", "/workflows/{id}/decide", "/workflows/api-escalate/decide", []byte(`{"decision":"Pilot it","by":"ci"}`), nil); ans.Status != 200 {
			t.Fatalf("decide: %d %s", ans.Status, ans.Body)
		}
		if e := waitDone(t, "api-escalate"); e.Type != "result" || !strings.Contains(string(e.Data.Output), "Pilot it") || strings.Contains(string(e.Data.Output), "TOO EARLY") {
			t.Errorf("after the decision: %+v", e.Data)
		}
		if ans := c.do("POST", "/chain-of-debate/{id}/decide", "/chain-of-debate/api-escalate/decide", []byte(`{"decision":"too late"}`), nil); ans.Status != 409 {
			t.Errorf("a decision after the end: %d %s", ans.Status, ans.Body)
		}
	})

	t.Run("the Restate ingress's paths, behind the API's guards", func(t *testing.T) {
		body := fmt.Sprintf(`{"topic":"On the ingress path","participants":%s,"rounds":1}`, names)
		var started struct{ InvocationID, Status string }
		ans := c.do("POST", "/chain-of-debate/{id}/run/send", "/chain-of-debate/api-ingress/run/send", []byte(body), nil)
		ans.json(t, &started)
		if ans.Status != 202 || started.Status != "Accepted" || !strings.HasPrefix(started.InvocationID, "inv_") {
			t.Fatalf("send: %d %s", ans.Status, ans.Body)
		}
		if ans := c.do("POST", "/chain-of-debate/{id}/progress", "/chain-of-debate/api-ingress/progress", nil, nil); ans.Status != 200 {
			t.Errorf("progress: %d %s", ans.Status, ans.Body)
		}
		if ans := c.do("GET", "/restate/workflow/chain-of-debate/{id}/attach", "/restate/workflow/chain-of-debate/api-ingress/attach", nil, nil); ans.Status != 200 || !strings.Contains(string(ans.Body), "On the ingress path") {
			t.Errorf("attach: %d %s", ans.Status, ans.Body)
		}
		if ans := c.do("GET", "/restate/workflow/chain-of-debate/{id}/output", "/restate/workflow/chain-of-debate/api-ingress/output", nil, nil); ans.Status != 200 {
			t.Errorf("output: %d %s", ans.Status, ans.Body)
		}
		if ans := c.do("POST", "/chain-of-debate/{id}/run/send", "/chain-of-debate/api-ingress/run/send", []byte(body), nil); ans.Status != 202 || !strings.Contains(string(ans.Body), "PreviouslyAccepted") {
			t.Errorf("send again: %d %s", ans.Status, ans.Body)
		}
		if ans := c.do("POST", "/chain-of-debate/{id}/decide", "/chain-of-debate/api-ingress/decide", []byte(`{"decision":"x"}`), nil); ans.Status != 409 {
			t.Errorf("decide a debate that never escalated: %d %s", ans.Status, ans.Body)
		}
		for _, name := range []string{workflow.CodeAnalysis, workflow.SecurityScan, fullanalysis.Name} {
			if ans := c.do("POST", "/"+name+"/{id}/run/send", "/"+name+"/.x/run/send", []byte(`{}`), nil); ans.Status != 400 {
				t.Errorf("%s: a bad id: %d %s", name, ans.Status, ans.Body)
			}
			if ans := c.do("POST", "/"+name+"/{id}/progress", "/"+name+"/api-nothing/progress", nil, nil); ans.Status != 200 || string(bytes.TrimSpace(ans.Body)) != "null" {
				t.Errorf("%s: progress of nothing: %d %s", name, ans.Status, ans.Body)
			}
			for _, h := range []string{"attach", "output"} {
				if ans := c.do("GET", "/restate/workflow/"+name+"/{id}/"+h, "/restate/workflow/"+name+"/api-nothing/"+h, nil, nil); ans.Status != 404 {
					t.Errorf("%s: %s of nothing: %d %s", name, h, ans.Status, ans.Body)
				}
			}
			if ans := c.do("POST", "/"+name+"/{id}/decide", "/"+name+"/api-nothing/decide", []byte(`{"approved":true}`), nil); ans.Status != 404 {
				t.Errorf("%s: decide nothing: %d %s", name, ans.Status, ans.Body)
			}
		}
	})

	t.Run("cancel", func(t *testing.T) {
		fake.Set("api-cancel/", llmtest.Behavior{Latency: 5 * time.Second})
		start(t, "/chain-of-debate", "api-cancel", fmt.Sprintf(`{"topic":"Slow","participants":%s,"rounds":3}`, names))
		waitFor(t, 30*time.Second, func() bool { return len(fake.Attempts("api-cancel/")) > 0 })
		ans := c.do("DELETE", "/workflows/{id}", "/workflows/api-cancel", nil, nil)
		if ans.Status != 202 {
			t.Fatalf("cancel: %d %s", ans.Status, ans.Body)
		}
		if e := waitDone(t, "api-cancel"); e.Type != "failed" {
			t.Errorf("cancelled debate ended with %+v", e.Data)
		}
		waitFor(t, 30*time.Second, func() bool {
			var status string
			return db.QueryRow(`SELECT status FROM workflow_metadata WHERE id = 'api-cancel'`).Scan(&status) == nil && status == workflow.StatusCancelled
		})
		if ans := c.do("DELETE", "/workflows/{id}", "/workflows/api-cancel", nil, nil); ans.Status != 400 {
			t.Errorf("cancel of a finished workflow: %d %s", ans.Status, ans.Body)
		}
	})

	t.Run("every documented operation was exercised", func(t *testing.T) {
		for path, ops := range c.doc.Paths {
			for method := range ops {
				if key := strings.ToUpper(method) + " " + path; !c.seen[key] {
					t.Errorf("%s is documented but no test called it", key)
				}
			}
		}
	})

	t.Run("secrets reach no answer", func(t *testing.T) {
		for _, path := range []string{"/workflows?limit=100", "/workflows/api-sse", "/workflows/api-fa-yes", "/openapi.json"} {
			if ans := c.do("GET", pattern(path), path, nil, nil); bytes.Contains(ans.Body, []byte(fakeKey)) {
				t.Errorf("%s holds the provider key", path)
			}
		}
	})
}

var queryPart = regexp.MustCompile(`\?.*$`)

// pattern is the documented route of a concrete path.
func pattern(path string) string {
	path = queryPart.ReplaceAllString(path, "")
	if strings.HasPrefix(path, "/workflows/") {
		return "/workflows/{id}"
	}
	return path
}

// With a token: every route but /health, and /mcp, needs it; a foreign
// Host or Origin is refused whatever the token.
func TestAPIGuards(t *testing.T) {
	t.Parallel()
	const token = "api-token-SECRET-7777"
	env := stacktest.Start(t, stacktest.Options{ServiceEnv: []string{"ULTRAMCP_API_TOKEN=" + token}})
	anon := &apiClient{t: t, base: config.URL(env.Cfg.APIAddr), seen: map[string]bool{}}
	wrong := &apiClient{t: t, base: anon.base, token: "nope", seen: map[string]bool{}}
	authed := newAPIClient(t, env, token)
	initialize := []byte(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"test","version":"1"}}}`)
	mcpHeaders := map[string]string{"Accept": "application/json, text/event-stream"}
	for _, tc := range []struct {
		c          *apiClient
		method     string
		path       string
		body       []byte
		header     map[string]string
		wantStatus int
	}{
		{anon, "GET", "/health", nil, nil, 200},
		{anon, "GET", "/workflows", nil, nil, 401},
		{anon, "GET", "/openapi.json", nil, nil, 401},
		{anon, "POST", "/chain-of-debate", []byte(`{"topic":"t","participants":["a","b"]}`), nil, 401},
		{anon, "POST", "/mcp", initialize, mcpHeaders, 401},
		{wrong, "GET", "/workflows", nil, nil, 401},
		{wrong, "POST", "/mcp", initialize, mcpHeaders, 401},
		{authed, "GET", "/workflows", nil, nil, 200},
		{authed, "POST", "/mcp", initialize, mcpHeaders, 200},
		{authed, "GET", "/workflows", nil, map[string]string{"Host": "evil.example:80"}, 403},
		{authed, "POST", "/mcp", initialize, map[string]string{"Host": "rebound.example", "Accept": mcpHeaders["Accept"]}, 403},
		{authed, "POST", "/chain-of-debate", []byte(`{"topic":"t","participants":["a","b"]}`), map[string]string{"Origin": "http://evil.example"}, 403},
		{authed, "DELETE", "/workflows/x", nil, map[string]string{"Origin": "http://evil.example"}, 403},
		{authed, "POST", "/mcp", initialize, map[string]string{"Origin": "http://evil.example", "Accept": mcpHeaders["Accept"]}, 403},
	} {
		old := tc.c.doc
		tc.c.doc = nil // a refusal by a guard is checked here, not against the routes
		ans := tc.c.do(tc.method, tc.path, tc.path, tc.body, tc.header)
		tc.c.doc = old
		if ans.Status != tc.wantStatus {
			t.Errorf("%s %s (token %q, %v): %d %s, want %d", tc.method, tc.path, tc.c.token, tc.header, ans.Status, ans.Body, tc.wantStatus)
		}
		if bytes.Contains(ans.Body, []byte(token)) {
			t.Errorf("%s %s answers the token", tc.method, tc.path)
		}
	}
	if log := env.Stack.Service().Tail(200); strings.Contains(log, token) {
		t.Error("the service log holds the API token")
	} else if !strings.Contains(log, "every route but /health needs the bearer token") {
		t.Errorf("the service log does not say the API needs a token:\n%s", log)
	}
	// Nothing refused was started.
	if rows, err := env.Client.Query(context.Background(), `SELECT id FROM sys_invocation WHERE target_service_name = 'chain-of-debate'`); err != nil || len(rows) != 0 {
		t.Errorf("refused requests started %d debates (%v)", len(rows), err)
	}
}

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ultramcp/durable/config"
	"github.com/ultramcp/durable/internal/llmtest"
	"github.com/ultramcp/durable/internal/repotest"
	"github.com/ultramcp/durable/internal/stacktest"
	"github.com/ultramcp/durable/telemetry"
	"github.com/ultramcp/durable/workflow"
	"github.com/ultramcp/durable/workflow/fullanalysis"
)

// jaegerOf reads the stack's Jaeger.
func jaegerOf(env *stacktest.Env) telemetry.Jaeger {
	return telemetry.Jaeger{URL: config.URL(env.Cfg.JaegerAddr)}
}

// rawTrace is the whole of trace id as Jaeger's API returns it, for
// searching.
func rawTrace(t *testing.T, env *stacktest.Env, id string) string {
	t.Helper()
	resp, err := http.Get(config.URL(env.Cfg.JaegerAddr) + "/api/traces/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// runSpan is the span of the run of workflow id in spans, once it ended
// (its status is set at the end).
func runSpan(spans []telemetry.Span, id string) (telemetry.Span, bool) {
	for _, s := range spans {
		if strings.HasPrefix(s.Name, "invoke_workflow ") && s.Attrs["ultramcp.workflow.id"] == id && s.Attrs["ultramcp.step.kind"] == nil && s.Attrs["ultramcp.workflow.status"] != nil {
			return s, true
		}
	}
	return telemetry.Span{}, false
}

// restateEnded says whether restate-server's span of the end of workflow
// id's run is in spans (its spans come in batches of their own).
func restateEnded(spans []telemetry.Span, id string) bool {
	for _, s := range spans {
		if target, _ := s.Attrs["restate.invocation.target"].(string); s.Service == "Restate" && strings.HasPrefix(s.Name, "invocation-end") && strings.Contains(target, "/"+id+"/run") {
			return true
		}
	}
	return false
}

// waitTrace waits until Jaeger has the ended run spans of every id.
func waitTrace(t *testing.T, env *stacktest.Env, traceID string, ids ...string) []telemetry.Span {
	t.Helper()
	var spans []telemetry.Span
	var missing []string
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		var err error
		spans, err = jaegerOf(env).Trace(context.Background(), traceID)
		missing = nil
		for _, id := range ids {
			if _, ok := runSpan(spans, id); !ok || err != nil || !restateEnded(spans, id) {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 {
			return spans
		}
		time.Sleep(100 * time.Millisecond)
	}
	var names []string
	for _, s := range spans {
		names = append(names, fmt.Sprintf("%s %v", s.Name, s.Attrs["ultramcp.workflow.id"]))
	}
	t.Fatalf("trace %s lacks the ended runs of %v; it has %d spans: %s", traceID, missing, len(spans), strings.Join(names, ", "))
	return nil
}

// stepsOf are the step spans of workflow id's runs, by step name: the
// spans whose nearest run span is one of id's.
func stepsOf(spans []telemetry.Span, id string) map[string][]telemetry.Span {
	byID := map[string]telemetry.Span{}
	for _, s := range spans {
		byID[s.SpanID] = s
	}
	out := map[string][]telemetry.Span{}
	for _, s := range spans {
		name, ok := strings.CutPrefix(s.Name, "step ")
		if !ok {
			continue
		}
		for p, ok := byID[s.ParentID]; ok; p, ok = byID[p.ParentID] {
			if strings.HasPrefix(p.Name, "invoke_workflow ") && p.Attrs["ultramcp.step.kind"] == nil {
				if p.Attrs["ultramcp.workflow.id"] == id {
					out[name] = append(out[name], s)
				}
				break
			}
		}
	}
	return out
}

// journaledSteps are the names of the steps in the journal of workflow id.
func journaledSteps(t *testing.T, env *stacktest.Env, svc, id string) []string {
	t.Helper()
	inv, err := env.Client.Find(context.Background(), svc, id)
	if err != nil {
		t.Fatal(err)
	}
	journal, err := env.Client.Journal(context.Background(), inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range journal {
		if e.Type == "Command: Run" {
			names = append(names, e.Name)
		}
	}
	return names
}

// A full-analysis started through the API with a caller's traceparent is
// one trace in Jaeger under the caller's trace id: the API's span,
// restate-server's, a span for every journaled step of the parent and of
// each child, and a GenAI span per model call. No key, token or found
// secret is in any span.
func TestOneTracePerRunInJaeger(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	repotest.Build(t, base)
	addr := repotest.Daemon(t, base)
	fake := llmtest.New(llmtest.Behavior{})
	defer fake.Close()
	const token = "tok-SECRET-trace-7731"
	env := stacktest.Start(t, stacktest.Options{LLM: "openai", RepoHosts: []string{"127.0.0.1"}, Jaeger: stacktest.Jaeger(t),
		ServiceEnv: []string{"OPENAI_BASE_URL=" + fake.OpenAIBaseURL(), "OPENAI_API_KEY=" + fakeKey, "ULTRAMCP_API_TOKEN=" + token}})
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	id := "fa-traced"
	body := `{"repository":"git://` + addr + `/app","includeDebate":true,"generateRecommendations":true}`
	req, _ := http.NewRequest(http.MethodPost, config.URL(env.Cfg.APIAddr)+"/"+fullanalysis.Name+"?id="+id, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Idempotency-Key", id)
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /%s: %s %s", fullanalysis.Name, resp.Status, answer)
	}
	var sub struct{ ID string }
	_ = json.Unmarshal(answer, &sub)
	id = sub.ID
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := env.Client.Attach(ctx, fullanalysis.Name, id); err != nil {
		t.Fatal(err)
	}
	tree := map[string]string{id: fullanalysis.Name, id + "-analysis": workflow.CodeAnalysis, id + "-scan": workflow.SecurityScan, id + "-debate": workflow.ChainOfDebate}
	ids := make([]string, 0, len(tree))
	for child := range tree {
		ids = append(ids, child)
	}
	spans := waitTrace(t, env, traceID, ids...)

	services := map[string]int{}
	var api, chats int
	for _, s := range spans {
		services[s.Service]++
		if s.Name == "POST /"+fullanalysis.Name {
			api++
		}
		if s.Attrs["gen_ai.operation.name"] == "chat" {
			chats++
			if s.Attrs["gen_ai.request.model"] == nil || s.Attrs["gen_ai.provider.name"] != "openai" || s.Attrs["gen_ai.usage.input_tokens"] == nil || s.Attrs["gen_ai.usage.output_tokens"] == nil {
				t.Errorf("a model call's span lacks the GenAI attributes: %s %v", s.Name, s.Attrs)
			}
		}
	}
	if services["Restate"] == 0 || api != 1 {
		t.Errorf("the trace has %d Restate spans and %d API spans, want some and 1: %v", services["Restate"], api, services)
	}
	calls := 0
	for _, n := range fake.Calls(id) {
		calls += n
	}
	if chats != calls || calls == 0 {
		t.Errorf("%d GenAI spans for %d model calls", chats, calls)
	}
	for child, svc := range tree {
		steps := stepsOf(spans, child)
		journaled := journaledSteps(t, env, svc, child)
		if len(journaled) == 0 {
			t.Errorf("%s journaled no step", child)
		}
		for _, name := range journaled {
			if len(steps[name]) == 0 {
				t.Errorf("step %s of %s is journaled but has no span (spans of its steps: %v)", name, child, keys(steps))
			}
		}
	}
	raw := rawTrace(t, env, traceID)
	metrics := get(t, config.URL(env.Cfg.APIAddr)+"/metrics", token)
	for _, secret := range []string{fakeKey, token, repotest.TreeAWSKey, repotest.TreeGitHubPAT, repotest.HistoryAWSKey} {
		if strings.Contains(raw, secret) {
			t.Errorf("a span carries the secret %q", secret)
		}
		if strings.Contains(metrics, secret) {
			t.Errorf("the metrics carry the secret %q", secret)
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// get is the body of a GET with the bearer token.
func get(t *testing.T, url, token string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %s", url, resp.Status, b)
	}
	return string(b)
}

// After kill -9 of the service mid-debate the trace shows the attempt
// that died (restate-server's) and the steps the next attempt replayed
// from the journal; ultramcp trace draws them, from Jaeger.
func TestTraceInJaegerShowsTheReplayAfterKill9(t *testing.T) {
	t.Parallel()
	hold := make(chan struct{})
	fake := llmtest.New(llmtest.Behavior{})
	defer fake.Close()
	env := stacktest.Start(t, stacktest.Options{LLM: "openai", Jaeger: stacktest.Jaeger(t),
		ServiceEnv: []string{"OPENAI_BASE_URL=" + fake.OpenAIBaseURL(), "OPENAI_API_KEY=" + fakeKey}})
	names := disagreeing(2)
	id := "traced-kill"
	fake.Set(id+"/round-2/", llmtest.Behavior{Hold: hold})
	startDebate(t, env, id, fmt.Sprintf(`{"topic":"Crash me","participants":["%s"],"rounds":2,"delayBetweenRounds":"0s"}`, strings.Join(names, `","`)))
	waitFor(t, time.Minute, func() bool { return len(fake.Attempts(id+"/round-2/")) == len(names) })
	inv, err := env.Client.Find(context.Background(), workflow.ChainOfDebate, id)
	if err != nil || inv.TraceID == "" {
		t.Fatalf("the invocation has no trace id: %+v %v", inv, err)
	}
	// The first attempt's round 1 has reached Jaeger before the crash.
	waitFor(t, time.Minute, func() bool {
		spans, err := jaegerOf(env).Trace(context.Background(), inv.TraceID)
		return err == nil && len(stepsOf2(spans, "round-1")) > 0
	})
	env.Kill(t, "service")
	close(hold)
	env.Up(t)
	if _, err := attach(t, env, id, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	spans := waitTrace(t, env, inv.TraceID, id)
	// restate-server's spans come in their own batches.
	waitFor(t, time.Minute, func() bool {
		spans, _ = jaegerOf(env).Trace(context.Background(), inv.TraceID)
		attempts := 0
		for _, s := range spans {
			if s.Service == "Restate" && strings.HasPrefix(s.Name, "invocation-attempt") {
				attempts++
			}
		}
		return attempts >= 2
	})
	var ran, replayed int
	for _, s := range stepsOf2(spans, "round-1") {
		if s.Attrs["ultramcp.step.replayed"] == true {
			replayed++
		} else {
			ran++
		}
	}
	if ran != 1 || replayed != 1 {
		t.Errorf("round 1 ran in %d attempts and was replayed in %d, want 1 and 1", ran, replayed)
	}
	var second bool
	for _, s := range stepsOf2(spans, "round-2") {
		if n, _ := s.Attrs["ultramcp.step.attempt"].(float64); n == 2 && s.Attrs["ultramcp.step.replayed"] == false {
			second = true
		}
	}
	if !second {
		t.Errorf("round 2's span of the attempt after the crash does not say attempt 2: %v", stepsOf2(spans, "round-2"))
	}
	attempts := 0
	for _, s := range spans {
		if s.Service == "Restate" && strings.HasPrefix(s.Name, "invocation-attempt") {
			attempts++
		}
	}
	if attempts < 2 {
		t.Errorf("restate-server's spans show %d attempts, want the one that died and the next", attempts)
	}
	if health := cliFor(t, env).must("health"); !strings.Contains(health, "jaeger") {
		t.Errorf("health does not include Jaeger:\n%s", health)
	}
	out := cliFor(t, env).must("trace", id)
	for _, want := range []string{"from Jaeger, trace " + inv.TraceID, "step round-1", "replayed from the journal", "attempt 2", "chat "} {
		if !strings.Contains(out, want) {
			t.Errorf("ultramcp trace does not show %q:\n%s", want, out)
		}
	}
}

// stepsOf2 are the spans of the step called name, in any run.
func stepsOf2(spans []telemetry.Span, name string) []telemetry.Span {
	var out []telemetry.Span
	for _, s := range spans {
		if s.Name == "step "+name {
			out = append(out, s)
		}
	}
	return out
}

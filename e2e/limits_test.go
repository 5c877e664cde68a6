package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ultramcp/durable/config"
	"github.com/ultramcp/durable/internal/llmtest"
	"github.com/ultramcp/durable/internal/pgtest"
	"github.com/ultramcp/durable/internal/stacktest"
	"github.com/ultramcp/durable/limits"
	"github.com/ultramcp/durable/workflow"
)

// With the product's limits set to the provider's, 300 debates started at
// once through the API all complete, the provider (8 calls at once, 429
// with Retry-After above that) answers almost no 429, and it is kept at
// work: at least 90% of the throughput its limit allows.
func TestLimitsHoldUnderLoad(t *testing.T) {
	if os.Getenv("ULTRAMCP_TEST_STORM") != "1" {
		t.Parallel() // else alone, before the storm: its throughput is judged
	}
	r := stormRun(t, "openai concurrency=8 rpm=100000 tpm=100000000")
	if r.failed != 0 || r.calls != r.debates*2 {
		t.Errorf("%d of %d debates failed; %d calls answered, want %d", r.failed, r.debates, r.calls, r.debates*2)
	}
	if float64(r.throttled) > 0.01*float64(r.calls) {
		t.Errorf("%d 429s for %d calls: over 1%%", r.throttled, r.calls)
	}
	// The throughput is judged where the machine is the test's alone
	// (make test-storm, which CI runs): under the whole suite, four stacks
	// on two cores, what a call waits for is the CPU, not the limiter
	// (88–93% there, 96–98% alone).
	if os.Getenv("ULTRAMCP_TEST_STORM") == "1" && r.ofAllowed < 0.9 {
		t.Errorf("%.0f%% of the throughput the limit allows, want at least 90%%", 100*r.ofAllowed)
	}
	if out := cliFor(t, r.env).must("limits"); !strings.Contains(out, "openai") || !strings.Contains(out, "concurrency=8") {
		t.Errorf("ultramcp limits:\n%s", out)
	}
}

// The same run with the limits off, for what the storm costs: recorded,
// not judged (the provider decides how many fail).
func TestLimitsOffStorm(t *testing.T) {
	if os.Getenv("ULTRAMCP_TEST_STORM") != "1" {
		t.Skip("the storm takes its retries' time, over a minute: make test-storm runs it (CI does)")
	}
	t.Parallel()
	stormRun(t, "openai concurrency=0 rpm=0 tpm=0")
}

type storm struct {
	env                               *stacktest.Env
	debates, failed, calls, throttled int
	ofAllowed                         float64 // the provider's throughput while busy, of what its limit allows
}

// stormLatency is the provider's time a call: long enough that the 300
// debates are all started well before it could have answered them.
const stormLatency = 200 * time.Millisecond

// stormRun starts 300 debates at once through the API against a provider
// that allows 8 calls at once (429 with Retry-After above that), with the
// product's limits set to limitsSetting, and logs how it went.
func stormRun(t *testing.T, limitsSetting string) storm {
	t.Helper()
	fake := llmtest.New(llmtest.Behavior{Latency: stormLatency})
	t.Cleanup(fake.Close)
	fake.Enforce(llmtest.Limits{Concurrency: 8})
	env := stacktest.Start(t, stacktest.Options{LLM: "openai", ServiceEnv: []string{
		"OPENAI_BASE_URL=" + fake.OpenAIBaseURL(), "OPENAI_API_KEY=" + fakeKey,
		"ULTRAMCP_LIMITS=" + limitsSetting, "ULTRAMCP_API_MAX_OPEN=400", "ULTRAMCP_API_RATE=2000",
	}})
	const n = 300
	names := disagreeing(2)
	body := fmt.Sprintf(`{"topic":"Limit me","participants":["%s"],"rounds":1,"mode":"vote"}`, strings.Join(names, `","`))
	start := time.Now()
	submitAll(t, env, "limited-", n, body)
	failed := attachAll(t, env, "limited-", n)
	took := time.Since(start)
	calls := 0
	for _, c := range fake.Calls("limited-") {
		calls += c
	}
	throttled := fake.Throttled()
	// The fastest the provider allows: 8 calls at once, each stormLatency.
	floor := time.Duration(calls/8) * stormLatency
	busy := fake.Busy()
	// Once the 300 debates had filled the provider (their starting is the
	// API's and Restate's, not the limiter's), how close to its limit it
	// was kept.
	full, fullCalls := fake.Full()
	ofAllowed := 0.0
	if full > 0 {
		ofAllowed = float64(time.Duration(fullCalls)*stormLatency/8) / float64(full)
	}
	t.Logf("limits %q: %d debates, %d failed, %d calls answered, %d 429s (%.2f%% of the calls), %s in all; the provider busy %s against its floor %s (%.0f%%); once full, %d calls in %s: %.0f%% of the throughput it allows",
		limitsSetting, n, failed, calls, throttled, 100*float64(throttled)/float64(max(calls, 1)), took.Round(time.Millisecond), busy.Round(time.Millisecond), floor, 100*float64(floor)/float64(busy), fullCalls, full.Round(time.Millisecond), 100*ofAllowed)
	return storm{env: env, debates: n, failed: failed, calls: calls, throttled: throttled, ofAllowed: ofAllowed}
}

// Two service processes on one store (two stacks on one PostgreSQL) share
// one limit: the provider never holds more than it allows however the load
// is spread. Then one of them is killed with permits in hand: the other's
// debates, waiting, do not fail, and it has the whole limit again once the
// dead one's claim runs out (limits.Lease); the dead one's own debates
// finish once it is back.
func TestTwoServicesShareOneLimit(t *testing.T) {
	t.Parallel()
	const allowed = 6
	pg := pgtest.Start(t).URL()
	fake := llmtest.New(llmtest.Behavior{Latency: 50 * time.Millisecond})
	t.Cleanup(fake.Close)
	fake.Enforce(llmtest.Limits{Concurrency: allowed})
	env := []string{"OPENAI_BASE_URL=" + fake.OpenAIBaseURL(), "OPENAI_API_KEY=" + fakeKey,
		fmt.Sprintf("ULTRAMCP_LIMITS=openai concurrency=%d", allowed), "ULTRAMCP_API_MAX_OPEN=400", "ULTRAMCP_API_RATE=2000"}
	a := stacktest.Start(t, stacktest.Options{LLM: "openai", DatabaseURL: pg, ServiceEnv: env})
	b := stacktest.Start(t, stacktest.Options{LLM: "openai", DatabaseURL: pg, ServiceEnv: env})
	body := fmt.Sprintf(`{"topic":"Share me","participants":["%s"],"rounds":1,"mode":"vote"}`, strings.Join(disagreeing(2), `","`))

	submitAll(t, a, "shared-a-", 40, body)
	submitAll(t, b, "shared-b-", 40, body)
	if failed := attachAll(t, a, "shared-a-", 40) + attachAll(t, b, "shared-b-", 40); failed != 0 {
		t.Errorf("%d of 80 debates failed", failed)
	}
	if peak, throttled := fake.MaxInFlight(), fake.Throttled(); peak > allowed || throttled > 2 {
		t.Errorf("two services on one limit of %d: the provider held %d at once and answered %d 429s", allowed, peak, throttled)
	}

	// A's calls now take long, so that it holds its permits; B's wait.
	fake.Set("held-a-", llmtest.Behavior{Latency: 30 * time.Second})
	fake.Set("held-b-", llmtest.Behavior{Latency: time.Second})
	submitAll(t, a, "held-a-", 10, body)
	waitFor(t, 20*time.Second, func() bool { return fake.InFlight() >= allowed/2 })
	submitAll(t, b, "held-b-", 40, body)
	a.Kill(t, "service")
	killed := time.Now()
	// B gets the whole limit within the dead claim's lease (and a refresh).
	waitFor(t, limits.Lease+5*time.Second, func() bool { return fake.InFlight() >= allowed })
	t.Logf("B had all %d calls at once %s after A was killed (lease %s)", allowed, time.Since(killed).Round(100*time.Millisecond), limits.Lease)
	if failed := attachAll(t, b, "held-b-", 40); failed != 0 {
		t.Errorf("%d of B's 40 waiting debates failed after A was killed", failed)
	}
	fake.Set("held-a-", llmtest.Behavior{Latency: 50 * time.Millisecond})
	a.Up(t)
	if failed := attachAll(t, a, "held-a-", 10); failed != 0 {
		t.Errorf("%d of A's 10 debates failed after it came back", failed)
	}
	if peak := fake.MaxInFlight(); peak > allowed {
		t.Errorf("the provider held %d at once, over its %d", peak, allowed)
	}
}

// submitAll starts n debates of body through env's API, ids prefix0….
func submitAll(t *testing.T, env *stacktest.Env, prefix string, n int, body string) {
	t.Helper()
	api := config.URL(env.Cfg.APIAddr)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, api+"/"+workflow.ChainOfDebate, bytes.NewBufferString(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Idempotency-Key", fmt.Sprintf("%s%d", prefix, i))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode >= 300 {
				t.Errorf("start %s%d: %s", prefix, i, resp.Status)
			}
		})
	}
	wg.Wait()
}

// attachAll waits for the n debates prefix0… and counts those that failed.
func attachAll(t *testing.T, env *stacktest.Env, prefix string, n int) int {
	t.Helper()
	failed := 0
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		_, err := env.Client.Attach(ctx, workflow.ChainOfDebate, fmt.Sprintf("%s%d", prefix, i))
		cancel()
		if err != nil {
			if failed < 3 {
				t.Logf("%s%d: %v", prefix, i, err)
			}
			failed++
		}
	}
	return failed
}

// Budgets through the API: one below the first round's estimate, a
// negative one and a non-numeric one are refused with a 400 naming the
// field; one of 4 calls stops a 3-round debate of two after round 2,
// partial, with no call past it.
func TestBudgetsThroughTheAPI(t *testing.T) {
	t.Parallel()
	fake := llmtest.New(llmtest.Behavior{})
	t.Cleanup(fake.Close)
	env := fakeStack(t, fake)
	api := config.URL(env.Cfg.APIAddr)
	post := func(id, budget string) (int, string) {
		body := fmt.Sprintf(`{"topic":"Spend little","participants":["%s"],"rounds":3,"delayBetweenRounds":"0s","budget":%s}`, strings.Join(disagreeing(2), `","`), budget)
		req, _ := http.NewRequest(http.MethodPost, api+"/"+workflow.ChainOfDebate, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", id)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	for budget, field := range map[string]string{`{"maxCostUSD":0.0000001}`: "budget.maxCostUSD", `{"maxCostUSD":-1}`: "budget.maxCostUSD", `{"maxCostUSD":"lots"}`: "budget.maxCostUSD", `{"maxTokens":-3}`: "budget.maxTokens"} {
		if status, body := post("refused", budget); status != http.StatusBadRequest || !strings.Contains(body, field) {
			t.Errorf("budget %s: %d %s, want a 400 naming %s", budget, status, body, field)
		}
	}
	if calls := fake.Calls("refused"); len(calls) != 0 {
		t.Errorf("a refused debate made calls: %v", calls)
	}
	if status, body := post("capped", `{"maxCalls":4}`); status != http.StatusAccepted {
		t.Fatalf("start: %d %s", status, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := env.Client.Attach(ctx, workflow.ChainOfDebate, "capped")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"partial":true`) || !strings.Contains(string(out), "after round 2; round 3 and the moderator were not asked") {
		t.Errorf("capped debate's result: %.600s", out)
	}
	calls := fake.Calls("capped/")
	total := 0
	for label, n := range calls {
		total += n
		if strings.Contains(label, "round-3") || strings.HasSuffix(label, "moderator") {
			t.Errorf("a call past the budget: %s", label)
		}
	}
	if total != 4 {
		t.Errorf("%d calls, want 4: %v", total, calls)
	}
	if st := cliFor(t, env).must("status", "capped"); !strings.Contains(st, "status:     partial") {
		t.Errorf("status:\n%s", st)
	}
}

// With both kinds waiting for one key, interactive debates finish ahead
// of batch ones started before them; a batch debate waiting long shows
// as waiting in its status.
func TestInteractiveAheadOfBatch(t *testing.T) {
	t.Parallel()
	fake := llmtest.New(llmtest.Behavior{Latency: 300 * time.Millisecond})
	t.Cleanup(fake.Close)
	env := stacktest.Start(t, stacktest.Options{LLM: "openai", ServiceEnv: []string{
		"OPENAI_BASE_URL=" + fake.OpenAIBaseURL(), "OPENAI_API_KEY=" + fakeKey, "ULTRAMCP_LIMITS=openai concurrency=1",
	}})
	debate := func(priority string) string {
		return fmt.Sprintf(`{"topic":"Who goes first","participants":["%s"],"rounds":1,"mode":"vote","priority":"%s"}`, strings.Join(disagreeing(2), `","`), priority)
	}
	submitAll(t, env, "batch-", 4, debate("batch"))
	waitFor(t, 20*time.Second, func() bool { return fake.InFlight() == 1 })
	submitAll(t, env, "interactive-", 4, debate("interactive"))
	c := cliFor(t, env)
	waitFor(t, 20*time.Second, func() bool {
		st, _ := c.run("status", "batch-3")
		return strings.Contains(st, "waiting:    waiting for openai (concurrency)")
	})
	finished := map[string]time.Time{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, id := range []string{"batch-0", "batch-1", "batch-2", "batch-3", "interactive-0", "interactive-1", "interactive-2", "interactive-3"} {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if _, err := env.Client.Attach(ctx, workflow.ChainOfDebate, id); err != nil {
				t.Errorf("%s: %v", id, err)
			}
			mu.Lock()
			finished[id] = time.Now()
			mu.Unlock()
		})
	}
	wg.Wait()
	var lastInteractive, firstBatch time.Time
	for id, at := range finished {
		if strings.HasPrefix(id, "interactive-") && at.After(lastInteractive) {
			lastInteractive = at
		}
		if strings.HasPrefix(id, "batch-") && (firstBatch.IsZero() || at.Before(firstBatch)) {
			firstBatch = at
		}
	}
	if !lastInteractive.Before(firstBatch) {
		t.Errorf("the last interactive debate finished %s after the first batch one", lastInteractive.Sub(firstBatch))
	}
	t.Logf("the interactive debates all finished %s before the first batch one (started before them)", firstBatch.Sub(lastInteractive).Round(time.Millisecond))
	if st := c.must("status", "batch-3"); strings.Contains(st, "waiting:") {
		t.Errorf("a finished debate still shows waiting:\n%s", st)
	}
}

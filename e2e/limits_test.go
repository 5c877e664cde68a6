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
	"github.com/ultramcp/durable/internal/stacktest"
	"github.com/ultramcp/durable/workflow"
)

// With the product's limits set to the provider's, 300 debates started at
// once through the API all complete, the provider (8 calls at once, 429
// with Retry-After above that) answers almost no 429, and it is kept at
// work: at least 90% of the throughput its limit allows.
func TestLimitsHoldUnderLoad(t *testing.T) {
	t.Parallel()
	r := stormRun(t, "openai concurrency=8 rpm=100000 tpm=100000000")
	if r.failed != 0 || r.calls != r.debates*2 {
		t.Errorf("%d of %d debates failed; %d calls answered, want %d", r.failed, r.debates, r.calls, r.debates*2)
	}
	if float64(r.throttled) > 0.01*float64(r.calls) {
		t.Errorf("%d 429s for %d calls: over 1%%", r.throttled, r.calls)
	}
	if r.ofAllowed < 0.9 {
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
const stormLatency = 100 * time.Millisecond

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
	api := config.URL(env.Cfg.APIAddr)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, api+"/"+workflow.ChainOfDebate, bytes.NewBufferString(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Idempotency-Key", fmt.Sprintf("limited-%d", i))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode >= 300 {
				t.Errorf("start %d: %s", i, resp.Status)
			}
		})
	}
	wg.Wait()
	failed := 0
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		_, err := env.Client.Attach(ctx, workflow.ChainOfDebate, fmt.Sprintf("limited-%d", i))
		cancel()
		if err != nil {
			failed++
		}
	}
	took := time.Since(start)
	calls := 0
	for _, c := range fake.Calls("limited-") {
		calls += c
	}
	throttled := fake.Throttled()
	// The fastest the provider allows: 8 calls at once, each stormLatency.
	floor := time.Duration(calls/8) * stormLatency
	busy := fake.Busy()
	ofAllowed := float64(floor) / float64(busy)
	t.Logf("limits %q: %d debates, %d failed, %d calls answered, %d 429s (%.2f%% of the calls), %s in all; the provider busy %s against its floor %s: %.0f%% of the throughput it allows",
		limitsSetting, n, failed, calls, throttled, 100*float64(throttled)/float64(max(calls, 1)), took.Round(time.Millisecond), busy.Round(time.Millisecond), floor, 100*ofAllowed)
	return storm{env: env, debates: n, failed: failed, calls: calls, throttled: throttled, ofAllowed: ofAllowed}
}

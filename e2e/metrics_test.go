package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ultramcp/durable/config"
	"github.com/ultramcp/durable/internal/llmtest"
)

// promtool is Debian's Prometheus tool; CI installs it (.ci/run). A
// machine without it skips, saying so, except in CI.
func promtool(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool is not installed (apt-get install prometheus): CI must check the metrics")
		}
		t.Skip("promtool is not installed (apt-get install prometheus); skipping the metrics test")
	}
	return bin
}

// sample is the value of the series written exactly as series (its
// labels in the exposition's order), 0 when absent.
func sample(exposition, series string) float64 {
	for _, line := range strings.Split(exposition, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, _ := strconv.ParseFloat(strings.Fields(rest)[0], 64)
			return v
		}
	}
	return 0
}

// /metrics is valid Prometheus exposition (promtool says so) and its
// counters move as a debate runs: in flight while it runs, then one more
// run started and completed, each model call, each round's step and the
// store's transactions counted.
func TestMetricsMoveAsADebateRuns(t *testing.T) {
	t.Parallel()
	tool := promtool(t)
	hold := make(chan struct{})
	fake := llmtest.New(llmtest.Behavior{})
	defer fake.Close()
	env := fakeStack(t, fake)
	url := config.URL(env.Cfg.APIAddr) + "/metrics"
	check := func(exposition string) {
		t.Helper()
		cmd := exec.Command(tool, "check", "metrics")
		cmd.Stdin = strings.NewReader(exposition)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out.String())
		}
	}
	before := get(t, url, "")
	check(before)

	names := disagreeing(2)
	id := "metered-1"
	fake.Set(id+"/round-2/", llmtest.Behavior{Hold: hold})
	startDebate(t, env, id, fmt.Sprintf(`{"topic":"Count me","participants":["%s"],"rounds":2,"delayBetweenRounds":"0s"}`, strings.Join(names, `","`)))
	waitFor(t, time.Minute, func() bool { return len(fake.Attempts(id+"/round-2/")) == len(names) })
	during := get(t, url, "")
	if n := sample(during, `ultramcp_workflows_in_flight{workflow="chain-of-debate"}`); n != 1 {
		t.Errorf("a debate in round 2: %g in flight, want 1", n)
	}
	if n := sample(during, `ultramcp_workflow_bodies_running{workflow="chain-of-debate"}`); n != 1 {
		t.Errorf("a debate in round 2: %g bodies running, want 1", n)
	}
	close(hold)
	if _, err := attach(t, env, id, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	after := get(t, url, "")
	check(after)
	moved := func(series string, want float64) {
		t.Helper()
		if d := sample(after, series) - sample(before, series); d != want {
			t.Errorf("%s moved by %g, want %g", series, d, want)
		}
	}
	moved(`ultramcp_workflows_started_total{workflow="chain-of-debate"}`, 1)
	moved(`ultramcp_workflows_finished_total{status="completed",workflow="chain-of-debate"}`, 1)
	moved(`ultramcp_model_calls_total{model="openai:gpt-4o-mini",outcome="ok",provider="openai"}`, float64(2*len(names)+1))
	moved(`ultramcp_step_duration_seconds_count{step="round-1",workflow="chain-of-debate"}`, 1)
	moved(`ultramcp_step_duration_seconds_count{step="round-2",workflow="chain-of-debate"}`, 1)
	moved(`ultramcp_workflows_in_flight{workflow="chain-of-debate"}`, 0)
	if sample(after, `ultramcp_model_tokens_total{direction="input",model="openai:gpt-4o-mini",provider="openai"}`) == 0 {
		t.Error("no input tokens counted")
	}
	if sample(after, "ultramcp_store_batch_size_count") <= sample(before, "ultramcp_store_batch_size_count") {
		t.Error("no store transaction counted")
	}
	for _, secret := range []string{fakeKey, "Count me"} {
		if strings.Contains(after, secret) {
			t.Errorf("the metrics carry %q", secret)
		}
	}
}

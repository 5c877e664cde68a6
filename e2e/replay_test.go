package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ultramcp/durable/analysis"
	"github.com/ultramcp/durable/internal/llmtest"
	"github.com/ultramcp/durable/internal/repotest"
	"github.com/ultramcp/durable/internal/stacktest"
	"github.com/ultramcp/durable/workflow"
)

// noMismatch fails if restate-server ever saw a replay differ from its
// journal.
func noMismatch(t *testing.T, env *stacktest.Env) {
	t.Helper()
	rs, err := env.Stack.Restate()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(rs.LogFile())
	if strings.Contains(string(b), "RT0016") || strings.Contains(strings.ToLower(string(b)), "journal mismatch") {
		t.Error("restate-server logged a journal mismatch")
	}
}

// attachReport waits for an analysis's report.
func attachReport(t *testing.T, env *stacktest.Env, svc, id string) analysis.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := env.Client.Attach(ctx, svc, id)
	if err != nil {
		t.Fatalf("%s: %v", id, err)
	}
	var rep analysis.Report
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatal(err)
	}
	return rep
}

// Once the LLM summary has run, a replay must compute what the first run
// did: after kill -9 of the service, and when a later step keeps being
// retried (its attempts kill the service), the analysis completes.
func TestAnalysisReplaysAfterTheSummary(t *testing.T) {
	t.Parallel()
	r := repotest.Build(t, t.TempDir())
	body, _ := json.Marshal(map[string]string{"repository": "file://" + r.Dir})

	t.Run("kill -9 after the summary", func(t *testing.T) {
		fake := llmtest.New(llmtest.Behavior{})
		defer fake.Close()
		env := analysisStack(t, fake)
		if _, err := env.Client.Start(context.Background(), workflow.CodeAnalysis, "after-summary", body); err != nil {
			t.Fatal(err)
		}
		waitFor(t, time.Minute, func() bool {
			p, _ := env.Client.Progress(context.Background(), workflow.CodeAnalysis, "after-summary")
			return strings.Contains(string(p), `"name":"patterns-summary"`)
		})
		env.Kill(t, "service")
		env.Up(t)
		rep := attachReport(t, env, workflow.CodeAnalysis, "after-summary")
		if s := scanner(rep, "gosec"); s.Status != analysis.ScannerCompleted {
			t.Errorf("gosec after recovery: %+v", s)
		}
		if n := fake.Calls("after-summary/patterns-summary")["after-summary/patterns-summary"]; n != 1 {
			t.Errorf("the summary was asked %d times, want once", n)
		}
		noMismatch(t, env)
	})

	t.Run("a later step retried", func(t *testing.T) {
		fake := llmtest.New(llmtest.Behavior{})
		defer fake.Close()
		env := stacktest.Start(t, stacktest.Options{LLM: "openai", AllowLocalRepos: true, ServiceEnv: []string{
			"OPENAI_BASE_URL=" + fake.OpenAIBaseURL(), "OPENAI_API_KEY=" + fakeKey, "ULTRAMCP_CHAOS_CRASH_AT_STEP=gosec"}})
		if _, err := env.Client.Start(context.Background(), workflow.CodeAnalysis, "retried", body); err != nil {
			t.Fatal(err)
		}
		// Restart the service each time gosec kills it: every restart
		// replays the journal, the summary included.
		type attached struct {
			out []byte
			err error
		}
		done := make(chan attached, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			out, err := env.Client.Attach(ctx, workflow.CodeAnalysis, "retried")
			done <- attached{out, err}
		}()
		var got attached
		for restarts := 0; ; {
			select {
			case got = <-done:
			case <-time.After(200 * time.Millisecond):
				if _, alive := env.Stack.Service().PID(); !alive {
					if restarts++; restarts > 5 {
						t.Fatal("the service keeps dying")
					}
					// The service may reach gosec, and die there, before up
					// has seen it healthy: that is the crash under test.
					ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
					if err := env.Stack.Up(ctx); err != nil && !strings.Contains(err.Error(), "exited during start") {
						cancel()
						t.Fatalf("up: %v", err)
					}
					cancel()
				}
				continue
			}
			break
		}
		if got.err != nil {
			t.Fatal(got.err)
		}
		var rep analysis.Report
		if err := json.Unmarshal(got.out, &rep); err != nil {
			t.Fatal(err)
		}
		if s := scanner(rep, "gosec"); s.Status != analysis.ScannerFailed || !strings.Contains(s.Error, "interrupted 3 times") {
			t.Errorf("gosec: %+v, want failed after three interrupted attempts", s)
		}
		if s := scanner(rep, "patterns-summary"); s.Status != analysis.ScannerCompleted {
			t.Errorf("summary: %+v", s)
		}
		if n := fake.Calls("retried/patterns-summary")["retried/patterns-summary"]; n != 1 {
			t.Errorf("the summary was asked %d times, want once", n)
		}
		noMismatch(t, env)
	})
}

// A restart with other settings must not change a running debate's path:
// with another default provider it finishes on the models it started with;
// without the provider it started with, it fails at once naming the
// setting. Neither is a journal-mismatch loop.
func TestDebateKeepsItsModelsAcrossRestarts(t *testing.T) {
	t.Parallel()
	fake := llmtest.New(llmtest.Behavior{})
	defer fake.Close()
	env := fakeStack(t, fake)
	// x and y hold different positions with the fake model: no early stop.
	body := `{"topic":"t","participants":[{"name":"x"},{"name":"y"}],"rounds":3,"delayBetweenRounds":"2s"}`
	original := env.Stack.ServiceEnv
	restartDuringPause := func(id string, llmName string, serviceEnv []string) {
		startDebate(t, env, id, body)
		waitFor(t, time.Minute, func() bool { return len(fake.Calls(id+"/round-1/")) == 2 })
		waitPhase(t, env, id, "pause") // round 1 is journaled
		env.Kill(t, "service")
		env.Stack.Cfg.LLM, env.Stack.ServiceEnv = llmName, serviceEnv
		env.Up(t)
	}

	restartDuringPause("other-default", "offline", []string{"OPENAI_BASE_URL=" + fake.OpenAIBaseURL(), "OPENAI_API_KEY=" + fakeKey})
	res, err := attach(t, env, "other-default", 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if res.Simulated || len(res.Rounds) != 3 {
		t.Errorf("after the restart: simulated %v, %d rounds", res.Simulated, len(res.Rounds))
	}
	for _, r := range res.Rounds {
		for _, resp := range r.Responses {
			if resp.Simulated || resp.Model == "offline" {
				t.Errorf("round %d, %s answered by %s: the default model of the restarted service", r.Number, resp.Participant, resp.Model)
			}
		}
	}

	// Back to the first settings, start another, restart without OpenAI.
	env.Kill(t, "service")
	env.Stack.Cfg.LLM, env.Stack.ServiceEnv = "openai", original
	env.Up(t)
	restartDuringPause("no-key", "offline", nil)
	start := time.Now()
	_, err = attach(t, env, "no-key", time.Minute)
	if err == nil || !strings.Contains(err.Error(), "OPENAI_API_KEY") {
		t.Fatalf("without the provider: %v, want a failure naming OPENAI_API_KEY", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("failed after %s", d)
	}
	noMismatch(t, env)
}

// Every call the model endpoint answered has its agent_executions row, for
// a debate that fails on 401 in round 2 and for one cancelled in a pause.
func TestEveryPaidCallRecorded(t *testing.T) {
	t.Parallel()
	fake := llmtest.New(llmtest.Behavior{})
	defer fake.Close()
	env := fakeStack(t, fake)
	fake.Set("fails-401/round-2/y", llmtest.Behavior{Status: 401})
	body := `{"topic":"t","participants":[{"name":"x"},{"name":"y"},{"name":"c"}],"rounds":3,"delayBetweenRounds":"%s"}`
	startDebate(t, env, "fails-401", fmt.Sprintf(body, "0s"))
	if _, err := attach(t, env, "fails-401", time.Minute); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("fails-401: %v", err)
	}
	startDebate(t, env, "cancelled", fmt.Sprintf(body, "30s"))
	waitFor(t, time.Minute, func() bool { return len(fake.Calls("cancelled/round-1/")) == 3 })
	waitPhase(t, env, "cancelled", "pause")
	inv, err := env.Client.Find(context.Background(), workflow.ChainOfDebate, "cancelled")
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Cancel(context.Background(), inv.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := attach(t, env, "cancelled", time.Minute); err == nil {
		t.Fatal("the cancelled debate completed")
	}
	db := openStoreDB(t, env, "")
	for _, id := range []string{"fails-401", "cancelled"} {
		waitFor(t, 30*time.Second, func() bool {
			var status string
			return db.QueryRow(`SELECT status FROM workflow_metadata WHERE id = ?`, id).Scan(&status) == nil && !workflow.Open(status)
		})
		rows := map[string]bool{}
		r, err := db.Query(`SELECT step FROM agent_executions WHERE workflow_id = ?`, id)
		if err != nil {
			t.Fatal(err)
		}
		for r.Next() {
			var step string
			r.Scan(&step)
			rows[id+"/"+step] = true
		}
		r.Close()
		answered := fake.Calls(id + "/")
		if len(answered) == 0 {
			t.Fatalf("%s: no call answered", id)
		}
		for label := range answered {
			if !rows[label] {
				t.Errorf("%s: the answered call %s has no row", id, label)
			}
		}
		if len(rows) != len(answered) {
			t.Errorf("%s: %d rows for %d answered calls", id, len(rows), len(answered))
		}
	}
}

// A killed invocation runs no more steps, so only the reconciler can tell
// the store.
func TestStoreReconciledWithRestate(t *testing.T) {
	t.Parallel()
	fake := llmtest.New(llmtest.Behavior{})
	defer fake.Close()
	env := stacktest.Start(t, stacktest.Options{LLM: "openai", ServiceEnv: []string{
		"OPENAI_BASE_URL=" + fake.OpenAIBaseURL(), "OPENAI_API_KEY=" + fakeKey, "ULTRAMCP_RECONCILE_INTERVAL=300ms"}})
	db := openStoreDB(t, env, "")
	row := func(id string) (status, reason string) {
		var e *string
		db.QueryRow(`SELECT status, error FROM workflow_metadata WHERE id = ?`, id).Scan(&status, &e)
		if e != nil {
			reason = *e
		}
		return status, reason
	}
	startDebate(t, env, "to-kill", `{"topic":"t","participants":[{"name":"x"},{"name":"y"}],"rounds":2,"delayBetweenRounds":"1m"}`)
	waitFor(t, time.Minute, func() bool { return len(fake.Calls("to-kill/round-1/")) == 2 })
	inv, err := env.Client.Find(context.Background(), workflow.ChainOfDebate, "to-kill")
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Kill(context.Background(), inv.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() bool {
		status, reason := row("to-kill")
		return status == workflow.StatusFailed && strings.Contains(reason, "killed")
	})
}

// waitPhase waits until the debate id publishes phase: an event, not a
// guess at how long it takes.
func waitPhase(t *testing.T, env *stacktest.Env, id, phase string) {
	t.Helper()
	waitFor(t, time.Minute, func() bool {
		p, err := env.Client.Progress(context.Background(), workflow.ChainOfDebate, id)
		return err == nil && strings.Contains(string(p), `"phase":"`+phase+`"`)
	})
}

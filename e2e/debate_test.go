package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ultramcp/durable/client"
	"github.com/ultramcp/durable/config"
	"github.com/ultramcp/durable/internal/llmtest"
	"github.com/ultramcp/durable/internal/stacktest"
	"github.com/ultramcp/durable/workflow"
	"github.com/ultramcp/durable/workflow/debate"
)

const fakeKey = "sk-test-SECRET-do-not-leak-4242"

// fakeStack starts a stack whose default provider is the fake OpenAI endpoint.
func fakeStack(t *testing.T, fake *llmtest.Server) *stacktest.Env {
	t.Helper()
	return stacktest.Start(t, stacktest.Options{
		LLM:        "openai",
		ServiceEnv: []string{"OPENAI_BASE_URL=" + fake.OpenAIBaseURL(), "OPENAI_API_KEY=" + fakeKey},
	})
}

func startDebate(t *testing.T, env *stacktest.Env, id string, body string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := env.Client.Start(ctx, workflow.ChainOfDebate, id, []byte(body)); err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
}

func attach(t *testing.T, env *stacktest.Env, id string, timeout time.Duration) (debate.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := env.Client.Attach(ctx, workflow.ChainOfDebate, id)
	if err != nil {
		return debate.Result{}, err
	}
	var res debate.Result
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("decode result: %v\n%s", err, out)
	}
	return res, nil
}

// The seed's three requests (start, progress, attach), with curl as the
// README shows them: on the API's port, and on the ingress socket.
func TestSeedRequestsWithCurl(t *testing.T) {
	t.Parallel()
	env := stacktest.Start(t, stacktest.Options{})
	api := config.URL(env.Cfg.APIAddr)
	curl := func(args ...string) []byte {
		t.Helper()
		out, err := exec.Command("curl", append([]string{"-sS", "--fail-with-body", "--max-time", "60"}, args...)...).Output()
		if err != nil {
			t.Fatalf("curl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	body := `{"topic":"Test debate","participants":["alice","bob"],"rounds":2,"delayBetweenRounds":"1s"}`
	for _, via := range []struct {
		name, base string
		sock       []string
	}{
		{"api", api, nil},
		{"socket", "http://localhost", []string{"--unix-socket", env.Cfg.IngressSocket()}},
	} {
		id := "seed-" + via.name
		var started struct{ InvocationID, Status string }
		if err := json.Unmarshal(curl(append(via.sock, "-X", "POST", via.base+"/chain-of-debate/"+id+"/run/send", "-H", "content-type: application/json", "-d", body)...), &started); err != nil || !strings.HasPrefix(started.InvocationID, "inv_") || started.Status != "Accepted" {
			t.Fatalf("%s: send answered %+v (%v)", via.name, started, err)
		}
		// Progress while it runs (the first round is done, the second
		// waits on the durable delay).
		waitFor(t, 30*time.Second, func() bool {
			return strings.Contains(string(curl(append(via.sock, "-X", "POST", via.base+"/chain-of-debate/"+id+"/progress")...)), `"round"`)
		})
		raw := curl(append(via.sock, via.base+"/restate/workflow/chain-of-debate/"+id+"/attach")...)
		checkSeedResult(t, id, raw)
	}
	// The API's path answers as the API does: a bad id is refused there.
	out, _ := exec.Command("curl", "-sS", "-X", "POST", api+"/chain-of-debate/.hidden/run/send", "-H", "content-type: application/json", "-d", body).Output()
	if !strings.Contains(string(out), `"field":"id"`) {
		t.Errorf("a bad id on the API's ingress path: %s", out)
	}
}

func checkSeedResult(t *testing.T, id string, raw []byte) {
	t.Helper()
	var res debate.Result
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	if res.Topic != "Test debate" || res.ID != id {
		t.Errorf("result topic/id = %q/%q", res.Topic, res.ID)
	}
	if len(res.Rounds) == 0 || len(res.Rounds) > 2 {
		t.Fatalf("rounds = %d, want 1 (agreed early) or 2", len(res.Rounds))
	}
	for _, r := range res.Rounds {
		if len(r.Responses) != 2 {
			t.Errorf("round %d has %d responses, want 2", r.Number, len(r.Responses))
		}
	}
	if !res.Simulated || !strings.Contains(res.Rounds[0].Responses[0].Position, "[simulated]") {
		t.Errorf("offline answers must be labelled simulated: %+v", res.Rounds[0].Responses[0])
	}
	if res.Synthesis.Consensus == "" || res.Totals.Calls != 2*len(res.Rounds)+1 {
		t.Errorf("synthesis %q, calls %d", res.Synthesis.Consensus, res.Totals.Calls)
	}
}

// Participants whose fake answers differ, so the debate never stops early.
const threeParticipants = `["alice","dave","ivan"]`

func TestDurabilityKill9(t *testing.T) {
	t.Parallel()
	for _, component := range []string{"service", "restate-server"} {
		t.Run(component, func(t *testing.T) {
			fake := llmtest.New(llmtest.Behavior{Latency: 300 * time.Millisecond})
			defer fake.Close()
			env := fakeStack(t, fake)
			id := "kill-" + component
			startDebate(t, env, id, `{"topic":"Kill test","participants":`+threeParticipants+`,"rounds":3,"delayBetweenRounds":"0s"}`)

			// Wait for round 2 to start: round 1 is journaled, round 2's
			// calls are in flight.
			waitFor(t, 30*time.Second, func() bool {
				p, err := env.Client.Progress(context.Background(), workflow.ChainOfDebate, id)
				if err != nil {
					return false
				}
				var prog debate.Progress
				return json.Unmarshal(p, &prog) == nil && len(prog.CompletedRounds) >= 1
			})
			before := fake.Calls(id + "/round-1/")
			env.Kill(t, component)
			time.Sleep(200 * time.Millisecond)
			env.Up(t)

			res, err := attach(t, env, id, 60*time.Second)
			if err != nil {
				t.Fatalf("debate after kill -9 of %s: %v", component, err)
			}
			if len(res.Rounds) != 3 {
				t.Fatalf("rounds = %d, want 3", len(res.Rounds))
			}
			calls := fake.Calls(id + "/")
			for _, p := range []string{"alice", "dave", "ivan"} {
				label := fmt.Sprintf("%s/round-1/%s", id, p)
				if before[label] != 1 || calls[label] != 1 {
					t.Errorf("%s completed before the kill ran %d times in all (%d before), want exactly 1", label, calls[label], before[label])
				}
				for r := 2; r <= 3; r++ {
					if l := fmt.Sprintf("%s/round-%d/%s", id, r, p); calls[l] < 1 {
						t.Errorf("%s never ran", l)
					}
				}
				if l := fmt.Sprintf("%s/round-3/%s", id, p); calls[l] != 1 {
					t.Errorf("%s, after recovery, ran %d times, want 1", l, calls[l])
				}
			}
			if calls[id+"/moderator"] != 1 {
				t.Errorf("moderator ran %d times, want 1", calls[id+"/moderator"])
			}
			// The store holds each call once, and the debate once, completed.
			assertRows(t, openStoreDB(t, env, ""), id, 3, []string{"alice", "dave", "ivan"})
		})
	}
}

func TestProviderFaults(t *testing.T) {
	t.Parallel()
	fake := llmtest.New(llmtest.Behavior{})
	defer fake.Close()
	env := fakeStack(t, fake)

	t.Run("30% transient faults", func(t *testing.T) {
		id := "flaky-1"
		fake.Set(id+"/", llmtest.Behavior{FaultRate: 0.3})
		startDebate(t, env, id, `{"topic":"Flaky","participants":`+threeParticipants+`,"rounds":3,"delayBetweenRounds":"0s"}`)
		res, err := attach(t, env, id, 90*time.Second)
		if err != nil {
			t.Fatalf("debate with 30%% faults failed: %v", err)
		}
		if len(res.Rounds) != 3 {
			t.Errorf("rounds = %d, want 3", len(res.Rounds))
		}
		attempts, calls := 0, 0
		for _, n := range fake.Attempts(id + "/") {
			attempts += n
		}
		for label, n := range fake.Calls(id + "/") {
			calls += n
			if n != 1 {
				t.Errorf("%s answered %d times, want 1", label, n)
			}
		}
		if attempts <= calls {
			t.Errorf("no fault was injected (attempts %d, calls %d)", attempts, calls)
		}
		t.Logf("%d calls needed %d attempts", calls, attempts)
	})

	t.Run("401 fails fast", func(t *testing.T) {
		id := "unauthorized-1"
		fake.Set(id+"/", llmtest.Behavior{Status: 401})
		start := time.Now()
		startDebate(t, env, id, `{"topic":"Bad key","participants":`+threeParticipants+`,"rounds":2}`)
		_, err := attach(t, env, id, 30*time.Second)
		took := time.Since(start)
		if err == nil {
			t.Fatal("debate with a rejected key succeeded")
		}
		if took > 10*time.Second {
			t.Errorf("failure took %s, want < 10s", took)
		}
		inv, ferr := env.Client.Find(context.Background(), workflow.ChainOfDebate, id)
		if ferr != nil {
			t.Fatal(ferr)
		}
		if inv.Outcome() != "failed" {
			t.Errorf("status = %s, want failed", inv.Outcome())
		}
		for _, want := range []string{"openai", "401", "unauthorized"} {
			if !strings.Contains(strings.ToLower(inv.Failure), want) {
				t.Errorf("failure %q does not say %q", inv.Failure, want)
			}
		}
		if n := len(fake.Attempts(id + "/")); n == 0 {
			t.Error("the provider was never called")
		}
		assertNoSecret(t, env, inv.Failure+err.Error())
	})
}

func assertNoSecret(t *testing.T, env *stacktest.Env, extra string) {
	t.Helper()
	if strings.Contains(extra, fakeKey) {
		t.Errorf("API key leaked into an error")
	}
	assertNotLeaked(t, env, fakeKey)
}

// assertNotLeaked checks that none of the secrets is in the service's and
// Restate's logs, in the journal (payloads decoded), or in the store's file.
func assertNotLeaked(t *testing.T, env *stacktest.Env, secrets ...string) {
	t.Helper()
	places := map[string][]byte{"journal": []byte(journalText(t, env))}
	logs, _ := filepath.Glob(env.Cfg.Path("logs", "*.log"))
	for _, f := range append(logs, env.Cfg.SQLitePath(), env.Cfg.SQLitePath()+"-wal") {
		b, err := os.ReadFile(f)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		places[f] = b
	}
	if len(places["journal"]) < 100 {
		t.Fatalf("the journal text is too short to be real: %d bytes", len(places["journal"]))
	}
	for place, b := range places {
		for _, secret := range secrets {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("secret %.4s… leaked into %s", secret, place)
			}
		}
	}
}

// journalText is every journal entry with its payload bytes decoded.
func journalText(t *testing.T, env *stacktest.Env) string {
	t.Helper()
	rows, err := env.Client.Query(context.Background(), "SELECT entry_json FROM sys_journal")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, r := range rows {
		var entry any
		if s, ok := r["entry_json"].(string); ok && json.Unmarshal([]byte(s), &entry) == nil {
			b.WriteString(entryText(entry))
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// entryText is one sys_journal entry's strings and payloads, decoded:
// sys_journal spells payload bytes as arrays of byte values. Its length
// measures the entry.
func entryText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []any:
		raw := make([]byte, 0, len(x))
		for _, e := range x {
			n, ok := e.(float64)
			if !ok {
				raw = nil
				break
			}
			raw = append(raw, byte(n))
		}
		if raw != nil {
			return string(raw)
		}
		var b strings.Builder
		for _, e := range x {
			b.WriteString(entryText(e))
		}
		return b.String()
	case map[string]any:
		var b strings.Builder
		for k, e := range x {
			b.WriteString(k)
			b.WriteString(entryText(e))
		}
		return b.String()
	}
	return ""
}

func TestBadInputRefused(t *testing.T) {
	t.Parallel()
	fake := llmtest.New(llmtest.Behavior{})
	defer fake.Close()
	env := fakeStack(t, fake)
	cases := []struct {
		name, body, field string
	}{
		{"no topic", `{"participants":["a","b"],"rounds":2}`, "topic"},
		{"one participant", `{"topic":"x","participants":["a"],"rounds":2}`, "participants"},
		{"zero rounds", `{"topic":"x","participants":["a","b"],"rounds":0}`, "rounds"},
		{"fifty rounds", `{"topic":"x","participants":["a","b"],"rounds":50}`, "rounds"},
		{"rounds as string", `{"topic":"x","participants":["a","b"],"rounds":"two"}`, "rounds"},
		{"participants as string", `{"topic":"x","participants":"a,b","rounds":2}`, "participants"},
		{"topic as number", `{"topic":42,"participants":["a","b"],"rounds":2}`, "topic"},
		{"1 MB topic", `{"topic":"` + strings.Repeat("x", 1<<20) + `","participants":["a","b"],"rounds":2}`, "topic"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("bad-%d", i)
			startDebate(t, env, id, tc.body)
			_, err := attach(t, env, id, 20*time.Second)
			var rerr *client.Error
			if !errors.As(err, &rerr) {
				t.Fatalf("want a Restate error, got %v", err)
			}
			if rerr.Code != 400 || !strings.HasPrefix(rerr.Message, tc.field) {
				t.Errorf("error = %d %q, want 400 naming %q", rerr.Code, rerr.Message, tc.field)
			}
			if n := len(fake.Attempts(id + "/")); n != 0 {
				t.Errorf("a refused debate called the model %d times", n)
			}
			// The store says why it was refused.
			var status, reason string
			if err := openStoreDB(t, env, "").QueryRow(`SELECT status, error FROM workflow_metadata WHERE id = ?`, id).Scan(&status, &reason); err != nil {
				t.Fatal(err)
			}
			if status != "failed" || !strings.HasPrefix(reason, tc.field) {
				t.Errorf("store: %s %q", status, reason)
			}
		})
	}
}

func TestUnsignedRequestRefused(t *testing.T) {
	t.Parallel()
	env := stacktest.Start(t, stacktest.Options{})
	for _, path := range []string{"/discover", "/invoke/chain-of-debate/run"} {
		req, _ := http.NewRequest(http.MethodPost, config.URL(env.Cfg.ServiceAddr)+path, strings.NewReader(`{}`))
		req.Header.Set("content-type", "application/vnd.restate.invocation.v5")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("unsigned POST %s: status %d, want 401", path, resp.StatusCode)
		}
	}
}

func waitFor(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("condition not met within %s", timeout)
}

// An escalated debate waits durably for a human decision: through a kill -9
// of the service, and until `ultramcp decide` sends one.
func TestEscalationSurvivesKill9(t *testing.T) {
	t.Parallel()
	fake := llmtest.New(llmtest.Behavior{Latency: 500 * time.Millisecond})
	defer fake.Close()
	env := fakeStack(t, fake)
	id := "escalate-1"
	c := cli{t: t, bin: stacktest.Binary(t), env: []string{
		"ULTRAMCP_HOME=" + env.Cfg.Home, "ULTRAMCP_API_ADDR=" + env.Cfg.APIAddr,
	}}
	// The fake moderator reports agreement 0.8: contested under 0.9. Its
	// calls wait until the early decisions have been refused.
	hold := make(chan struct{})
	fake.Set(id+"/", llmtest.Behavior{Latency: 500 * time.Millisecond, Hold: hold})
	startDebate(t, env, id, `{"topic":"Escalate","participants":`+threeParticipants+`,"rounds":1,"consensusThreshold":0.9,"escalate":true,"escalateTimeout":"10m"}`)
	// Its round runs: the gate is closed, a decision now is refused.
	if out, err := c.run("decide", id, "--decision", "TOO EARLY"); err == nil || !strings.Contains(out, "not waiting") {
		t.Errorf("an early decision was not refused: %v %s", err, out)
	}
	// The same on the ingress socket, which reaches the workflow past
	// the application service.
	err := env.Client.Decide(context.Background(), workflow.ChainOfDebate, id, []byte(`{"decision":"EARLY ON THE SOCKET"}`))
	close(hold)
	if err == nil || !strings.Contains(err.Error(), "not waiting") {
		t.Errorf("an early decision on the socket: %v", err)
	}
	waitFor(t, 30*time.Second, func() bool {
		p, _ := env.Client.Progress(context.Background(), workflow.ChainOfDebate, id)
		return strings.Contains(string(p), `"phase":"awaiting-decision"`)
	})
	env.Kill(t, "service")
	env.Up(t)
	if out, err := c.run("decide", id); err == nil || !strings.Contains(out, "decision: required") {
		t.Errorf("an empty decision was accepted: %s", out)
	}
	c.must("decide", id, "--decision", "Pilot it on one service", "--by", "alice")
	res, err := attach(t, env, id, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if d := res.Decision; d == nil || d.Decision != "Pilot it on one service" || d.By != "alice" || d.Source != "human" {
		t.Errorf("decision = %+v", res.Decision)
	}
	if out, err := c.run("decide", id, "--decision", "again"); err == nil {
		t.Errorf("a second decision was accepted: %s", out)
	}
	for label, n := range fake.Calls(id + "/") {
		if n != 1 {
			t.Errorf("%s ran %d times", label, n)
		}
	}
	if out := c.must("result", id); !strings.Contains(out, "decision by alice: Pilot it on one service") {
		t.Errorf("result:\n%s", out)
	}
}

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ultramcp/durable/client"
	"github.com/ultramcp/durable/internal/llmtest"
	"github.com/ultramcp/durable/internal/repotest"
	"github.com/ultramcp/durable/internal/stacktest"
	"github.com/ultramcp/durable/workflow"
	"github.com/ultramcp/durable/workflow/fullanalysis"
)

// The meta-workflow on a repository served by git daemon: the seed's
// request on the ingress runs code-analysis, security-scan and the debate
// as children under derived ids, each its own workflow in Restate and in
// the store, and recommendations that cite findings by rule and file:line.
// Killed -9 in the debate's second round, it completes without starting a
// finished child over or repeating an answered call.
func TestFullAnalysis(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	repotest.Build(t, base)
	addr := repotest.Daemon(t, base)
	fake := llmtest.New(llmtest.Behavior{})
	defer fake.Close()
	env := stacktest.Start(t, stacktest.Options{LLM: "openai", RepoHosts: []string{"127.0.0.1"},
		ServiceEnv: []string{"OPENAI_BASE_URL=" + fake.OpenAIBaseURL(), "OPENAI_API_KEY=" + fakeKey}})
	url := "git://" + addr + "/app"

	t.Run("bad input starts no child", func(t *testing.T) {
		for i, tc := range []struct{ body, field string }{
			{`{}`, "repository"},
			{`{"repository":"--upload-pack=touch /tmp/x"}`, "repository"},
			{`{"repository":"` + url + `","includeDebate":"yes"}`, "includeDebate"},
			{`{"repository":"` + url + `","colour":"red"}`, "colour"},
			{`{"repository":"` + url + `","requireApproval":true,"approvalTimeout":"-1s"}`, "approvalTimeout"},
		} {
			id := fmt.Sprintf("fa-bad-%d", i)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_, err := env.Client.Call(ctx, fullanalysis.Name, id, []byte(tc.body))
			cancel()
			var rerr *client.Error
			if !errors.As(err, &rerr) || rerr.Code != 400 || !strings.Contains(rerr.Message, tc.field) {
				t.Errorf("%s: %v, want 400 naming %s", tc.body, err, tc.field)
			}
			if _, err := env.Client.Find(context.Background(), workflow.CodeAnalysis, id+"-analysis"); !errors.Is(err, client.ErrNotFound) {
				t.Errorf("%s: a child started (%v)", tc.body, err)
			}
		}
	})

	id := "fa-1"
	fake.Set(id+"-debate/round-2/", llmtest.Behavior{Latency: 2 * time.Second})
	body := `{"repository":"` + url + `","includeDebate":true,"generateRecommendations":true}`
	if _, err := env.Client.Start(context.Background(), fullanalysis.Name, id, []byte(body)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, func() bool { return len(fake.Attempts(id+"-debate/round-2/")) > 0 })
	env.Kill(t, "service")
	fake.Set(id+"-debate/round-2/", llmtest.Behavior{})
	env.Up(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := env.Client.Attach(ctx, fullanalysis.Name, id)
	if err != nil {
		t.Fatalf("full-analysis: %v", err)
	}
	var res fullanalysis.Result
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	db := openStoreDB(t, env, "")
	for role, svc := range map[string]string{"analysis": workflow.CodeAnalysis, "scan": workflow.SecurityScan, "debate": workflow.ChainOfDebate} {
		child := res.Children[role]
		if child != id+"-"+role {
			t.Errorf("%s child id %q, want %s-%s", role, child, id, role)
			continue
		}
		if inv, err := env.Client.Find(context.Background(), svc, child); err != nil || inv.Outcome() != "succeeded" {
			t.Errorf("%s child in Restate: %+v %v", role, inv, err)
		}
		var status string
		if err := db.QueryRow(`SELECT status FROM workflow_metadata WHERE id = ?`, child).Scan(&status); err != nil || (status != workflow.StatusCompleted && status != workflow.StatusPartial) {
			t.Errorf("%s child in the store: %q %v", role, status, err)
		}
	}
	if res.Analysis.Findings == 0 || res.Scan.Findings == 0 || res.Debate == nil || res.Debate.Consensus == "" {
		t.Fatalf("result: %+v", res)
	}
	cited := map[string]bool{}
	for _, f := range res.TopFindings {
		cited[fmt.Sprintf("%s %s:%d", f.RuleID, f.File, f.Line)] = true
	}
	if len(res.Recommendations) == 0 {
		t.Fatal("no recommendations")
	}
	for _, r := range res.Recommendations {
		if len(r.Addresses) == 0 {
			t.Errorf("recommendation %q cites no finding", r.Title)
		}
		for _, a := range r.Addresses {
			if !cited[a] {
				t.Errorf("recommendation %q cites %q, not a finding", r.Title, a)
			}
		}
	}
	for label, n := range fake.Calls(id) {
		if n != 1 {
			t.Errorf("%s answered %d times: a finished call ran again", label, n)
		}
	}
	if n := fake.Calls(id + "-analysis/patterns-summary")[id+"-analysis/patterns-summary"]; n != 1 {
		t.Errorf("the analysis child's summary ran %d times: the child started over", n)
	}
	if md := cliFor(t, env).must("result", id); !strings.Contains(md, "# Full analysis of") || !strings.Contains(md, "## Recommendations") {
		t.Errorf("result:\n%s", md)
	}
	var links int
	if err := db.QueryRow(`SELECT count(*) FROM workflow_children WHERE parent_id = ?`, id).Scan(&links); err != nil || links != 3 {
		t.Errorf("the store links %d children to the parent (%v), want 3", links, err)
	}
	if status := cliFor(t, env).must("status", id); !strings.Contains(status, "children:") || !strings.Contains(status, "chain-of-debate/"+id+"-debate") {
		t.Errorf("status does not show the children:\n%s", status)
	}

	t.Run("cancelling the parent cancels the running child", func(t *testing.T) {
		id := "fa-cancel"
		fake.Set(id+"-debate/", llmtest.Behavior{Latency: 6 * time.Second})
		if _, err := env.Client.Start(context.Background(), fullanalysis.Name, id, []byte(body)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 2*time.Minute, func() bool { return len(fake.Attempts(id+"-debate/round-1/")) == 3 })
		inv, err := env.Client.Find(context.Background(), fullanalysis.Name, id)
		if err != nil {
			t.Fatal(err)
		}
		if err := env.Client.Cancel(context.Background(), inv.ID); err != nil {
			t.Fatal(err)
		}
		// Every row of the tree ends cancelled: the running child by the
		// cancellation, the finished ones by the parent's compensations.
		for _, wid := range []string{id, id + "-debate", id + "-scan", id + "-analysis"} {
			waitFor(t, time.Minute, func() bool {
				var status string
				return db.QueryRow(`SELECT status FROM workflow_metadata WHERE id = ?`, wid).Scan(&status) == nil && status == workflow.StatusCancelled
			})
		}
	})

	t.Run("cancelling the parent during the scan cancels the tree", func(t *testing.T) {
		// Every connection to the repository through this proxy waits:
		// the scan child stays in its resolve step long enough to be
		// cancelled there.
		slow := "git://" + slowProxy(t, addr, 4*time.Second) + "/app"
		id := "fa-cancel-scan"
		if _, err := env.Client.Start(context.Background(), fullanalysis.Name, id, []byte(`{"repository":"`+slow+`"}`)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 2*time.Minute, func() bool {
			_, err := env.Client.Find(context.Background(), workflow.SecurityScan, id+"-scan")
			return err == nil
		})
		inv, err := env.Client.Find(context.Background(), fullanalysis.Name, id)
		if err != nil {
			t.Fatal(err)
		}
		if err := env.Client.Cancel(context.Background(), inv.ID); err != nil {
			t.Fatal(err)
		}
		for _, wid := range []string{id, id + "-scan", id + "-analysis"} {
			waitFor(t, time.Minute, func() bool {
				var status string
				return db.QueryRow(`SELECT status FROM workflow_metadata WHERE id = ?`, wid).Scan(&status) == nil && status == workflow.StatusCancelled
			})
		}
		// The scan was cancelled running, not finished and withdrawn: it
		// sees the cancellation when its running step (the slow resolve)
		// returns.
		waitFor(t, time.Minute, func() bool {
			scan, err := env.Client.Find(context.Background(), workflow.SecurityScan, id+"-scan")
			return err == nil && scan.Status == "completed"
		})
		if scan, err := env.Client.Find(context.Background(), workflow.SecurityScan, id+"-scan"); err != nil || scan.Outcome() != "cancelled" {
			t.Errorf("the scan child in Restate: %+v %v, want cancelled", scan, err)
		}
		// The compensation withdrew the finished analysis, with its reason.
		var reason string
		if err := db.QueryRow(`SELECT error FROM workflow_metadata WHERE id = ?`, id+"-analysis").Scan(&reason); err != nil || !strings.Contains(reason, id) {
			t.Errorf("the analysis child's row says %q (%v), want its withdrawal by %s", reason, err, id)
		}
		if _, err := env.Client.Find(context.Background(), workflow.ChainOfDebate, id+"-debate"); err == nil {
			t.Error("the debate child started after the cancellation")
		}
	})

	t.Run("the CLI follows the tree live", func(t *testing.T) {
		out, errOut, err := cliFor(t, env).stdout("run", "full-analysis", "--id", "fa-cli", "--repository", url, "--follow")
		if err != nil {
			t.Fatalf("run full-analysis --follow: %v\n%s", err, errOut)
		}
		for _, want := range []string{"[analysis] … running", "[scan] … running", "[debate] ", "round 1 of 3", "… running code-analysis fa-cli-analysis"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("the live tree lacks %q:\n%s", want, errOut)
			}
		}
		if !strings.Contains(out, "# Full analysis of") || strings.Contains(out, "[analysis]") {
			t.Errorf("stdout is not the report alone:\n%s", out)
		}
	})

	t.Run("kill -9 of restate-server during the scan", func(t *testing.T) {
		id := "fa-restate"
		if _, err := env.Client.Start(context.Background(), fullanalysis.Name, id, []byte(`{"repository":"`+url+`","includeDebate":false}`)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 2*time.Minute, func() bool {
			p, _ := env.Client.Progress(context.Background(), fullanalysis.Name, id)
			return strings.Contains(string(p), `"phase":"scan"`)
		})
		env.Kill(t, "restate-server")
		env.Up(t)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		out, err := env.Client.Attach(ctx, fullanalysis.Name, id)
		if err != nil {
			t.Fatalf("after kill -9 of restate-server: %v", err)
		}
		var r fullanalysis.Result
		if err := json.Unmarshal(out, &r); err != nil || r.Scan.Findings == 0 || len(r.Recommendations) == 0 {
			t.Errorf("result %+v (%v)", r, err)
		}
		if n := fake.Calls(id + "-analysis/patterns-summary")[id+"-analysis/patterns-summary"]; n != 1 {
			t.Errorf("the analysis child's summary ran %d times", n)
		}
	})

	t.Run("a provider refusing in the debate fails the parent at once, naming the child", func(t *testing.T) {
		id := "fa-401"
		fake.Set(id+"-debate/round-1/security-expert", llmtest.Behavior{Status: 401})
		if _, err := env.Client.Start(context.Background(), fullanalysis.Name, id, []byte(body)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 2*time.Minute, func() bool { return len(fake.Attempts(id+"-debate/round-1/security-expert")) > 0 })
		refused := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := env.Client.Attach(ctx, fullanalysis.Name, id)
		if err == nil || !strings.Contains(err.Error(), "chain-of-debate "+id+"-debate") || !strings.Contains(err.Error(), "participant security-expert") || !strings.Contains(err.Error(), "401") {
			t.Fatalf("err = %v, want the child, its step and the 401 named", err)
		}
		if d := time.Since(refused); d > 10*time.Second {
			t.Errorf("the parent failed %s after the 401", d)
		}
		for _, wid := range []string{id, id + "-scan", id + "-analysis"} {
			waitFor(t, 30*time.Second, func() bool {
				var status string
				return db.QueryRow(`SELECT status FROM workflow_metadata WHERE id = ?`, wid).Scan(&status) == nil && status == workflow.StatusFailed
			})
		}
	})

	awaiting := func(id string) func() bool {
		return func() bool {
			p, _ := env.Client.Progress(context.Background(), fullanalysis.Name, id)
			return strings.Contains(string(p), `"phase":"awaiting-approval"`)
		}
	}
	attachResult := func(id string) fullanalysis.Result {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		out, err := env.Client.Attach(ctx, fullanalysis.Name, id)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		var r fullanalysis.Result
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	rowStatus := func(id string) string {
		var status string
		db.QueryRow(`SELECT status FROM workflow_metadata WHERE id = ?`, id).Scan(&status)
		return status
	}
	approval := `{"repository":"` + url + `","includeDebate":false,"requireApproval":true}`

	t.Run("approval survives kill -9, then approve", func(t *testing.T) {
		id := "fa-approve"
		if _, err := env.Client.Start(context.Background(), fullanalysis.Name, id, []byte(approval)); err != nil {
			t.Fatal(err)
		}
		// Its analyses run first: an approval now, from the CLI or on the
		// ingress socket, is refused and not kept for the gate.
		if out, err := cliFor(t, env).run("approve", id, "--by", "too-early"); err == nil || !strings.Contains(out, "not waiting") {
			t.Errorf("an early approval was not refused: %v %s", err, out)
		}
		if err := env.Client.Decide(context.Background(), fullanalysis.Name, id, []byte(`{"approved":true,"by":"socket"}`)); err == nil || !strings.Contains(err.Error(), "not waiting") {
			t.Errorf("an early approval on the socket: %v", err)
		}
		waitFor(t, 2*time.Minute, awaiting(id))
		env.Kill(t, "service")
		env.Up(t)
		if _, err := env.Client.Output(context.Background(), fullanalysis.Name, id); !errors.Is(err, client.ErrNotReady) {
			t.Fatalf("after kill -9 during the wait: %v, want still waiting", err)
		}
		waitFor(t, 30*time.Second, awaiting(id))
		cliFor(t, env).must("approve", id, "--by", "alice")
		r := attachResult(id)
		if r.Approval == nil || !r.Approval.Approved || r.Approval.By != "alice" || len(r.Recommendations) == 0 || r.Rejected {
			t.Errorf("approved run: %+v", r)
		}
		if s := rowStatus(id); s != workflow.StatusCompleted && s != workflow.StatusPartial {
			t.Errorf("store: %s", s)
		}
	})

	t.Run("reject runs the compensations in reverse", func(t *testing.T) {
		id := "fa-reject"
		if _, err := env.Client.Start(context.Background(), fullanalysis.Name, id, []byte(approval)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 2*time.Minute, awaiting(id))
		cliFor(t, env).must("reject", id, "--reason", "not this quarter")
		r := attachResult(id)
		if !r.Rejected || r.Rejection != "not this quarter" || len(r.Recommendations) != 0 {
			t.Errorf("rejected run: %+v", r)
		}
		if got := strings.Join(r.Compensations, ","); got != "undo-withdraw-scan,undo-withdraw-analysis" {
			t.Errorf("compensations ran as %q, want the scan's then the analysis's", got)
		}
		for _, wid := range []string{id, id + "-analysis", id + "-scan"} {
			if s := rowStatus(wid); s != workflow.StatusRejected {
				t.Errorf("%s is %q in the store, want rejected", wid, s)
			}
		}
	})

	t.Run("no approval in time is a rejection", func(t *testing.T) {
		id := "fa-timeout"
		body := `{"repository":"` + url + `","includeDebate":false,"requireApproval":true,"approvalTimeout":"1s"}`
		if _, err := env.Client.Start(context.Background(), fullanalysis.Name, id, []byte(body)); err != nil {
			t.Fatal(err)
		}
		r := attachResult(id)
		if !r.Rejected || r.Rejection != "no approval within 1s" {
			t.Errorf("timed-out run: %+v", r)
		}
		if s := rowStatus(id); s != workflow.StatusRejected {
			t.Errorf("store: %s", s)
		}
	})
}

// slowProxy forwards TCP connections to upstream, each after delay.
func slowProxy(t *testing.T, upstream string, delay time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				time.Sleep(delay)
				up, err := net.Dial("tcp", upstream)
				if err != nil {
					return
				}
				defer up.Close()
				go func() { _, _ = io.Copy(up, conn) }()
				_, _ = io.Copy(conn, up)
			}()
		}
	}()
	return ln.Addr().String()
}

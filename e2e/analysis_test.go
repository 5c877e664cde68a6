package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ultramcp/durable/analysis"
	"github.com/ultramcp/durable/client"
	"github.com/ultramcp/durable/internal/llmtest"
	"github.com/ultramcp/durable/internal/repotest"
	"github.com/ultramcp/durable/internal/stacktest"
	"github.com/ultramcp/durable/workflow"
)

func analysisStack(t *testing.T, fake *llmtest.Server) *stacktest.Env {
	t.Helper()
	return stacktest.Start(t, stacktest.Options{LLM: "openai", AllowLocalRepos: true,
		ServiceEnv: []string{"OPENAI_BASE_URL=" + fake.OpenAIBaseURL(), "OPENAI_API_KEY=" + fakeKey}})
}

func runAnalysis(t *testing.T, env *stacktest.Env, svc, id string, input any, timeout time.Duration) (analysis.Report, error) {
	t.Helper()
	body, _ := json.Marshal(input)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if _, err := env.Client.Start(ctx, svc, id, body); err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	out, err := env.Client.Attach(ctx, svc, id)
	if err != nil {
		return analysis.Report{}, err
	}
	var rep analysis.Report
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatal(err)
	}
	return rep, nil
}

func fingerprints(r analysis.Report) []string {
	var out []string
	for _, f := range r.Findings {
		out = append(out, f.Tool+"|"+f.Fingerprint)
	}
	sort.Strings(out)
	return out
}

func scanner(r analysis.Report, name string) analysis.ScannerRun {
	for _, s := range r.Scanners {
		if s.Name == name {
			return s
		}
	}
	return analysis.ScannerRun{}
}

func TestCodeAnalysisWorkflow(t *testing.T) {
	t.Parallel()
	fake := llmtest.New(llmtest.Behavior{})
	defer fake.Close()
	env := analysisStack(t, fake)
	parent := t.TempDir()
	r := repotest.Build(t, parent)
	url := "file://" + r.Dir

	rep, err := runAnalysis(t, env, workflow.CodeAnalysis, "ca-all", map[string]string{"repository": url, "analysisType": "all"}, 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Commit != repotest.Git(t, r.Dir, "rev-parse", "HEAD") || rep.Branch != "main" {
		t.Errorf("commit %s branch %s", rep.Commit, rep.Branch)
	}
	for _, name := range []string{"secrets", "gosec", "metrics", "patterns", "patterns-summary"} {
		if s := scanner(rep, name); s.Status != analysis.ScannerCompleted {
			t.Errorf("scanner %s: %+v", name, s)
		}
	}
	raw, _ := json.Marshal(rep)
	for _, secret := range []string{repotest.TreeAWSKey, repotest.TreeGitHubPAT, repotest.HistoryAWSKey} {
		if strings.Contains(string(raw), secret[4:]) {
			t.Errorf("a planted secret appears unredacted in the result")
		}
	}
	var treeAWS, treePAT, historyAWS bool
	rules := map[string]bool{}
	for _, f := range rep.Findings {
		rules[f.RuleID] = true
		treeAWS = treeAWS || f.File == "config/creds.env" && f.RuleID == "aws-access-token" && f.Commit == ""
		treePAT = treePAT || f.File == "config/creds.env" && strings.Contains(f.RuleID, "github")
		historyAWS = historyAWS || f.File == "old/deploy.env" && f.Commit != ""
	}
	if !treeAWS || !treePAT || !historyAWS {
		t.Errorf("secrets: tree AWS %v, tree PAT %v, removed AWS in history %v", treeAWS, treePAT, historyAWS)
	}
	for _, rule := range []string{"G202", "G204", "G401"} {
		if !rules[rule] {
			t.Errorf("gosec finding %s missing", rule)
		}
	}
	if rep.Metrics == nil || len(rep.Metrics.Languages) < 4 || rep.Patterns == nil || rep.Patterns.Summary == "" {
		t.Errorf("metrics %+v patterns %+v", rep.Metrics, rep.Patterns)
	}
	if _, err := os.Stat(r.Marker); err == nil {
		t.Fatal("the analysis ran code from the repository: the marker exists")
	}
	if !strings.Contains(journalText(t, env), "AKIA****") {
		t.Error("the redacted findings are not in the journal: the leak check below would prove nothing")
	}
	assertNotLeaked(t, env, repotest.TreeAWSKey, repotest.TreeGitHubPAT, repotest.HistoryAWSKey)

	t.Run("security-scan finds the same", func(t *testing.T) {
		scan, err := runAnalysis(t, env, workflow.SecurityScan, "ss-1", map[string]string{"target": url}, 3*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(fingerprints(scan), "\n") != strings.Join(fingerprints(rep), "\n") || scan.Metrics != nil {
			t.Errorf("security-scan findings differ from code-analysis's")
		}
	})

	t.Run("security-scan compared with a previous analysis", func(t *testing.T) {
		previous := rep
		previous.Findings = append([]analysis.Finding{{Tool: "gosec", RuleID: "G999", Fingerprint: "gone.go:G999:1"}}, rep.Findings[1:]...)
		ctxJSON, _ := json.Marshal(previous)
		scan, err := runAnalysis(t, env, workflow.SecurityScan, "ss-cmp", map[string]any{"target": url, "context": json.RawMessage(ctxJSON)}, 3*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		c := scan.Comparison
		if c == nil || c.New != 1 || c.Fixed != 1 || c.Unchanged != len(rep.Findings)-1 || c.PreviousCommit != rep.Commit {
			t.Fatalf("comparison = %+v", c)
		}
		for _, f := range scan.Findings {
			if f.New != (f.Tool+f.Fingerprint == rep.Findings[0].Tool+rep.Findings[0].Fingerprint) {
				t.Errorf("finding %s new=%v", f.Fingerprint, f.New)
			}
		}
	})

	t.Run("a failing scanner does not fail the analysis", func(t *testing.T) {
		broken := filepath.Join(parent, "broken")
		repotest.Init(t, broken)
		repotest.Commit(t, broken, "broken module", map[string]string{
			"go.mod":  "module example.com/broken\n\ngo 1.22\n\nrequire example.com/missing v1.0.0\n",
			"main.go": "package main\n\nimport _ \"example.com/missing\"\n\nfunc main() {}\n",
			"key.txt": "aws_access_key_id = " + repotest.TreeAWSKey + "\n",
		})
		rep, err := runAnalysis(t, env, workflow.CodeAnalysis, "ca-broken", map[string]string{"repository": "file://" + broken, "analysisType": "all"}, 3*time.Minute)
		if err != nil {
			t.Fatalf("the analysis failed: %v", err)
		}
		if s := scanner(rep, "gosec"); s.Status != analysis.ScannerFailed || !strings.Contains(s.Error, "could not load") {
			t.Errorf("gosec: %+v", s)
		}
		for _, name := range []string{"secrets", "metrics", "patterns"} {
			if s := scanner(rep, name); s.Status != analysis.ScannerCompleted {
				t.Errorf("%s: %+v", name, s)
			}
		}
		if len(rep.Findings) == 0 {
			t.Error("the secret was not found")
		}
	})

	t.Run("bad targets", func(t *testing.T) {
		cases := []struct{ id, body, want string }{
			{"bad-upload-pack", `{"repository":"--upload-pack=touch ` + r.Marker + `"}`, "repository: must not start with '-'"},
			{"bad-ext", `{"repository":"ext::sh -c touch% ` + r.Marker + `"}`, "repository:"},
			{"bad-proxy", `{"repository":"-oProxyCommand=touch ` + r.Marker + `"}`, "repository:"},
			{"bad-type", `{"repository":"` + url + `","analysisType":"everything"}`, "analysisType:"},
			{"bad-field", `{"repo":"` + url + `"}`, "repo: unknown field"},
		}
		for _, tc := range cases {
			body := json.RawMessage(tc.body)
			_, err := runAnalysis(t, env, workflow.CodeAnalysis, tc.id, body, 30*time.Second)
			var rerr *client.Error
			if !errors.As(err, &rerr) || rerr.Code != 400 || !strings.Contains(rerr.Message, tc.want) {
				t.Errorf("%s: %v, want a 400 with %q", tc.id, err, tc.want)
			}
		}
		start := time.Now()
		_, err := runAnalysis(t, env, workflow.CodeAnalysis, "missing-repo", map[string]string{"repository": "file://" + filepath.Join(parent, "nope")}, 30*time.Second)
		if err == nil || !strings.Contains(err.Error(), "repository not found") || time.Since(start) > 10*time.Second {
			t.Errorf("missing repository: %v after %s", err, time.Since(start))
		}
		if _, err := os.Stat(r.Marker); err == nil {
			t.Fatal("a bad target ran a command: the marker exists")
		}
	})
}

func TestLocalRepositoriesRefusedByDefault(t *testing.T) {
	t.Parallel()
	env := stacktest.Start(t, stacktest.Options{MaxRepoMB: 1})
	_, err := runAnalysis(t, env, workflow.SecurityScan, "no-local", map[string]string{"target": "file:///etc"}, 30*time.Second)
	var rerr *client.Error
	if !errors.As(err, &rerr) || rerr.Code != 400 || !strings.Contains(rerr.Message, "local repositories are not allowed") {
		t.Errorf("file:///etc: %v", err)
	}
}

func TestAnalysisSurvivesKill9AndLostCheckout(t *testing.T) {
	t.Parallel()
	fake := llmtest.New(llmtest.Behavior{})
	defer fake.Close()
	env := analysisStack(t, fake)
	r := repotest.Build(t, t.TempDir())
	url := "file://" + r.Dir
	ref, err := runAnalysis(t, env, workflow.CodeAnalysis, "ref", map[string]string{"repository": url}, 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}

	id := "ca-kill"
	fake.Set(id+"/patterns-summary", llmtest.Behavior{Latency: 5 * time.Second})
	body, _ := json.Marshal(map[string]string{"repository": url})
	if _, err := env.Client.Start(context.Background(), workflow.CodeAnalysis, id, body); err != nil {
		t.Fatal(err)
	}
	// Kill while the summary is being written: metrics and patterns are
	// journaled, secrets and gosec still to come.
	waitFor(t, 60*time.Second, func() bool { return len(fake.Attempts(id+"/patterns-summary")) > 0 })
	env.Kill(t, "service")
	if err := os.RemoveAll(env.Cfg.Path("checkouts")); err != nil {
		t.Fatal(err)
	}
	// The branch moves on: the analysis must stay on the commit it resolved.
	repotest.Commit(t, r.Dir, "later work", map[string]string{"later.go": "package main\n"})
	fake.Set(id+"/patterns-summary", llmtest.Behavior{})
	env.Up(t)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := env.Client.Attach(ctx, workflow.CodeAnalysis, id)
	if err != nil {
		t.Fatalf("analysis after kill -9: %v", err)
	}
	var rep analysis.Report
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Commit != ref.Commit {
		t.Errorf("commit %s after recovery, %s before", rep.Commit, ref.Commit)
	}
	if got, want := fingerprints(rep), fingerprints(ref); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("findings differ after recovery:\n got %v\nwant %v", got, want)
	}
	if again, _ := filepath.Glob(filepath.Join(env.Cfg.Path("checkouts"), "*-"+ref.Commit, "tree")); len(again) != 1 {
		t.Errorf("the checkout was not re-created: %v", again)
	}
}

func TestManyFindingsAreKeptInTheStore(t *testing.T) {
	t.Parallel()
	fake := llmtest.New(llmtest.Behavior{})
	defer fake.Close()
	env := analysisStack(t, fake)
	dir := filepath.Join(t.TempDir(), "leaky")
	repotest.Init(t, dir)
	const keys = 450
	var b strings.Builder
	alphabet := "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	for i := range keys {
		key := []byte("AKIA")
		for j, n := 0, i*7919+13; j < 16; j++ {
			key = append(key, alphabet[(n>>(j%5)+j*(i+3))%32])
		}
		b.WriteString("key_" + string(rune('a'+i%26)) + " = " + string(key) + "\n")
	}
	repotest.Commit(t, dir, "many keys", map[string]string{"keys.env": b.String()})

	rep, err := runAnalysis(t, env, workflow.SecurityScan, "many", map[string]string{"target": "file://" + dir}, 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	found := scanner(rep, "secrets").Findings
	if found <= 400 || len(rep.Findings) > 500 {
		t.Fatalf("secrets found %d, result carries %d: the test needs more than a step keeps", found, len(rep.Findings))
	}
	st := openStoreDB(t, env, "")
	var content []byte
	if err := st.QueryRow(`SELECT a.content FROM workflow_artifacts w JOIN artifacts a ON a.id = w.artifact_id WHERE w.workflow_id = 'many' AND w.name = 'report.json'`).Scan(&content); err != nil {
		t.Fatal(err)
	}
	var full analysis.Report
	if err := json.Unmarshal(content, &full); err != nil {
		t.Fatal(err)
	}
	if len(full.Findings) != found {
		t.Errorf("saved report has %d findings, the scanner found %d", len(full.Findings), found)
	}
}

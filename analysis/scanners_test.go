package analysis_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/ultramcp/durable/analysis"
	"github.com/ultramcp/durable/analysis/metrics"
	"github.com/ultramcp/durable/analysis/patterns"
	"github.com/ultramcp/durable/analysis/repo"
	"github.com/ultramcp/durable/analysis/sast"
	"github.com/ultramcp/durable/analysis/secrets"
	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/internal/repotest"
	"github.com/ultramcp/durable/internal/sariftest"
)

// checkout builds the test repository and checks it out through the cache.
func checkout(t *testing.T) (repotest.Repo, string, string) {
	t.Helper()
	parent := t.TempDir()
	r := repotest.Build(t, parent)
	c := &repo.Cache{Dir: filepath.Join(parent, "cache"), Policy: repo.Policy{AllowLocal: true, MaxBytes: 50 << 20, CloneTimeout: time.Minute, HistoryDepth: 50}}
	url, err := c.Policy.Validate("file://" + r.Dir)
	if err != nil {
		t.Fatal(err)
	}
	sha, branch, err := c.Policy.Resolve(context.Background(), url, "")
	if err != nil {
		t.Fatal(err)
	}
	if branch != "main" || sha != repotest.Git(t, r.Dir, "rev-parse", "HEAD") {
		t.Fatalf("resolved %s@%s", branch, sha)
	}
	dir, err := c.Ensure(context.Background(), url, sha)
	if err != nil {
		t.Fatal(err)
	}
	return r, dir, sha
}

func TestRejectsBadTargetsBeforeGitRuns(t *testing.T) {
	strict := repo.Policy{}
	cases := []string{
		"--upload-pack=touch /tmp/pwned",
		"-oProxyCommand=touch /tmp/pwned",
		"ext::sh -c touch% /tmp/pwned",
		"ext::sh",
		"fd::17",
		"file:///etc",
		"/etc",
		"ftp://example.com/x.git",
		"https://-oProxyCommand=x/y",
		"",
		"https://example.com/a b",
		"git@-oProxyCommand=x:repo",
		"ssh://-oProxyCommand=x/repo",
	}
	for _, target := range cases {
		if _, err := strict.Validate(target); fault.KindOf(err) != fault.Invalid {
			t.Errorf("Validate(%q) = %v, want an invalid-input error", target, err)
		}
	}
	for _, ok := range []string{"https://github.com/org/repo.git", "ssh://git@host/repo", "git@github.com:org/repo.git", "git://host/repo"} {
		if _, err := strict.Validate(ok); err != nil {
			t.Errorf("Validate(%q) = %v", ok, err)
		}
	}
	for _, b := range []string{"--output=/x", "a..b", "x y"} {
		if err := repo.ValidateBranch(b); err == nil {
			t.Errorf("branch %q accepted", b)
		}
	}
}

func TestMissingRepositoryFailsFast(t *testing.T) {
	p := repo.Policy{AllowLocal: true, CloneTimeout: time.Minute}
	start := time.Now()
	_, _, err := p.Resolve(context.Background(), "file://"+filepath.Join(t.TempDir(), "nope"), "")
	if fault.KindOf(err) != fault.NotFound || !strings.Contains(err.Error(), "repository not found") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s", d)
	}
	_, _, err = p.Resolve(context.Background(), "file://"+repotest.Build(t, t.TempDir()).Dir, "no-such-branch")
	if fault.KindOf(err) != fault.NotFound {
		t.Errorf("missing branch: %v", err)
	}
}

func TestOverLimitRepositoryStops(t *testing.T) {
	parent := t.TempDir()
	r := repotest.Build(t, parent)
	repotest.Commit(t, r.Dir, "big", map[string]string{"big.txt": strings.Repeat("0123456789abcdef\n", 64<<10)})
	c := &repo.Cache{Dir: filepath.Join(parent, "cache"), Policy: repo.Policy{AllowLocal: true, MaxBytes: 256 << 10, CloneTimeout: time.Minute, HistoryDepth: 5}}
	sha := repotest.Git(t, r.Dir, "rev-parse", "HEAD")
	_, err := c.Ensure(context.Background(), "file://"+r.Dir, sha)
	if fault.KindOf(err) != fault.Invalid || !strings.Contains(err.Error(), "repository too large") {
		t.Fatalf("err = %v", err)
	}
	if entries, _ := filepath.Glob(filepath.Join(c.Dir, "*"+sha+"*")); len(entries) > 0 {
		t.Errorf("a partial checkout was left behind: %v", entries)
	}
}

func TestSecretsInTreeAndHistoryAreFoundRedacted(t *testing.T) {
	_, dir, _ := checkout(t)
	found, err := secrets.Scan(context.Background(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(found)
	for _, secret := range []string{repotest.TreeAWSKey, repotest.TreeGitHubPAT, repotest.HistoryAWSKey} {
		if strings.Contains(string(raw), secret) || strings.Contains(string(raw), secret[4:]) {
			t.Errorf("secret %s… appears unredacted", secret[:4])
		}
	}
	var tree, history, pat bool
	for _, f := range found {
		switch {
		case f.File == "config/creds.env" && f.Commit == "" && f.RuleID == "aws-access-token":
			tree = true
		case f.File == "config/creds.env" && strings.Contains(f.RuleID, "github"):
			pat = true
		case f.File == "old/deploy.env" && f.Commit != "":
			history = true
		}
		if !strings.Contains(f.Excerpt, "****") {
			t.Errorf("excerpt %q is not redacted", f.Excerpt)
		}
	}
	if !tree || !pat || !history {
		t.Errorf("tree AWS key %v, tree GitHub token %v, removed key in history %v; findings: %s", tree, pat, history, raw)
	}
}

func TestGosecFindsTheVulnerableCode(t *testing.T) {
	r, dir, _ := checkout(t)
	found, err := sast.Scan(context.Background(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	rules := map[string]bool{}
	for _, f := range found {
		rules[f.RuleID] = true
		if f.File != "main.go" || f.Line == 0 {
			t.Errorf("finding without a location: %+v", f)
		}
	}
	for _, want := range []string{"G202", "G204", "G401", "G501"} { // SQL concat, exec with input, MD5 (use, import)
		if !rules[want] {
			t.Errorf("gosec did not report %s; got %v", want, rules)
		}
	}
	if _, err := os.Stat(r.Marker); err == nil {
		t.Fatal("analysis ran code from the repository: the marker exists")
	}
}

func TestGosecFailsOnUnresolvableModule(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/broken\n\ngo 1.22\n\nrequire example.com/missing v1.0.0\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nimport _ \"example.com/missing\"\n\nfunc main() {}\n"), 0o644)
	_, err := sast.Scan(context.Background(), dir, nil)
	if err == nil || fault.IsRetryable(err) || !strings.Contains(err.Error(), "could not load") {
		t.Fatalf("err = %v", err)
	}
}

func TestMetricsMatchScc(t *testing.T) {
	_, dir, _ := checkout(t)
	m, err := metrics.Measure(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("go", "tool", "scc", "--format", "json", "--no-cocomo", dir).Output()
	if err != nil {
		t.Fatalf("go tool scc: %v", err)
	}
	var want []struct {
		Name    string
		Count   int64
		Lines   int64
		Code    int64
		Comment int64
		Blank   int64
	}
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatal(err)
	}
	got := map[string]analysis.LanguageStats{}
	for _, l := range m.Languages {
		got[l.Name] = l
	}
	if len(want) < 4 || len(got) != len(want) {
		t.Errorf("languages: scc %d %+v, ours %d %+v", len(want), want, len(got), m.Languages)
	}
	for _, w := range want {
		g := got[w.Name]
		if g.Files != w.Count || g.Lines != w.Lines || g.Code != w.Code || g.Comment != w.Comment || g.Blank != w.Blank {
			t.Errorf("%s: ours %+v, scc %+v", w.Name, g, w)
		}
	}
	if len(m.Functions) == 0 || m.TestLines == 0 || m.TestRatio <= 0 {
		t.Errorf("functions %d, test lines %d, ratio %v", len(m.Functions), m.TestLines, m.TestRatio)
	}
}

func TestPatterns(t *testing.T) {
	_, dir, _ := checkout(t)
	p, err := patterns.Detect(context.Background(), dir, []string{"Go"})
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(p.BuildSystems, ",") + "|" + strings.Join(p.Frameworks, ",") + "|" + strings.Join(p.Layers, ",")
	for _, want := range []string{"Go modules", "Make", "npm", "Express", "internal", "web"} {
		if !strings.Contains(joined, want) {
			t.Errorf("patterns lack %q: %s", want, joined)
		}
	}
}

func TestSARIFValidatesAgainstTheOfficialSchema(t *testing.T) {
	_, dir, sha := checkout(t)
	fs, err := secrets.Scan(context.Background(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	gs, err := sast.Scan(context.Background(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	rep := analysis.Report{ID: "a1", Repository: "file:///app", Branch: "main", Commit: sha, AnalysisType: "security",
		Findings: append(fs, gs...), Scanners: []analysis.ScannerRun{{Name: "secrets", Status: "completed"}, {Name: "gosec", Status: "failed", Error: "boom"}}}
	rep.Finish()
	raw, err := rep.SARIF()
	if err != nil {
		t.Fatal(err)
	}
	schema := sariftest.Schema(t)
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	if err := schema.Validate(inst); err != nil {
		t.Fatalf("SARIF does not validate: %v", err)
	}
	// And the schema does catch a broken log.
	broken, _ := jsonschema.UnmarshalJSON(strings.NewReader(`{"version":"2.1.0","runs":[{"results":[]}]}`))
	if schema.Validate(broken) == nil {
		t.Error("the schema accepted a run without a tool")
	}
	var log struct {
		Runs []struct {
			Tool struct {
				Driver struct {
					Name, Version string
					Rules         []struct {
						HelpURI    string         `json:"helpUri"`
						Properties map[string]any `json:"properties"`
					}
				}
			}
			Results            []json.RawMessage
			OriginalURIBaseIDs map[string]struct{ URI string } `json:"originalUriBaseIds"`
		}
	}
	json.Unmarshal(raw, &log)
	if len(log.Runs) != 2 || len(log.Runs[0].Results)+len(log.Runs[1].Results) != len(rep.Findings) {
		t.Errorf("runs %d; results must equal findings (%d)", len(log.Runs), len(rep.Findings))
	}
	for _, run := range log.Runs {
		d := run.Tool.Driver
		// (The tools' versions come from the binary's build info, which a
		// test binary lacks: the end-to-end SARIF test checks them.)
		if run.OriginalURIBaseIDs["SRCROOT"].URI != "file:///app/" {
			t.Errorf("%s: root %+v", d.Name, run.OriginalURIBaseIDs)
		}
		for _, rule := range d.Rules {
			if rule.HelpURI == "" || rule.Properties["security-severity"] == nil {
				t.Errorf("%s rule without help or security-severity: %+v", d.Name, rule)
			}
		}
	}
	if md := rep.Markdown(); !strings.Contains(md, "## Security findings") || strings.Contains(md, repotest.TreeAWSKey) {
		t.Errorf("markdown:\n%s", md)
	}
}

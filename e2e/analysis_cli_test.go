package e2e

import (
	"bytes"
	"encoding/json"
	"github.com/ultramcp/durable/internal/sariftest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ultramcp/durable/internal/repotest"
	"github.com/ultramcp/durable/internal/stacktest"
)

func TestCLIAnalysis(t *testing.T) {
	t.Parallel()
	env := stacktest.Start(t, stacktest.Options{AllowLocalRepos: true})
	c := cli{t: t, bin: stacktest.Binary(t), env: []string{
		"ULTRAMCP_HOME=" + env.Cfg.Home,
		"ULTRAMCP_SERVICE_ADDR=" + env.Cfg.ServiceAddr,
		"ULTRAMCP_ALLOW_LOCAL_REPOS=true",
	}}
	r := repotest.Build(t, t.TempDir())

	out := c.must("run", "code-analysis", "--id", "cli-ca", "--repository", r.Dir, "--analysis-type", "all", "--follow")
	for _, want := range []string{"# all analysis of", "## Security findings", "aws-access-token", "AKIA****", "## Quality", "| Go |", "## Structure", "simulated"} {
		if !strings.Contains(out, want) {
			t.Errorf("code-analysis --follow lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, repotest.TreeAWSKey) {
		t.Error("a secret was printed in full")
	}
	sarif := c.must("result", "cli-ca", "--format", "sarif")
	var log struct {
		Version string `json:"version"`
		Runs    []struct {
			Results []json.RawMessage `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal([]byte(sarif), &log); err != nil || log.Version != "2.1.0" || len(log.Runs) != 3 {
		t.Errorf("result --format sarif: %v\n%s", err, sarif[:min(len(sarif), 500)])
	}
	if out := c.must("result", "cli-ca", "--format", "json"); !strings.Contains(out, `"commit":"`) {
		t.Errorf("result --format json:\n%.300s", out)
	}
	if out, err := c.run("result", "cli-ca", "--format", "pdf"); err == nil || !strings.Contains(out, "format") {
		t.Errorf("an unknown format was accepted: %s", out)
	}

	out = c.must("run", "security-scan", "--id", "cli-ss", "--target", r.Dir, "--follow", "--format", "sarif")
	if !strings.Contains(out, `"ruleId": "G204"`) || !strings.Contains(out, `"version": "2.1.0"`) {
		t.Errorf("security-scan --format sarif:\n%.500s", out)
	}
	if out, err := c.run("run", "code-analysis", "--repository", "--upload-pack=touch "+r.Marker); err == nil || !strings.Contains(out, "repository:") {
		t.Errorf("an injected repository was accepted: %s", out)
	}
	if out := c.must("list", "--workflow", "code-analysis"); !strings.Contains(out, "cli-ca") || !strings.Contains(out, "completed") {
		t.Errorf("list:\n%s", out)
	}
	if _, err := os.Stat(r.Marker); err == nil {
		t.Fatal("the marker exists")
	}

	// purge removes checkouts last used before the cutoff, and only those.
	checkouts, _ := filepath.Glob(env.Cfg.Path("checkouts", "*", ".ultramcp-complete"))
	if len(checkouts) != 1 {
		t.Fatalf("checkouts: %d, want 1", len(checkouts))
	}
	old := time.Now().Add(-48 * time.Hour)
	os.Chtimes(checkouts[0], old, old)
	if out := c.must("purge", "--older-than", "1d"); !strings.Contains(out, "1 repository checkout(s)") {
		t.Errorf("purge:\n%s", out)
	}
	if left, _ := os.ReadDir(env.Cfg.Path("checkouts")); len(left) != 0 {
		t.Errorf("checkouts left after purge: %d", len(left))
	}
}

// stdout runs the CLI and returns its stdout and stderr apart.
func (c cli) stdout(args ...string) (string, string, error) {
	c.t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Env = append(os.Environ(), c.env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

// stdout carries only the report, so `> f.sarif` is a SARIF file; a scan
// whose gosec cannot resolve the module's dependencies says so in its
// first line and in status, and exits non-zero.
func TestReportOnStdoutAndIncompleteScans(t *testing.T) {
	t.Parallel()
	env := stacktest.Start(t, stacktest.Options{AllowLocalRepos: true,
		ServiceEnv: []string{"GOPROXY=off", "GOMODCACHE=" + t.TempDir()}})
	c := cliFor(t, env)
	c.env = append(c.env, "ULTRAMCP_ALLOW_LOCAL_REPOS=true")
	r := repotest.Build(t, t.TempDir())
	out, errOut, err := c.stdout("run", "security-scan", "--id", "sarif-follow", "--target", r.Dir, "--follow", "--format", "sarif")
	if err != nil {
		t.Fatalf("security-scan: %v\n%s", err, errOut)
	}
	if !strings.Contains(errOut, "started security-scan") {
		t.Errorf("the start notice is not on stderr: %q", errOut)
	}
	sariftest.Validate(t, []byte(out))
	var log struct {
		Runs []struct {
			Tool struct {
				Driver struct{ Name, Version string }
			}
		}
	}
	json.Unmarshal([]byte(out), &log)
	for _, run := range log.Runs {
		if run.Tool.Driver.Version == "" {
			t.Errorf("SARIF run of %s has no tool version", run.Tool.Driver.Name)
		}
	}
	out, _, err = c.stdout("result", "sarif-follow", "--format", "sarif")
	if err != nil {
		t.Fatal(err)
	}
	sariftest.Validate(t, []byte(out))

	proxy := repotest.GoProxy(t, map[string]map[string]string{"example.com/webkit@v1.2.0": {
		"go.mod": "module example.com/webkit\n\ngo 1.22\n", "webkit.go": "package webkit\n\nfunc Param(n string) string { return n }\n"}})
	app := filepath.Join(t.TempDir(), "app")
	repotest.Init(t, app)
	os.WriteFile(filepath.Join(app, "go.mod"), []byte("module example.com/app\n\ngo 1.22\n\nrequire example.com/webkit v1.2.0\n"), 0o644)
	os.WriteFile(filepath.Join(app, "main.go"), []byte("package main\n\nimport \"example.com/webkit\"\n\nfunc main() { println(webkit.Param(\"x\")) }\n"), 0o644)
	tidy := exec.Command("go", "mod", "tidy")
	tidy.Dir = app
	tidy.Env = append(os.Environ(), "GOPROXY="+proxy, "GOSUMDB=off", "GOFLAGS=-modcacherw", "GOMODCACHE="+t.TempDir(), "GOTOOLCHAIN=local")
	if out, err := tidy.CombinedOutput(); err != nil {
		t.Fatalf("go mod tidy: %v\n%s", err, out)
	}
	repotest.Git(t, app, "add", "-A")
	repotest.Git(t, app, "commit", "-q", "-m", "app")
	out, errOut, err = c.stdout("run", "code-analysis", "--id", "unresolvable", "--repository", app, "--follow")
	if err == nil {
		t.Errorf("run --follow exited 0 with gosec failed:\n%s", out)
	}
	first, _, _ := strings.Cut(out, "\n")
	if !strings.Contains(first, "INCOMPLETE: gosec, govulncheck failed") || !strings.Contains(first, "module dependencies not resolvable: example.com/webkit") {
		t.Errorf("first line of the report: %q", first)
	}
	if !strings.Contains(errOut, "incomplete") {
		t.Errorf("stderr does not say the scan is incomplete: %q", errOut)
	}
	status := c.must("status", "unresolvable")
	if !strings.Contains(status, "partial") || !strings.Contains(status, "gosec") {
		t.Errorf("status:\n%s", status)
	}
}

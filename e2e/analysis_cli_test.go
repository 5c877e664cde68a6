package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ultramcp/durable/analysis/repotest"
	"github.com/ultramcp/durable/stack/stacktest"
)

func TestCLIAnalysis(t *testing.T) {
	env := stacktest.Start(t, stacktest.Options{AllowLocalRepos: true})
	c := cli{t: t, bin: stacktest.Binary(t), env: []string{
		"ULTRAMCP_HOME=" + env.Cfg.Home,
		"ULTRAMCP_INGRESS_ADDR=" + env.Cfg.IngressAddr,
		"ULTRAMCP_ADMIN_ADDR=" + env.Cfg.AdminAddr,
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
	if err := json.Unmarshal([]byte(sarif), &log); err != nil || log.Version != "2.1.0" || len(log.Runs) != 2 {
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

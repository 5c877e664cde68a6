package analysis_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ultramcp/durable/analysis"
	"github.com/ultramcp/durable/analysis/patterns"
	"github.com/ultramcp/durable/analysis/sast"
	"github.com/ultramcp/durable/analysis/secrets"
	"github.com/ultramcp/durable/analysis/vulns"
	"github.com/ultramcp/durable/internal/repotest"
)

// appWithDependency is a module that needs example.com/webkit, served only
// by the proxy at proxyURL, with go.sum filled by the go command itself.
func appWithDependency(t *testing.T) (dir, proxyURL string) {
	t.Helper()
	proxyURL = repotest.GoProxy(t, map[string]map[string]string{
		"example.com/webkit@v1.2.0": {
			"go.mod":    "module example.com/webkit\n\ngo 1.22\n",
			"webkit.go": "package webkit\n\n// Param returns a request parameter.\nfunc Param(name string) string { return name }\n",
		},
	})
	dir = t.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/app\n\ngo 1.22\n\nrequire example.com/webkit v1.2.0\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "main.go"), []byte(`package main

import (
	"database/sql"
	"os/exec"

	"example.com/webkit"
)

func lookup(db *sql.DB) {
	rows, _ := db.Query("SELECT * FROM users WHERE name = '" + webkit.Param("name") + "'")
	_ = rows
}

func run() {
	_ = exec.Command("sh", "-c", webkit.Param("cmd")).Run()
}

func main() { lookup(nil); run() }
`), 0o644)
	tidy := exec.Command("go", "mod", "tidy")
	tidy.Dir = dir
	tidy.Env = append(os.Environ(), "GOPROXY="+proxyURL, "GOSUMDB=off", "GOFLAGS=-modcacherw", "GOMODCACHE="+t.TempDir(), "GOTOOLCHAIN=local")
	if out, err := tidy.CombinedOutput(); err != nil {
		t.Fatalf("go mod tidy: %v\n%s", err, out)
	}
	return dir, proxyURL
}

// gosec resolves a module's dependencies through the configured proxy
// before it loads the packages, into an empty module cache, and finds the
// planted issues; without a way to resolve them it fails saying which.
func TestGosecDownloadsDependencies(t *testing.T) {
	dir, proxyURL := appWithDependency(t)
	cache := t.TempDir()
	t.Setenv("GOMODCACHE", cache)
	t.Setenv("GOSUMDB", "off")
	t.Setenv("GOPROXY", proxyURL+",direct")
	found, err := sast.Scan(context.Background(), dir, nil)
	if err != nil {
		t.Fatalf("gosec: %v", err)
	}
	rules := map[string]bool{}
	for _, f := range found {
		rules[f.RuleID] = true
	}
	if !rules["G202"] || !rules["G204"] {
		t.Errorf("planted findings missing: %v", rules)
	}
	if _, err := os.Stat(filepath.Join(cache, "example.com", "webkit@v1.2.0", "webkit.go")); err != nil {
		t.Errorf("the dependency was not downloaded into the module cache: %v", err)
	}

	t.Setenv("GOMODCACHE", t.TempDir())
	t.Setenv("GOPROXY", "off")
	_, err = sast.Scan(context.Background(), dir, nil)
	if err == nil || !strings.Contains(err.Error(), "module dependencies not resolvable: example.com/webkit") {
		t.Errorf("offline: %v", err)
	}
}

// A finding whose code moved down ten lines is the same finding: the
// comparison calls it unchanged, not new and fixed.
func TestFingerprintsSurviveMovedCode(t *testing.T) {
	scan := func(prefix string) analysis.Report {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/m\n\ngo 1.22\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\n"+prefix+`import (
	"crypto/md5"
	"fmt"
	"os/exec"
)

func run(arg string) { _ = exec.Command("sh", "-c", arg).Run() }

func main() { fmt.Printf("%x", md5.Sum([]byte("x"))); run("x") }
`), 0o644)
		found, err := sast.Scan(context.Background(), dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		rep := analysis.Report{Findings: found}
		rep.Finish()
		return rep
	}
	before := scan("")
	after := scan(strings.Repeat("// a comment line\n", 10))
	if len(before.Findings) < 2 || before.Findings[0].Line == after.Findings[0].Line {
		t.Fatalf("the test needs findings that moved: %+v / %+v", before.Findings, after.Findings)
	}
	after.CompareWith(before)
	if c := after.Comparison; c.New != 0 || c.Fixed != 0 || c.Unchanged != len(before.Findings) {
		t.Errorf("moved code: %+v, want all unchanged", c)
	}
}

// A secret in the tree that is also in history is one finding, with both
// places.
func TestSecretInTreeAndHistoryIsOneFinding(t *testing.T) {
	_, dir, _ := checkout(t)
	found, err := secrets.Scan(context.Background(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	var matches []analysis.Finding
	for _, f := range found {
		if f.File == "config/creds.env" && f.RuleID == "aws-access-token" {
			matches = append(matches, f)
		}
	}
	if len(matches) != 1 {
		t.Fatalf("the tree's AWS key is %d findings, want 1: %+v", len(matches), matches)
	}
	if f := matches[0]; f.Commit != "" || len(f.Also) == 0 || f.Also[0].Commit == "" || f.Also[0].File != "config/creds.env" {
		t.Errorf("want the tree's place with the commit as a further location: %+v", f)
	}
}

// Frameworks are what the code imports, not what go.mod requires on
// behalf of a dependency.
func TestFrameworksFromImports(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/web\n\ngo 1.22\n\nrequire (\n\tgithub.com/go-chi/chi/v5 v5.0.0\n\tgithub.com/gin-gonic/gin v1.6.3 // indirect\n)\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nimport \"github.com/go-chi/chi/v5\"\n\nvar _ = chi.NewRouter\n"), 0o644)
	p, err := patterns.Detect(context.Background(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(p.Frameworks, ",") != "chi" {
		t.Errorf("frameworks = %v, want [chi]", p.Frameworks)
	}
}

// vulnDB writes a vulnerability database holding one entry: example.com/
// webkit before v1.3.0, whose Param is vulnerable. govulncheck reads a
// directory of OSV files as a database.
func vulnDB(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	entry := `{"schema_version":"1.3.1","id":"GO-2099-0001","modified":"2024-01-01T00:00:00Z","published":"2024-01-01T00:00:00Z",
"aliases":["CVE-2099-12345","GHSA-abcd-efgh-ijkl"],"summary":"Injection through Param in example.com/webkit",
"details":"Param does not escape its input.",
"affected":[{"package":{"name":"example.com/webkit","ecosystem":"Go"},
  "ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.3.0"}]}],
  "ecosystem_specific":{"imports":[{"path":"example.com/webkit","symbols":["Param"]}]}}],
"database_specific":{"url":"https://pkg.go.dev/vuln/GO-2099-0001"}}`
	if err := os.WriteFile(filepath.Join(dir, "GO-2099-0001.json"), []byte(entry), 0o644); err != nil {
		t.Fatal(err)
	}
	return "file://" + dir
}

// govulncheck reports the vulnerable dependency as reachable, with the
// call path, the fixed version and the upgrade to make.
func TestVulnerableDependencyReachable(t *testing.T) {
	dir, proxyURL := appWithDependency(t)
	t.Setenv("GOMODCACHE", t.TempDir())
	t.Setenv("GOSUMDB", "off")
	t.Setenv("GOPROXY", proxyURL)
	found, err := vulns.Scan(context.Background(), dir, vulnDB(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 {
		t.Fatalf("findings %+v, want one", found)
	}
	f := found[0]
	if f.RuleID != "GO-2099-0001" || !f.Reachable || f.FixedVersion != "v1.3.0" || f.Module != "example.com/webkit" || f.Version != "v1.2.0" {
		t.Errorf("finding %+v", f)
	}
	if f.File != "main.go" || f.Line == 0 || len(f.Trace) < 2 || !strings.Contains(f.Excerpt, "go get example.com/webkit@v1.3.0") || !strings.Contains(f.Excerpt, "CVE-2099-12345") {
		t.Errorf("location %s:%d, trace %v, excerpt %q", f.File, f.Line, f.Trace, f.Excerpt)
	}
}

package analysis_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ultramcp/durable/analysis/repotest"
	"github.com/ultramcp/durable/analysis/sast"
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

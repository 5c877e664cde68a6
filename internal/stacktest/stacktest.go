// Package stacktest starts real UltraMCP stacks for tests: the ultramcp
// binary built from this checkout, a real restate-server on free loopback
// ports, and the workflow service as its own process, so tests can kill -9
// either one. Every process is stopped when the test ends, pass or fail.
package stacktest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ultramcp/durable/client"
	"github.com/ultramcp/durable/config"
	"github.com/ultramcp/durable/stack"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// ModuleRoot returns the directory of go.mod.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// Binary builds bin/ultramcp from this checkout once per test process.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		root := ModuleRoot(t)
		dir, err := os.MkdirTemp("", "ultramcp-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "ultramcp")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/ultramcp")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = &buildError{out: string(out), err: err}
		}
	})
	if buildErr != nil {
		t.Fatalf("build ultramcp: %v", buildErr)
	}
	return binPath
}

type buildError struct {
	out string
	err error
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }

// RestateServer returns the pinned restate-server binary; it fails the
// test when `make setup` has not installed it, and skips it under -short,
// the fast suite that starts no server.
func RestateServer(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts restate-server: not in the short suite (make test-short)")
	}
	root := ModuleRoot(t)
	cfg := config.Default()
	cfg.RestateServerBin = os.Getenv("ULTRAMCP_RESTATE_SERVER")
	if cfg.RestateServerBin == "" {
		p := filepath.Join(root, "node_modules/@restatedev/restate-server-linux-x64/bin/restate-server")
		if _, err := os.Stat(p); err == nil {
			cfg.RestateServerBin = p
		}
	}
	bin, err := stack.RestateServerBin(cfg)
	if err != nil {
		t.Fatalf("restate-server: %v (run `make setup`)", err)
	}
	return bin
}

// Env is one running stack.
type Env struct {
	Stack  *stack.Stack
	Cfg    config.Config
	Client *client.Client
	Log    *bytes.Buffer
}

// Options of Start.
type Options struct {
	LLM         string   // default provider of the service; "" is offline
	DatabaseURL string   // PostgreSQL for the store; "" is SQLite in the state dir
	ServiceEnv  []string // extra environment of the service process
	// RestateOnly starts restate-server but not the service.
	RestateOnly bool
	// AllowLocalRepos lets analyses read local repositories.
	AllowLocalRepos bool
	// MaxRepoMB overrides the checkout size limit.
	MaxRepoMB int64
	// RepoHosts are the repository hosts allowed (ULTRAMCP_REPO_HOSTS).
	RepoHosts []string
	// VulnDB is govulncheck's database; "" is an empty local one, since
	// tests reach no site but the package registries.
	VulnDB string
	// Jaeger, if set, is the Jaeger binary the stack runs (up
	// --with-jaeger) on free ports, its spans sent at once (see Jaeger).
	Jaeger string
}

// Jaeger returns the pinned Jaeger that `make jaeger` builds under the
// module root. A test run without it skips, saying so, unless
// ULTRAMCP_TEST_TRACING=1 (make test-tracing, which CI runs) says it must
// be there.
func Jaeger(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(ModuleRoot(t), ".cache", "jaeger", "jaeger-"+stack.JaegerVersion)
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("ULTRAMCP_TEST_TRACING") == "1" {
			t.Fatalf("Jaeger is not built at %s: make test-tracing builds it first", bin)
		}
		t.Skip("Jaeger is not built (make jaeger, or make test-tracing runs these tests)")
	}
	return bin
}

// Home returns a new state dir, removed when the test ends, with a path
// short enough for Restate's unix sockets: t.TempDir's path carries the
// test's name, which can take a socket's path past the 107 bytes allowed.
func Home(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "um-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// Start brings a stack up in a temporary state dir; it is stopped with
// every process it started when the test ends.
func Start(t testing.TB, o Options) *Env {
	t.Helper()
	home := Home(t)
	cfg, err := stack.EphemeralConfig(home)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RestateServerBin = RestateServer(t)
	if o.LLM != "" {
		cfg.LLM = o.LLM
	}
	cfg.DatabaseURL = o.DatabaseURL
	cfg.AllowLocalRepos = o.AllowLocalRepos
	if o.MaxRepoMB > 0 {
		cfg.MaxRepoMB = o.MaxRepoMB
	}
	cfg.RepoHosts = o.RepoHosts
	cfg.VulnDB = o.VulnDB
	if cfg.VulnDB == "" {
		empty := filepath.Join(home, "empty-vulndb")
		if err := os.MkdirAll(empty, 0o700); err != nil {
			t.Fatal(err)
		}
		cfg.VulnDB = "file://" + empty
	}
	if o.Jaeger != "" {
		cfg.WithJaeger, cfg.JaegerBin = true, o.Jaeger
		for _, addr := range []*string{&cfg.JaegerAddr, &cfg.JaegerOTLPAddr} {
			if *addr, err = stack.FreeAddr(); err != nil {
				t.Fatal(err)
			}
		}
		// Spans leave the service at once, not in 5 s batches: the tests
		// wait for them.
		o.ServiceEnv = append(o.ServiceEnv, "OTEL_BSP_SCHEDULE_DELAY=50")
	}
	var log bytes.Buffer
	s := stack.New(cfg, Binary(t), &log)
	s.ServiceEnv = o.ServiceEnv
	env := &Env{Stack: s, Cfg: cfg, Client: client.ForStack(cfg), Log: &log}
	t.Cleanup(func() {
		if t.Failed() {
			rs, _ := s.Restate()
			t.Logf("stack log:\n%s\nservice log tail:\n%s\nrestate log tail:\n%s", log.String(), s.Service().Tail(40), rs.Tail(20))
		}
		_ = s.Stop()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if o.RestateOnly {
		_, err = s.StartRestate(ctx)
	} else {
		err = s.Up(ctx)
	}
	if err != nil {
		t.Fatalf("stack up: %v\n%s", err, log.String())
	}
	return env
}

// Up runs `up` again: it brings back whatever died.
func (e *Env) Up(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := e.Stack.Up(ctx); err != nil {
		t.Fatalf("stack up again: %v", err)
	}
}

// Kill sends SIGKILL to the named component: "service" or "restate-server".
func (e *Env) Kill(t testing.TB, component string) {
	t.Helper()
	p := e.Stack.Service()
	if component == "restate-server" {
		var err error
		if p, err = e.Stack.Restate(); err != nil {
			t.Fatal(err)
		}
	}
	pid, ok := p.PID()
	if !ok {
		t.Fatalf("%s is not running", component)
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	// Wait until it is gone, so the next Up sees it dead.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, alive := p.PID(); !alive {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s (pid %d) survived SIGKILL", component, pid)
}

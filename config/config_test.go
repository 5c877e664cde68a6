package config

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ultramcp/durable/fault"
)

var update = flag.Bool("update", false, "rewrite README.md's table of settings")

func TestParseAge(t *testing.T) {
	cases := map[string]time.Duration{
		"30d": 30 * 24 * time.Hour, "12h": 12 * time.Hour, "1d12h": 36 * time.Hour, "90m": 90 * time.Minute, " 2d ": 48 * time.Hour,
	}
	for in, want := range cases {
		if got, err := ParseAge(in); err != nil || got != want {
			t.Errorf("ParseAge(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "d", "xd", "30", "1.5d", "soon", "-3d"} {
		if _, err := ParseAge(bad); err == nil && bad != "" {
			t.Errorf("ParseAge(%q) accepted", bad)
		}
	}
}

func TestValidateNamesTheField(t *testing.T) {
	cases := []struct {
		mutate func(*Config)
		field  string
	}{
		{func(c *Config) { c.ServiceAddr = "nonsense" }, "ULTRAMCP_SERVICE_ADDR"},
		{func(c *Config) { c.LLM = "gpt" }, "ULTRAMCP_LLM"},
		{func(c *Config) { c.LLM = "anthropic" }, "ANTHROPIC_API_KEY"},
		{func(c *Config) { c.DatabaseURL = "mysql://x" }, "ULTRAMCP_DATABASE_URL"},
		{func(c *Config) { c.LLMCallTimeout = 20 * time.Minute }, "ULTRAMCP_LLM_TIMEOUT"},
		{func(c *Config) { c.Retention = time.Minute }, "ULTRAMCP_RETENTION"},
		{func(c *Config) { c.MaxRepoMB = 0 }, "ULTRAMCP_MAX_REPO_MB"},
		{func(c *Config) { c.Home = "" }, "ULTRAMCP_HOME"},
		{func(c *Config) { c.APIAddr = "0.0.0.0:8081" }, "ULTRAMCP_API_ADDR"},
		{func(c *Config) { c.ServiceAddr = "10.0.0.5:9080" }, "ULTRAMCP_SERVICE_ADDR"},
		{func(c *Config) { c.Home = "/tmp/" + strings.Repeat("h", 90) }, "ULTRAMCP_HOME"},
		{func(c *Config) { c.MaxCacheMB = 10 }, "ULTRAMCP_MAX_CACHE_MB"},
		{func(c *Config) { c.RepoHosts = []string{"user@host"} }, "ULTRAMCP_REPO_HOSTS"},
	}
	for _, tc := range cases {
		c := Default()
		tc.mutate(&c)
		err := c.Validate()
		if fault.FieldOf(err) != tc.field {
			t.Errorf("want an error naming %s, got %v", tc.field, err)
		}
	}
	c := Default()
	c.ServiceAddr = ":9999"
	if err := c.Validate(); err != nil || c.ServiceAddr != "127.0.0.1:9999" || !strings.HasPrefix(c.Home, "/") {
		t.Errorf("defaults: %v %s %s", err, c.ServiceAddr, c.Home)
	}
}

func TestFromEnv(t *testing.T) {
	t.Setenv("ULTRAMCP_HOME", "/tmp/x")
	t.Setenv("ULTRAMCP_RETENTION", "30d")
	t.Setenv("ULTRAMCP_ALLOW_LOCAL_REPOS", "true")
	t.Setenv("OPENAI_API_KEY", "sk-1")
	c := FromEnv()
	if c.Home != "/tmp/x" || c.Retention != 30*24*time.Hour || !c.AllowLocalRepos || c.OpenAIAPIKey != "sk-1" {
		t.Errorf("FromEnv = %+v", c)
	}
	if strings.Contains(c.String(), "sk-1") {
		t.Error("String() shows the API key")
	}
}

func TestRemoteAddressesNeedAllowRemote(t *testing.T) {
	c := Default()
	c.APIAddr, c.AllowRemote = "0.0.0.0:8081", true
	// Beyond loopback the API needs a token.
	if err := c.Validate(); fault.FieldOf(err) != "ULTRAMCP_API_TOKEN" {
		t.Errorf("an API beyond loopback without a token: %v, want refused naming ULTRAMCP_API_TOKEN", err)
	}
	c.APIToken = "t0ken"
	if err := c.Validate(); err != nil {
		t.Errorf("with ULTRAMCP_ALLOW_REMOTE and a token: %v", err)
	}
	t.Setenv("ULTRAMCP_REPO_HOSTS", "git.internal.example, 127.0.0.2,")
	if got := FromEnv().RepoHosts; len(got) != 2 || got[0] != "git.internal.example" || got[1] != "127.0.0.2" {
		t.Errorf("RepoHosts = %q", got)
	}
}

func TestPrepareHome(t *testing.T) {
	c := Default()
	c.Home = filepath.Join(t.TempDir(), "state")
	if err := c.PrepareHome(); err != nil {
		t.Fatal(err)
	}
	if info, _ := os.Stat(c.Home); info.Mode().Perm() != 0o700 {
		t.Errorf("new state dir mode %v, want 0700", info.Mode().Perm())
	}
	os.Chmod(c.Home, 0o755)
	os.WriteFile(filepath.Join(c.Home, "ultramcp.db"), nil, 0o644)
	if err := c.PrepareHome(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{c.Home, filepath.Join(c.Home, "ultramcp.db")} {
		if info, _ := os.Stat(p); info.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s mode %v: group or others keep access", p, info.Mode().Perm())
		}
	}
	if os.Getuid() == 0 {
		other := filepath.Join(t.TempDir(), "theirs")
		os.Mkdir(other, 0o700)
		if err := os.Chown(other, 12345, 12345); err != nil {
			t.Skip(err)
		}
		c.Home = other
		if err := c.PrepareHome(); fault.FieldOf(err) != "ULTRAMCP_HOME" {
			t.Errorf("a state dir owned by another user: %v", err)
		}
	}
}

// Environ writes every setting: a child process started with it (the
// service) has the configuration of the CLI that started it, flags
// included.
func TestEnvironRoundTrips(t *testing.T) {
	c := Default()
	c.Home, c.ServiceAddr, c.APIAddr = "/tmp/h", "127.0.0.1:4", "127.0.0.1:5"
	c.DatabaseURL, c.LLM, c.Model = "postgres://x/y", "openai", "some-model"
	c.OpenAIBaseURL, c.AnthropicBaseURL, c.LLMCallTimeout = "http://o", "http://a", 3*time.Minute
	c.AllowLocalRepos, c.RepoHosts, c.MaxRepoMB, c.CloneTimeout = true, []string{"git.example", "127.0.0.2"}, 7, time.Minute
	c.MaxCacheMB, c.AnalysisSlots, c.VulnDB = 9, 3, "file:///db"
	c.StoreRetryCap, c.StopGrace, c.ReconcileInterval, c.AllowRemote = time.Second, 2*time.Second, 3*time.Second, true
	c.Retention, c.RestateServerBin, c.RestateCLIBin = 48*time.Hour, "/rs", "/rc"
	for _, kv := range c.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	got := FromEnv()
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", c) {
		t.Errorf("FromEnv(Environ()) =\n%+v\nwant\n%+v", got, c)
	}
}

// Restate's ingress, admin API and node port have no TCP address any more:
// a variable that would set one is refused by name, with or without
// ULTRAMCP_ALLOW_REMOTE, rather than ignored.
func TestEngineAddressesAreRefused(t *testing.T) {
	for _, name := range RemovedAddrVars {
		for _, remote := range []string{"false", "true"} {
			t.Setenv(name, "0.0.0.0:8080")
			t.Setenv("ULTRAMCP_ALLOW_REMOTE", remote)
			c := FromEnv()
			c.Home = t.TempDir()
			if err := c.Validate(); fault.FieldOf(err) != name {
				t.Errorf("%s with ULTRAMCP_ALLOW_REMOTE=%s: %v", name, remote, err)
			}
			os.Unsetenv(name)
		}
	}
	c := Default()
	c.Home = "/tmp/h"
	if !strings.HasPrefix(c.IngressSocket(), "/tmp/h/") || !strings.HasSuffix(c.AdminSocket(), "admin.sock") {
		t.Errorf("sockets %s %s", c.IngressSocket(), c.AdminSocket())
	}
}

// The addresses up recorded in a state dir are used unless the environment
// or a flag gives others.
func TestRecordedAddresses(t *testing.T) {
	c := Default()
	c.Home = t.TempDir()
	c.ServiceAddr, c.APIAddr = "127.0.0.1:23001", "127.0.0.1:23002"
	if err := c.Record(); err != nil {
		t.Fatal(err)
	}
	fresh := Default()
	fresh.Home = c.Home
	fresh.UseRecorded(func(string) bool { return false })
	if fresh.ServiceAddr != c.ServiceAddr || fresh.APIAddr != c.APIAddr {
		t.Errorf("recorded not used: %s %s", fresh.ServiceAddr, fresh.APIAddr)
	}
	t.Setenv("ULTRAMCP_API_ADDR", "127.0.0.1:23009")
	fresh = FromEnv()
	fresh.Home = c.Home
	fresh.UseRecorded(func(v string) bool { return v == "ULTRAMCP_SERVICE_ADDR" })
	if fresh.APIAddr != "127.0.0.1:23009" || fresh.ServiceAddr != Default().ServiceAddr {
		t.Errorf("the environment and the flag must win: %s %s", fresh.ServiceAddr, fresh.APIAddr)
	}
}

// Every setting of the table, given a bad value in the environment, stops
// Validate with an error naming it and saying what it accepts. A setting
// added to the table without a bad value here fails the test.
func TestEveryBadSettingIsNamed(t *testing.T) {
	bad := map[string]string{
		"ULTRAMCP_HOME":               "/tmp/" + strings.Repeat("h", 100),
		"ULTRAMCP_SERVICE_ADDR":       "localhost",
		"ULTRAMCP_API_ADDR":           "127.0.0.1:http-ish",
		"ULTRAMCP_API_TOKEN":          "two words",
		"ULTRAMCP_API_HOSTS":          "user@host",
		"ULTRAMCP_API_ORIGINS":        "app.example.com",
		"ULTRAMCP_API_RATE":           "fast",
		"ULTRAMCP_MAX_COST":           "-1",
		"ULTRAMCP_API_MAX_OPEN":       "0",
		"ULTRAMCP_DATABASE_URL":       "mysql://db",
		"ULTRAMCP_RETENTION":          "forever",
		"ULTRAMCP_ALLOW_LOCAL_REPOS":  "maybe",
		"ULTRAMCP_REPO_HOSTS":         "-oProxyCommand",
		"ULTRAMCP_MAX_REPO_MB":        "5GB",
		"ULTRAMCP_CLONE_TIMEOUT":      "300",
		"ULTRAMCP_MAX_CACHE_MB":       "10",
		"ULTRAMCP_ANALYSIS_SLOTS":     "many",
		"ULTRAMCP_VULNDB":             "vuln.go.dev",
		"ULTRAMCP_ALLOW_REMOTE":       "yes please",
		"ULTRAMCP_STORE_RETRY_CAP":    "1h",
		"ULTRAMCP_STOP_GRACE":         "-1s",
		"ULTRAMCP_RECONCILE_INTERVAL": "1ms",
		"ULTRAMCP_LLM":                "gpt",
		"ULTRAMCP_MODEL":              "gpt 4\n",
		"OPENAI_BASE_URL":             "api.openai.com",
		"OPENAI_API_KEY":              "sk-1\r\nX-Injected: 1",
		"ANTHROPIC_BASE_URL":          "ftp://anthropic",
		"ANTHROPIC_API_KEY":           "sk ant",
		"ULTRAMCP_LLM_TIMEOUT":        "30",
		"OTEL_EXPORTER_OTLP_ENDPOINT": "127.0.0.1:4318",
		"ULTRAMCP_TRACE_CONTENT":      "sometimes",
		"ULTRAMCP_JAEGER_ADDR":        "0.0.0.0:16686",
		"ULTRAMCP_JAEGER_OTLP_ADDR":   "4318",
		"ULTRAMCP_JAEGER_MAX_MB":      "1",
		"ULTRAMCP_JAEGER":             "/nonexistent/jaeger",
		"ULTRAMCP_LIMITS":             "openai rpm=lots",
		"ULTRAMCP_RESTATE_SERVER":     "/nonexistent/restate-server",
		"ULTRAMCP_RESTATE_CLI":        t.TempDir(),
	}
	for _, s := range Settings {
		v, ok := bad[s.Name]
		if !ok {
			t.Errorf("%s has no bad value in this test", s.Name)
			continue
		}
		t.Run(s.Name, func(t *testing.T) {
			t.Setenv(s.Name, v)
			c := FromEnv()
			if s.Name != "ULTRAMCP_HOME" {
				c.Home = t.TempDir()
			}
			err := c.Validate()
			if fault.FieldOf(err) != s.Name {
				t.Fatalf("%s=%q: %v, want an error naming %s", s.Name, v, err, s.Name)
			}
			if msg := err.Error(); !strings.Contains(msg, "must") && !strings.Contains(msg, "want") && !strings.Contains(msg, "not") && !strings.Contains(msg, "required") {
				t.Errorf("%s=%q: %q does not say what it accepts", s.Name, v, msg)
			}
		})
	}
	if len(bad) != len(Settings) {
		t.Errorf("%d bad values for %d settings: one names a setting that is gone", len(bad), len(Settings))
	}
}

// The README's table of variables is the settings table; go test
// ./config -update rewrites it.
func TestReadmeTableIsTheSettings(t *testing.T) {
	const begin, end = "<!-- settings: begin -->\n", "<!-- settings: end -->"
	path := filepath.Join("..", "README.md")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatalf("README.md has no %q … %q section", begin, end)
	}
	want := s[:i+len(begin)] + Markdown() + s[j:]
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if s != want {
		t.Errorf("README.md's table of settings differs from config.Settings; run go test ./config -update")
	}
}

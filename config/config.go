// Package config is UltraMCP's one configuration: defaults, then ULTRAMCP_*
// and provider environment variables, then flags (bound by the CLI), then
// Validate. Every address and path can be changed, so that tests run whole
// stacks on free ports side by side. Restate's ingress and admin API have no
// address to set: they listen on unix sockets inside the state dir, out of
// reach of browsers and other local users (see IngressSocket).
package config

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/limits"
)

// Config is the whole configuration. API keys live here, on the service
// side; they never enter workflow inputs, journals or logs.
type Config struct {
	Home        string // state dir: pid files, logs, Restate data, keys, SQLite file
	ServiceAddr string // our workflow service, registered with Restate
	APIAddr     string // UltraMCP API, MCP and dashboard
	DatabaseURL string // postgres://… selects PostgreSQL; "" means SQLite in Home

	LLM   string // default provider: offline, openai, anthropic
	Model string // default model for that provider

	OpenAIBaseURL    string
	OpenAIAPIKey     string
	AnthropicBaseURL string
	AnthropicAPIKey  string

	// LLMCallTimeout bounds one provider call; it must stay below the
	// workflow services' abort timeout.
	LLMCallTimeout time.Duration

	// AllowLocalRepos lets analyses read local paths and file:// URLs
	// (off by default: a service should not read its host's files).
	AllowLocalRepos bool
	// RepoHosts are the repository hosts allowed although internal
	// (loopback, private, link-local); when set, only they are allowed.
	RepoHosts []string
	// MaxRepoMB bounds a checkout; CloneTimeout bounds one fetch.
	MaxRepoMB    int64
	CloneTimeout time.Duration
	// MaxCacheMB bounds the checkout cache; the least recently used
	// checkouts go first.
	MaxCacheMB int64
	// AnalysisSlots is how many checkouts and scans a service runs at once.
	AnalysisSlots int
	// VulnDB is govulncheck's vulnerability database (a URL, or file://
	// for a local copy); "" is the local copy in the state dir if `ultramcp
	// vulndb update` made one, else vuln.go.dev.
	VulnDB string

	// StoreRetryCap is the longest wait between two attempts of a store
	// write; writes retry until the store is back, however long.
	StoreRetryCap time.Duration
	// ReconcileInterval is how often the service brings the store in line
	// with Restate (killed, paused, vanished invocations).
	ReconcileInterval time.Duration
	// StopGrace is how long a stopping service waits for running steps to
	// finish and be journaled.
	StopGrace time.Duration

	// AllowRemote lets the service and API addresses be other than
	// loopback: without it every listener stays on this machine. It never
	// opens the engine's ports: Restate's ingress and admin API have no
	// auth, so they stay on unix sockets whatever it says (the API, with
	// its token, and the service, whose requests Restate signs, are what
	// may face a network).
	AllowRemote bool

	// Retention is how long finished workflows are kept: by Restate (its
	// workflow retention) and by default by `ultramcp purge`.
	Retention time.Duration

	// APIToken, when set, is the bearer token every API and MCP request
	// but /health must carry; without it the API stays on loopback. Like
	// the provider keys it is a secret: not in Environ (the service
	// inherits it) and never logged.
	APIToken string
	// APIHosts are the Host headers the API answers besides its own
	// address and localhost (a name it is reached by); APIOrigins the web
	// origins allowed to call it (CORS and state-changing requests).
	APIHosts, APIOrigins []string
	// APIRate is how many requests a second one client (token or address)
	// may make; APIMaxOpen how many workflows may be open at once when the
	// API starts another.
	APIRate    float64
	APIMaxOpen int

	// MaxCostUSD is the budget of a run submitted without one; 0 is none.
	MaxCostUSD float64

	// TracesEndpoint is the OTLP collector the service and restate-server
	// send spans to (OTEL_EXPORTER_OTLP_ENDPOINT, which the OpenTelemetry
	// exporter reads itself with the other OTEL_* variables); "" is no
	// tracing, and costs nothing. TraceContent puts prompts and answers in
	// the spans (found secrets stay redacted even then).
	TracesEndpoint string
	TraceContent   bool
	// JaegerAddr and JaegerOTLPAddr are the query API and the OTLP/HTTP
	// receiver of the Jaeger `up --with-jaeger` runs; JaegerMaxMB bounds
	// its storage in the state dir, and JaegerBin is its binary ("" is
	// the pinned build, made on first use).
	JaegerAddr, JaegerOTLPAddr string
	JaegerMaxMB                int64
	JaegerBin                  string
	// Limits are the provider limits configured (ULTRAMCP_LIMITS, package
	// limits' form), over the defaults.
	Limits string
	// WithJaeger says the stack runs Jaeger (up --with-jaeger, recorded).
	WithJaeger bool

	// RestateServerBin and RestateCLIBin locate the pinned binaries; empty
	// means the npm packages under the project's node_modules.
	RestateServerBin string
	RestateCLIBin    string

	// removed are the variables of addresses that no longer exist, set in
	// the environment, and unparsed the settings whose value did not
	// parse: Validate names them rather than ignore them.
	removed  []string
	unparsed []error
}

// RemovedAddrVars were the TCP addresses of Restate's ingress, admin API
// and node port, which now listen on unix sockets in the state dir.
var RemovedAddrVars = []string{"ULTRAMCP_INGRESS_ADDR", "ULTRAMCP_ADMIN_ADDR", "ULTRAMCP_NODE_ADDR"}

// Default returns the defaults: every listener on loopback, the offline
// provider, SQLite in the state dir (README section 8 lists them).
func Default() Config {
	return Config{
		Home:              ".ultramcp",
		ServiceAddr:       "127.0.0.1:9080",
		APIAddr:           "127.0.0.1:8081",
		JaegerAddr:        "127.0.0.1:16686",
		JaegerOTLPAddr:    "127.0.0.1:4318",
		JaegerMaxMB:       1024,
		LLM:               "offline",
		LLMCallTimeout:    2 * time.Minute,
		Retention:         7 * 24 * time.Hour,
		MaxRepoMB:         500,
		MaxCacheMB:        4096,
		AnalysisSlots:     2,
		StoreRetryCap:     5 * time.Second,
		StopGrace:         10 * time.Second,
		ReconcileInterval: time.Minute,
		CloneTimeout:      5 * time.Minute,
		APIRate:           20,
		APIMaxOpen:        64,
	}
}

// Loopback reports whether host is "localhost" or a loopback address.
func Loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// ParseAge reads a duration that may also count days: "30d", "12h", "1d12h".
func ParseAge(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i > 0 {
		var n int
		if _, err := fmt.Sscanf(s[:i], "%d", &n); err != nil || fmt.Sprint(n) != s[:i] || n < 0 {
			return 0, fmt.Errorf("%q: want a duration like 30d or 12h", s)
		}
		days, s = time.Duration(n)*24*time.Hour, s[i+1:]
	}
	if s == "" {
		return days, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q: want a positive duration like 30d or 12h", s)
	}
	return days + d, nil
}

// LimitTable is the provider limits in force: the defaults, overridden by
// ULTRAMCP_LIMITS (Validate has checked it parses).
func (c Config) LimitTable() limits.Table {
	configured, _ := limits.Parse(c.Limits)
	t := limits.NewTable(configured)
	// A provider's default limits are its own service's: an
	// OpenAI-compatible server of one's own (OPENAI_BASE_URL) has none
	// unless ULTRAMCP_LIMITS gives it some.
	for provider, own := range map[string]bool{"openai": c.OpenAIBaseURL == "", "anthropic": c.AnthropicBaseURL == ""} {
		if !own && !slices.ContainsFunc(configured, func(l limits.Limit) bool { return l.Key == provider }) {
			t = slices.DeleteFunc(t, func(l limits.Limit) bool { return l.Key == provider })
		}
	}
	return t
}

// Providers are the model providers c enables: offline always;
// OpenAI-compatible when a key or base URL is set, or it is the default;
// Anthropic when a key is set.
func (c Config) Providers() []string {
	out := []string{"offline"}
	if c.LLM == "openai" || c.OpenAIAPIKey != "" || c.OpenAIBaseURL != "" {
		out = append(out, "openai")
	}
	if c.AnthropicAPIKey != "" {
		out = append(out, "anthropic")
	}
	return out
}

// VulnDBDir is where `ultramcp vulndb update` keeps the local copy of the
// Go vulnerability database.
func (c Config) VulnDBDir() string { return c.Path("vulndb") }

// VulnDBURL is the database govulncheck reads: ULTRAMCP_VULNDB, else the
// local copy if there is one, else vuln.go.dev.
func (c Config) VulnDBURL() string {
	if c.VulnDB != "" {
		return c.VulnDB
	}
	if entries, err := os.ReadDir(c.VulnDBDir()); err == nil && len(entries) > 0 {
		return "file://" + c.VulnDBDir()
	}
	return "https://vuln.go.dev"
}

// SQLitePath is the embedded store's file.
func (c Config) SQLitePath() string { return c.Path("ultramcp.db") }

// Paths in the state dir.
func (c Config) Path(parts ...string) string {
	return filepath.Join(append([]string{c.Home}, parts...)...)
}

// URL of a host:port address.
func URL(addr string) string { return "http://" + addr }

// maxSocketPath is the longest path a unix socket may have on Linux
// (sun_path holds 108 bytes with the final NUL).
const maxSocketPath = 107

// RestateNode is the Restate node name; fixed so a restart finds its data.
const RestateNode = "ultramcp"

// RestateDir is restate-server's base dir, inside the 0700 state dir.
func (c Config) RestateDir() string { return c.Path("restate") }

// IngressSocket is the unix socket Restate's ingress listens on. With
// `--listen-mode unix` restate-server opens no TCP port at all: a web page
// cannot reach the ingress (it answers CORS for any origin) nor the admin
// API (it answers any Host), and other local users cannot connect, since
// the state dir is 0700. The API serves what users need of both.
func (c Config) IngressSocket() string {
	return filepath.Join(c.RestateDir(), RestateNode, "ingress.sock")
}

// AdminSocket is the unix socket of Restate's admin API and UI.
func (c Config) AdminSocket() string { return filepath.Join(c.RestateDir(), RestateNode, "admin.sock") }

// ServiceURL is the URL Restate uses to reach our service.
func (c Config) ServiceURL() string { return URL(c.ServiceAddr) }

// String describes the configuration without secrets.
func (c Config) String() string {
	return fmt.Sprintf("home=%s service=%s api=%s llm=%s", c.Home, c.ServiceAddr, c.APIAddr, c.LLM)
}

// PrepareHome makes the state dir ready for use: created 0700 if missing;
// if present, it must be a directory owned by the current user (a state
// dir someone else made could hand us their keys and pid files), and its
// own and its entries' group and other permissions are removed.
func (c Config) PrepareHome() error {
	if err := os.MkdirAll(c.Home, 0o700); err != nil {
		return fault.Invalidf("ULTRAMCP_HOME", "cannot create %s: %v", c.Home, err)
	}
	info, err := os.Lstat(c.Home)
	if err != nil {
		return fault.Invalidf("ULTRAMCP_HOME", "%v", err)
	}
	if !info.IsDir() {
		return fault.Invalidf("ULTRAMCP_HOME", "%s is not a directory", c.Home)
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return fault.Invalidf("ULTRAMCP_HOME", "%s belongs to uid %d, not to you (uid %d): refusing to use it", c.Home, st.Uid, os.Getuid())
	}
	tighten := func(path string, mode os.FileMode) {
		if mode&0o077 != 0 && mode&os.ModeSymlink == 0 {
			_ = os.Chmod(path, mode.Perm()&0o700)
		}
	}
	tighten(c.Home, info.Mode())
	entries, _ := os.ReadDir(c.Home)
	for _, e := range entries {
		if i, err := e.Info(); err == nil {
			tighten(filepath.Join(c.Home, e.Name()), i.Mode())
		}
	}
	return nil
}

// recordedFile holds the addresses the stack in a state dir was brought up
// with, so that a command given only ULTRAMCP_HOME (an MCP client starts
// `ultramcp mcp` with little else) reaches that stack.
const recordedFile = "stack.json"

// Recorded is what up records of a stack's addresses.
type Recorded struct {
	ServiceAddr string `json:"serviceAddr"`
	APIAddr     string `json:"apiAddr"`
	// The Jaeger that up --with-jaeger runs, and the collector the
	// stack's spans go to.
	JaegerAddr     string `json:"jaegerAddr,omitempty"`
	TracesEndpoint string `json:"tracesEndpoint,omitempty"`
}

// Record writes c's addresses into its state dir.
func (c Config) Record() error {
	r := Recorded{ServiceAddr: c.ServiceAddr, APIAddr: c.APIAddr, TracesEndpoint: c.TracesEndpoint}
	if c.WithJaeger {
		r.JaegerAddr = c.JaegerAddr
	}
	b, _ := json.Marshal(r)
	tmp := c.Path(recordedFile + ".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, c.Path(recordedFile))
}

// UseRecorded takes the addresses up recorded in the state dir for each
// one neither the environment nor a flag (set reports which) gave.
func (c *Config) UseRecorded(set func(variable string) bool) {
	b, err := os.ReadFile(c.Path(recordedFile))
	if err != nil {
		return
	}
	var r Recorded
	if json.Unmarshal(b, &r) != nil {
		return
	}
	c.WithJaeger = c.WithJaeger || r.JaegerAddr != ""

	for _, f := range []struct {
		variable string
		dst      *string
		value    string
	}{{"ULTRAMCP_SERVICE_ADDR", &c.ServiceAddr, r.ServiceAddr}, {"ULTRAMCP_API_ADDR", &c.APIAddr, r.APIAddr},
		{"OTEL_EXPORTER_OTLP_ENDPOINT", &c.TracesEndpoint, r.TracesEndpoint}, {"ULTRAMCP_JAEGER_ADDR", &c.JaegerAddr, r.JaegerAddr}} {
		if f.value != "" && os.Getenv(f.variable) == "" && !set(f.variable) {
			*f.dst = f.value
		}
	}
}

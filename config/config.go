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
	"strings"
	"syscall"
	"time"

	"github.com/ultramcp/durable/fault"
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

	// RestateServerBin and RestateCLIBin locate the pinned binaries; empty
	// means the npm packages under the project's node_modules.
	RestateServerBin string
	RestateCLIBin    string

	// removed are the variables of addresses that no longer exist, set in
	// the environment: Validate names them rather than ignore them.
	removed []string
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

// FromEnv returns the defaults overridden by the environment.
func FromEnv() Config {
	c := Default()
	set := func(dst *string, name string) {
		if v := os.Getenv(name); v != "" {
			*dst = v
		}
	}
	set(&c.Home, "ULTRAMCP_HOME")
	for _, name := range RemovedAddrVars {
		if os.Getenv(name) != "" {
			c.removed = append(c.removed, name)
		}
	}
	set(&c.ServiceAddr, "ULTRAMCP_SERVICE_ADDR")
	set(&c.APIAddr, "ULTRAMCP_API_ADDR")
	set(&c.DatabaseURL, "ULTRAMCP_DATABASE_URL")
	set(&c.LLM, "ULTRAMCP_LLM")
	set(&c.Model, "ULTRAMCP_MODEL")
	set(&c.OpenAIBaseURL, "OPENAI_BASE_URL")
	set(&c.OpenAIAPIKey, "OPENAI_API_KEY")
	set(&c.AnthropicBaseURL, "ANTHROPIC_BASE_URL")
	set(&c.AnthropicAPIKey, "ANTHROPIC_API_KEY")
	set(&c.RestateServerBin, "ULTRAMCP_RESTATE_SERVER")
	set(&c.VulnDB, "ULTRAMCP_VULNDB")
	set(&c.RestateCLIBin, "ULTRAMCP_RESTATE_CLI")
	set(&c.APIToken, "ULTRAMCP_API_TOKEN")
	c.APIHosts = list(os.Getenv("ULTRAMCP_API_HOSTS"))
	c.APIOrigins = list(os.Getenv("ULTRAMCP_API_ORIGINS"))
	if v := os.Getenv("ULTRAMCP_API_RATE"); v != "" {
		fmt.Sscan(v, &c.APIRate)
	}
	if v := os.Getenv("ULTRAMCP_API_MAX_OPEN"); v != "" {
		fmt.Sscan(v, &c.APIMaxOpen)
	}
	if v := os.Getenv("ULTRAMCP_ALLOW_LOCAL_REPOS"); v == "true" || v == "1" {
		c.AllowLocalRepos = true
	}
	if v := os.Getenv("ULTRAMCP_ALLOW_REMOTE"); v == "true" || v == "1" {
		c.AllowRemote = true
	}
	c.RepoHosts = list(os.Getenv("ULTRAMCP_REPO_HOSTS"))
	if v := os.Getenv("ULTRAMCP_MAX_REPO_MB"); v != "" {
		fmt.Sscan(v, &c.MaxRepoMB)
	}
	if v := os.Getenv("ULTRAMCP_MAX_CACHE_MB"); v != "" {
		fmt.Sscan(v, &c.MaxCacheMB)
	}
	if v := os.Getenv("ULTRAMCP_ANALYSIS_SLOTS"); v != "" {
		fmt.Sscan(v, &c.AnalysisSlots)
	}
	if v := os.Getenv("ULTRAMCP_CLONE_TIMEOUT"); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			c.CloneTimeout = d
		}
	}
	if v := os.Getenv("ULTRAMCP_RETENTION"); v != "" {
		if d, err := ParseAge(v); err == nil {
			c.Retention = d
		}
	}
	for name, dst := range map[string]*time.Duration{"ULTRAMCP_STORE_RETRY_CAP": &c.StoreRetryCap, "ULTRAMCP_STOP_GRACE": &c.StopGrace, "ULTRAMCP_RECONCILE_INTERVAL": &c.ReconcileInterval} {
		if v := os.Getenv(name); v != "" {
			if d, err := time.ParseDuration(v); err == nil {
				*dst = d
			} else {
				*dst = -1 // Validate names it
			}
		}
	}
	if v := os.Getenv("ULTRAMCP_LLM_TIMEOUT"); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			c.LLMCallTimeout = d
		}
	}
	return c
}

// list splits a comma-separated variable.
func list(v string) []string {
	var out []string
	for _, h := range strings.Split(v, ",") {
		if h = strings.TrimSpace(h); h != "" {
			out = append(out, h)
		}
	}
	return out
}

// Environ is c as the ULTRAMCP_* environment FromEnv reads back: the one
// place that passes the configuration (flags included) to a child process
// such as the service. API keys are not in it; they stay in the
// environment the child inherits.
func (c Config) Environ() []string {
	return []string{
		"ULTRAMCP_HOME=" + c.Home,
		"ULTRAMCP_SERVICE_ADDR=" + c.ServiceAddr,
		"ULTRAMCP_API_ADDR=" + c.APIAddr,
		"ULTRAMCP_DATABASE_URL=" + c.DatabaseURL,
		"ULTRAMCP_LLM=" + c.LLM,
		"ULTRAMCP_MODEL=" + c.Model,
		"OPENAI_BASE_URL=" + c.OpenAIBaseURL,
		"ANTHROPIC_BASE_URL=" + c.AnthropicBaseURL,
		"ULTRAMCP_LLM_TIMEOUT=" + c.LLMCallTimeout.String(),
		fmt.Sprintf("ULTRAMCP_ALLOW_LOCAL_REPOS=%t", c.AllowLocalRepos),
		"ULTRAMCP_REPO_HOSTS=" + strings.Join(c.RepoHosts, ","),
		fmt.Sprintf("ULTRAMCP_MAX_REPO_MB=%d", c.MaxRepoMB),
		"ULTRAMCP_CLONE_TIMEOUT=" + c.CloneTimeout.String(),
		fmt.Sprintf("ULTRAMCP_MAX_CACHE_MB=%d", c.MaxCacheMB),
		fmt.Sprintf("ULTRAMCP_ANALYSIS_SLOTS=%d", c.AnalysisSlots),
		"ULTRAMCP_VULNDB=" + c.VulnDB,
		"ULTRAMCP_STORE_RETRY_CAP=" + c.StoreRetryCap.String(),
		"ULTRAMCP_STOP_GRACE=" + c.StopGrace.String(),
		"ULTRAMCP_RECONCILE_INTERVAL=" + c.ReconcileInterval.String(),
		fmt.Sprintf("ULTRAMCP_ALLOW_REMOTE=%t", c.AllowRemote),
		"ULTRAMCP_RETENTION=" + c.Retention.String(),
		"ULTRAMCP_API_HOSTS=" + strings.Join(c.APIHosts, ","),
		"ULTRAMCP_API_ORIGINS=" + strings.Join(c.APIOrigins, ","),
		fmt.Sprintf("ULTRAMCP_API_RATE=%g", c.APIRate),
		fmt.Sprintf("ULTRAMCP_API_MAX_OPEN=%d", c.APIMaxOpen),
		"ULTRAMCP_RESTATE_SERVER=" + c.RestateServerBin,
		"ULTRAMCP_RESTATE_CLI=" + c.RestateCLIBin,
	}
}

// Validate checks every field and names the one at fault.
func (c *Config) Validate() error {
	if c.Home == "" {
		return fault.Invalidf("ULTRAMCP_HOME", "must not be empty")
	}
	abs, err := filepath.Abs(c.Home)
	if err != nil {
		return fault.Invalidf("ULTRAMCP_HOME", "%v", err)
	}
	c.Home = abs
	if len(c.removed) > 0 {
		name := c.removed[0]
		return fault.Invalidf(name, "Restate's ingress, admin API and node port listen on unix sockets in the state dir now, not on TCP; unset %s (the API on ULTRAMCP_API_ADDR serves the ingress paths and the Restate UI)", name)
	}
	if sock := c.IngressSocket(); len(sock) > maxSocketPath { // the longest of its sockets
		return fault.Invalidf("ULTRAMCP_HOME", "%s is too long: Restate's socket %s would exceed the %d bytes a unix socket path may have; choose a shorter state dir", c.Home, sock, maxSocketPath)
	}
	for name, addr := range map[string]*string{
		"ULTRAMCP_SERVICE_ADDR": &c.ServiceAddr,
		"ULTRAMCP_API_ADDR":     &c.APIAddr,
	} {
		if strings.HasPrefix(*addr, ":") {
			*addr = "127.0.0.1" + *addr
		}
		host, port, err := net.SplitHostPort(*addr)
		if err != nil || port == "" {
			return fault.Invalidf(name, "want host:port, got %q", *addr)
		}
		if host == "" {
			*addr = "127.0.0.1:" + port
			host = "127.0.0.1"
		}
		if !c.AllowRemote && !Loopback(host) {
			return fault.Invalidf(name, "%s is not a loopback address; set ULTRAMCP_ALLOW_REMOTE=true to listen or connect beyond this machine", host)
		}
	}

	if host, _, _ := net.SplitHostPort(c.APIAddr); c.APIToken == "" && !Loopback(host) {
		return fault.Invalidf("ULTRAMCP_API_TOKEN", "required for the API to listen on %s, beyond loopback", host)
	}
	if c.APIRate <= 0 {
		return fault.Invalidf("ULTRAMCP_API_RATE", "must be a positive number of requests a second")
	}
	if c.APIMaxOpen < 1 {
		return fault.Invalidf("ULTRAMCP_API_MAX_OPEN", "must be at least 1")
	}
	for _, o := range c.APIOrigins {
		if !strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") || strings.Count(o, "/") != 2 {
			return fault.Invalidf("ULTRAMCP_API_ORIGINS", "%q is not an origin such as https://app.example.com", o)
		}
	}
	switch c.LLM {
	case "offline", "openai", "anthropic":
	default:
		return fault.Invalidf("ULTRAMCP_LLM", "must be offline, openai or anthropic, got %q", c.LLM)
	}
	if c.LLM == "anthropic" && c.AnthropicAPIKey == "" {
		return fault.Invalidf("ANTHROPIC_API_KEY", "required when ULTRAMCP_LLM=anthropic")
	}
	if c.DatabaseURL != "" && !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") {
		return fault.Invalidf("ULTRAMCP_DATABASE_URL", "must be a postgres:// URL")
	}
	if c.MaxRepoMB <= 0 {
		return fault.Invalidf("ULTRAMCP_MAX_REPO_MB", "must be a positive number of megabytes")
	}
	if c.MaxCacheMB < c.MaxRepoMB {
		return fault.Invalidf("ULTRAMCP_MAX_CACHE_MB", "must be at least ULTRAMCP_MAX_REPO_MB (%d)", c.MaxRepoMB)
	}
	if c.AnalysisSlots < 1 || c.AnalysisSlots > 64 {
		return fault.Invalidf("ULTRAMCP_ANALYSIS_SLOTS", "must be from 1 to 64")
	}
	for _, h := range c.RepoHosts {
		if strings.ContainsAny(h, "/@ \t") || strings.HasPrefix(h, "-") {
			return fault.Invalidf("ULTRAMCP_REPO_HOSTS", "%q is not a host name or address", h)
		}
	}
	if c.StoreRetryCap <= 0 || c.StoreRetryCap > 5*time.Minute {
		return fault.Invalidf("ULTRAMCP_STORE_RETRY_CAP", "must be a duration from 1ms to 5m")
	}
	if c.StopGrace <= 0 || c.StopGrace > 5*time.Minute {
		return fault.Invalidf("ULTRAMCP_STOP_GRACE", "must be a duration from 1ms to 5m")
	}
	if c.ReconcileInterval < 100*time.Millisecond {
		return fault.Invalidf("ULTRAMCP_RECONCILE_INTERVAL", "must be at least 100ms")
	}
	if c.CloneTimeout <= 0 {
		return fault.Invalidf("ULTRAMCP_CLONE_TIMEOUT", "must be positive")
	}
	if c.Retention < time.Hour {
		return fault.Invalidf("ULTRAMCP_RETENTION", "must be at least 1h")
	}
	if c.LLMCallTimeout <= 0 || c.LLMCallTimeout > 9*time.Minute {
		return fault.Invalidf("ULTRAMCP_LLM_TIMEOUT", "must be between 0 and 9m (below Restate's 10m abort timeout)")
	}
	return nil
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
}

// Record writes c's addresses into its state dir.
func (c Config) Record() error {
	b, _ := json.Marshal(Recorded{ServiceAddr: c.ServiceAddr, APIAddr: c.APIAddr})
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
	for _, f := range []struct {
		variable string
		dst      *string
		value    string
	}{{"ULTRAMCP_SERVICE_ADDR", &c.ServiceAddr, r.ServiceAddr}, {"ULTRAMCP_API_ADDR", &c.APIAddr, r.APIAddr}} {
		if f.value != "" && os.Getenv(f.variable) == "" && !set(f.variable) {
			*f.dst = f.value
		}
	}
}

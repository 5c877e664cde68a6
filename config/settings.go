package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/limits"
)

// A Setting is one configuration variable. The table of them, Settings,
// is the one place a setting is written: FromEnv reads it, Environ passes
// it on, Validate checks it, the CLI binds its flag and the README's table
// is made from it.
type Setting struct {
	Name    string // environment variable
	Flag    string // command-line flag, "" when it has none
	Default string // as the README shows it
	Doc     string // one line for the README and the flag's help
	// Secret settings (keys, the API token) are not in Environ, since the
	// child inherits them, and never shown.
	Secret bool

	field func(*Config) Value
	// check says what is wrong with a parsed value ("" when nothing is);
	// it may normalize the field (an address without a host).
	check func(*Config) string
}

// Value is a setting's field seen as text: what pflag calls a Value, so a
// flag writes the same field with the same parser as the environment.
type Value interface {
	String() string
	Set(string) error
	Type() string
}

// Settings is every setting, in the order Validate checks them.
var Settings = []Setting{
	{Name: "ULTRAMCP_HOME", Flag: "home", Default: "`./.ultramcp`", Doc: "state dir: pid files, logs, Restate data, keys",
		field: func(c *Config) Value { return text(&c.Home) }, check: checkHome},
	{Name: "ULTRAMCP_SERVICE_ADDR", Flag: "service-addr", Default: "`127.0.0.1:9080`", Doc: "workflow service address",
		field: func(c *Config) Value { return text(&c.ServiceAddr) }, check: func(c *Config) string { return checkAddr(c, &c.ServiceAddr) }},
	{Name: "ULTRAMCP_API_ADDR", Default: "`127.0.0.1:8081`", Doc: "UltraMCP API, `/mcp` and the dashboard",
		field: func(c *Config) Value { return text(&c.APIAddr) }, check: func(c *Config) string { return checkAddr(c, &c.APIAddr) }},
	{Name: "ULTRAMCP_API_TOKEN", Default: "none", Secret: true, Doc: "bearer token of the API and `/mcp` (required to listen beyond loopback); never logged",
		field: func(c *Config) Value { return text(&c.APIToken) }, check: checkToken},
	{Name: "ULTRAMCP_API_HOSTS", Default: "none", Doc: "Host names the API answers besides its address and localhost",
		field: func(c *Config) Value { return list(&c.APIHosts) }, check: func(c *Config) string { return checkHosts(c.APIHosts) }},
	{Name: "ULTRAMCP_API_ORIGINS", Default: "none", Doc: "web origins the API trusts (CORS), such as `https://app.example.com`",
		field: func(c *Config) Value { return list(&c.APIOrigins) }, check: checkOrigins},
	{Name: "ULTRAMCP_API_RATE", Default: "`20`", Doc: "requests a second one client may make",
		field: func(c *Config) Value { return number(&c.APIRate) }, check: func(c *Config) string { return positive(c.APIRate > 0, "requests a second") }},
	{Name: "ULTRAMCP_API_MAX_OPEN", Default: "`64`", Doc: "open workflows at most when the API starts one",
		field: func(c *Config) Value { return integer(&c.APIMaxOpen) }, check: func(c *Config) string { return positive(c.APIMaxOpen >= 1, "workflows") }},
	{Name: "ULTRAMCP_DATABASE_URL", Default: "SQLite in the state dir", Doc: "`postgres://…` selects PostgreSQL for the store",
		field: func(c *Config) Value { return text(&c.DatabaseURL) }, check: checkDatabase},
	{Name: "ULTRAMCP_RETENTION", Default: "`7d`", Doc: "how long Restate keeps finished workflows; default age of `purge`",
		field: func(c *Config) Value { return age(&c.Retention) }, check: func(c *Config) string { return within(c.Retention, time.Hour, 0) }},
	{Name: "ULTRAMCP_ALLOW_LOCAL_REPOS", Default: "`false`", Doc: "let analyses read local paths and `file://` URLs",
		field: func(c *Config) Value { return boolean(&c.AllowLocalRepos) }},
	{Name: "ULTRAMCP_REPO_HOSTS", Default: "none", Doc: "repository hosts allowed although internal, e.g. `git.internal.example,127.0.0.2`; when set, only these",
		field: func(c *Config) Value { return list(&c.RepoHosts) }, check: func(c *Config) string { return checkHosts(c.RepoHosts) }},
	{Name: "ULTRAMCP_MAX_REPO_MB", Default: "`500`", Doc: "size cap of one checkout, in megabytes",
		field: func(c *Config) Value { return megabytes(&c.MaxRepoMB) }, check: func(c *Config) string { return positive(c.MaxRepoMB > 0, "megabytes") }},
	{Name: "ULTRAMCP_CLONE_TIMEOUT", Default: "`5m`", Doc: "how long one fetch of a repository may take",
		field: func(c *Config) Value { return duration(&c.CloneTimeout) }, check: func(c *Config) string { return within(c.CloneTimeout, time.Second, 0) }},
	{Name: "ULTRAMCP_MAX_CACHE_MB", Default: "`4096`", Doc: "size cap of the checkout cache (least recently used go first)",
		field: func(c *Config) Value { return megabytes(&c.MaxCacheMB) }, check: checkCache},
	{Name: "ULTRAMCP_ANALYSIS_SLOTS", Default: "`2`", Doc: "checkouts and scans one service runs at once",
		field: func(c *Config) Value { return integer(&c.AnalysisSlots) }, check: checkSlots},
	{Name: "ULTRAMCP_VULNDB", Default: "local copy if `ultramcp vulndb update` made one, else `https://vuln.go.dev`", Doc: "govulncheck's vulnerability database (`file://…` for a local one)",
		field: func(c *Config) Value { return text(&c.VulnDB) }, check: checkVulnDB},
	{Name: "ULTRAMCP_ALLOW_REMOTE", Default: "`false`", Doc: "allow non-loopback service and API addresses (never for Restate, which has no TCP port)",
		field: func(c *Config) Value { return boolean(&c.AllowRemote) }},
	{Name: "ULTRAMCP_STORE_RETRY_CAP", Default: "`5s`", Doc: "longest wait between two attempts of a store write (writes retry until the store is back)",
		field: func(c *Config) Value { return duration(&c.StoreRetryCap) }, check: func(c *Config) string { return within(c.StoreRetryCap, time.Millisecond, 5*time.Minute) }},
	{Name: "ULTRAMCP_STOP_GRACE", Default: "`10s`", Doc: "how long a stopping service lets running steps finish",
		field: func(c *Config) Value { return duration(&c.StopGrace) }, check: func(c *Config) string { return within(c.StopGrace, time.Millisecond, 5*time.Minute) }},
	{Name: "ULTRAMCP_RECONCILE_INTERVAL", Default: "`1m`", Doc: "how often the service reconciles open store rows with Restate",
		field: func(c *Config) Value { return duration(&c.ReconcileInterval) }, check: func(c *Config) string { return within(c.ReconcileInterval, 100*time.Millisecond, 0) }},
	{Name: "ULTRAMCP_LLM", Flag: "llm", Default: "`offline`", Doc: "default LLM provider: offline, openai, anthropic",
		field: func(c *Config) Value { return text(&c.LLM) }, check: checkLLM},
	{Name: "ULTRAMCP_MODEL", Flag: "model", Default: "provider's default", Doc: "default model of that provider",
		field: func(c *Config) Value { return text(&c.Model) }, check: func(c *Config) string { return checkWord(c.Model, "a model name") }},
	{Name: "OPENAI_BASE_URL", Default: "OpenAI's", Doc: "any OpenAI-compatible endpoint",
		field: func(c *Config) Value { return text(&c.OpenAIBaseURL) }, check: func(c *Config) string { return checkURL(c.OpenAIBaseURL) }},
	{Name: "OPENAI_API_KEY", Default: "none", Secret: true, Doc: "OpenAI's API key",
		field: func(c *Config) Value { return text(&c.OpenAIAPIKey) }, check: func(c *Config) string { return checkWord(c.OpenAIAPIKey, "an API key") }},
	{Name: "ANTHROPIC_BASE_URL", Default: "Anthropic's", Doc: "Anthropic Messages API endpoint",
		field: func(c *Config) Value { return text(&c.AnthropicBaseURL) }, check: func(c *Config) string { return checkURL(c.AnthropicBaseURL) }},
	{Name: "ANTHROPIC_API_KEY", Default: "none", Secret: true, Doc: "Anthropic's API key (required when ULTRAMCP_LLM=anthropic)",
		field: func(c *Config) Value { return text(&c.AnthropicAPIKey) }, check: checkAnthropicKey},
	{Name: "ULTRAMCP_LLM_TIMEOUT", Default: "`2m`", Doc: "one model call (below Restate's 10m abort timeout)",
		field: func(c *Config) Value { return duration(&c.LLMCallTimeout) }, check: func(c *Config) string { return within(c.LLMCallTimeout, time.Second, 9*time.Minute) }},
	{Name: "OTEL_EXPORTER_OTLP_ENDPOINT", Default: "none: no tracing", Doc: "OTLP collector of the service's and restate-server's spans, e.g. `http://127.0.0.1:4318` (`up --with-jaeger` sets it; the other `OTEL_*` variables apply)",
		field: func(c *Config) Value { return text(&c.TracesEndpoint) }, check: checkTracesEndpoint},
	{Name: "ULTRAMCP_TRACE_CONTENT", Default: "`false`", Doc: "put prompts and answers in the spans (found secrets stay redacted)",
		field: func(c *Config) Value { return boolean(&c.TraceContent) }},
	{Name: "ULTRAMCP_JAEGER_ADDR", Default: "`127.0.0.1:16686`", Doc: "Jaeger's query API, when `up --with-jaeger` runs it (loopback only)",
		field: func(c *Config) Value { return text(&c.JaegerAddr) }, check: func(c *Config) string { return checkLocalAddr(c, &c.JaegerAddr) }},
	{Name: "ULTRAMCP_JAEGER_OTLP_ADDR", Default: "`127.0.0.1:4318`", Doc: "Jaeger's OTLP/HTTP receiver, where the service and restate-server send spans (loopback only)",
		field: func(c *Config) Value { return text(&c.JaegerOTLPAddr) }, check: func(c *Config) string { return checkLocalAddr(c, &c.JaegerOTLPAddr) }},
	{Name: "ULTRAMCP_JAEGER_MAX_MB", Default: "`1024`", Doc: "size bound of Jaeger's span storage in the state dir: `up` starts it afresh beyond it",
		field: func(c *Config) Value { return megabytes(&c.JaegerMaxMB) }, check: func(c *Config) string { return between(c.JaegerMaxMB, 16, 1<<20) }},
	{Name: "ULTRAMCP_JAEGER", Default: "`.cache/jaeger/…`, built on first use", Doc: "the Jaeger v2 binary (`make jaeger` builds the pinned one)",
		field: func(c *Config) Value { return text(&c.JaegerBin) }, check: func(c *Config) string { return checkExecutable(c.JaegerBin) }},
	{Name: "ULTRAMCP_LIMITS", Default: "`openai concurrency=32 rpm=500 tpm=200000; anthropic concurrency=8 rpm=50 tpm=40000`", Doc: "provider limits shared by every workflow and service on the store: `key concurrency=N rpm=N tpm=N` entries (key `provider` or `provider:model`) apart by `;`, each overriding the default of its key (`ultramcp limits` shows them)",
		field: func(c *Config) Value { return text(&c.Limits) }, check: checkLimits},
	{Name: "ULTRAMCP_MAX_COST", Default: "`0` (none)", Doc: "USD: the `budget.maxCostUSD` of every run submitted without a budget of its own",
		field: func(c *Config) Value { return number(&c.MaxCostUSD) }, check: func(c *Config) string { return positive(c.MaxCostUSD >= 0, "USD, or 0 for none") }},
	{Name: "ULTRAMCP_RESTATE_SERVER", Default: "`node_modules/…`", Doc: "the pinned restate-server binary",
		field: func(c *Config) Value { return text(&c.RestateServerBin) }, check: func(c *Config) string { return checkExecutable(c.RestateServerBin) }},
	{Name: "ULTRAMCP_RESTATE_CLI", Default: "`node_modules/…`", Doc: "the pinned restate CLI binary",
		field: func(c *Config) Value { return text(&c.RestateCLIBin) }, check: func(c *Config) string { return checkExecutable(c.RestateCLIBin) }},
}

// FromEnv returns the defaults overridden by the environment. A value
// that does not parse is kept aside for Validate to name: every command
// validates before it does anything.
func FromEnv() Config {
	c := Default()
	for _, name := range RemovedAddrVars {
		if os.Getenv(name) != "" {
			c.removed = append(c.removed, name)
		}
	}
	for _, s := range Settings {
		if v := os.Getenv(s.Name); v != "" {
			if err := s.field(&c).Set(v); err != nil {
				c.unparsed = append(c.unparsed, s.invalid(err.Error()))
			}
		}
	}
	return c
}

// Environ is c as the environment FromEnv reads back: the one place that
// passes the configuration (flags included) to a child process such as
// the service. Secrets are not in it; they stay in the environment the
// child inherits.
func (c Config) Environ() []string {
	var env []string
	for _, s := range Settings {
		if !s.Secret {
			env = append(env, s.Name+"="+s.field(&c).String())
		}
	}
	return env
}

// Validate checks every setting and names the first one at fault, with
// what it accepts.
func (c *Config) Validate() error {
	if len(c.unparsed) > 0 {
		return c.unparsed[0]
	}
	if len(c.removed) > 0 {
		name := c.removed[0]
		return fault.Invalidf(name, "Restate's ingress, admin API and node port listen on unix sockets in the state dir now, not on TCP; unset %s (the API on ULTRAMCP_API_ADDR serves the ingress paths and the Restate UI)", name)
	}
	for _, s := range Settings {
		if s.check == nil {
			continue
		}
		if why := s.check(c); why != "" {
			return s.invalid(why)
		}
	}
	return nil
}

func (s Setting) invalid(why string) error { return fault.Invalidf(s.Name, "%s", why) }

// A Flag is a setting's command-line flag bound to one Config.
type Flag struct {
	Name, Usage string
	Value       Value
}

// Flags are the settings that have a flag, bound to c's fields.
func (c *Config) Flags() []Flag {
	var out []Flag
	for _, s := range Settings {
		if s.Flag != "" {
			out = append(out, Flag{Name: s.Flag, Usage: s.Doc + " (" + s.Name + ")", Value: s.field(c)})
		}
	}
	return out
}

// FlagOf is the flag of the setting named variable, "" when it has none.
func FlagOf(variable string) string {
	for _, s := range Settings {
		if s.Name == variable {
			return s.Flag
		}
	}
	return ""
}

// Markdown is the README's table of settings.
func Markdown() string {
	var b strings.Builder
	b.WriteString("| variable | flag | default | meaning |\n|---|---|---|---|\n")
	for _, s := range Settings {
		flag := ""
		if s.Flag != "" {
			flag = "`--" + s.Flag + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", s.Name, flag, s.Default, s.Doc)
	}
	return b.String()
}

// The checks. Each returns why a value is refused, "" when it is not.

func checkHome(c *Config) string {
	if c.Home == "" {
		return "must not be empty"
	}
	abs, err := filepath.Abs(c.Home)
	if err != nil {
		return err.Error()
	}
	c.Home = abs
	if sock := c.IngressSocket(); len(sock) > maxSocketPath { // the longest of its sockets
		return fmt.Sprintf("%s is too long: it must leave Restate's socket %s within the %d bytes a unix socket path may have; choose a shorter state dir", c.Home, sock, maxSocketPath)
	}
	return ""
}

// checkAddr normalizes ":port" and "host:" forms to loopback and keeps
// every listener on loopback unless AllowRemote.
func checkAddr(c *Config, addr *string) string {
	if strings.HasPrefix(*addr, ":") {
		*addr = "127.0.0.1" + *addr
	}
	host, port, err := net.SplitHostPort(*addr)
	if err != nil || port == "" {
		return fmt.Sprintf("want host:port, got %q", *addr)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Sprintf("want host:port with a port from 0 to 65535, got %q", *addr)
	}
	if host == "" {
		*addr, host = "127.0.0.1:"+port, "127.0.0.1"
	}
	if !c.AllowRemote && !Loopback(host) {
		return fmt.Sprintf("%s is not a loopback address; set ULTRAMCP_ALLOW_REMOTE=true to listen or connect beyond this machine", host)
	}
	return ""
}

// checkLocalAddr is checkAddr on loopback whatever ULTRAMCP_ALLOW_REMOTE
// says: Jaeger's ports have no auth.
func checkLocalAddr(c *Config, addr *string) string {
	local := *c
	local.AllowRemote = false
	return checkAddr(&local, addr)
}

func checkToken(c *Config) string {
	if why := checkWord(c.APIToken, "a token"); why != "" {
		return why
	}
	if host, _, _ := net.SplitHostPort(c.APIAddr); c.APIToken == "" && !Loopback(host) {
		return fmt.Sprintf("required for the API to listen on %s, beyond loopback", host)
	}
	return ""
}

func checkHosts(hosts []string) string {
	for _, h := range hosts {
		if strings.ContainsAny(h, "/@ \t") || strings.HasPrefix(h, "-") {
			return fmt.Sprintf("%q is not a host name or address", h)
		}
	}
	return ""
}

func checkOrigins(c *Config) string {
	for _, o := range c.APIOrigins {
		if !strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") || strings.Count(o, "/") != 2 {
			return fmt.Sprintf("%q is not an origin such as https://app.example.com", o)
		}
	}
	return ""
}

func checkDatabase(c *Config) string {
	if c.DatabaseURL != "" && !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") {
		return "must be a postgres:// URL (or unset, for SQLite in the state dir)"
	}
	return ""
}

func checkLimits(c *Config) string {
	if _, err := limits.Parse(c.Limits); err != nil {
		return err.Error()
	}
	return ""
}

func checkTracesEndpoint(c *Config) string {
	if c.TracesEndpoint == "" {
		return ""
	}
	u, err := url.Parse(c.TracesEndpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "must be an http:// or https:// URL of an OTLP collector, such as http://127.0.0.1:4318"
	}
	return ""
}

func checkCache(c *Config) string {
	if c.MaxCacheMB < c.MaxRepoMB {
		return fmt.Sprintf("must be at least ULTRAMCP_MAX_REPO_MB (%d)", c.MaxRepoMB)
	}
	return ""
}

func checkSlots(c *Config) string {
	if c.AnalysisSlots < 1 || c.AnalysisSlots > 64 {
		return "must be from 1 to 64"
	}
	return ""
}

func checkVulnDB(c *Config) string {
	if v := c.VulnDB; v != "" && !strings.HasPrefix(v, "https://") && !strings.HasPrefix(v, "http://") && !strings.HasPrefix(v, "file://") {
		return fmt.Sprintf("want an https:// or file:// URL, got %q", v)
	}
	return ""
}

func checkLLM(c *Config) string {
	switch c.LLM {
	case "offline", "openai", "anthropic":
		return ""
	}
	return fmt.Sprintf("must be offline, openai or anthropic, got %q", c.LLM)
}

func checkAnthropicKey(c *Config) string {
	if why := checkWord(c.AnthropicAPIKey, "an API key"); why != "" {
		return why
	}
	if c.LLM == "anthropic" && c.AnthropicAPIKey == "" {
		return "required when ULTRAMCP_LLM=anthropic"
	}
	return ""
}

// checkWord refuses spaces and control characters: a value that goes
// into a header or a request field verbatim.
func checkWord(v, what string) string {
	if strings.IndexFunc(v, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
		return "must be " + what + " without spaces or control characters"
	}
	return ""
}

// checkExecutable checks a binary given by path ("" is the pinned one).
func checkExecutable(path string) string {
	if path == "" {
		return ""
	}
	info, err := os.Stat(path)
	if err != nil || info.IsDir() || info.Mode()&0o111 == 0 {
		return fmt.Sprintf("%s is not an executable file", path)
	}
	return ""
}

func checkURL(u string) string {
	if u != "" && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		return fmt.Sprintf("want an http:// or https:// URL, got %q", u)
	}
	return ""
}

func positive(ok bool, unit string) string {
	if ok {
		return ""
	}
	return "must be a positive number of " + unit
}

// within checks lo <= d and, when hi > 0, d <= hi.
func between(n, lo, hi int64) string {
	if n < lo || n > hi {
		return fmt.Sprintf("must be from %d to %d", lo, hi)
	}
	return ""
}

func within(d, lo, hi time.Duration) string {
	switch {
	case hi > 0 && (d < lo || d > hi):
		return fmt.Sprintf("must be a duration from %s to %s", short(lo), short(hi))
	case d < lo:
		return fmt.Sprintf("must be a duration of at least %s", short(lo))
	}
	return ""
}

// short prints 5m0s as 5m.
func short(d time.Duration) string {
	s := d.String()
	s = strings.TrimSuffix(s, "0s")
	return strings.TrimSuffix(s, "0m")
}

// The value types. Their Set errors say what the setting accepts.

// value is a field of type T seen as text: parse reads it (its error says
// what the setting accepts), format writes it back.
type value[T any] struct {
	p      *T
	kind   string
	parse  func(string) (T, error)
	format func(T) string
}

func (v value[T]) String() string { return v.format(*v.p) }
func (v value[T]) Type() string   { return v.kind }
func (v value[T]) Set(s string) error {
	x, err := v.parse(s)
	if err == nil {
		*v.p = x
	}
	return err
}

func text(p *string) Value {
	return value[string]{p, "string", func(s string) (string, error) { return s, nil }, func(s string) string { return s }}
}

func list(p *[]string) Value {
	return value[[]string]{p, "list", func(s string) ([]string, error) {
		var out []string
		for _, h := range strings.Split(s, ",") {
			if h = strings.TrimSpace(h); h != "" {
				out = append(out, h)
			}
		}
		return out, nil
	}, func(l []string) string { return strings.Join(l, ",") }}
}

func boolean(p *bool) Value {
	return value[bool]{p, "bool", func(s string) (bool, error) {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return false, fmt.Errorf("want true or false, got %q", s)
		}
		return b, nil
	}, strconv.FormatBool}
}

func integer(p *int) Value {
	return value[int]{p, "int", func(s string) (int, error) {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return 0, fmt.Errorf("want a whole number, got %q", s)
		}
		return n, nil
	}, strconv.Itoa}
}

func megabytes(p *int64) Value {
	return value[int64]{p, "megabytes", func(s string) (int64, error) {
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("want a whole number of megabytes without a unit, such as 500, got %q", s)
		}
		return n, nil
	}, func(n int64) string { return strconv.FormatInt(n, 10) }}
}

func number(p *float64) Value {
	return value[float64]{p, "number", func(s string) (float64, error) {
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return 0, fmt.Errorf("want a number, such as 20 or 0.5, got %q", s)
		}
		return f, nil
	}, func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }}
}

func duration(p *time.Duration) Value {
	return value[time.Duration]{p, "duration", func(s string) (time.Duration, error) {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return 0, fmt.Errorf("want a duration with a unit, such as 30s or 2m, got %q", s)
		}
		return d, nil
	}, time.Duration.String}
}

// age is a duration that may count days (ParseAge).
func age(p *time.Duration) Value {
	return value[time.Duration]{p, "age", func(s string) (time.Duration, error) {
		d, err := ParseAge(s)
		if err != nil {
			return 0, fmt.Errorf("want a duration such as 7d or 12h, got %q", s)
		}
		return d, nil
	}, time.Duration.String}
}

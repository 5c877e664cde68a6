// Package api is UltraMCP's REST API: every workflow from HTTP, a thin
// adapter over the application service (package runs). It answers JSON,
// streams a workflow's events as server-sent events, documents itself in
// OpenAPI 3.1 at /openapi.json (built from the same route table as the
// handlers), and mounts the MCP endpoint at /mcp behind the same guards:
// a Host allowlist and an Origin check (no DNS rebinding, no form posts from
// web pages), a bearer token when configured, a rate limit per client and
// a size limit on bodies.
package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/ultramcp/durable/config"
	"github.com/ultramcp/durable/dashboard"
	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/runs"
	"github.com/ultramcp/durable/telemetry"
)

// MaxBodyBytes bounds a request body.
const MaxBodyBytes = 1 << 20

// Server is the API of one stack.
type Server struct {
	runs    *runs.Service
	cfg     config.Config
	log     *slog.Logger
	mcp     http.Handler
	feeds   *runs.Feeds
	hosts   []string // Host headers answered
	origins *http.CrossOriginProtection
	table   []route // the routes, built once: the handlers and the document

	console  http.Handler // the Restate UI and admin API, proxied
	mu       sync.Mutex
	limiters map[string]*rate.Limiter
	mcpOpen  map[string]int // MCP requests in flight, per client
}

// MaxMCPInFlight bounds the MCP requests one client (token identity, else
// address) may have open at once: each wait_for_result holds one for up to
// ten minutes. The waits themselves share one watch per workflow.
var MaxMCPInFlight = 1024

// New returns the API over svc for the stack cfg describes; mcp, if not
// nil, is served at /mcp. ctx bounds the event feeds it keeps.
func New(ctx context.Context, svc *runs.Service, cfg config.Config, mcp http.Handler, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{runs: svc, cfg: cfg, log: log, mcp: mcp, limiters: map[string]*rate.Limiter{}, mcpOpen: map[string]int{}}
	s.feeds = svc.Feeds()
	registerInFlight(svc)
	_, port, _ := net.SplitHostPort(cfg.APIAddr)
	s.hosts = []string{cfg.APIAddr, "localhost:" + port, "127.0.0.1:" + port, "[::1]:" + port}
	for _, h := range cfg.APIHosts {
		s.hosts = append(s.hosts, h)
		if !strings.Contains(h, ":") {
			s.hosts = append(s.hosts, h+":"+port)
		}
	}
	s.table = s.routes()
	s.console = s.newConsole()
	s.origins = http.NewCrossOriginProtection()
	for _, o := range cfg.APIOrigins {
		_ = s.origins.AddTrustedOrigin(o) // Validate checked their form
	}
	return s
}

// Handler is the API with its guards.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, r := range s.table {
		mux.Handle(r.Method+" "+r.Pattern, traced(r.Method+" "+r.Pattern, http.HandlerFunc(r.handle)))
	}
	if s.mcp != nil {
		mux.Handle("/mcp", traced("POST /mcp", s.mcp))
	}
	// Behind the token like every route but /health.
	mux.Handle("GET /metrics", telemetry.MetricsHandler())
	for _, p := range consolePaths {
		mux.Handle(p, s.console)
	}
	dash := dashboard.New(s.runs)
	if s.cfg.WithJaeger {
		dash.TraceUI = config.URL(s.cfg.JaegerAddr)
	}
	dash.Register(mux)
	mux.HandleFunc("GET /login", s.loginPage)
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, fault.New(fault.NotFound, "no route %s %s; the routes are in /openapi.json", r.Method, r.URL.Path))
	})
	return s.guard(mux)
}

// guard applies, in order: the Host allowlist, CORS, the rate limit (per
// token identity, else per address, refused requests too), the bearer
// token (all but /health and /login), the Origin check of state-changing
// requests, JSON-only POST bodies, the size limit and the time a body may
// take to arrive.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("api handler panicked", "path", r.URL.Path, "panic", fmt.Sprint(v))
				writeError(w, errors.New("internal error"))
			}
		}()
		if !slices.Contains(s.hosts, strings.ToLower(r.Host)) {
			writeError(w, &fault.Error{Kind: fault.Permanent, Field: "Host", Msg: fmt.Sprintf("this API answers to %s only (ULTRAMCP_API_HOSTS adds names)", strings.Join(s.hosts[:2], ", "))}, http.StatusForbidden)
			return
		}
		if origin := r.Header.Get("Origin"); origin != "" && slices.Contains(s.cfg.APIOrigins, origin) {
			w.Header().Set("Access-Control-Allow-Origin", origin)
			w.Header().Set("Vary", "Origin")
			if r.Method == http.MethodOptions {
				w.Header().Set("Access-Control-Allow-Methods", "GET, POST, DELETE")
				w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Idempotency-Key, Last-Event-ID, Mcp-Session-Id, Mcp-Protocol-Version")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		authorized := s.authorized(r)
		client := s.client(r, authorized)
		if !s.limiter(client).Allow() {
			w.Header().Set("Retry-After", "1")
			writeError(w, fault.New(fault.Unavailable, "more than %g requests a second (ULTRAMCP_API_RATE)", s.cfg.APIRate), http.StatusTooManyRequests)
			return
		}
		if !authorized && r.Method == http.MethodGet && dashboard.IsPage(r.URL.Path) {
			// A person at the dashboard signs in, then comes back here.
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		if !authorized && r.URL.Path != "/health" && r.URL.Path != "/login" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="ultramcp"`)
			writeError(w, &fault.Error{Kind: fault.Permanent, Field: "Authorization", Msg: "missing or wrong bearer token"}, http.StatusUnauthorized)
			return
		}
		if err := s.origins.Check(r); err != nil {
			writeError(w, &fault.Error{Kind: fault.Permanent, Field: "Origin", Msg: "cross-origin requests that change state are refused (ULTRAMCP_API_ORIGINS allows an origin)"}, http.StatusForbidden)
			return
		}
		if r.ContentLength != 0 && r.Body != http.NoBody {
			// A body must arrive in time: one sent a byte a second would
			// hold a connection for ever. The deadline is lifted once the
			// body is read, so event streams are not cut.
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(BodyTimeout))
		}
		if r.Method == http.MethodPost && r.URL.Path != "/mcp" && r.URL.Path != "/login" && r.ContentLength != 0 {
			if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
				writeError(w, &fault.Error{Kind: fault.Invalid, Field: "Content-Type", Msg: "must be application/json"}, http.StatusUnsupportedMediaType)
				return
			}
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		if r.URL.Path == "/mcp" {
			if !s.enterMCP(client) {
				w.Header().Set("Retry-After", "5")
				writeError(w, fault.New(fault.Unavailable, "%d MCP requests of this client are open already (waits included): the most at once", MaxMCPInFlight), http.StatusTooManyRequests)
				return
			}
			defer s.leaveMCP(client)
		}
		next.ServeHTTP(w, r)
	})
}

// BodyTimeout is how long a request body may take to arrive.
var BodyTimeout = time.Minute

// authorized checks the bearer token (its scheme in any case, RFC 7235) or
// the console's cookie, in constant time; without a configured token (the
// API on loopback) every request is.
func (s *Server) authorized(r *http.Request) bool {
	if s.cfg.APIToken == "" {
		return true
	}
	got, ok := "", false
	if scheme, tok, found := strings.Cut(r.Header.Get("Authorization"), " "); found && strings.EqualFold(scheme, "Bearer") {
		got, ok = tok, true
	}
	if c, err := r.Cookie(consoleCookie); !ok && err == nil {
		// The cookie holds a digest of the token, not the token: it opens
		// the console in a browser, and nothing else reads it.
		want := s.cookieValue()
		return subtle.ConstantTimeCompare([]byte(c.Value), []byte(want)) == 1
	}
	// Hashing first makes the comparison's time independent of the length
	// as well as of the content.
	a, b := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(s.cfg.APIToken))
	return ok && subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// maxLimiters bounds the clients remembered; past it, idle ones are
// forgotten, and while none is idle new ones share one limiter.
const maxLimiters = 10000

// client names who sent a request, for its limits: the token's identity
// for a request that carries the token, else its address (so a client
// cannot get past a limit by varying a header, and refused requests are
// limited too).
func (s *Server) client(r *http.Request, authorized bool) string {
	if authorized && s.cfg.APIToken != "" {
		return "token"
	}
	addr, _, _ := net.SplitHostPort(r.RemoteAddr)
	return "addr " + addr
}

func (s *Server) enterMCP(client string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mcpOpen[client] >= MaxMCPInFlight {
		return false
	}
	s.mcpOpen[client]++
	return true
}

func (s *Server) leaveMCP(client string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mcpOpen[client]--; s.mcpOpen[client] <= 0 {
		delete(s.mcpOpen, client)
	}
}

// limiter is the rate limiter of client.
func (s *Server) limiter(key string) *rate.Limiter {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.limiters[key]
	if !ok {
		if len(s.limiters) >= maxLimiters {
			for k, old := range s.limiters {
				if old.Tokens() >= float64(old.Burst()) {
					delete(s.limiters, k) // full: idle, nothing to forget
				}
			}
			if len(s.limiters) >= maxLimiters {
				key = "overflow"
				if l, ok = s.limiters[key]; ok {
					return l
				}
			}
		}
		l = rate.NewLimiter(rate.Limit(s.cfg.APIRate), int(2*s.cfg.APIRate)+1)
		s.limiters[key] = l
	}
	return l
}

// ErrorBody is every error answer.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail says what went wrong, in words a client can act on.
type ErrorDetail struct {
	Code    string `json:"code" jsonschema:"invalid, not found, unavailable, permanent, cancelled, conflict or internal"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty" jsonschema:"the request field at fault"`
}

// status maps a domain error to its HTTP status: the one place that does.
func status(err error) int {
	var mb *http.MaxBytesError
	switch {
	case errors.As(err, &mb):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, runs.ErrBusy):
		return http.StatusTooManyRequests
	case errors.Is(err, runs.ErrNotFinished):
		return http.StatusConflict
	}
	return fault.HTTPStatus(err)
}

// writeError answers err as JSON, with statusCode if given, else the
// status its kind maps to. Clients get our classified message: for faults
// of what is behind the API (the store, Restate, a tool) the message says
// which failed, not its raw output.
func writeError(w http.ResponseWriter, err error, statusCode ...int) {
	code := status(err)
	if len(statusCode) > 0 {
		code = statusCode[0]
	}
	d := ErrorDetail{Code: fault.KindOf(err).String(), Message: err.Error(), Field: fault.FieldOf(err)}
	var fe *fault.Error
	var mb *http.MaxBytesError
	switch {
	case errors.As(err, &mb):
		d = ErrorDetail{Code: "invalid", Field: "body", Message: fmt.Sprintf("larger than %d bytes", mb.Limit)}
	case code == http.StatusInternalServerError:
		d.Message = "internal error"
	case fault.KindOf(err) == fault.Unavailable && errors.As(err, &fe) && fe.Msg != "":
		d.Message = fe.Msg + ": unavailable, try again"
	}
	writeJSON(w, code, ErrorBody{d})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// Serve runs the API on addr until ctx ends.
func Serve(ctx context.Context, addr string, h http.Handler, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s (ULTRAMCP_API_ADDR): %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	// No WriteTimeout: event streams and waits last as long as the work.
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

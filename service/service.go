// Package service is the workflow service: it builds the LLM providers from
// the configuration, binds every workflow to the Restate engine, and serves
// the Restate service protocol (h2c) with request-identity checks. It is the
// wiring between the workflow logic and the outside world; the logic itself
// lives in package workflow.
package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	restatesdk "github.com/restatedev/sdk-go"
	"github.com/restatedev/sdk-go/server"

	"github.com/ultramcp/durable/analysis/repo"
	"github.com/ultramcp/durable/client"
	"github.com/ultramcp/durable/config"
	"github.com/ultramcp/durable/engine"
	restateengine "github.com/ultramcp/durable/engine/restate"
	"github.com/ultramcp/durable/identity"
	"github.com/ultramcp/durable/llm"
	"github.com/ultramcp/durable/retry"
	"github.com/ultramcp/durable/store"
	"github.com/ultramcp/durable/workflow"
	"github.com/ultramcp/durable/workflow/derived"
	"github.com/ultramcp/durable/workflow/observed"
	"github.com/ultramcp/durable/workflow/registry"
	"github.com/ultramcp/durable/workflow/writebehind"
)

// Options of a service.
type Options struct {
	// PublicKey is the request-identity key; "" accepts unsigned requests
	// (only for tests that bind to loopback).
	PublicKey string
	Logger    *slog.Logger
	Services  restateengine.ServiceOptions
	// Records is the metadata store; nil keeps no records.
	Records workflow.Records
	// Checkouts is the repository cache of the analyses.
	Checkouts *repo.Cache
	// AnalysisSlots bounds the checkouts and scans running at once; zero
	// means codeanalysis.DefaultSlots.
	AnalysisSlots int
	// VulnDB is govulncheck's database; "" is vuln.go.dev.
	VulnDB string
}

// Checkouts returns the repository cache of cfg.
func Checkouts(cfg config.Config) *repo.Cache {
	p := repo.DefaultPolicy
	p.AllowLocal = cfg.AllowLocalRepos
	p.Hosts = cfg.RepoHosts
	p.MaxBytes = cfg.MaxRepoMB << 20
	p.CloneTimeout = cfg.CloneTimeout
	return &repo.Cache{Dir: cfg.Path("checkouts"), Policy: p, MaxBytes: cfg.MaxCacheMB << 20}
}

// SubmitDeps are what the workflows' definitions check a request with
// outside the service (the CLI, the API): the service's repository policy
// and its configured models, so that a request the service would refuse
// is refused at submit.
func SubmitDeps(cfg config.Config) workflow.Deps {
	deps := workflow.Deps{Checkouts: Checkouts(cfg)}
	if models, err := ConfiguredModels(cfg); err == nil {
		deps.Models = models
	}
	return deps
}

// Handler builds the Restate endpoint serving every workflow.
func Handler(models *llm.Router, o Options) (http.Handler, error) {
	return NewServer(models, o).Handler()
}

// NewServer builds the Restate server with every workflow bound, to which
// a caller (the benchmark) may bind more services before taking its
// Handler. It warms the SDK first.
func NewServer(models *llm.Router, o Options) *server.Restate {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Services.InactivityTimeout == 0 && o.Services.AbortTimeout == 0 && o.Services.Retention == 0 {
		o.Services = restateengine.DefaultServiceOptions
	}
	// An id from the ingress socket meets the rules the API applies.
	o.Services.CheckKey = workflow.CheckID
	if o.Checkouts == nil {
		o.Checkouts = &repo.Cache{Dir: filepath.Join(os.TempDir(), "ultramcp-checkouts"), Policy: repo.DefaultPolicy}
	}
	if published, ok := o.Records.(restateengine.ProgressReader); ok {
		o.Services.Published = published
	}
	srv := server.NewRestate().WithLogger(o.Logger.Handler(), true)
	for _, def := range registry.All(workflow.Deps{Models: models, Records: o.Records, Checkouts: o.Checkouts, VulnDB: o.VulnDB, AnalysisSlots: o.AnalysisSlots}) {
		srv = srv.Bind(restateengine.Workflow(def.Name, Wrapped(def.Name, def.Body, o.Records), o.Services))
	}
	if o.PublicKey != "" {
		srv = srv.WithIdentityV1(o.PublicKey)
	}
	warmSDK(o.Logger)
	return srv
}

// Wrapped is a workflow's body as the service runs it: watched (spans and
// metrics), able to run from a step of an earlier run (a replay), and
// recorded in records (nil records nothing).
func Wrapped(name string, body engine.Body, records workflow.Records) engine.Body {
	return observed.Body(name, derived.Body(writebehind.Tracked(records, name, body)))
}

// warmSDK makes the SDK compile its WebAssembly core now, not on the first
// invocation in the process: that one would otherwise take ~0.3 s more than
// the next, and a recovery after a crash would pay it again. An invocation
// request with no journal, served in-process by an unsigned endpoint of a
// service that does nothing, is enough: the core is compiled before the
// request is read, and shared by every later one.
func warmSDK(log *slog.Logger) {
	start := time.Now()
	warm := restatesdk.NewService("ultramcp-warm-up").Handler("noop", restatesdk.NewServiceHandler(func(restatesdk.Context, struct{}) (struct{}, error) { return struct{}{}, nil }))
	h, err := server.NewRestate().WithLogger(slog.DiscardHandler, false).Bidirectional(false).Bind(warm).Handler()
	if err != nil {
		log.Warn("SDK warm-up skipped", "err", err)
		return
	}
	req := httptest.NewRequest(http.MethodPost, "/invoke/ultramcp-warm-up/noop", http.NoBody)
	req.Header.Set("Content-Type", "application/vnd.restate.invocation.v5")
	h.ServeHTTP(httptest.NewRecorder(), req)
	log.Info("SDK core compiled", "took", time.Since(start).Round(time.Millisecond).String())
}

// Serve runs the workflow service of cfg on models (llm/providers), its
// records in st (the store the process's API shares), until ctx ends. It refuses to start without the
// identity keys that `ultramcp up` creates.
func Serve(ctx context.Context, cfg config.Config, st *store.Store, models *llm.Router, logger *slog.Logger) error {
	pub, err := identity.Load(cfg.Path("keys"))
	if err != nil {
		return fmt.Errorf("read request-identity key (run `ultramcp up` first, it creates them): %w", err)
	}
	// The git that gitleaks runs in a checkout inherits this process's
	// environment: it must not read the operator's git configuration.
	for k, v := range map[string]string{"GIT_CONFIG_GLOBAL": os.DevNull, "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"} {
		if err := os.Setenv(k, v); err != nil {
			return err
		}
	}
	// Store writes log their outages through the default logger.
	slog.SetDefault(logger)
	writebehind.StoreRetryCap = cfg.StoreRetryCap
	services := restateengine.DefaultServiceOptions
	services.Retention = cfg.Retention
	services.AttemptsDir = cfg.Path("attempts")
	services.CrashAtStep = os.Getenv(restateengine.CrashAtStepEnv)
	services.Gate = restateengine.NewGate()
	checkouts := Checkouts(cfg)
	checkouts.Policy.Log = logger
	h, err := Handler(models, Options{PublicKey: pub, Logger: logger, Records: st, Services: services, Checkouts: checkouts, AnalysisSlots: cfg.AnalysisSlots, VulnDB: cfg.VulnDBURL()})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.ServiceAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.ServiceAddr, err)
	}
	logger.Info("workflow service listening", "addr", ln.Addr().String(), "providers", models.Available(), "default", models.Default().String(), "store", st.Dialect())
	go reconcileLoop(ctx, st, client.ForStack(cfg), cfg.ReconcileInterval, logger)
	return ServeListener(ctx, ln, h, func() {
		// Let the running steps finish and their results reach Restate,
		// so that nothing paid for runs again after the restart.
		grace, cancel := context.WithTimeout(context.Background(), cfg.StopGrace)
		defer cancel()
		logger.Info("stopping: finishing running steps", "grace", cfg.StopGrace.String())
		if left := services.Gate.Close(grace); left > 0 {
			logger.Warn("stopping with steps still running; Restate runs them again after the restart", "steps", left)
			return
		}
		time.Sleep(flushDelay)
		logger.Info("stopped: every running step finished")
	})
}

// flushDelay is how long a stopping service waits, once its steps have
// returned, for their results to be written to Restate and acknowledged
// (milliseconds on one machine).
const flushDelay = 500 * time.Millisecond

// OpenStore opens the metadata store of cfg: PostgreSQL when
// ULTRAMCP_DATABASE_URL is set, else the SQLite file in the state dir. A
// database that is not reachable yet is retried for a while: the service
// may start before it.
func OpenStore(ctx context.Context, cfg config.Config) (*store.Store, error) {
	if err := cfg.PrepareHome(); err != nil {
		return nil, err
	}
	// Every error, for 30 s: a database started beside the service answers
	// "connection refused" or "starting up" for a few seconds.
	policy := retry.Policy{Initial: time.Second, Max: time.Second, Attempts: 30, Retryable: func(error) bool { return true }}
	var st *store.Store
	_, err := policy.Do(ctx, func(ctx context.Context) (err error) {
		st, err = store.Open(ctx, cfg.DatabaseURL, cfg.SQLitePath())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("metadata store: %w", err)
	}
	if err := st.Warm(ctx); err != nil {
		slog.Warn("metadata store warm-up", "err", err) // the first workflow pays it
	}
	return st, nil
}

// ServeListener serves h over h2c on ln until ctx ends; then it runs drain
// (if set) while the connections stay open, and closes them. It returns
// only once that is done, so the process does not exit mid-drain.
func ServeListener(ctx context.Context, ln net.Listener, h http.Handler, drain func()) error {
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	protocols.SetHTTP1(true)
	srv := &http.Server{Handler: h, Protocols: &protocols, ReadHeaderTimeout: 5 * time.Second}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		if drain != nil {
			drain()
		}
		// Invocation streams stay open while their workflow waits for a
		// step that will not start now: close them rather than wait.
		shutdown, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if srv.Shutdown(shutdown) != nil {
			_ = srv.Close()
		}
	}()
	err := srv.Serve(ln)
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	<-stopped
	return nil
}

// Providers is what a running service has configured: the default model
// and the providers it can call. Written in the state dir when the service
// starts, so that a submission from any process (a CLI without the keys in
// its environment) checks a request's models against the service's.
type Providers struct {
	Default   string   `json:"default"`
	Available []string `json:"available"`
}

func providersPath(cfg config.Config) string { return cfg.Path("providers.json") }

// WriteProviders records the providers of models for cfg's stack.
func WriteProviders(cfg config.Config, models *llm.Router) error {
	b, _ := json.Marshal(Providers{Default: models.Default().String(), Available: models.Available()})
	tmp := providersPath(cfg) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, providersPath(cfg))
}

// ConfiguredModels is the router to check requests against: the running
// service's providers if it recorded them, else those of cfg.
func ConfiguredModels(cfg config.Config) (*llm.Router, error) {
	if b, err := os.ReadFile(providersPath(cfg)); err == nil {
		var p Providers
		if json.Unmarshal(b, &p) == nil {
			if def, err := llm.ParseRef(p.Default, "offline"); err == nil {
				return llm.Configured(def, p.Available), nil
			}
		}
	}
	def, err := llm.DefaultRef(cfg.LLM, cfg.Model)
	if err != nil {
		return nil, err
	}
	return llm.Configured(def, cfg.Providers()), nil
}

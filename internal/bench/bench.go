// Package bench measures what durability costs: the same debate logic on the
// Restate engine (a real restate-server started for the run, the service in
// this process) and on the direct engine, side by side in one run, with a
// fake model of known latency. `ultramcp bench` prints its report; the
// figures go to docs/benchmarks.md.
package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/restatedev/sdk-go"

	"github.com/ultramcp/durable/analysis"
	"github.com/ultramcp/durable/analysis/repo"
	"github.com/ultramcp/durable/client"
	"github.com/ultramcp/durable/config"
	"github.com/ultramcp/durable/engine/direct"
	restateengine "github.com/ultramcp/durable/engine/restate"
	"github.com/ultramcp/durable/identity"
	"github.com/ultramcp/durable/internal/llmtest"
	"github.com/ultramcp/durable/limits"
	"github.com/ultramcp/durable/live"
	"github.com/ultramcp/durable/llm"
	"github.com/ultramcp/durable/llm/openai"
	"github.com/ultramcp/durable/service"
	"github.com/ultramcp/durable/stack"
	"github.com/ultramcp/durable/store"
	"github.com/ultramcp/durable/telemetry"
	"github.com/ultramcp/durable/workflow"
	"github.com/ultramcp/durable/workflow/codeanalysis"
	"github.com/ultramcp/durable/workflow/debate"
	"github.com/ultramcp/durable/workflow/writebehind"
)

// Options size the run.
type Options struct {
	Sequential   int           // debates per engine for the latency medians
	Concurrent   int           // debates at once for throughput
	Latency      time.Duration // model latency of the "L" scenarios
	CallLatency  time.Duration // fake OpenAI endpoint latency for the parallel-round figure
	Participants int
	Rounds       int
	// RestateServerBin overrides the pinned binary's location.
	RestateServerBin string
	// DatabaseURL puts the product's store on PostgreSQL; "" is SQLite in
	// the run's state dir.
	DatabaseURL string
	// Bursts is how many concurrent bursts each column runs; the median
	// counts.
	Bursts int
	// RecoveryDebates are in flight when the recovery figure kills the
	// service (0 skips it).
	RecoveryDebates int
	// ProfileDir, if set, receives a CPU profile of this process per
	// concurrent run (cpu-<column>.pprof), for `go tool pprof`.
	ProfileDir string
	// Repository is analysed by the code-analysis figure ("" skips it).
	Repository string
	// Analyses is how many full analyses each engine runs.
	Analyses int
	// SkipDebate skips the debate figures.
	SkipDebate bool
	// VulnDB is govulncheck's database for the analyses.
	VulnDB string
}

// DefaultOptions are the figures docs/benchmarks.md records.
var DefaultOptions = Options{Sequential: 20, Concurrent: 100, Bursts: 4, RecoveryDebates: 20, Latency: 100 * time.Millisecond, CallLatency: 300 * time.Millisecond, Participants: 3, Rounds: 3}

// latencyModel answers instantly-structured positions after a settable
// delay; each participant keeps its own position, so debates never stop
// early and every run does the same number of calls.
type latencyModel struct{ latency atomic.Int64 }

func (m *latencyModel) Name() string { return "offline" }

func (m *latencyModel) Complete(ctx context.Context, req llm.Request) (llm.Response, error) {
	if d := time.Duration(m.latency.Load()); d > 0 {
		select {
		case <-ctx.Done():
			return llm.Response{}, ctx.Err()
		case <-time.After(d):
		}
	}
	who := req.Label[strings.LastIndexByte(req.Label, '/')+1:]
	text := fmt.Sprintf(`{"position":"position of %s","reasoning":"benchmark","confidence":0.7}`, who)
	if who == "moderator" {
		text = `{"consensus":"c","disagreements":[],"recommendation":"r","agreement":0.5}`
	}
	return llm.Response{Text: text, Model: "offline", TokensIn: 100, TokensOut: 20, Simulated: true}, nil
}

// Bench is a prepared run: a restate-server, the in-process service, and a
// fake OpenAI endpoint.
type Bench struct {
	o         Options
	model     *latencyModel
	fake      *llmtest.Server
	router    *llm.Router
	streamed  *llm.Router
	stack     *stack.Stack
	client    *client.Client
	home      string
	stopSvc   context.CancelFunc
	store     *store.Store
	checkouts *repo.Cache
	seq       atomic.Int64
	// firstDebates are the first three debates after start, at L=0.
	firstDebates []time.Duration
	// traces is the local OTLP endpoint the traced column exports to, and
	// stopTraces what flushes and uninstalls the tracer.
	traces     *collector
	stopTraces func(context.Context) error
	limiter    *limits.Limiter
}

// noStoreDebateService is the product's debate bound without the store.
const noStoreDebateService = "bench-debate-nostore"

// Start prepares a run: a restate-server, the store, the service with
// every column bound, and the first debates.
func Start(ctx context.Context, o Options) (*Bench, error) {
	home, err := os.MkdirTemp("", "ultramcp-bench-")
	if err != nil {
		return nil, err
	}
	b := &Bench{o: o, model: &latencyModel{}, home: home}
	// Tracing is installed once, to a local collector, and on only while
	// the traced column runs (telemetry.SetExporting): every other column
	// runs with it off, as the product does by default.
	b.traces = newCollector()
	if b.stopTraces, err = telemetry.Setup(ctx, telemetry.Options{Service: "ultramcp-bench", Endpoint: b.traces.URL}); err != nil {
		b.Close()
		return nil, err
	}
	telemetry.SetExporting(false)
	b.fake = llmtest.New(llmtest.Behavior{Latency: o.CallLatency})
	oa := llm.Retrying(openai.New(openai.Config{BaseURL: b.fake.OpenAIBaseURL()}), llm.DefaultRetryPolicy)
	b.router = llm.NewRouter(llm.Ref{Provider: "offline"}, b.model, oa)
	// The service's router: every call streams its answer to the hub
	// (here nobody reads it).
	b.streamed = llm.NewRouter(llm.Ref{Provider: "offline"}, b.model, oa).Streaming(live.NewHub())
	if err := b.start(ctx); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// start starts the stack and measures the first debates.
func (b *Bench) start(ctx context.Context) error {
	cfg, err := stack.EphemeralConfig(filepath.Join(b.home, "stack"))
	if err != nil {
		return err
	}
	cfg.RestateServerBin = b.o.RestateServerBin
	b.stack = stack.New(cfg, "", nil)
	if _, err := b.stack.StartRestate(ctx); err != nil {
		return err
	}
	// The product's default store (SQLite in the state dir) records every
	// debate, as it would for a user.
	if b.store, err = store.Open(ctx, b.o.DatabaseURL, cfg.SQLitePath()); err != nil {
		return err
	}
	if err := b.store.Warm(ctx); err != nil { // as the service does
		return err
	}
	if err := b.serve(ctx, cfg); err != nil {
		return err
	}
	b.client = client.ForStack(cfg)
	// The first debate after the service started, against the ones after
	// it: the service compiles the SDK's core before it serves, so the
	// first should cost what the next ones do. restate-server's own first
	// invocations are slow (a fresh server): the reference warms it, so
	// that the product's first debates measure what the service's start
	// costs.
	in := b.input(b.o.Participants, b.o.Rounds, "")
	for range 3 {
		if _, err := b.raw(ctx, nil); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	for range 3 {
		d, err := b.durable(ctx, in)
		if err != nil {
			return fmt.Errorf("first debates: %w", err)
		}
		b.firstDebates = append(b.firstDebates, d)
	}
	return nil
}

// serve serves, side by side in one service, the product as shipped
// (every workflow, recording to the store), the same debate without the
// store, and the raw-SDK reference, and registers it.
func (b *Bench) serve(ctx context.Context, cfg config.Config) error {
	pub, err := identity.Load(cfg.Path("keys"))
	if err != nil {
		return err
	}
	b.checkouts = &repo.Cache{Dir: filepath.Join(b.home, "checkouts"), Policy: repo.DefaultPolicy}
	b.checkouts.Policy.AllowLocal = true
	// The service options the product runs with, its crash guard's attempt
	// files included.
	services := restateengine.DefaultServiceOptions
	services.AttemptsDir = cfg.Path("attempts")
	srv := service.NewServer(b.router, service.Options{PublicKey: pub, Logger: slog.New(slog.DiscardHandler), Records: b.store, Services: services, Checkouts: b.checkouts, VulnDB: b.o.VulnDB})
	noStore := debate.Definition(&debate.Debate{Models: b.router})
	srv = srv.Bind(restateengine.Workflow(noStoreDebateService, noStore.Body, services)).Bind(rawDebate(b.model))
	srv = srv.Bind(b.limitedDebate(services))
	h, err := srv.Handler()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.ServiceAddr)
	if err != nil {
		return err
	}
	svcCtx, cancel := context.WithCancel(context.Background())
	b.stopSvc = cancel
	go func() { _ = service.ServeListener(svcCtx, ln, h, nil) }()
	return b.stack.Register(ctx, cfg.ServiceURL())
}

// Close stops everything the run started.
func (b *Bench) Close() {
	if b.stopSvc != nil {
		b.stopSvc()
	}
	if b.stack != nil {
		_ = b.stack.Stop()
	}
	if b.store != nil {
		b.store.Close()
	}
	if b.fake != nil {
		b.fake.Close()
	}
	if b.limiter != nil {
		b.limiter.Close()
	}
	if b.stopTraces != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = b.stopTraces(ctx)
		cancel()
	}
	if b.traces != nil {
		b.traces.Close()
	}
	os.RemoveAll(b.home)
}

func (b *Bench) input(participants, rounds int, model string) []byte {
	var ps []map[string]string
	for i := range participants {
		ps = append(ps, map[string]string{"name": fmt.Sprintf("p%d", i+1), "model": model})
	}
	in := map[string]any{"topic": "benchmark", "participants": ps, "rounds": rounds, "delayBetweenRounds": "0s"}
	if rounds == 1 {
		in["mode"] = debate.ModeVote // one round, no moderator: the round alone
	}
	if participants == 1 { // warm-up
		in["participants"] = []string{"a", "b"}
	}
	out, _ := json.Marshal(in)
	return out
}

func (b *Bench) nextID(engine string) string {
	return fmt.Sprintf("bench-%s-%d-%d", engine, os.Getpid(), b.seq.Add(1))
}

// durable runs one debate of the product (store on) on Restate and returns
// its wall time.
func (b *Bench) durable(ctx context.Context, in []byte) (time.Duration, error) {
	return b.call(ctx, workflow.ChainOfDebate, in)
}

// limitedDebateService is the product's debate (store on, wrapped as the
// service wraps it) whose every model call takes a permit of a limit that
// never binds, from the store's ledger: what the limiter costs when
// nothing is limited.
const limitedDebateService = "bench-debate-limited"

func (b *Bench) limitedDebate(services restateengine.ServiceOptions) restate.ServiceDefinition {
	b.limiter = limits.New(limits.Table{{Key: "offline", Concurrency: 1 << 20, RPM: 1 << 30, TPM: 1 << 30}}, b.store.Limits(), nil)
	models := llm.NewRouter(llm.Ref{Provider: "offline"}, llm.Retrying(b.model, llm.RetryPolicy{MaxAttempts: 1, Gate: b.limiter}))
	def := debate.Definition(&debate.Debate{Models: models, Records: b.store})
	return restateengine.Workflow(limitedDebateService, service.Wrapped(workflow.ChainOfDebate, def.Body, b.store), services)
}

// durableLimited runs the product's debate with its calls under limits.
func (b *Bench) durableLimited(ctx context.Context, in []byte) (time.Duration, error) {
	return b.call(ctx, limitedDebateService, in)
}

// durableNoStore runs the product's debate without the store.
func (b *Bench) durableNoStore(ctx context.Context, in []byte) (time.Duration, error) {
	return b.call(ctx, noStoreDebateService, in)
}

// raw runs the raw-SDK debate of the same shape.
func (b *Bench) raw(ctx context.Context, _ []byte) (time.Duration, error) {
	in, _ := json.Marshal(rawInput{Participants: b.o.Participants, Rounds: b.o.Rounds})
	return b.call(ctx, rawDebateService, in)
}

func (b *Bench) call(ctx context.Context, svc string, in []byte) (time.Duration, error) {
	id := b.nextID(svc)
	start := time.Now()
	if _, err := b.client.Call(ctx, svc, id, in); err != nil {
		return 0, fmt.Errorf("%s: %w", svc, err)
	}
	return time.Since(start), nil
}

// inProcess runs one debate on the direct engine, without the store.
func (b *Bench) inProcess(ctx context.Context, in []byte) (time.Duration, error) {
	return b.inProcessWith(ctx, b.router, in)
}

// inProcessStreamed is inProcess with every answer streamed (no reader).
func (b *Bench) inProcessStreamed(ctx context.Context, in []byte) (time.Duration, error) {
	return b.inProcessWith(ctx, b.streamed, in)
}

func (b *Bench) inProcessWith(ctx context.Context, models llm.Models, in []byte) (time.Duration, error) {
	parsed, err := debate.Decode(in)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	// The floor: no journal, no store.
	d := &debate.Debate{Models: models}
	_, err = d.Run(direct.New(ctx, b.nextID("direct"), nil), parsed)
	return time.Since(start), err
}

type runner func(context.Context, []byte) (time.Duration, error)

func median(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	return ds[len(ds)/2]
}

func (b *Bench) medianOf(ctx context.Context, run runner, in []byte, n int) (time.Duration, error) {
	ds := make([]time.Duration, 0, n)
	for range n {
		d, err := run(ctx, in)
		if err != nil {
			return 0, err
		}
		ds = append(ds, d)
	}
	return median(ds), nil
}

// cpu returns this process's CPU time and restate-server's.
func (b *Bench) cpu() (self, server time.Duration) {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	if p, err := b.stack.Restate(); err == nil {
		if pid, ok := p.PID(); ok {
			server = procCPU(pid)
		}
	}
	return self, server
}

// procCPU reads utime+stime of pid from /proc (clock ticks of 10 ms).
func procCPU(pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(fields) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// Throughput of n concurrent debates.
type Throughput struct {
	PerSecond  float64
	CPUPerItem time.Duration // this process (service and client) + restate-server
	ServerCPU  time.Duration // restate-server's part of CPUPerItem
	Completed  int
	// Retried counts the run's invocations Restate had to retry (an
	// attempt that failed or timed out), over all columns so far.
	Retried int
	// RSSPerItem is this process's peak resident memory during the run
	// above what it held before, per debate in flight.
	RSSPerItem float64 // KiB
}

// profile starts a CPU profile for the column named name, if asked for.
func (b *Bench) profile(name string) (stop func(), err error) {
	if b.o.ProfileDir == "" {
		return func() {}, nil
	}
	if err := os.MkdirAll(b.o.ProfileDir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(filepath.Join(b.o.ProfileDir, "cpu-"+strings.NewReplacer(" ", "-", ",", "", "(", "", ")", "", "+", "").Replace(name)+".pprof"))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// rssKiB is this process's resident memory.
func rssKiB() int64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

func (b *Bench) concurrent(ctx context.Context, run runner, in []byte, n int, withServer bool) (Throughput, error) {
	runtime.GC()
	idle := rssKiB()
	var peak atomic.Int64
	sampling, stopSampling := context.WithCancel(ctx)
	go func() {
		for sampling.Err() == nil {
			if v := rssKiB(); v > peak.Load() {
				peak.Store(v)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	defer stopSampling()
	self0, server0 := b.cpu()
	start := time.Now()
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for range n {
		wg.Go(func() {
			if _, err := run(ctx, in); err != nil {
				firstErr.CompareAndSwap(nil, err)
			}
		})
	}
	wg.Wait()
	wall := time.Since(start)
	stopSampling()
	if err, _ := firstErr.Load().(error); err != nil {
		return Throughput{}, err
	}
	self1, server1 := b.cpu()
	t := Throughput{PerSecond: float64(n) / wall.Seconds(), CPUPerItem: (self1 - self0) / time.Duration(n), Completed: n,
		RSSPerItem: float64(max(peak.Load()-idle, 0)) / float64(n)}
	if withServer {
		if rows, err := b.client.Query(ctx, "SELECT target_service_name AS svc, count(*) AS n FROM sys_invocation WHERE retry_count > 0 GROUP BY target_service_name"); err == nil {
			for _, row := range rows {
				if v, ok := row["n"].(float64); ok {
					t.Retried += int(v)
				}
			}
		}
	}
	if withServer {
		t.ServerCPU = (server1 - server0) / time.Duration(n)
		t.CPUPerItem += t.ServerCPU
	}
	return t, nil
}

// Column is one way of running the same debate.
type Column struct {
	Name       string
	L0, L      time.Duration // median wall time at L=0 and at L
	Throughput Throughput
	durable    bool // restate-server's CPU counts
	// traced runs the column with spans exported to a local collector.
	traced bool
	run    runner
}

// runs is c's runner with tracing on while it runs when c is traced.
func (c Column) runs() (run runner, done func()) {
	telemetry.SetExporting(c.traced)
	if !c.traced {
		return c.run, func() {}
	}
	return func(ctx context.Context, in []byte) (time.Duration, error) {
		tracedDebates.Add(1)
		return c.run(ctx, in)
	}, func() { telemetry.SetExporting(false) }
}

// tracedDebates counts the debates run traced.
var tracedDebates atomic.Int64

// Report is the run's figures.
type Report struct {
	Options Options
	Ideal   time.Duration
	// Columns: direct, the raw SDK, the product without its store, the
	// product as shipped (last: the earlier runs warm restate-server up, so
	// the product is measured warm, as the reference is).
	Columns []Column
	// Recovery is the kill -9 figure.
	Recovery Recovery
	// FirstDebates are the product's first three debates after start, at
	// L=0, against the product's warm L0.
	FirstDebates                    []time.Duration
	ParallelRestate, ParallelDirect time.Duration
	ParallelStreamed                time.Duration // direct, each answer streamed to no reader
	ParallelSequentialEstimate      time.Duration
	ParallelMaxInFlight             int
	AnalysisDirect, AnalysisRestate time.Duration
	AnalysisCommit                  string
	AnalysisFindings                int
	AnalysisScanners                []analysis.ScannerRun
	// SpansExported, SpanBatches and SpanBytes are what the traced column
	// sent to the collector over TracedDebates debates.
	SpansExported, SpanBatches, SpanBytes int64
	TracedDebates                         int
}

// Run measures everything, printing progress to w.
func (b *Bench) Run(ctx context.Context, w io.Writer) (Report, error) {
	o := b.o
	r := Report{Options: o}
	step := func(name string, f func() error) error {
		fmt.Fprintf(w, "… %s\n", name)
		return f()
	}
	var err error
	if !o.SkipDebate {
		if err := b.runDebates(ctx, &r, step); err != nil {
			return r, err
		}
	}
	if o.Repository != "" {
		if err := step("full code-analysis of "+o.Repository, func() error { return b.runAnalyses(ctx, &r) }); err != nil {
			return r, err
		}
	}
	return r, err
}

func (b *Bench) runDebates(ctx context.Context, r *Report, step func(string, func() error) error) error {
	o := b.o
	debateIn := b.input(o.Participants, o.Rounds, "")
	r.FirstDebates = b.firstDebates
	r.Columns = []Column{
		{Name: "direct engine", run: b.inProcess},
		{Name: "raw SDK (RunAsync + Wait)", run: b.raw, durable: true},
		{Name: "product, no store", run: b.durableNoStore, durable: true},
		{Name: "product, " + b.store.Dialect() + " store on, traced", run: b.durable, durable: true, traced: true},
		{Name: "product, " + b.store.Dialect() + " store on, limits on", run: b.durableLimited, durable: true},
		{Name: "product, " + b.store.Dialect() + " store on", run: b.durable, durable: true},
	}
	if err := b.sequential(ctx, r, debateIn, step); err != nil {
		return err
	}
	// restate-server's first burst of work is slower than the next ones
	// (caches, partition processors warming up): one unmeasured burst
	// first, so each column is measured warm.
	if err := step(fmt.Sprintf("%d concurrent debates at L=%s to warm restate-server up (not measured)", o.Concurrent, o.Latency), func() error {
		_, err := b.concurrent(ctx, b.raw, debateIn, o.Concurrent, true)
		return err
	}); err != nil {
		return err
	}
	if err := b.bursts(ctx, r, debateIn, step); err != nil {
		return err
	}
	// The spans still batched reach the collector before it is read.
	_ = telemetry.Flush(ctx)
	r.SpansExported, r.SpanBatches, r.SpanBytes = b.traces.spans.Load(), b.traces.batches.Load(), b.traces.bytes.Load()
	r.TracedDebates = int(tracedDebates.Load())
	if o.RecoveryDebates > 0 {
		if err := step(fmt.Sprintf("kill -9 of the service with %d debates in flight, then up", o.RecoveryDebates), func() (err error) {
			r.Recovery, err = b.recovery(ctx, o.RecoveryDebates)
			return err
		}); err != nil {
			return err
		}
	}
	roundIn := b.input(4, 1, "openai:fake")
	return step(fmt.Sprintf("one round of 4 participants, fake OpenAI endpoint at %s per call", o.CallLatency), func() (err error) {
		if r.ParallelDirect, err = b.medianOf(ctx, b.inProcess, roundIn, 5); err != nil {
			return err
		}
		if r.ParallelStreamed, err = b.medianOf(ctx, b.inProcessStreamed, roundIn, 5); err != nil {
			return err
		}
		r.ParallelRestate, err = b.medianOf(ctx, b.durable, roundIn, 3)
		r.ParallelSequentialEstimate = 4 * o.CallLatency
		r.ParallelMaxInFlight = b.fake.MaxInFlight()
		return err
	})
}

// sequential times one debate at a time, at L=0 and at the model's
// latency. Every figure interleaves the columns (one debate of each in
// turn) so that the machine's drift during the run falls on all of them
// alike.
func (b *Bench) sequential(ctx context.Context, r *Report, in []byte, step func(string, func() error) error) error {
	interleaved := func(n int) ([]time.Duration, error) {
		samples := make([][]time.Duration, len(r.Columns))
		for range n {
			for i, c := range r.Columns {
				run, done := c.runs()
				d, err := run(ctx, in)
				done()
				if err != nil {
					return nil, err
				}
				samples[i] = append(samples[i], d)
			}
		}
		medians := make([]time.Duration, len(r.Columns))
		for i := range samples {
			medians[i] = median(samples[i])
		}
		return medians, nil
	}
	b.model.latency.Store(0)
	if err := step("one debate at L=0, sequential, the columns interleaved", func() error {
		m, err := interleaved(b.o.Sequential)
		for i := range m {
			r.Columns[i].L0 = m[i]
		}
		return err
	}); err != nil {
		return err
	}
	b.model.latency.Store(int64(b.o.Latency))
	r.Ideal = time.Duration(b.o.Rounds+1) * b.o.Latency
	return step(fmt.Sprintf("one debate at L=%s, sequential, the columns interleaved", b.o.Latency), func() error {
		m, err := interleaved(max(b.o.Sequential/4, 3))
		for i := range m {
			r.Columns[i].L = m[i]
		}
		return err
	})
}

// bursts times bursts of concurrent debates per column and keeps each
// column's median burst by throughput, with its CPU and memory.
func (b *Bench) bursts(ctx context.Context, r *Report, in []byte, step func(string, func() error) error) error {
	o := b.o
	bursts := make([][]Throughput, len(r.Columns))
	for rep := range max(o.Bursts, 1) {
		// Each repetition starts one column later, so that no column is
		// always the one run after the others (restate-server's background
		// work, compactions, grows through a run).
		for k := range r.Columns {
			i := (k + rep) % len(r.Columns)
			c := &r.Columns[i]
			if err := step(fmt.Sprintf("%d concurrent debates at L=%s, %s (burst %d)", o.Concurrent, o.Latency, c.Name, rep+1), func() error {
				stop, err := b.profile(fmt.Sprintf("%s-%d", c.Name, rep+1))
				if err != nil {
					return err
				}
				defer stop()
				run, done := c.runs()
				t, err := b.concurrent(ctx, run, in, o.Concurrent, c.durable)
				done()
				bursts[i] = append(bursts[i], t)
				return err
			}); err != nil {
				return err
			}
		}
	}
	for i := range r.Columns {
		slices.SortFunc(bursts[i], func(a, b Throughput) int { return cmp.Compare(a.PerSecond, b.PerSecond) })
		r.Columns[i].Throughput = bursts[i][len(bursts[i])/2]
	}
	return nil
}

// runAnalyses times full analyses of the repository on both engines, the
// checkout cache emptied before each so the clone is measured too.
func (b *Bench) runAnalyses(ctx context.Context, r *Report) error {
	in := codeanalysis.Input{Repository: b.o.Repository, AnalysisType: codeanalysis.TypeAll}
	if err := in.Validate(b.checkouts.Policy); err != nil {
		return err
	}
	body, _ := json.Marshal(in)
	n := max(b.o.Analyses, 1)
	a := &codeanalysis.Analyzer{Cache: b.checkouts, Models: b.router, VulnDB: b.o.VulnDB}
	var records workflow.Records
	if b.store != nil {
		records = b.store
		a.Records = records
	}
	inProcess := func(ctx context.Context, _ []byte) (time.Duration, error) {
		os.RemoveAll(b.checkouts.Dir)
		start := time.Now()
		rep, err := writebehind.Tracked(records, workflow.CodeAnalysis, a.RunAnalysis)(direct.New(ctx, b.nextID("direct"), nil), in)
		r.AnalysisCommit, r.AnalysisFindings, r.AnalysisScanners = rep.Commit, len(rep.Findings), rep.Scanners
		return time.Since(start), err
	}
	durable := func(ctx context.Context, body []byte) (time.Duration, error) {
		os.RemoveAll(b.checkouts.Dir)
		id := b.nextID("restate")
		start := time.Now()
		_, err := b.client.Call(ctx, workflow.CodeAnalysis, id, body)
		return time.Since(start), err
	}
	// One run to warm the go command's caches, which gosec's package
	// loading uses, so that neither engine pays for it.
	if _, err := inProcess(ctx, body); err != nil {
		return err
	}
	var err error
	if r.AnalysisDirect, err = b.medianOf(ctx, inProcess, body, n); err != nil {
		return err
	}
	r.AnalysisRestate, err = b.medianOf(ctx, durable, body, n)
	return err
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

// Print writes the report as a Markdown table.
func (r Report) Print(w io.Writer) {
	o := r.Options
	if !o.SkipDebate {
		r.printDebates(w)
	}
	if o.Repository != "" {
		fmt.Fprintf(w, "\nFull code-analysis (all scanners, clone included) of %s at %.12s, %d findings, median of %d:\n\n", o.Repository, r.AnalysisCommit, r.AnalysisFindings, max(o.Analyses, 1))
		fmt.Fprintf(w, "| figure | direct engine | Restate engine | ratio |\n|---|---|---|---|\n")
		fmt.Fprintf(w, "| wall time | %s | %s | %.2f |\n", ms(r.AnalysisDirect), ms(r.AnalysisRestate), ratio(r.AnalysisRestate, r.AnalysisDirect))
		fmt.Fprintf(w, "\nScanners:")
		for _, s := range r.AnalysisScanners {
			fmt.Fprintf(w, " %s %s (%d findings, %d ms);", s.Name, s.Status, s.Findings, s.DurationMS)
			if s.Error != "" {
				fmt.Fprintf(w, " [%s]", s.Error)
			}
		}
		fmt.Fprintln(w)
	}
}

func (r Report) printDebates(w io.Writer) {
	o := r.Options
	calls := o.Participants*o.Rounds + 1
	fmt.Fprintf(w, "\nchain-of-debate, %d participants × %d rounds + moderator = %d model calls; fake model in process; every column measured in this run\n\n", o.Participants, o.Rounds, calls)
	fmt.Fprint(w, "| figure |")
	for _, c := range r.Columns {
		fmt.Fprintf(w, " %s |", c.Name)
	}
	fmt.Fprint(w, "\n|---|")
	for range r.Columns {
		fmt.Fprint(w, "---|")
	}
	row := func(name string, cell func(Column) string) {
		fmt.Fprintf(w, "\n| %s |", name)
		for _, c := range r.Columns {
			fmt.Fprintf(w, " %s |", cell(c))
		}
	}
	row(fmt.Sprintf("one debate at L=0 (orchestration), median of %d", o.Sequential), func(c Column) string { return ms(c.L0) })
	row(fmt.Sprintf("one debate at L=%s: wall / ideal %s", o.Latency, ms(r.Ideal)), func(c Column) string { return fmt.Sprintf("%.3f", ratio(c.L, r.Ideal)) })
	row(fmt.Sprintf("%d concurrent at L=%s: debates/s (completed), median of %d bursts", o.Concurrent, o.Latency, max(o.Bursts, 1)), func(c Column) string {
		return fmt.Sprintf("%.0f (%d/%d)", c.Throughput.PerSecond, c.Throughput.Completed, o.Concurrent)
	})
	row(fmt.Sprintf("CPU per debate at %d concurrent (restate-server's part)", o.Concurrent), func(c Column) string {
		if !c.durable {
			return ms(c.Throughput.CPUPerItem)
		}
		return fmt.Sprintf("%s (%s)", ms(c.Throughput.CPUPerItem), ms(c.Throughput.ServerCPU))
	})
	row("invocations Restate retried (all so far, after this column's median burst)", func(c Column) string {
		if !c.durable {
			return "—"
		}
		return fmt.Sprint(c.Throughput.Retried)
	})
	row(fmt.Sprintf("memory per debate in flight at %d concurrent (process RSS peak − idle)", o.Concurrent), func(c Column) string {
		return fmt.Sprintf("%.2f MiB", c.Throughput.RSSPerItem/1024)
	})
	fmt.Fprintln(w)
	if product := r.Columns[len(r.Columns)-1]; len(r.FirstDebates) == 3 {
		fmt.Fprintf(w, "\nThe product's first debates after its service started (L=0): %s, %s, %s; warm median %s: the first is %.2f× a warm one.\n",
			ms(r.FirstDebates[0]), ms(r.FirstDebates[1]), ms(r.FirstDebates[2]), ms(product.L0), ratio(r.FirstDebates[0], product.L0))
	}
	if rc := r.Recovery; rc.Debates > 0 {
		fmt.Fprintf(w, "\nkill -9 of the service (its own process, SQLite store) with %d debates in flight, each past round 1, then `up`: %d/%d completed %s after the kill (up took %s; the remaining rounds and moderator take at least %s: %s over the floor); model calls answered twice: %d.\n",
			rc.Debates, rc.Completed, rc.Debates, ms(rc.Done), ms(rc.Up), ms(rc.Floor), ms(rc.Done-rc.Floor), rc.Repeated)
	}
	if lim, ok := columnEnding(r.Columns, ", limits on"); ok && len(r.Columns) > 0 {
		product := r.Columns[len(r.Columns)-1]
		fmt.Fprintf(w, "\nThe limiter when nothing is limited (a permit per call, granted from the claim this process holds of the store's ledger; a limit that never binds): %.3f ms per call at L=0 (%s − %s over %d calls), %.3f× the debates/s and %.3f× the CPU per debate of the product without it.\n",
			float64(lim.L0-product.L0)/float64(time.Millisecond)/float64(calls), ms(lim.L0), ms(product.L0), calls, lim.Throughput.PerSecond/max(product.Throughput.PerSecond, 1), ratio(lim.Throughput.CPUPerItem, product.Throughput.CPUPerItem))
	}
	if r.SpansExported > 0 {
		fmt.Fprintf(w, "\nThe traced column exported %d spans in %d batches (%.0f KiB) to a local OTLP/HTTP collector in this process (it decodes and drops them; its CPU is counted in the product's), about %.0f spans per traced debate.\n",
			r.SpansExported, r.SpanBatches, float64(r.SpanBytes)/1024, float64(r.SpansExported)/float64(max(r.TracedDebates, 1)))
	}
	fmt.Fprintf(w, "\nOne round of 4 participants against a fake OpenAI-compatible endpoint (%s per call, real openai-go client):\n", o.CallLatency)
	fmt.Fprintf(w, "  Restate engine: %s = %.2f× one call (sequential would be %.1f×)\n", ms(r.ParallelRestate), ratio(r.ParallelRestate, o.CallLatency), ratio(r.ParallelSequentialEstimate, o.CallLatency))
	fmt.Fprintf(w, "  direct engine:  %s = %.2f× one call; peak calls in flight at the endpoint: %d\n", ms(r.ParallelDirect), ratio(r.ParallelDirect, o.CallLatency), r.ParallelMaxInFlight)
	fmt.Fprintf(w, "  direct engine, each answer streamed to no reader (as the service does): %s = %.3f× the round answered whole\n", ms(r.ParallelStreamed), ratio(r.ParallelStreamed, r.ParallelDirect))
}

func columnEnding(cs []Column, suffix string) (Column, bool) {
	for _, c := range cs {
		if strings.HasSuffix(c.Name, suffix) {
			return c, true
		}
	}
	return Column{}, false
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

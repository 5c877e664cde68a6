package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ultramcp/durable/client"
	"github.com/ultramcp/durable/config"
	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/identity"
	"github.com/ultramcp/durable/retry"
	"github.com/ultramcp/durable/telemetry"
	"github.com/ultramcp/durable/version"
)

// Stack is one local UltraMCP stack described by a Config.
type Stack struct {
	Cfg config.Config
	// Self is the ultramcp binary, run as `Self serve` for the service.
	Self string
	// Out receives progress lines.
	Out io.Writer
	// HTTP is used for health checks and the admin API: it reaches
	// Restate's sockets by the host names of package client.
	HTTP *http.Client
	// ServiceEnv is added to the service's environment (tests point the
	// provider at a fake endpoint with it).
	ServiceEnv []string

	current string         // the version of Self, once known
	restate *client.Client // its admin API, on the socket
}

// New returns a stack for cfg.
func New(cfg config.Config, self string, out io.Writer) *Stack {
	if out == nil {
		out = io.Discard
	}
	tr := client.Transport(cfg)
	restate := client.ForStack(cfg)
	restate.HTTP.Transport = tr
	return &Stack{Cfg: cfg, Self: self, Out: out, HTTP: &http.Client{Timeout: 5 * time.Second, Transport: tr}, restate: restate}
}

// RestateServerBin returns the pinned restate-server binary.
func RestateServerBin(cfg config.Config) (string, error) {
	return findBin(cfg.RestateServerBin, "@restatedev/restate-server-linux-x64/bin/restate-server", "ULTRAMCP_RESTATE_SERVER")
}

// RestateCLIBin returns the pinned restate CLI binary.
func RestateCLIBin(cfg config.Config) (string, error) {
	return findBin(cfg.RestateCLIBin, "@restatedev/restate-linux-x64/bin/restate", "ULTRAMCP_RESTATE_CLI")
}

// findBin looks for an npm-installed binary in node_modules of the working
// directory or any parent, then beside the running executable's parent.
func findBin(explicit, rel, env string) (string, error) {
	if explicit != "" {
		return explicit, nil
	}
	if p, ok := searchUp(filepath.Join("node_modules", rel)); ok {
		return p, nil
	}
	return "", fmt.Errorf("%s not found under node_modules: run `make setup` (npm ci) or set %s", filepath.Base(rel), env)
}

// searchUp finds rel in the working directory or a parent, then in the
// running executable's directory or a parent.
func searchUp(rel string) (string, bool) {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		starts = append(starts, filepath.Dir(exe))
	}
	for _, dir := range starts {
		for d := dir; ; d = filepath.Dir(d) {
			p := filepath.Join(d, rel)
			if _, err := os.Stat(p); err == nil {
				return p, true
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	return "", false
}

// Restate describes the restate-server process of the stack.
func (s *Stack) Restate() (Process, error) {
	bin, err := RestateServerBin(s.Cfg)
	if err != nil {
		return Process{}, err
	}
	c := s.Cfg
	p := Process{
		Name:     "restate-server",
		Bin:      bin,
		Dir:      c.Home,
		Isolated: true,
		Args: []string{
			"--base-dir", c.RestateDir(),
			"--node-name", config.RestateNode,
			// Ingress, admin API and node port on unix sockets in the
			// state dir, and no TCP port: neither has auth, the ingress
			// answers CORS for any origin and the admin API any Host
			// (docs/security.md). The API serves what users need of them.
			"--listen-mode", "unix",
			"--no-logo",
			"--log-format", "compact",
			"--log-disable-ansi-codes", "true",
		},
		Env: []string{
			"RESTATE_WORKER__INVOKER__REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE=" + identity.PrivateKeyPath(c.Path("keys")),
			"RESTATE_DISABLE_TELEMETRY=true",
			"DO_NOT_TRACK=1",
		},
	}
	if c.TracesEndpoint != "" {
		// Restate's own spans (ingress, each invocation and attempt) go to
		// the service's collector: one trace from the caller to each step.
		p.Env = append(p.Env, "RESTATE_TRACING_ENDPOINT="+telemetry.RestateEndpoint(c.TracesEndpoint))
	}
	return p, nil
}

// Service describes the workflow-service process of the newest version:
// the one that serves the API.
func (s *Stack) Service() Process {
	cur, err := s.Current()
	if err != nil {
		return s.legacy()
	}
	v, ok := s.version(cur)
	if !ok {
		v = Version{Name: cur, Addr: s.Cfg.ServiceAddr, API: s.Cfg.APIAddr}
	}
	return s.serviceOf(v)
}

// Component health.
type Health struct {
	Name    string `json:"name"`
	URL     string `json:"url"`
	Healthy bool   `json:"healthy"`
	PID     int    `json:"pid,omitempty"`
	Detail  string `json:"detail,omitempty"`
}

func (s *Stack) probe(url string) error {
	resp, err := s.HTTP.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// The base URLs of Restate's sockets, as Stack.HTTP dials them.
const (
	adminURL   = "http://" + client.AdminHost
	ingressURL = "http://" + client.IngressHost
)

// Check reports the health of every component.
func (s *Stack) Check() []Health {
	c := s.Cfg
	svc := s.Service()
	svcAddr := c.ServiceAddr
	cur, _ := s.Current()
	if v, ok := s.version(cur); ok {
		svcAddr = v.Addr
	}
	checks := []Health{
		{Name: "restate-admin", URL: adminURL + "/health"},
		{Name: "restate-ingress", URL: ingressURL + "/restate/health"},
		{Name: "workflow-service", URL: config.URL(svcAddr) + "/health", Detail: "version " + cur},
		{Name: "api", URL: config.URL(c.APIAddr) + "/health"},
	}
	rs := s.recorded()
	pids := map[string]Process{"restate-admin": rs, "restate-ingress": rs, "workflow-service": svc, "api": svc}
	if jaeger := s.Jaeger(""); c.WithJaeger || jaeger.hasPID() {
		checks = append(checks, Health{Name: "jaeger", URL: "http://" + c.JaegerAddr + "/api/services", Detail: "traces, query API"})
		pids["jaeger"] = jaeger
	}
	// Every older version still kept: each drains on its own address.
	for _, v := range s.Versions() {
		if v.Name == cur {
			continue
		}
		name := "workflow-service " + v.Name
		checks = append(checks, Health{Name: name, URL: config.URL(v.Addr) + "/health", Detail: "draining"})
		pids[name] = s.serviceOf(v)
	}
	for i := range checks {
		if err := s.probe(checks[i].URL); err != nil {
			checks[i].Detail = strings.TrimSpace(checks[i].Detail + " " + err.Error())
		} else {
			checks[i].Healthy = true
		}
		// Say where a socket is, not the host name that stands for it.
		switch checks[i].Name {
		case "restate-admin":
			checks[i].URL = "unix:" + c.AdminSocket()
		case "restate-ingress":
			checks[i].URL = "unix:" + c.IngressSocket()
		}
		if pid, ok := pids[checks[i].Name].PID(); ok {
			checks[i].PID = pid
		}
	}
	return checks
}

// waitHealthy polls every 100 ms for 60 s: a cold restate-server is
// healthy in seconds, a loaded 2-core CI machine may take many more.
func (s *Stack) waitHealthy(ctx context.Context, p Process, urls ...string) error {
	_, err := retry.Poll(100*time.Millisecond, 60*time.Second).Do(ctx, func(context.Context) error {
		for _, u := range urls {
			if err := s.probe(u); err != nil {
				if _, ok := p.PID(); !ok {
					return fault.New(fault.Permanent, "%s exited during start; last log lines:\n%s", p.Name, p.Tail(15))
				}
				return err
			}
		}
		return nil
	})
	switch {
	case err == nil || !fault.IsRetryable(err):
		return err
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return fmt.Errorf("%s not healthy after 60s (%v); last log lines:\n%s", p.Name, err, p.Tail(15))
}

// Up starts whatever part of the stack is not running, waits until each part
// is healthy, and registers the service. Run again, it starts only what is
// missing; a partial start is unwound.
//
// Run with a new build, it upgrades without breaking a workflow in flight:
// the new version starts on an address of its own and is registered as a
// new deployment (without force), so new workflows go to it; each older
// version with unfinished workflows pinned to it keeps running (started
// again from its kept copy if it is down), off the API's port; one with
// nothing pinned is retired. Each step is said as it happens.
func (s *Stack) Up(ctx context.Context) error {
	// One up at a time per state dir: two at once would both start a
	// restate-server, and one would be left without a pid file.
	unlock, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	u := &upping{s: s, ctx: ctx}
	if err := u.run(); err != nil {
		// A partial start is unwound, the newest process first.
		for i := len(u.started) - 1; i >= 0; i-- {
			_, _ = u.started[i].Stop(10 * time.Second)
		}
		return err
	}
	return s.drain(ctx, u.cur)
}

// upping is one Up: what it started, to unwind it if a later part fails.
type upping struct {
	s       *Stack
	ctx     context.Context
	started []Process
	cur     string  // this build's version
	v       Version // its address and the API's
	deps    []Deployment
}

// run starts Restate, then this version's service (taking the API's port
// from an older one), and registers it.
func (u *upping) run() error {
	s := u.s
	if err := u.startJaeger(); err != nil {
		return err
	}
	rs, err := s.StartRestate(u.ctx)
	if rs != nil {
		u.started = append(u.started, *rs)
	}
	if err != nil {
		return err
	}
	if err := s.adoptLegacy(); err != nil {
		return err
	}
	if err := u.planVersion(); err != nil {
		return err
	}
	if err := u.takeAPI(); err != nil {
		return err
	}
	if err := u.startService(); err != nil {
		return err
	}
	if err := u.register(); err != nil {
		return err
	}
	// Commands given only the state dir reach this stack.
	return s.Cfg.Record()
}

// startJaeger starts Jaeger when the stack has it (up --with-jaeger, or
// recorded so), and points the service and restate-server at it unless
// OTEL_EXPORTER_OTLP_ENDPOINT names another collector.
func (u *upping) startJaeger() error {
	s := u.s
	if !s.Cfg.WithJaeger {
		return nil
	}
	p, err := s.StartJaeger(u.ctx)
	if p != nil {
		u.started = append(u.started, *p)
	}
	if err != nil {
		return err
	}
	if s.Cfg.TracesEndpoint == "" {
		s.Cfg.TracesEndpoint = "http://" + s.Cfg.JaegerOTLPAddr
	}
	if rs, err := s.Restate(); err == nil {
		if _, running := rs.PID(); running && s.restateTraces() != s.Cfg.TracesEndpoint {
			fmt.Fprintf(s.Out, "note: restate-server was already running; its own spans go where it was started to send them (ultramcp stop, then up --with-jaeger, to send them to Jaeger)\n")
		}
	}
	return nil
}

// restateTraces is the collector the running restate-server was started
// to send its spans to ("" for none).
func (s *Stack) restateTraces() string {
	b, _ := os.ReadFile(s.Cfg.Path("restate-traces"))
	return string(b)
}

// planVersion keeps a copy of this build and gives it its address.
func (u *upping) planVersion() (err error) {
	s := u.s
	if u.cur, err = s.Current(); err != nil {
		return err
	}
	if err := s.keep(u.cur, s.Self); err != nil {
		return err
	}
	if u.deps, err = s.restate.Deployments(u.ctx); err != nil {
		return err
	}
	v, known := s.version(u.cur)
	if !known {
		if v, err = s.plan(u.cur, u.deps); err != nil {
			return err
		}
	}
	v.API = s.Cfg.APIAddr
	u.v = v
	return s.record(v)
}

// takeAPI: the API's port is the newest version's. An older one that holds
// it gives it up (it stops gracefully, its running steps finishing, and
// drains on a port of its own).
func (u *upping) takeAPI() error {
	s := u.s
	for _, old := range s.Versions() {
		p := s.serviceOf(old)
		if _, running := p.PID(); old.Name == u.cur || !running || old.API != s.Cfg.APIAddr {
			continue
		}
		fmt.Fprintf(s.Out, "version %s hands the API to version %s: stopping it\n", old.Name, u.cur)
		if _, err := p.Stop(s.grace()); err != nil {
			return err
		}
	}
	return nil
}

// startService starts this version's service unless it runs healthy, and
// waits until it and the API it serves are.
func (u *upping) startService() error {
	s, v, apiAddr := u.s, u.v, u.s.Cfg.APIAddr
	addrs := [][2]string{{"ULTRAMCP_SERVICE_ADDR", v.Addr}, {"ULTRAMCP_API_ADDR", apiAddr}}
	svc := s.serviceOf(v)
	serviceHealth := config.URL(v.Addr) + "/health"
	switch _, running := svc.PID(); {
	case running && s.probe(serviceHealth) == nil:
		fmt.Fprintf(s.Out, "workflow service version %s already running\n", u.cur)
	case !running:
		// A service just killed may hold its ports a moment longer, while
		// the kernel closes its sockets: a start now would fail with
		// "address already in use".
		waitFree(u.ctx, addrs, 15*time.Second)
		pid, err := svc.Start()
		if err != nil {
			return err
		}
		u.started = append(u.started, svc)
		fmt.Fprintf(s.Out, "started workflow service version %s (pid %d) on %s, log %s\n", u.cur, pid, v.Addr, svc.LogFile())
	}
	// The API and MCP endpoint run in the newest version's process.
	err := s.waitHealthy(u.ctx, svc, serviceHealth, config.URL(apiAddr)+"/health")
	if _, running := svc.PID(); err != nil && !running {
		// It died starting: a taken port is the usual reason, and naming
		// it beats twenty lines of its log.
		if perr := checkFree(addrs); perr != nil {
			err = fmt.Errorf("the workflow service could not start: %w", perr)
		}
	}
	return err
}

// register registers this version again every up, without force: the
// same version at the same URI changes nothing.
func (u *upping) register() error {
	url := config.URL(u.v.Addr)
	_, had := deploymentAt(u.deps, u.v.Addr)
	if err := u.s.restate.Register(u.ctx, url, false); err != nil {
		return err
	}
	if !had {
		fmt.Fprintf(u.s.Out, "registered version %s at %s with Restate: new workflows go to it\n", u.cur, url)
	}
	return nil
}

// plan chooses the address of a version not seen before: the configured
// one while nothing else has it, else a free port.
func (s *Stack) plan(name string, deps []Deployment) (Version, error) {
	v := Version{Name: name, Addr: s.Cfg.ServiceAddr, API: s.Cfg.APIAddr}
	taken := false
	for _, other := range s.Versions() {
		taken = taken || other.Addr == v.Addr
	}
	if _, registered := deploymentAt(deps, v.Addr); taken || registered || checkFree([][2]string{{"ULTRAMCP_SERVICE_ADDR", v.Addr}}) != nil {
		addr, err := FreeAddr()
		if err != nil {
			return v, err
		}
		v.Addr = addr
	}
	return v, nil
}

// drain keeps every version but cur that has unfinished workflows pinned to
// it running, and retires the others. A version whose copy is gone cannot
// run its workflows: it is named, with them, and with the way out.
func (s *Stack) drain(ctx context.Context, cur string) error {
	deps, err := s.restate.Deployments(ctx)
	if err != nil {
		return err
	}
	pinned, err := s.Pinned(ctx)
	if err != nil {
		return err
	}
	var problems []error
	for _, v := range s.Versions() {
		if v.Name == cur {
			continue
		}
		d, has := deploymentAt(deps, v.Addr)
		n := 0
		if has {
			for _, k := range pinned[d.ID] {
				n += k
			}
		}
		if n == 0 {
			var dp *Deployment
			if has {
				dp = &d
			}
			if err := s.retire(ctx, v, dp); err != nil {
				problems = append(problems, err)
			}
			continue
		}
		p := s.serviceOf(v)
		if _, running := p.PID(); running {
			fmt.Fprintf(s.Out, "version %s drains: %d invocations in flight on %s\n", v.Name, n, v.Addr)
			continue
		}
		if got, err := version.OfFile(s.binOf(v.Name)); err != nil || got != v.Name {
			ids, _ := s.PinnedWorkflows(ctx, d.ID)
			problems = append(problems, fmt.Errorf("version %s has %d invocations in flight (%s) but its %w (%s): move each to the newest version with `ultramcp upgrade-workflow <id>`", v.Name, n, strings.Join(ids, ", "), errMissingCopy, s.binOf(v.Name)))
			continue
		}
		api, err := FreeAddr()
		if err != nil {
			return err
		}
		v.API = api
		if err := s.record(v); err != nil {
			return err
		}
		p = s.serviceOf(v)
		pid, err := p.Start()
		if err != nil {
			problems = append(problems, err)
			continue
		}
		if err := s.waitHealthy(ctx, p, config.URL(v.Addr)+"/health"); err != nil {
			problems = append(problems, err)
			continue
		}
		fmt.Fprintf(s.Out, "started version %s (pid %d) from its kept copy to finish its %d invocations in flight, on %s\n", v.Name, pid, n, v.Addr)
	}
	return errors.Join(problems...)
}

// StartRestate creates the identity keys if missing, starts restate-server
// unless it answers already, and waits until admin and ingress are healthy.
// It returns the process if this call started it.
func (s *Stack) StartRestate(ctx context.Context) (*Process, error) {
	c := s.Cfg
	if _, err := identity.Ensure(c.Path("keys")); err != nil {
		return nil, err
	}
	rs, err := s.Restate()
	if err != nil {
		return nil, err
	}
	var started *Process
	adminHealth := adminURL + "/health"
	ingressHealth := ingressURL + "/restate/health"
	if s.probe(adminHealth) != nil {
		if _, running := rs.PID(); running {
			// Running but not answering yet: wait rather than start twice.
			fmt.Fprintf(s.Out, "restate-server is starting…\n")
		} else {
			pid, err := rs.Start()
			if err != nil {
				return nil, err
			}
			_ = os.WriteFile(c.Path("restate-traces"), []byte(c.TracesEndpoint), 0o600)
			started = &rs
			fmt.Fprintf(s.Out, "started restate-server (pid %d), log %s\n", pid, rs.LogFile())
		}
	} else {
		fmt.Fprintf(s.Out, "restate-server already running\n")
	}
	if err := s.waitHealthy(ctx, rs, adminHealth, ingressHealth); err != nil {
		return started, err
	}
	// Healthy is not ready: the SQL of the admin API ("expecting a partition
	// store") comes a moment later, and status, list and result use it.
	return started, s.waitSQL(ctx)
}

// waitSQL waits until Restate answers an admin query, polling as
// waitHealthy does.
func (s *Stack) waitSQL(ctx context.Context) error {
	_, err := retry.Poll(100*time.Millisecond, 60*time.Second).Do(ctx, func(ctx context.Context) error {
		if _, err := s.restate.Query(ctx, "SELECT id FROM sys_invocation LIMIT 1"); err != nil {
			return retry.Again("%v", err)
		}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("restate-server's SQL not ready after 60s: %v", err)
	}
	return ctx.Err()
}

// recorded is the restate-server process as its pid file knows it: stop
// and health need no binary at hand, from whatever directory they run.
func (s *Stack) recorded() Process {
	if rs, err := s.Restate(); err == nil {
		return rs
	}
	return Process{Name: "restate-server", Dir: s.Cfg.Home}
}

// Stop ends every version of the service, then the Restate server, by
// their pid files. A running service of an older release is adopted first,
// so that its binary is kept for the workflows pinned to it.
func (s *Stack) Stop() error {
	if err := s.adoptLegacy(); err != nil {
		fmt.Fprintf(s.Out, "warning: %v\n", err)
	}
	procs := []Process{s.Service()}
	cur, _ := s.Current()
	for _, v := range s.Versions() {
		if v.Name != cur {
			procs = append(procs, s.serviceOf(v))
		}
	}
	procs = append(procs, s.legacy(), s.recorded(), s.Jaeger(""))
	for i, p := range procs {
		// The service finishes its running steps first (ULTRAMCP_STOP_GRACE).
		grace := 15 * time.Second
		if strings.HasPrefix(p.Name, "service") {
			grace = s.grace()
		}
		was, err := p.Stop(grace)
		if err != nil {
			return err
		}
		switch {
		case was:
			fmt.Fprintf(s.Out, "stopped %s\n", p.Name)
		case p.Name == "restate-server" || i == 0:
			fmt.Fprintf(s.Out, "%s was not running\n", p.Name)
		}
	}
	return nil
}

// Register tells Restate about the deployment at url, replacing an earlier
// registration of the same URL (force): for a service run by hand. up
// registers each version at its own URL, without force.
func (s *Stack) Register(ctx context.Context, url string) error {
	return s.restate.Register(ctx, url, true)
}

// lock takes the state dir's up lock, waiting for another up to finish.
func (s *Stack) lock(ctx context.Context) (func(), error) {
	if err := s.Cfg.PrepareHome(); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(s.Cfg.Path("up.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	// Polled every 50 ms for as long as the caller waits: another up
	// holds it for the seconds a start takes.
	_, err = retry.Poll(50*time.Millisecond, 0).Do(ctx, func(context.Context) error {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if errors.Is(err, syscall.EWOULDBLOCK) || errors.Is(err, syscall.EINTR) {
			return retry.Again("%s is held by another up", f.Name())
		}
		return err
	})
	switch {
	case err == nil:
		return func() { f.Close() }, nil
	case ctx.Err() != nil:
		err = ctx.Err()
	default:
		err = fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	f.Close()
	return nil, err
}

package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ultramcp/durable/client"
	"github.com/ultramcp/durable/config"
	"github.com/ultramcp/durable/version"
)

// A version is one build of the service. Each runs from a copy kept in the
// state dir (so a new build in bin/ never changes a running service), on an
// address of its own, registered with Restate as a deployment of its own:
// Restate pins every invocation to the deployment it started on, so a
// workflow in flight finishes on the code that started it while new ones go
// to the newest. A version nothing is pinned to any more is retired: its
// deployment removed, its process stopped, its copy deleted.
type Version struct {
	Name string `json:"version"`
	Addr string `json:"addr"` // the service's address: its deployment's URI
	// API is the API address it was started with: the newest serves the
	// API on ULTRAMCP_API_ADDR; an older one, draining, on a port of its
	// own that nobody is told of.
	API string `json:"api,omitempty"`
}

// Bin is the version's kept copy of the binary.
func (s *Stack) binOf(v string) string { return s.Cfg.Path("versions", v, "ultramcp") }

func (s *Stack) versionDir(v string) string { return s.Cfg.Path("versions", v) }

// Current is the version of the binary this stack runs as its newest.
func (s *Stack) Current() (string, error) {
	if s.current != "" {
		return s.current, nil
	}
	v, err := version.OfFile(s.Self)
	if err != nil {
		return "", fmt.Errorf("the version of %s: %w", s.Self, err)
	}
	s.current = v
	return v, nil
}

// Versions lists the versions kept in the state dir, newest first by the
// time each was kept.
func (s *Stack) Versions() []Version {
	entries, _ := os.ReadDir(s.Cfg.Path("versions"))
	type kept struct {
		v  Version
		at time.Time
	}
	var all []kept
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(s.versionDir(e.Name()), "version.json"))
		if err != nil {
			continue
		}
		var v Version
		if json.Unmarshal(b, &v) != nil || v.Name != e.Name() {
			continue
		}
		info, _ := e.Info()
		at := time.Time{}
		if info != nil {
			at = info.ModTime()
		}
		all = append(all, kept{v, at})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].at.After(all[j].at) })
	out := make([]Version, len(all))
	for i, k := range all {
		out[i] = k.v
	}
	return out
}

func (s *Stack) version(name string) (Version, bool) {
	for _, v := range s.Versions() {
		if v.Name == name {
			return v, true
		}
	}
	return Version{}, false
}

// record writes what the state dir knows of v.
func (s *Stack) record(v Version) error {
	b, _ := json.Marshal(v)
	tmp := filepath.Join(s.versionDir(v.Name), "version.json.tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(s.versionDir(v.Name), "version.json"))
}

// keep makes the kept copy of version v from bin, unless it is there and
// whole. The copy is written aside and renamed into place, so a full disk
// leaves no half copy, and the version running keeps serving.
func (s *Stack) keep(v, bin string) error {
	dst := s.binOf(v)
	if got, err := version.OfFile(dst); err == nil && got == v {
		return nil
	}
	if err := os.MkdirAll(s.versionDir(v), 0o700); err != nil {
		return fmt.Errorf("keep a copy of version %s: %w", v, err)
	}
	tmp := dst + ".tmp"
	_ = os.Remove(tmp)
	// A hard link costs nothing, and a build replaces bin/ultramcp with a
	// new file, leaving the link's content as it was; across file systems,
	// a copy.
	if err := os.Link(bin, tmp); err != nil {
		if err := copyFile(bin, tmp); err != nil {
			_ = os.Remove(tmp)
			return fmt.Errorf("keep a copy of version %s in %s (what runs keeps serving): %w", v, s.versionDir(v), err)
		}
	}
	if got, err := version.OfFile(tmp); err != nil || got != v {
		_ = os.Remove(tmp)
		return fmt.Errorf("the copy of version %s is not that version (%s %v): was %s replaced while it was copied?", v, got, err, bin)
	}
	return os.Rename(tmp, dst)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o700)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// serviceOf is the process of version v, serving the API on api.
func (s *Stack) serviceOf(v Version) Process {
	c := s.Cfg
	env := append(c.Environ(), "ULTRAMCP_SERVICE_ADDR="+v.Addr, "ULTRAMCP_API_ADDR="+v.API)
	return Process{
		Name: "service-" + v.Name,
		Bin:  s.binOf(v.Name),
		Dir:  c.Home,
		Args: []string{"serve"},
		// The whole configuration in one place (config.Environ), this
		// version's addresses after it; the test environment comes last.
		Env: append(env, s.ServiceEnv...),
	}
}

// legacy is the service a release from before versions started: one
// process called "service", run from bin/ultramcp, registered with force on
// ULTRAMCP_SERVICE_ADDR.
func (s *Stack) legacy() Process {
	return Process{Name: "service", Dir: s.Cfg.Home}
}

// adoptLegacy makes a running service of an older release one version
// among others: its binary (read through /proc, which still has it when
// bin/ultramcp has been replaced) is kept, its addresses recorded from its
// environment, and its pid file renamed. Every user's first upgrade is
// this one.
func (s *Stack) adoptLegacy() error {
	old := s.legacy()
	pid, ok := old.PID()
	if !ok {
		return nil
	}
	exe := fmt.Sprintf("/proc/%d/exe", pid)
	name, err := version.OfFile(exe)
	if err != nil {
		return fmt.Errorf("the running service (pid %d) of an older release: %w", pid, err)
	}
	v := Version{Name: name, Addr: s.Cfg.ServiceAddr, API: s.Cfg.APIAddr}
	if env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid)); err == nil {
		for _, kv := range bytes.Split(env, []byte{0}) {
			if a, ok := strings.CutPrefix(string(kv), "ULTRAMCP_SERVICE_ADDR="); ok && a != "" {
				v.Addr = a
			}
			if a, ok := strings.CutPrefix(string(kv), "ULTRAMCP_API_ADDR="); ok && a != "" {
				v.API = a
			}
		}
	}
	if err := s.keep(name, exe); err != nil {
		return err
	}
	if err := s.record(v); err != nil {
		return err
	}
	if err := os.Rename(old.pidFile(), s.serviceOf(v).pidFile()); err != nil {
		return err
	}
	fmt.Fprintf(s.Out, "adopted the running service of an older release as version %s (pid %d, %s), its binary kept in %s\n", name, pid, v.Addr, s.versionDir(name))
	return nil
}

// Deployment is a deployment registered with Restate.
type Deployment = client.Deployment

// Pinned counts the unfinished invocations pinned to each deployment, by
// workflow type: what a version still has to finish.
func (s *Stack) Pinned(ctx context.Context) (map[string]map[string]int, error) {
	rows, err := s.restate.Query(ctx, `SELECT pinned_deployment_id, target_service_name, COUNT(*) AS n FROM sys_invocation WHERE status <> 'completed' AND pinned_deployment_id IS NOT NULL GROUP BY pinned_deployment_id, target_service_name`)
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]int{}
	for _, r := range rows {
		id, _ := r["pinned_deployment_id"].(string)
		svc, _ := r["target_service_name"].(string)
		n, _ := r["n"].(float64)
		if out[id] == nil {
			out[id] = map[string]int{}
		}
		out[id][svc] = int(n)
	}
	return out, nil
}

// PinnedWorkflows names the unfinished workflows pinned to deployment id.
func (s *Stack) PinnedWorkflows(ctx context.Context, id string) ([]string, error) {
	rows, err := s.restate.Query(ctx, fmt.Sprintf(`SELECT target_service_name, target_service_key FROM sys_invocation WHERE status <> 'completed' AND target_handler_name = 'run' AND pinned_deployment_id = '%s'`, strings.ReplaceAll(id, "'", "''")))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range rows {
		out = append(out, fmt.Sprintf("%v %v", r["target_service_name"], r["target_service_key"]))
	}
	sort.Strings(out)
	return out, nil
}

// uri is the deployment URI Restate records for a service address.
func uri(addr string) string { return config.URL(addr) + "/" }

func deploymentAt(ds []Deployment, addr string) (Deployment, bool) {
	for _, d := range ds {
		if d.URI == uri(addr) || d.URI == config.URL(addr) {
			return d, true
		}
	}
	return Deployment{}, false
}

// retire removes version v from Restate, stops its process and deletes its
// copy, saying each step.
func (s *Stack) retire(ctx context.Context, v Version, d *Deployment) error {
	if d != nil {
		// Nothing is pinned to it, so force takes what Restate might
		// still refuse without it (a deployment it has not seen drained).
		if err := s.restate.RemoveDeployment(ctx, d.ID, true); err != nil {
			return err
		}
		fmt.Fprintf(s.Out, "retired version %s: removed deployment %s (%s), nothing is pinned to it\n", v.Name, d.ID, d.URI)
	}
	p := s.serviceOf(v)
	if was, err := p.Stop(s.grace()); err != nil {
		return err
	} else if was {
		fmt.Fprintf(s.Out, "retired version %s: stopped its service\n", v.Name)
	}
	if err := os.RemoveAll(s.versionDir(v.Name)); err != nil {
		return err
	}
	fmt.Fprintf(s.Out, "retired version %s: deleted its copy\n", v.Name)
	return nil
}

func (s *Stack) grace() time.Duration { return max(15*time.Second, s.Cfg.StopGrace+5*time.Second) }

// errMissingCopy is a version with pinned work whose copy cannot run.
var errMissingCopy = errors.New("kept copy missing or corrupt")

// Version states, as `deployments` shows them.
const (
	Serving  = "serving"
	Draining = "draining"
	Retired  = "retired"
)

// DeploymentRow is what `deployments` says of one version.
type DeploymentRow struct {
	Version    string         `json:"version"`
	State      string         `json:"state"`
	Addr       string         `json:"addr"`
	Deployment string         `json:"deployment,omitempty"`
	Registered time.Time      `json:"registered,omitzero"`
	InFlight   map[string]int `json:"inFlight"`
}

// Report lists every version kept or registered: the newest serving, the
// older draining, and registrations no version is kept for (a service of
// an older release, or one registered by hand) by their address.
func (s *Stack) Report(ctx context.Context) ([]DeploymentRow, error) {
	deps, err := s.restate.Deployments(ctx)
	if err != nil {
		return nil, err
	}
	pinned, err := s.Pinned(ctx)
	if err != nil {
		return nil, err
	}
	cur, _ := s.Current()
	var rows []DeploymentRow
	seen := map[string]bool{}
	for _, v := range s.Versions() {
		r := DeploymentRow{Version: v.Name, Addr: v.Addr, State: Draining, InFlight: map[string]int{}}
		if v.Name == cur {
			r.State = Serving
		}
		if d, ok := deploymentAt(deps, v.Addr); ok {
			r.Deployment, r.Registered, r.InFlight = d.ID, d.CreatedAt, pinned[d.ID]
			seen[d.ID] = true
		}
		rows = append(rows, r)
	}
	for _, d := range deps {
		if !seen[d.ID] {
			rows = append(rows, DeploymentRow{Version: "?", State: Draining, Addr: strings.TrimSuffix(strings.TrimPrefix(d.URI, "http://"), "/"), Deployment: d.ID, Registered: d.CreatedAt, InFlight: pinned[d.ID]})
		}
	}
	return rows, nil
}

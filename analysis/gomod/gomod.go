// Package gomod prepares the Go modules of a checkout for the tools that
// load their packages (gosec, govulncheck): it finds them, resolves their
// dependencies through the configured Go proxy — never by running anything
// of the repository — and gives the environment to load them in, made
// from nothing so that none of the service's secrets reach the go command.
// Why a module could not be loaded is said in a few words of ours; the go
// command's text goes to the log only.
package gomod

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ultramcp/durable/analysis/secrets"
	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/sanitize"
)

// Env is the environment of the go command that loads the analyzed
// packages, made from nothing rather than inherited, so that none of the
// service's secrets (API keys, the database URL) reach it: the local
// toolchain only (a go.mod "toolchain" line must not download and run
// another), no module downloads, no cgo (which would compile the
// repository's C code), no workspace file, no go env file. The caches are
// the operator's, so modules already downloaded are found.
func Env(extra ...string) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.TempDir(),
		"GOENV=off",
		"GOTOOLCHAIN=local",
		"GOPROXY=off",
		"GOFLAGS=-mod=readonly",
		"CGO_ENABLED=0",
		"GOWORK=off",
		"GOSUMDB=off",
		"GOVCS=*:off",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=" + os.DevNull,
	}
	return append(append(env, cacheDirs()...), extra...) // later entries win
}

// cacheDirs are the operator's Go caches, as `go env` reports them. They
// depend only on the environment, so the answer is kept per environment:
// every module of every scan asks, and a `go env` costs a process.
func cacheDirs() []string {
	var key strings.Builder
	for _, k := range []string{"GOPATH", "GOMODCACHE", "GOCACHE", "HOME", "XDG_CACHE_HOME", "GOENV"} {
		key.WriteString(k + "=" + os.Getenv(k) + "\x00")
	}
	cacheMu.Lock()
	defer cacheMu.Unlock()
	if dirs, ok := cached[key.String()]; ok {
		return dirs
	}
	out, _ := exec.Command("go", "env", "GOPATH", "GOMODCACHE", "GOCACHE").Output()
	var dirs []string
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for i, name := range []string{"GOPATH", "GOMODCACHE", "GOCACHE"} {
		if i < len(lines) && lines[i] != "" {
			dirs = append(dirs, name+"="+lines[i])
		}
	}
	cached[key.String()] = dirs
	return dirs
}

var (
	cacheMu sync.Mutex
	cached  = map[string][]string{}
)

// DownloadTimeout bounds the download of one module's dependencies.
const DownloadTimeout = 3 * time.Minute

// proxies is the service's GOPROXY without "direct" (which would fetch from
// any VCS host a go.mod names, through git) and "off"; "" when none is left.
func proxies() string {
	v := os.Getenv("GOPROXY")
	if v == "" {
		v = "https://proxy.golang.org"
	}
	var keep []string
	for _, p := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == '|' }) {
		if p = strings.TrimSpace(p); p != "" && p != "direct" && p != "off" {
			keep = append(keep, p)
		}
	}
	return strings.Join(keep, ",")
}

// download fetches the module's dependencies into the module cache through
// the configured Go proxy, verifying them against go.sum and the checksum
// database as the go command does. Nothing of the repository is built or
// run: `go mod download` only reads go.mod and go.sum.
func download(ctx context.Context, mod string) ([]byte, error) {
	proxy := proxies()
	if proxy == "" {
		return nil, nil // offline: what is in the cache is all there is
	}
	ctx, cancel := context.WithTimeout(ctx, DownloadTimeout)
	defer cancel()
	extra := []string{"GOPROXY=" + proxy, "GOFLAGS=-mod=mod -modcacherw", "GOSUMDB=" + orDefault(os.Getenv("GOSUMDB"), "sum.golang.org")}
	for _, k := range []string{"GONOSUMDB", "GONOSUMCHECK", "GONOPROXY", "GOPRIVATE"} {
		if v, ok := os.LookupEnv(k); ok {
			extra = append(extra, k+"="+v)
		}
	}
	cmd := exec.CommandContext(ctx, "go", "mod", "download")
	cmd.Dir, cmd.Env = mod, Env(extra...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() == context.DeadlineExceeded {
		return out, fmt.Errorf("go mod download: timed out after %s", DownloadTimeout)
	}
	return out, err
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// Modules returns the directories of dir holding a go.mod, skipping vendor
// and testdata trees.
func Modules(dir string) ([]string, error) {
	var mods []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "vendor" || d.Name() == "testdata" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.Name() == "go.mod" {
			mods = append(mods, filepath.Dir(path))
		}
		return nil
	})
	sort.Strings(mods)
	return mods, err
}

// special returns the first entry of the module that the go command would
// read but is not a regular file (a link, a FIFO, a device), or "".
func special(mod string) string {
	found := ""
	_ = filepath.WalkDir(mod, func(path string, d fs.DirEntry, err error) error {
		if err != nil || found != "" {
			return filepath.SkipAll
		}
		if d.IsDir() {
			if path != mod && (d.Name() == ".git" || d.Name() == "vendor" || d.Name() == "testdata" || d.Name() == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			found = path
			return filepath.SkipAll
		}
		return nil
	})
	return found
}

// Prepare makes the module at mod loadable offline and returns the
// environment to load it in: its vendor/ when it has one, else its
// dependencies downloaded through the proxy. tool names the caller in the
// reasons it gives.
func Prepare(ctx context.Context, root, mod, tool string, log *slog.Logger) ([]string, error) {
	where := orDot(Rel(root, mod))
	if p := special(mod); p != "" {
		return nil, fault.New(fault.Permanent, "%s did not load module %s: %s is not a regular file", tool, sanitize.Line(where), sanitize.Line(Rel(root, p)))
	}
	if _, err := os.Stat(filepath.Join(mod, "vendor", "modules.txt")); err == nil {
		return Env("GOFLAGS=-mod=vendor"), nil // a vendored module brings its dependencies
	}
	if out, err := download(ctx, mod); err != nil {
		if ctx.Err() != nil {
			return nil, fault.Wrap(fault.Unavailable, ctx.Err(), "%s", tool)
		}
		return nil, Failure(log, tool, where, []string{err.Error() + ": " + string(out)})
	}
	return Env(), nil
}

// Rel is path relative to root, with forward slashes.
func Rel(root, path string) string {
	if r, err := filepath.Rel(root, path); err == nil && !strings.HasPrefix(r, "..") {
		return filepath.ToSlash(r)
	}
	return path
}

func orDot(s string) string {
	if s == "" || s == "." {
		return "."
	}
	return s
}

// modulePath is what a module or package path may be when we repeat it.
var modulePath = `([A-Za-z0-9][A-Za-z0-9._~/-]{0,199})`

var (
	unresolvable = []*regexp.Regexp{
		regexp.MustCompile(modulePath + `@[^\s:]+: module lookup disabled`),
		regexp.MustCompile(`no required module provides package ` + modulePath),
		regexp.MustCompile(`missing go\.sum entry for module providing package ` + modulePath),
		regexp.MustCompile(`missing go\.sum entry for go\.mod file[^\n]*?` + modulePath),
		regexp.MustCompile(`cannot find module providing package ` + modulePath),
		regexp.MustCompile(`could not import ` + modulePath + ` \(`),
		regexp.MustCompile(modulePath + `@v[^\s:]*: (?:reading|verifying|invalid version|unrecognized import path|missing go\.sum)`),
	}
	toolchain = regexp.MustCompile(`requires go >= ?([0-9][0-9.a-z]*)|go: downloading go([0-9][0-9.a-z]*)|toolchain not available`)
)

// Failure classifies why the go command could not load a module, logs
// its own text (bounded, cleaned, secrets redacted), and returns the
// reason a requester sees.
func Failure(log *slog.Logger, tool, module string, msgs []string) error {
	text := strings.Join(msgs, "\n")
	detail := secrets.RedactText(sanitize.Line(text[:min(len(text), 4096)]))
	log.Warn(tool+" could not load a module", "module", sanitize.Line(module), "detail", detail)
	where := sanitize.Line(module)
	var missing []string
	seen := map[string]bool{}
	for _, re := range unresolvable {
		for _, m := range re.FindAllStringSubmatch(text, -1) {
			if p := strings.TrimRight(m[1], ".;:,"); !seen[p] && len(missing) < 5 {
				seen[p] = true
				missing = append(missing, p)
			}
		}
	}
	switch {
	case len(missing) > 0:
		sort.Strings(missing)
		return fault.New(fault.Permanent, "%s could not load module %s: module dependencies not resolvable: %s", tool, where, strings.Join(missing, ", "))
	case toolchain.MatchString(text):
		return fault.New(fault.Permanent, "%s could not load module %s: it needs a newer Go toolchain than this service's (%s)", tool, where, runtime.Version())
	case strings.Contains(text, "errors parsing go.mod") || strings.Contains(text, "go.mod:"):
		return fault.New(fault.Permanent, "%s could not load module %s: go.mod could not be parsed", tool, where)
	case strings.Contains(text, "go.work"):
		return fault.New(fault.Permanent, "%s could not load module %s: its go.work could not be used", tool, where)
	}
	files := map[string]bool{}
	syntax := 0
	for _, m := range msgs {
		file, rest, _ := strings.Cut(m, ": ")
		files[file] = true
		if strings.Contains(rest, "expected ") || strings.Contains(rest, "illegal") || strings.Contains(rest, "syntax") {
			syntax++
		}
	}
	if syntax > 0 {
		return fault.New(fault.Permanent, "%s could not load module %s: %d Go file(s) do not parse", tool, where, len(files))
	}
	return fault.New(fault.Permanent, "%s could not load module %s: %d file(s) have type errors (are its dependencies resolvable?)", tool, where, len(files))
}

// Package sast runs gosec (as a library) over every Go module of a
// checkout. The packages are loaded with `go list`, which never runs the
// repository's code, in an environment where the go command also neither
// downloads a toolchain nor fetches modules nor runs cgo. A module whose packages do not load (missing dependencies) makes
// the scan fail, which the workflow reports as a failed scanner.
package sast

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	stdlog "log"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/securego/gosec/v2"
	"github.com/securego/gosec/v2/analyzers"
	"github.com/securego/gosec/v2/issue"
	"github.com/securego/gosec/v2/rules"
	"golang.org/x/tools/go/packages"

	"github.com/ultramcp/durable/analysis"
	"github.com/ultramcp/durable/analysis/secrets"
	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/sanitize"
)

// goEnv is the environment of the go command that loads the analyzed
// packages, made from nothing rather than inherited, so that none of the
// service's secrets (API keys, the database URL) reach it: the local
// toolchain only (a go.mod "toolchain" line must not download and run
// another), no module downloads, no cgo (which would compile the
// repository's C code), no workspace file, no go env file. The caches are
// the operator's, so modules already downloaded are found.
func goEnv(extra ...string) []string {
	out, _ := exec.Command("go", "env", "GOPATH", "GOMODCACHE", "GOCACHE").Output()
	var dirs []string
	for i, name := range []string{"GOPATH", "GOMODCACHE", "GOCACHE"} {
		if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); i < len(lines) && lines[i] != "" {
			dirs = append(dirs, name+"="+lines[i])
		}
	}
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
	return append(append(env, dirs...), extra...) // later entries win
}

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
	cmd.Dir, cmd.Env = mod, goEnv(extra...)
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

// Scan runs gosec on every Go module under dir. Why a module could not be
// loaded is said in a few words of ours; the go command's own text, which
// can quote the repository's files, goes only to log.
func Scan(ctx context.Context, dir string, log *slog.Logger) ([]analysis.Finding, error) {
	if log == nil {
		log = slog.Default()
	}
	mods, err := Modules(dir)
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err, "find Go modules")
	}
	var out []analysis.Finding
	for _, mod := range mods {
		if err := ctx.Err(); err != nil {
			return nil, fault.Wrap(fault.Unavailable, err, "gosec")
		}
		found, err := scanModule(ctx, dir, mod, log)
		if err != nil {
			return nil, err
		}
		out = append(out, found...)
	}
	return out, nil
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

// scanModule loads every package of the module with one `go list` (gosec's
// own Process loads them one by one, which is many times slower) and runs
// gosec's rules and analyzers on each.
func scanModule(ctx context.Context, root, mod string, log *slog.Logger) ([]analysis.Finding, error) {
	where := orDot(rel(root, mod))
	if p := special(mod); p != "" {
		return nil, fault.New(fault.Permanent, "gosec did not load module %s: %s is not a regular file", sanitize.Line(where), sanitize.Line(rel(root, p)))
	}
	var env []string
	if _, err := os.Stat(filepath.Join(mod, "vendor", "modules.txt")); err == nil {
		env = goEnv("GOFLAGS=-mod=vendor") // a vendored module brings its dependencies
	} else {
		if out, err := download(ctx, mod); err != nil {
			if ctx.Err() != nil {
				return nil, fault.Wrap(fault.Unavailable, ctx.Err(), "gosec")
			}
			return nil, loadFailure(log, where, []string{err.Error() + ": " + string(out)})
		}
		env = goEnv()
	}
	logger := stdlog.New(io.Discard, "", 0)
	a := gosec.NewAnalyzer(gosec.NewConfig(), false, true, false, 2, logger)
	a.LoadRules(rules.Generate(false).RulesInfo())
	a.LoadAnalyzers(analyzers.Generate(false).AnalyzersInfo())
	conf := &packages.Config{Context: ctx, Mode: gosec.LoadMode, Dir: mod, Env: env, Tests: false}
	pkgs, err := packages.Load(conf, "./...")
	if err != nil {
		if ctx.Err() != nil {
			return nil, fault.Wrap(fault.Unavailable, ctx.Err(), "gosec")
		}
		return nil, loadFailure(log, where, []string{err.Error()})
	}
	var msgs []string
	for _, pkg := range pkgs {
		errs, err := gosec.ParseErrors(pkg)
		if err != nil {
			return nil, loadFailure(log, where, []string{err.Error()})
		}
		for file, es := range errs {
			for _, e := range es {
				msgs = append(msgs, fmt.Sprintf("%s: %s", rel(root, file), e.Err))
			}
		}
		if len(errs) > 0 || pkg.Types == nil {
			continue
		}
		a.CheckRules(pkg)
		a.CheckAnalyzers(pkg)
	}
	if len(msgs) > 0 {
		sort.Strings(msgs)
		return nil, loadFailure(log, where, msgs)
	}
	issues, _, _ := a.Report()
	out := make([]analysis.Finding, 0, len(issues))
	for _, is := range issues {
		out = append(out, convert(root, is))
	}
	return out, nil
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

// loadFailure classifies why the go command could not load a module, logs
// its own text (bounded, cleaned, secrets redacted), and returns the
// reason a requester sees.
func loadFailure(log *slog.Logger, module string, msgs []string) error {
	text := strings.Join(msgs, "\n")
	detail := secrets.RedactText(sanitize.Line(text[:min(len(text), 4096)]))
	log.Warn("gosec could not load a module", "module", sanitize.Line(module), "detail", detail)
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
		return fault.New(fault.Permanent, "gosec could not load module %s: module dependencies not resolvable: %s", where, strings.Join(missing, ", "))
	case toolchain.MatchString(text):
		return fault.New(fault.Permanent, "gosec could not load module %s: it needs a newer Go toolchain than this service's (%s)", where, runtime.Version())
	case strings.Contains(text, "errors parsing go.mod") || strings.Contains(text, "go.mod:"):
		return fault.New(fault.Permanent, "gosec could not load module %s: go.mod could not be parsed", where)
	case strings.Contains(text, "go.work"):
		return fault.New(fault.Permanent, "gosec could not load module %s: its go.work could not be used", where)
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
		return fault.New(fault.Permanent, "gosec could not load module %s: %d Go file(s) do not parse", where, len(files))
	}
	return fault.New(fault.Permanent, "gosec could not load module %s: %d file(s) have type errors (are its dependencies resolvable?)", where, len(files))
}

func convert(root string, is *issue.Issue) analysis.Finding {
	line, _ := strconv.Atoi(strings.SplitN(is.Line, "-", 2)[0])
	f := analysis.Finding{
		Tool:       "gosec",
		RuleID:     is.RuleID,
		Title:      is.What,
		Severity:   severity(is.Severity),
		Confidence: strings.ToLower(is.Confidence.String()),
		File:       rel(root, is.File),
		Line:       line,
		Excerpt:    excerpt(is.Code, line),
	}
	if is.Cwe != nil {
		f.CWE = "CWE-" + is.Cwe.ID
	}
	// Code can hold a secret on any line: every excerpt passes the
	// redactor, and a hard-coded credential loses every literal.
	f.Excerpt = secrets.RedactText(f.Excerpt)
	if f.CWE == "CWE-798" {
		f.Excerpt = quoted.ReplaceAllStringFunc(f.Excerpt, func(lit string) string { return "\"" + secrets.Redact(unquote(lit)) + "\"" })
	}
	f.Fingerprint = analysis.Fingerprint(f.File, f.RuleID, f.Excerpt)
	return f
}

// quoted matches Go string literals: interpreted ones with their escapes
// (so an escaped quote does not end them), raw ones, and rune literals.
var quoted = regexp.MustCompile(`"(?:[^"\\\n]|\\.)*"|` + "`[^`]*`" + `|'(?:[^'\\\n]|\\.)*'`)

func unquote(lit string) string {
	if s, err := strconv.Unquote(lit); err == nil {
		return s
	}
	return lit[1 : len(lit)-1]
}

func severity(s issue.Score) string {
	switch s {
	case issue.High:
		return analysis.SeverityHigh
	case issue.Medium:
		return analysis.SeverityMedium
	}
	return analysis.SeverityLow
}

// excerpt keeps the flagged line of gosec's numbered snippet, short.
func excerpt(code string, line int) string {
	prefix := strconv.Itoa(line) + ": "
	text := ""
	for _, l := range strings.Split(code, "\n") {
		if strings.HasPrefix(l, prefix) {
			text = strings.TrimSpace(strings.TrimPrefix(l, prefix))
			break
		}
	}
	if len(text) > 200 {
		text = text[:200] + "…"
	}
	return text
}

func rel(root, path string) string {
	if r, err := filepath.Rel(root, path); err == nil && !strings.HasPrefix(r, "..") {
		return filepath.ToSlash(r)
	}
	return path
}

func orDot(s string) string {
	if s == "" {
		return "."
	}
	return s
}

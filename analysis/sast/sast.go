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
	"log"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/securego/gosec/v2"
	"github.com/securego/gosec/v2/analyzers"
	"github.com/securego/gosec/v2/issue"
	"github.com/securego/gosec/v2/rules"
	"golang.org/x/tools/go/packages"

	"github.com/ultramcp/durable/analysis"
	"github.com/ultramcp/durable/analysis/secrets"
	"github.com/ultramcp/durable/fault"
)

// goEnv is the environment of the go command that loads the analyzed
// packages: the local toolchain only (a go.mod "toolchain" line must not
// download and run another), no module downloads, no cgo (which would
// compile the repository's C code), no workspace file.
func goEnv() []string {
	env := os.Environ()
	for k, v := range map[string]string{
		"GOTOOLCHAIN": "local",
		"GOPROXY":     "off",
		"GOFLAGS":     "-mod=readonly",
		"CGO_ENABLED": "0",
		"GOWORK":      "off",
		"GOSUMDB":     "off",
	} {
		env = append(env, k+"="+v)
	}
	return env
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

// Scan runs gosec on every Go module under dir.
func Scan(ctx context.Context, dir string) ([]analysis.Finding, error) {
	mods, err := Modules(dir)
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err, "find Go modules")
	}
	var out []analysis.Finding
	for _, mod := range mods {
		if err := ctx.Err(); err != nil {
			return nil, fault.Wrap(fault.Unavailable, err, "gosec")
		}
		found, err := scanModule(ctx, dir, mod)
		if err != nil {
			return nil, err
		}
		out = append(out, found...)
	}
	return out, nil
}

// scanModule loads every package of the module with one `go list` (gosec's
// own Process loads them one by one, which is many times slower) and runs
// gosec's rules and analyzers on each.
func scanModule(ctx context.Context, root, mod string) ([]analysis.Finding, error) {
	logger := log.New(io.Discard, "", 0)
	a := gosec.NewAnalyzer(gosec.NewConfig(), false, true, false, 2, logger)
	a.LoadRules(rules.Generate(false).RulesInfo())
	a.LoadAnalyzers(analyzers.Generate(false).AnalyzersInfo())
	conf := &packages.Config{Context: ctx, Mode: gosec.LoadMode, Dir: mod, Env: goEnv(), Tests: false}
	pkgs, err := packages.Load(conf, "./...")
	if err != nil {
		if ctx.Err() != nil {
			return nil, fault.Wrap(fault.Unavailable, ctx.Err(), "gosec")
		}
		return nil, fault.Wrap(fault.Permanent, err, "gosec could not load module %s", orDot(rel(root, mod)))
	}
	var msgs []string
	for _, pkg := range pkgs {
		errs, err := gosec.ParseErrors(pkg)
		if err != nil {
			return nil, fault.Wrap(fault.Permanent, err, "gosec")
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
		if len(msgs) > 3 {
			msgs = append(msgs[:3], fmt.Sprintf("and %d more", len(msgs)-3))
		}
		return nil, fault.New(fault.Permanent, "gosec could not load module %s (are its dependencies resolvable?): %s", orDot(rel(root, mod)), strings.Join(msgs, "; "))
	}
	issues, _, _ := a.Report()
	out := make([]analysis.Finding, 0, len(issues))
	for _, is := range issues {
		out = append(out, convert(root, is))
	}
	return out, nil
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
	if f.CWE == "CWE-798" { // hard-coded credentials: the excerpt holds one
		f.Excerpt = quoted.ReplaceAllStringFunc(f.Excerpt, func(lit string) string { return secrets.Redact(strings.Trim(lit, "\"`")) })
	}
	f.Fingerprint = fmt.Sprintf("%s:%s:%d", f.File, f.RuleID, f.Line)
	return f
}

var quoted = regexp.MustCompile("\"[^\"]*\"|`[^`]*`")

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

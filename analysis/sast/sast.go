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
	stdlog "log"
	"log/slog"
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
	"github.com/ultramcp/durable/analysis/gomod"
	"github.com/ultramcp/durable/analysis/secrets"
	"github.com/ultramcp/durable/fault"
)

// Scan runs gosec on every Go module under dir. Why a module could not be
// loaded is said in a few words of ours; the go command's own text, which
// can quote the repository's files, goes only to log.
func Scan(ctx context.Context, dir string, log *slog.Logger) ([]analysis.Finding, error) {
	if log == nil {
		log = slog.Default()
	}
	mods, err := gomod.Modules(dir)
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

// scanModule loads every package of the module with one `go list` (gosec's
// own Process loads them one by one, which is many times slower) and runs
// gosec's rules and analyzers on each.
func scanModule(ctx context.Context, root, mod string, log *slog.Logger) ([]analysis.Finding, error) {
	where := orDot(rel(root, mod))
	env, err := gomod.Prepare(ctx, root, mod, "gosec", log)
	if err != nil {
		return nil, err
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
		return nil, gomod.Failure(log, "gosec", where, []string{err.Error()})
	}
	var msgs []string
	for _, pkg := range pkgs {
		errs, err := gosec.ParseErrors(pkg)
		if err != nil {
			return nil, gomod.Failure(log, "gosec", where, []string{err.Error()})
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
		return nil, gomod.Failure(log, "gosec", where, msgs)
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

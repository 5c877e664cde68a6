// Package sast runs gosec (as a library) over every Go module of a
// checkout. gosec type-checks the code with `go list`, which never runs
// the repository's code; HardenGoEnv makes sure the go command also
// neither downloads a toolchain nor fetches modules nor runs cgo while it
// does. A module whose packages do not load (missing dependencies) makes
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

	"github.com/ultramcp/durable/analysis"
	"github.com/ultramcp/durable/analysis/secrets"
	"github.com/ultramcp/durable/fault"
)

// HardenGoEnv sets the process environment the go command reads when
// gosec loads packages: the local toolchain only (a go.mod "toolchain" line
// must not download and run another), no module downloads, no cgo (which
// would compile the repository's C code), no workspace file. Call it once
// at start, before any scan: gosec offers no per-call environment.
func HardenGoEnv() {
	for k, v := range map[string]string{
		"GOTOOLCHAIN": "local",
		"GOPROXY":     "off",
		"GOFLAGS":     "-mod=readonly",
		"CGO_ENABLED": "0",
		"GOWORK":      "off",
		"GONOSUMDB":   "",
		"GOSUMDB":     "off",
	} {
		os.Setenv(k, v)
	}
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
		found, err := scanModule(dir, mod)
		if err != nil {
			return nil, err
		}
		out = append(out, found...)
	}
	return out, nil
}

func scanModule(root, mod string) ([]analysis.Finding, error) {
	logger := log.New(io.Discard, "", 0)
	a := gosec.NewAnalyzer(gosec.NewConfig(), false, true, false, 2, logger)
	a.LoadRules(rules.Generate(false).RulesInfo())
	a.LoadAnalyzers(analyzers.Generate(false).AnalyzersInfo())
	pkgs, err := gosec.PackagePaths(mod+"/...", nil)
	if err != nil {
		return nil, fault.Wrap(fault.Permanent, err, "gosec")
	}
	// Nested modules are scanned on their own.
	pkgs = ownPackages(mod, pkgs)
	if len(pkgs) == 0 {
		return nil, nil
	}
	sort.Strings(pkgs)
	if err := a.Process(nil, pkgs...); err != nil {
		return nil, fault.Wrap(fault.Permanent, err, "gosec on %s", rel(root, mod))
	}
	issues, _, errs := a.Report()
	if len(errs) > 0 {
		var msgs []string
		for file, es := range errs {
			for _, e := range es {
				msgs = append(msgs, fmt.Sprintf("%s: %s", rel(root, file), e.Err))
			}
		}
		sort.Strings(msgs)
		if len(msgs) > 3 {
			msgs = append(msgs[:3], fmt.Sprintf("and %d more", len(msgs)-3))
		}
		return nil, fault.New(fault.Permanent, "gosec could not load module %s (are its dependencies resolvable?): %s", orDot(rel(root, mod)), strings.Join(msgs, "; "))
	}
	out := make([]analysis.Finding, 0, len(issues))
	for _, is := range issues {
		out = append(out, convert(root, is))
	}
	return out, nil
}

func ownPackages(mod string, pkgs []string) []string {
	var out []string
	for _, p := range pkgs {
		inner := false
		for d := p; d != mod && strings.HasPrefix(d, mod); d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				inner = true
				break
			}
		}
		if !inner {
			out = append(out, p)
		}
	}
	return out
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
		Excerpt:    excerpt(is.Code),
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

// excerpt keeps the flagged line, short.
func excerpt(code string) string {
	for _, l := range strings.Split(code, "\n") {
		if _, text, ok := strings.Cut(l, ": "); ok && strings.TrimSpace(text) != "" {
			code = strings.TrimSpace(text)
			break
		}
	}
	if len(code) > 200 {
		code = code[:200] + "…"
	}
	return code
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

// Package vulns finds the known vulnerabilities of a checkout's Go
// dependencies with govulncheck (golang.org/x/vuln/scan, in-process): for
// each module, the vulnerabilities of the modules it requires, and whether
// its code reaches the vulnerable functions (with the call path), each with
// its GO-, CVE and GHSA ids, the fixed version and the upgrade to make.
// The database is vuln.go.dev by default, or a local copy (ULTRAMCP_VULNDB,
// `ultramcp vulndb update`). Nothing of the repository runs: packages are
// loaded as gosec loads them (analysis/gomod).
package vulns

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/vuln/scan"

	"github.com/ultramcp/durable/analysis"
	"github.com/ultramcp/durable/analysis/gomod"
	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/sanitize"
)

// DefaultDB is the Go vulnerability database.
const DefaultDB = "https://vuln.go.dev"

// message is one JSON message of govulncheck's output.
type message struct {
	OSV     *entry   `json:"osv"`
	Finding *finding `json:"finding"`
}

type entry struct {
	ID       string   `json:"id"`
	Summary  string   `json:"summary"`
	Details  string   `json:"details"`
	Aliases  []string `json:"aliases"`
	Database struct {
		URL string `json:"url"`
	} `json:"database_specific"`
}

type finding struct {
	OSV          string   `json:"osv"`
	FixedVersion string   `json:"fixed_version"`
	Trace        []*frame `json:"trace"`
}

type frame struct {
	Module   string `json:"module"`
	Version  string `json:"version"`
	Package  string `json:"package"`
	Function string `json:"function"`
	Receiver string `json:"receiver"`
	Position *struct {
		Filename string `json:"filename"`
		Line     int    `json:"line"`
	} `json:"position"`
}

// Scan runs govulncheck on every Go module under dir against db.
func Scan(ctx context.Context, dir, db string, log *slog.Logger) ([]analysis.Finding, error) {
	if log == nil {
		log = slog.Default()
	}
	if db == "" {
		db = DefaultDB
	}
	mods, err := gomod.Modules(dir)
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err, "find Go modules")
	}
	var out []analysis.Finding
	for _, mod := range mods {
		env, err := gomod.Prepare(ctx, dir, mod, "govulncheck", log)
		if err != nil {
			return nil, err
		}
		found, err := scanModule(ctx, dir, mod, db, env, log)
		if err != nil {
			return nil, err
		}
		out = append(out, found...)
	}
	return out, nil
}

func scanModule(ctx context.Context, root, mod, db string, env []string, log *slog.Logger) ([]analysis.Finding, error) {
	var stdout, stderr bytes.Buffer
	cmd := scan.Command(ctx, "-db", db, "-format", "json", "-C", mod, "./...")
	cmd.Stdout, cmd.Stderr, cmd.Env = &stdout, &stderr, env
	err := cmd.Start()
	if err == nil {
		err = cmd.Wait()
	}
	where := gomod.Rel(root, mod)
	if where == "" {
		where = "."
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, fault.Wrap(fault.Unavailable, ctx.Err(), "govulncheck")
		}
		// govulncheck says why in its error ("fetching vulnerabilities: …
		// no such host"), not always on stderr.
		text := err.Error() + "\n" + stderr.String()
		if unreachable(text, db) {
			log.Warn("govulncheck could not read its database", "db", db, "detail", sanitize.Line(text[:min(len(text), 2048)]))
			return nil, fault.New(fault.Permanent, "govulncheck could not read the vulnerability database %s: unreachable (offline?). Make a local copy with `ultramcp vulndb update`, or point ULTRAMCP_VULNDB at one", db)
		}
		return nil, gomod.Failure(log, "govulncheck", where, []string{err.Error() + ": " + text})
	}
	return convert(root, mod, &stdout)
}

// unreachable reports whether govulncheck's failure is its database's:
// the fetch failed, or the message names the database.
func unreachable(text, db string) bool {
	return strings.Contains(text, "fetching vulnerabilities") || strings.Contains(text, "creating client") ||
		strings.Contains(text, "vulnerability database") || strings.Contains(text, db)
}

// level orders how close the code is to a vulnerability.
const (
	required  = 1 // the module is in the build
	imported  = 2 // a vulnerable package is imported
	reachable = 3 // a vulnerable function is called
)

func depth(f *finding) int {
	if len(f.Trace) == 0 {
		return 0
	}
	switch {
	case f.Trace[0].Function != "":
		return reachable
	case f.Trace[0].Package != "":
		return imported
	}
	return required
}

// convert turns govulncheck's messages into one finding per vulnerability
// and module, at the closest level found.
func convert(root, mod string, r io.Reader) ([]analysis.Finding, error) {
	osvs := map[string]*entry{}
	best := map[string]*finding{}
	var order []string
	dec := json.NewDecoder(r)
	for {
		var m message
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fault.Wrap(fault.Internal, err, "read govulncheck output")
		}
		switch {
		case m.OSV != nil:
			osvs[m.OSV.ID] = m.OSV
		case m.Finding != nil && len(m.Finding.Trace) > 0:
			key := m.Finding.OSV + "|" + m.Finding.Trace[0].Module
			if b, ok := best[key]; !ok || depth(m.Finding) > depth(b) {
				if !ok {
					order = append(order, key)
				}
				best[key] = m.Finding
			}
		}
	}
	gomodFile := gomod.Rel(root, filepath.Join(mod, "go.mod"))
	var out []analysis.Finding
	for _, key := range order {
		f := best[key]
		e := osvs[f.OSV]
		if e == nil {
			e = &entry{ID: f.OSV}
		}
		dep := f.Trace[0]
		v := analysis.Finding{
			Tool: "govulncheck", RuleID: e.ID, Title: sanitize.Line(cmp.Or(strings.TrimSpace(e.Summary), strings.TrimSpace(e.Details), e.ID)),
			File: gomodFile, Line: 1, Module: dep.Module, Version: dep.Version,
			FixedVersion: f.FixedVersion, Aliases: e.Aliases, URL: e.Database.URL,
		}
		switch depth(f) {
		case reachable:
			v.Severity, v.Reachable = analysis.SeverityHigh, true
			for _, fr := range f.Trace {
				v.Trace = append(v.Trace, symbol(fr))
			}
			// Point at the first call from the repository's own code.
			for _, fr := range f.Trace[1:] {
				if fr.Position != nil && fr.Position.Filename != "" {
					v.File, v.Line = gomod.Rel(root, absolute(mod, fr.Position.Filename)), fr.Position.Line
					break
				}
			}
		case imported:
			v.Severity = analysis.SeverityMedium
		default:
			v.Severity = analysis.SeverityLow
		}
		v.Excerpt = advice(v)
		v.Fingerprint = analysis.Fingerprint(gomodFile, e.ID, dep.Module)
		out = append(out, v)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].RuleID < out[j].RuleID })
	return out, nil
}

// advice says what the finding means and what to do.
func advice(v analysis.Finding) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s@%s", v.Module, v.Version)
	switch {
	case v.Reachable:
		b.WriteString(" is called: " + strings.Join(v.Trace, " ← "))
	case v.Severity == analysis.SeverityMedium:
		b.WriteString(" is imported; no vulnerable function is called")
	default:
		b.WriteString(" is required; its vulnerable packages are not imported")
	}
	if v.FixedVersion != "" {
		fmt.Fprintf(&b, ". Fixed in %s: go get %s@%s", v.FixedVersion, v.Module, v.FixedVersion)
	} else {
		b.WriteString(". No fixed version yet")
	}
	if len(v.Aliases) > 0 {
		b.WriteString(" (" + strings.Join(v.Aliases, ", ") + ")")
	}
	return b.String()
}

func symbol(f *frame) string {
	name := f.Function
	if f.Receiver != "" {
		name = strings.TrimPrefix(f.Receiver, "*") + "." + name
	}
	pkg := f.Package
	if i := strings.LastIndexByte(pkg, '/'); i >= 0 {
		pkg = pkg[i+1:]
	}
	return pkg + "." + name
}

func absolute(mod, file string) string {
	if filepath.IsAbs(file) {
		return file
	}
	return filepath.Join(mod, file)
}

package analysis

import (
	"fmt"
	"sort"
	"strings"

	"github.com/ultramcp/durable/sanitize"
)

// Finish cleans the report's text, sorts the findings (most severe first)
// and counts them by severity.
func (r *Report) Finish() {
	r.Clean()
	if r.Findings == nil {
		r.Findings = []Finding{} // "findings": [] when there are none
	}
	r.Partial, r.Incomplete = false, nil
	for _, s := range r.Scanners {
		// A scanner skipped says why (its run's budget): the report lacks it.
		if s.Status == ScannerFailed || s.Status == ScannerSkipped {
			r.Partial = true
			r.Incomplete = append(r.Incomplete, s.Name+": "+s.Error)
		}
	}
	sort.SliceStable(r.Findings, func(i, j int) bool {
		a, b := r.Findings[i], r.Findings[j]
		if SeverityRank(a.Severity) != SeverityRank(b.Severity) {
			return SeverityRank(a.Severity) < SeverityRank(b.Severity)
		}
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.RuleID+a.Commit < b.RuleID+b.Commit
	})
	r.BySeverity = map[string]int{}
	seen := map[string]int{}
	for i, f := range r.Findings {
		r.BySeverity[f.Severity]++
		// The same flagged code twice in a file: number the later ones, in
		// line order, so each keeps an identity of its own.
		key := f.Tool + "|" + f.Fingerprint
		if n := seen[key]; n > 0 && !strings.Contains(f.Fingerprint, "#") {
			r.Findings[i].Fingerprint = fmt.Sprintf("%s#%d", f.Fingerprint, n+1)
		}
		seen[key]++
	}
}

// CompareWith marks the findings that previous did not have and counts
// those it had that are gone.
func (r *Report) CompareWith(previous Report) {
	before := map[string]bool{}
	for _, f := range previous.Findings {
		before[f.Tool+"|"+f.Fingerprint] = true
	}
	c := &Comparison{PreviousCommit: previous.Commit}
	now := map[string]bool{}
	for i := range r.Findings {
		key := r.Findings[i].Tool + "|" + r.Findings[i].Fingerprint
		now[key] = true
		if before[key] {
			c.Unchanged++
		} else {
			r.Findings[i].New = true
			c.New++
		}
	}
	for _, f := range previous.Findings {
		if !now[f.Tool+"|"+f.Fingerprint] {
			c.Fixed++
			if len(c.FixedFindings) < 100 {
				c.FixedFindings = append(c.FixedFindings, f.Fingerprint)
			}
		}
	}
	r.Comparison = c
}

// Clean strips control characters from every string that came from the
// repository, its git server or a model (file and branch names, excerpts,
// tool messages, the summary), so that no escape sequence reaches a
// terminal from the JSON, the CLI or the Markdown.
func (r *Report) Clean() {
	line := sanitize.Line
	r.Repository, r.Branch, r.Commit = line(r.Repository), line(r.Branch), line(r.Commit)
	for i := range r.Scanners {
		s := &r.Scanners[i]
		s.Name, s.Status, s.Error = line(s.Name), line(s.Status), line(s.Error)
	}
	for i := range r.Findings {
		f := &r.Findings[i]
		f.Tool, f.RuleID, f.Title, f.Severity, f.Confidence = line(f.Tool), line(f.RuleID), line(f.Title), line(f.Severity), line(f.Confidence)
		f.CWE, f.File, f.Commit, f.Excerpt, f.Fingerprint = line(f.CWE), line(f.File), line(f.Commit), line(f.Excerpt), line(f.Fingerprint)
		for j := range f.Also {
			f.Also[j].File, f.Also[j].Commit = line(f.Also[j].File), line(f.Also[j].Commit)
		}
	}
	if m := r.Metrics; m != nil {
		for i := range m.Languages {
			m.Languages[i].Name = line(m.Languages[i].Name)
		}
		for i := range m.Files {
			m.Files[i].Path, m.Files[i].Language = line(m.Files[i].Path), line(m.Files[i].Language)
		}
		for i := range m.Functions {
			fn := &m.Functions[i]
			fn.Package, fn.Function, fn.File = line(fn.Package), line(fn.Function), line(fn.File)
		}
	}
	if p := r.Patterns; p != nil {
		for _, list := range [][]string{p.Languages, p.Frameworks, p.BuildSystems, p.Layers} {
			for i := range list {
				list[i] = line(list[i])
			}
		}
		for i := range p.Dependencies {
			p.Dependencies[i].From, p.Dependencies[i].To = line(p.Dependencies[i].From), line(p.Dependencies[i].To)
		}
		p.Summary, p.SummaryModel = sanitize.Text(p.Summary), line(p.SummaryModel)
	}
	if c := r.Comparison; c != nil {
		c.PreviousCommit = line(c.PreviousCommit)
		for i := range c.FixedFindings {
			c.FixedFindings[i] = line(c.FixedFindings[i])
		}
	}
}

// Markdown renders the report for people. Every string that came from
// outside is escaped: file names, branches and messages cannot add markup,
// links or HTML.
func (r *Report) Markdown() string {
	var b strings.Builder
	if r.Partial {
		// The first line says it: a failed scanner must never read as a
		// clean repository.
		fmt.Fprintf(&b, "**INCOMPLETE: %s failed** — %s. Its findings are missing from this report.\n\n", esc(strings.Join(r.FailedScanners(), ", ")), esc(strings.Join(r.Incomplete, "; ")))
	}
	fmt.Fprintf(&b, "# %s analysis of %s\n\n", esc(r.AnalysisType), esc(r.Repository))
	fmt.Fprintf(&b, "- commit: %s (branch %s, resolved %s)\n- workflow: %s\n\n", code(r.Commit), esc(r.Branch), r.GeneratedAt.Format("2006-01-02 15:04 MST"), code(r.ID))
	if len(r.Scanners) > 0 {
		b.WriteString("## Scanners\n\n| scanner | status | findings | time |\n|---|---|---|---|\n")
		for _, s := range r.Scanners {
			status := s.Status
			if s.Error != "" {
				status += ": " + s.Error
			}
			fmt.Fprintf(&b, "| %s | %s | %d | %d ms |\n", esc(s.Name), esc(status), s.Findings, s.DurationMS)
		}
		b.WriteString("\n")
	}
	if r.hasSecurity() {
		r.markdownFindings(&b)
	}
	if m := r.Metrics; m != nil {
		markdownQuality(&b, m)
	}
	if p := r.Patterns; p != nil {
		markdownStructure(&b, p)
	}
	return b.String()
}

func (r *Report) markdownFindings(b *strings.Builder) {
	fmt.Fprintf(b, "## Security findings (%d)\n\n", len(r.Findings))
	if c := r.Comparison; c != nil {
		fmt.Fprintf(b, "Compared with %s: %d new, %d unchanged, %d fixed.\n\n", short(c.PreviousCommit), c.New, c.Unchanged, c.Fixed)
	}
	for _, sev := range []string{SeverityCritical, SeverityHigh, SeverityMedium, SeverityLow, SeverityInfo} {
		if n := r.BySeverity[sev]; n > 0 {
			fmt.Fprintf(b, "- %s: %d\n", sev, n)
		}
	}
	if len(r.Findings) > 0 {
		b.WriteString("\n| severity | tool | rule | location | detail |\n|---|---|---|---|---|\n")
		for _, f := range r.Findings {
			loc := esc(fmt.Sprintf("%s:%d", f.File, f.Line))
			if f.Commit != "" {
				loc += " @" + esc(short(f.Commit))
			}
			for _, o := range f.Also {
				loc += "; also " + esc(fmt.Sprintf("%s:%d", o.File, o.Line))
				if o.Commit != "" {
					loc += " @" + esc(short(o.Commit))
				}
			}
			detail := esc(f.Title)
			if f.New {
				detail = "**new** " + detail
			}
			if f.Excerpt != "" {
				detail += " — " + code(f.Excerpt)
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", esc(f.Severity), esc(f.Tool), esc(f.RuleID), loc, detail)
		}
	}
	b.WriteString("\n")
}

func markdownQuality(b *strings.Builder, m *Metrics) {
	b.WriteString("## Quality\n\n| language | files | code | comments | blanks | complexity |\n|---|---|---|---|---|---|\n")
	for _, l := range m.Languages {
		fmt.Fprintf(b, "| %s | %d | %d | %d | %d | %d |\n", esc(l.Name), l.Files, l.Code, l.Comment, l.Blank, l.Complexity)
	}
	fmt.Fprintf(b, "\nTest-to-code ratio: %.2f (%d test lines, %d code lines)\n", m.TestRatio, m.TestLines, m.CodeLines)
	if len(m.Functions) > 0 {
		b.WriteString("\nMost complex Go functions:\n\n| function | location | cyclomatic | cognitive |\n|---|---|---|---|\n")
		for _, f := range m.Functions {
			fmt.Fprintf(b, "| %s | %s | %d | %d |\n", esc(f.Package+"."+f.Function), esc(fmt.Sprintf("%s:%d", f.File, f.Line)), f.Cyclomatic, f.Cognitive)
		}
	}
	b.WriteString("\n")
}

func markdownStructure(b *strings.Builder, p *Patterns) {
	b.WriteString("## Structure\n\n")
	fmt.Fprintf(b, "- languages: %s\n- frameworks: %s\n- build systems: %s\n- layers: %s\n", list(p.Languages), list(p.Frameworks), list(p.BuildSystems), list(p.Layers))
	if len(p.Dependencies) > 0 {
		fmt.Fprintf(b, "- internal imports: %d edges\n", len(p.Dependencies))
	}
	if p.Summary != "" {
		label := ""
		if p.Simulated {
			label = " (simulated: offline provider)"
		}
		fmt.Fprintf(b, "\n### Summary by %s%s\n\n%s\n", esc(p.SummaryModel), label, sanitize.MarkdownText(p.Summary))
	}
}

// FailedScanners names the scanners that failed.
func (r *Report) FailedScanners() []string {
	var out []string
	for _, s := range r.Scanners {
		if s.Status == ScannerFailed {
			out = append(out, s.Name)
		}
	}
	return out
}

// SecurityIncomplete reports whether a security scanner failed: then the
// absence of findings means nothing.
func (r *Report) SecurityIncomplete() bool {
	for _, s := range r.Scanners {
		if s.Status == ScannerFailed && isSecurityScanner(s.Name) {
			return true
		}
	}
	return false
}

// isSecurityScanner reports whether the scanner run named name finds
// security issues (its tool is in scannerOf).
func isSecurityScanner(name string) bool {
	for _, scanner := range scannerOf {
		if scanner == name {
			return true
		}
	}
	return false
}

func (r *Report) hasSecurity() bool {
	for _, s := range r.Scanners {
		if isSecurityScanner(s.Name) {
			return true
		}
	}
	return len(r.Findings) > 0
}

func list(xs []string) string {
	if len(xs) == 0 {
		return "none found"
	}
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = esc(x)
	}
	return strings.Join(out, ", ")
}

// esc is s as literal Markdown text on one line.
func esc(s string) string { return sanitize.MarkdownCell(s) }

// code is s as inline code on one line, whatever backticks it holds.
func code(s string) string { return sanitize.CodeSpan(s) }

func short(sha string) string { return sha[:min(len(sha), 12)] }

package analysis

import (
	"fmt"
	"sort"
	"strings"
)

// Finish sorts the findings (most severe first) and counts them by
// severity.
func (r *Report) Finish() {
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
	for _, f := range r.Findings {
		r.BySeverity[f.Severity]++
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

// Markdown renders the report for people.
func (r *Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s analysis of %s\n\n", r.AnalysisType, r.Repository)
	fmt.Fprintf(&b, "- commit: `%s` (branch `%s`, resolved %s)\n- workflow: `%s`\n\n", r.Commit, r.Branch, r.GeneratedAt.Format("2006-01-02 15:04 MST"), r.ID)
	if len(r.Scanners) > 0 {
		b.WriteString("## Scanners\n\n| scanner | status | findings | time |\n|---|---|---|---|\n")
		for _, s := range r.Scanners {
			status := s.Status
			if s.Error != "" {
				status += ": " + escape(s.Error)
			}
			fmt.Fprintf(&b, "| %s | %s | %d | %d ms |\n", s.Name, status, s.Findings, s.DurationMS)
		}
		b.WriteString("\n")
	}
	if r.hasSecurity() {
		fmt.Fprintf(&b, "## Security findings (%d)\n\n", len(r.Findings))
		if c := r.Comparison; c != nil {
			fmt.Fprintf(&b, "Compared with %s: %d new, %d unchanged, %d fixed.\n\n", short(c.PreviousCommit), c.New, c.Unchanged, c.Fixed)
		}
		for _, sev := range []string{SeverityCritical, SeverityHigh, SeverityMedium, SeverityLow, SeverityInfo} {
			if n := r.BySeverity[sev]; n > 0 {
				fmt.Fprintf(&b, "- %s: %d\n", sev, n)
			}
		}
		if len(r.Findings) > 0 {
			b.WriteString("\n| severity | tool | rule | location | detail |\n|---|---|---|---|---|\n")
			for _, f := range r.Findings {
				loc := fmt.Sprintf("%s:%d", f.File, f.Line)
				if f.Commit != "" {
					loc += " @" + short(f.Commit)
				}
				detail := f.Title
				if f.New {
					detail = "**new** " + detail
				}
				if f.Excerpt != "" {
					detail += " — `" + strings.ReplaceAll(f.Excerpt, "`", "'") + "`"
				}
				fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", f.Severity, f.Tool, f.RuleID, escape(loc), escape(detail))
			}
		}
		b.WriteString("\n")
	}
	if m := r.Metrics; m != nil {
		b.WriteString("## Quality\n\n| language | files | code | comments | blanks | complexity |\n|---|---|---|---|---|---|\n")
		for _, l := range m.Languages {
			fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d |\n", l.Name, l.Files, l.Code, l.Comment, l.Blank, l.Complexity)
		}
		fmt.Fprintf(&b, "\nTest-to-code ratio: %.2f (%d test lines, %d code lines)\n", m.TestRatio, m.TestLines, m.CodeLines)
		if len(m.Functions) > 0 {
			b.WriteString("\nMost complex Go functions:\n\n| function | location | cyclomatic | cognitive |\n|---|---|---|---|\n")
			for _, f := range m.Functions[:min(len(m.Functions), 10)] {
				fmt.Fprintf(&b, "| %s.%s | %s:%d | %d | %d |\n", f.Package, f.Function, f.File, f.Line, f.Cyclomatic, f.Cognitive)
			}
		}
		b.WriteString("\n")
	}
	if p := r.Patterns; p != nil {
		b.WriteString("## Structure\n\n")
		fmt.Fprintf(&b, "- languages: %s\n- frameworks: %s\n- build systems: %s\n- layers: %s\n", list(p.Languages), list(p.Frameworks), list(p.BuildSystems), list(p.Layers))
		if len(p.Dependencies) > 0 {
			fmt.Fprintf(&b, "- internal imports: %d edges\n", len(p.Dependencies))
		}
		if p.Summary != "" {
			label := ""
			if p.Simulated {
				label = " (simulated: offline provider)"
			}
			fmt.Fprintf(&b, "\n### Summary by %s%s\n\n%s\n", p.SummaryModel, label, p.Summary)
		}
	}
	return b.String()
}

func (r *Report) hasSecurity() bool {
	for _, s := range r.Scanners {
		if s.Name == "secrets" || s.Name == "gosec" {
			return true
		}
	}
	return len(r.Findings) > 0
}

func list(xs []string) string {
	if len(xs) == 0 {
		return "none found"
	}
	return strings.Join(xs, ", ")
}

func escape(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "|", "\\|"), "\n", " ") }

func short(sha string) string { return sha[:min(len(sha), 12)] }

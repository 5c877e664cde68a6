package fullanalysis

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/ultramcp/durable/analysis/repo"
	"github.com/ultramcp/durable/sanitize"
	"github.com/ultramcp/durable/workflow"
	"github.com/ultramcp/durable/workflow/debate"
)

// Definitions are full-analysis built from d.
func Definitions(d workflow.Deps) []workflow.Definition {
	return []workflow.Definition{Definition(&FullAnalysis{Models: d.Models, Records: d.Records}, d.Policy())}
}

// Definition declares full-analysis for the registry.
func Definition(f *FullAnalysis, policy repo.Policy) workflow.Definition {
	return workflow.Definition{
		Name: Name, Prefix: "full",
		Summary:     "Analyse, scan, debate the findings and recommend: the meta-workflow",
		Input:       Input{},
		SchemaTypes: debate.SchemaTypes,
		Validate: workflow.Validator(func(b []byte) (Input, error) {
			in, err := Decode(b)
			if err != nil {
				return in, err
			}
			// The children apply the repository policy; check it here too,
			// so that a bad target is refused before anything starts.
			in.Repository, err = policy.Validate(in.Repository)
			return in, err
		}),
		Body:             workflow.Typed(Decode, f.Run),
		Progress:         workflow.PrintMessage,
		ProgressIsNotice: true,
		Render:           render,
		Reports:          map[string]string{"": "report.md", "text": "report.md", "markdown": "report.md"},
		Incomplete: func(out json.RawMessage) string {
			var r Result
			if json.Unmarshal(out, &r) != nil || !r.Partial {
				return ""
			}
			return strings.Join(r.Incomplete, "; ")
		},
	}
}

func render(w io.Writer, out json.RawMessage, format string) error {
	if format != "" && format != "text" && format != "markdown" {
		return fmt.Errorf("format: full-analysis prints as markdown or json, not %q", format)
	}
	var r Result
	if err := json.Unmarshal(out, &r); err != nil {
		return err
	}
	_, err := fmt.Fprint(w, Markdown(r))
	return err
}

// Markdown renders the result for people; every string from outside is
// escaped.
func Markdown(r Result) string {
	esc, code := sanitize.MarkdownCell, sanitize.CodeSpan
	var b strings.Builder
	if r.Partial {
		fmt.Fprintf(&b, "**INCOMPLETE** — %s. Findings of the failed scanners are missing.\n\n", esc(strings.Join(r.Incomplete, "; ")))
	}
	fmt.Fprintf(&b, "# Full analysis of %s\n\n- commit: %s\n- workflow: %s\n", esc(r.Repository), code(r.Analysis.Commit), code(r.ID))
	for _, role := range []string{"analysis", "scan", "debate"} {
		if id, ok := r.Children[role]; ok {
			fmt.Fprintf(&b, "- %s: %s\n", role, code(id))
		}
	}
	fmt.Fprintf(&b, "\n## Findings\n\nAnalysis: %d, security scan: %d.\n\n", r.Analysis.Findings, r.Scan.Findings)
	if len(r.TopFindings) > 0 {
		b.WriteString("| severity | rule | location | detail |\n|---|---|---|---|\n")
		for _, f := range r.TopFindings {
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", esc(f.Severity), esc(f.RuleID), esc(fmt.Sprintf("%s:%d", f.File, f.Line)), esc(f.Title))
		}
	}
	if d := r.Debate; d != nil {
		label := ""
		if d.Simulated {
			label = " (simulated: offline provider)"
		}
		fmt.Fprintf(&b, "\n## The experts' debate%s\n\nConsensus (agreement %.2f): %s\n\nRecommendation: %s\n", label, d.Agreement, sanitize.MarkdownText(d.Consensus), sanitize.MarkdownText(d.Recommendation))
		if len(d.Disagreements) > 0 {
			fmt.Fprintf(&b, "\nDisagreements: %s\n", esc(strings.Join(d.Disagreements, "; ")))
		}
	}
	if len(r.Recommendations) > 0 {
		fmt.Fprintf(&b, "\n## Recommendations (from %s)\n\n", esc(r.RecommendationsFrom))
		for i, rec := range r.Recommendations {
			cites := make([]string, len(rec.Addresses))
			for j, a := range rec.Addresses {
				cites[j] = code(a)
			}
			fmt.Fprintf(&b, "%d. **%s** — impact %s, effort %s; addresses %s\n", i+1, esc(rec.Title), esc(rec.Impact), esc(rec.Effort), strings.Join(cites, ", "))
		}
	}
	return b.String()
}

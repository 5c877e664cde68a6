package codeanalysis

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/ultramcp/durable/analysis"
	"github.com/ultramcp/durable/analysis/repo"
	"github.com/ultramcp/durable/workflow"
)

// Definitions declare code-analysis and security-scan for the registry.
func (a *Analyzer) Definitions() []workflow.Definition {
	reports := map[string]string{"": "report.md", "text": "report.md", "markdown": "report.md", "sarif": "report.sarif", "json": "report.json"}
	base := workflow.Definition{Progress: workflow.PrintMessage, ProgressIsNotice: true, Render: render, Reports: reports, Incomplete: incomplete}
	ca, ss := base, base
	policy := a.policy()
	ca.Name, ca.Prefix, ca.Body = workflow.CodeAnalysis, "analysis", workflow.Typed(decodeAnalysis(nil), a.RunAnalysis)
	ca.Summary, ca.Input, ca.Validate = "Analyse a git repository: secrets, vulnerable code, quality, structure", Input{}, workflow.Validator(decodeAnalysis(&policy))
	ss.Name, ss.Prefix, ss.Body = workflow.SecurityScan, "scan", workflow.Typed(decodeScan(nil), a.RunScan)
	ss.Summary, ss.Input, ss.Validate = "Scan a git repository for secrets and vulnerable code", ScanInput{}, workflow.Validator(decodeScan(&policy))
	return []workflow.Definition{ca, ss}
}

// Definitions are code-analysis and security-scan built from d.
func Definitions(d workflow.Deps) []workflow.Definition {
	a := &Analyzer{Cache: d.Checkouts, Models: d.Models, Records: d.Records, VulnDB: d.VulnDB}
	if d.AnalysisSlots > 0 {
		a.Slots = make(chan struct{}, d.AnalysisSlots)
	}
	return a.Definitions()
}

// render prints a report as Markdown (the default) or SARIF.
func render(w io.Writer, out json.RawMessage, format string) error {
	var rep analysis.Report
	if err := json.Unmarshal(out, &rep); err != nil {
		return err
	}
	switch format {
	case "", "text", "markdown":
		_, err := fmt.Fprint(w, rep.Markdown())
		return err
	case "sarif":
		b, err := rep.SARIF()
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(w, string(b))
		return err
	}
	return fmt.Errorf("format: want json, markdown or sarif, got %q", format)
}

// incomplete says which security scanners failed: their findings are
// missing, so the absence of findings means nothing.
func incomplete(out json.RawMessage) string {
	var rep analysis.Report
	if json.Unmarshal(out, &rep) != nil || !rep.SecurityIncomplete() {
		return ""
	}
	return strings.Join(rep.Incomplete, "; ")
}

// policy is the repository policy requests are checked under.
func (a *Analyzer) policy() repo.Policy {
	if a.Cache == nil {
		return repo.DefaultPolicy
	}
	return a.Cache.Policy
}

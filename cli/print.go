package cli

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/ultramcp/durable/analysis"
	"github.com/ultramcp/durable/workflow/debate"
	"github.com/ultramcp/durable/workflow/registry"
)

// printProgress prints a running workflow's progress: a debate's rounds, an
// analysis's scanners.
func printProgress(w io.Writer, raw json.RawMessage) {
	var p struct {
		debate.Progress
		Scanners []analysis.ScannerRun `json:"scanners"`
	}
	if len(raw) == 0 || json.Unmarshal(raw, &p) != nil || p.Phase == "" {
		return
	}
	if p.Rounds > 0 {
		fmt.Fprintf(w, "progress:   %s (%d of %d rounds done)\n", p.Message, len(p.CompletedRounds), p.Rounds)
		return
	}
	fmt.Fprintf(w, "progress:   %s\n", p.Message)
	for _, s := range p.Scanners {
		fmt.Fprintf(w, "  %-17s %s, %d finding(s), %d ms %s\n", s.Name, s.Status, s.Findings, s.DurationMS, s.Error)
	}
}

// Result formats.
const (
	formatText     = "text"
	formatJSON     = "json"
	formatMarkdown = "markdown"
	formatSARIF    = "sarif"
)

// printResult prints a workflow's result as its definition renders it, or
// as JSON.
func (a *app) printResult(svc string, out json.RawMessage, format string) error {
	def, ok := registry.Lookup(svc)
	if format == formatJSON || !ok || def.Render == nil {
		_, err := fmt.Fprintln(a.stdout, string(out))
		return err
	}
	return def.Render(a.stdout, out, format)
}

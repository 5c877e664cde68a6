package cli

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/ultramcp/durable/analysis"
	"github.com/ultramcp/durable/workflow/debate"
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

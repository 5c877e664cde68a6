package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/ultramcp/durable/analysis"
	"github.com/ultramcp/durable/workflow"
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

// printAnalysisProgress prints an analysis's progress message when it
// changes.
func printAnalysisProgress(w io.Writer, raw json.RawMessage, last string) string {
	var p struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(raw, &p) == nil && p.Message != "" && p.Message != last {
		fmt.Fprintf(w, "… %s\n", p.Message)
		return p.Message
	}
	return last
}

// printRounds prints the rounds of p not yet printed and returns how many
// have been printed in all.
func printRounds(w io.Writer, raw json.RawMessage, printed int) int {
	var p debate.Progress
	if json.Unmarshal(raw, &p) != nil {
		return printed
	}
	for _, r := range p.CompletedRounds[min(printed, len(p.CompletedRounds)):] {
		fmt.Fprintf(w, "\n── round %d of %d ──\n", r.Number, p.Rounds)
		for _, resp := range r.Responses {
			fmt.Fprintf(w, "  %-12s %s  (confidence %s, %d ms)\n", resp.Participant+":", resp.Position, conf(resp.Confidence), resp.LatencyMS)
		}
		if r.Agreement {
			fmt.Fprintln(w, "  → all participants agree")
		}
		printed++
	}
	if p.Phase == "synthesis" && printed == len(p.CompletedRounds) {
		fmt.Fprintln(w, "\n… moderator is writing the synthesis")
	}
	return printed
}

func conf(c *float64) string {
	if c == nil {
		return "?"
	}
	return fmt.Sprintf("%.2f", *c)
}

// Result formats.
const (
	formatText     = "text"
	formatJSON     = "json"
	formatMarkdown = "markdown"
	formatSARIF    = "sarif"
)

// printResult prints a workflow's result: a debate as text, an analysis as
// Markdown (or SARIF), either as JSON.
func (a *app) printResult(svc string, out json.RawMessage, format string) error {
	switch {
	case format == formatJSON:
		_, err := fmt.Fprintln(a.stdout, string(out))
		return err
	case svc == workflow.CodeAnalysis || svc == workflow.SecurityScan:
		var rep analysis.Report
		if err := json.Unmarshal(out, &rep); err != nil {
			return err
		}
		switch format {
		case "", formatText, formatMarkdown:
			_, err := fmt.Fprint(a.stdout, rep.Markdown())
			return err
		case formatSARIF:
			b, err := rep.SARIF()
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(a.stdout, string(b))
			return err
		}
		return fmt.Errorf("format: want json, markdown or sarif, got %q", format)
	case svc != workflow.ChainOfDebate:
		_, err := fmt.Fprintln(a.stdout, string(out))
		return err
	case format != "" && format != formatText:
		return fmt.Errorf("format: a debate prints as text or json, not %q", format)
	}
	var r debate.Result
	if err := json.Unmarshal(out, &r); err != nil {
		return err
	}
	w := a.stdout
	fmt.Fprintf(w, "\n══ debate %s ══\n", r.ID)
	if r.Simulated {
		fmt.Fprintln(w, "SIMULATED: answers come from the offline provider; no model was called.")
	}
	fmt.Fprintf(w, "topic:   %s\nmode:    %s, %d round(s)", r.Topic, r.Mode, len(r.Rounds))
	if r.StoppedEarly {
		fmt.Fprint(w, " (stopped early: participants agreed)")
	}
	fmt.Fprintln(w)
	for _, round := range r.Rounds {
		fmt.Fprintf(w, "\nround %d:\n", round.Number)
		for _, resp := range round.Responses {
			fmt.Fprintf(w, "  %-12s %s\n  %-12s confidence %s, %s, %d+%d tokens, %d ms\n", resp.Participant+":", resp.Position, "", conf(resp.Confidence), resp.Model, resp.TokensIn, resp.TokensOut, resp.LatencyMS)
		}
	}
	fmt.Fprintf(w, "\nvote:    %q with %.0f%% of the weight\n", r.Vote.Winner, r.Vote.Share*100)
	s := r.Synthesis
	fmt.Fprintf(w, "\nsynthesis (agreement %.2f", s.Agreement)
	if s.Contested {
		fmt.Fprint(w, ", below the consensus threshold")
	}
	fmt.Fprintf(w, "):\n  consensus:      %s\n", s.Consensus)
	if len(s.Disagreements) > 0 {
		fmt.Fprintf(w, "  disagreements:  %s\n", strings.Join(s.Disagreements, "; "))
	}
	fmt.Fprintf(w, "  recommendation: %s\n", s.Recommendation)
	if d := r.Decision; d != nil {
		if d.Source == "human" {
			fmt.Fprintf(w, "\ndecision by %s: %s\n", orSomeone(d.By), d.Decision)
		} else {
			fmt.Fprintf(w, "\nno decision in time; the vote stands: %s\n", d.Decision)
		}
	}
	t := r.Totals
	fmt.Fprintf(w, "\ntotals:  %d calls, %d tokens in, %d out, est. $%.4f, %d ms wall\n", t.Calls, t.TokensIn, t.TokensOut, t.CostUSD, t.WallMS)
	for _, p := range t.PerParticipant {
		fmt.Fprintf(w, "  %-12s %d calls, %d+%d tokens, $%.4f\n", p.Participant+":", p.Calls, p.TokensIn, p.TokensOut, p.CostUSD)
	}
	if t.Unpriced {
		fmt.Fprintln(w, "  (some models have no known price; their cost counts as 0)")
	}
	return nil
}

func orSomeone(s string) string {
	if s == "" {
		return "a human"
	}
	return s
}

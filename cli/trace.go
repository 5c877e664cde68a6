package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ultramcp/durable/runs"
)

// traceCommand prints a workflow's run as a waterfall.
func (a *app) traceCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "trace <id>",
		Short: "Show a workflow's run as a waterfall: steps, children, model calls, attempts, replays and waits",
		Long: `trace prints each step and child workflow of a run with its start, its
duration and its attempts, marks the steps a crash made the engine replay
and the time spent waiting (durable sleeps, approvals). It reads the run's
trace from Jaeger when the stack runs it (up --with-jaeger), else Restate's
journal, which has the steps and their timing but not the attempts.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := a.runs().Trace(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			switch format {
			case "json":
				return json.NewEncoder(a.stdout).Encode(t)
			case "", "text":
				printWaterfall(a.stdout, t)
				return nil
			}
			return fmt.Errorf("--format: want text or json, got %q", format)
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", "text or json")
	return cmd
}

// printWaterfall draws each span as a bar on one time axis.
func printWaterfall(w io.Writer, t runs.Trace) {
	const width = 32
	src := "Restate's journal"
	if t.Source == "jaeger" {
		src = "Jaeger, trace " + t.TraceID
	}
	fmt.Fprintf(w, "%s (%s): %d spans over %s, from %s\n", t.ID, t.Workflow, len(t.Spans), time.Duration(float64(t.Took)*float64(time.Millisecond)).Round(time.Microsecond), src)
	if t.Note != "" {
		fmt.Fprintf(w, "note: %s\n", t.Note)
	}
	fmt.Fprintf(w, "%10s %10s  %-*s  %s\n", "start", "took", width, "", "span")
	scale := float64(width) / math.Max(float64(t.Took), 0.001)
	for _, s := range t.Spans {
		from := min(int(float64(s.StartMS)*scale), width-1)
		n := max(1, min(int(float64(s.TookMS)*scale), width-from))
		bar := []rune(strings.Repeat(" ", width))
		mark := '█'
		if s.Waiting {
			mark = '░'
		}
		for i := from; i < from+n; i++ {
			bar[i] = mark
		}
		var notes []string
		if s.Attempt > 1 {
			notes = append(notes, fmt.Sprintf("attempt %d", s.Attempt))
		}
		if s.Replayed {
			notes = append(notes, "replayed from the journal")
		}
		if s.Suspended {
			notes = append(notes, "suspended")
		}
		if s.Waiting {
			notes = append(notes, "waiting")
		}
		if s.Detail != "" {
			notes = append(notes, s.Detail)
		}
		if s.Error != "" {
			notes = append(notes, "error: "+s.Error)
		}
		line := strings.Repeat("  ", s.Depth) + s.Name
		if s.Service != "" && s.Service != "ultramcp" {
			line += " [" + s.Service + "]"
		}
		if len(notes) > 0 {
			line += "  (" + strings.Join(notes, "; ") + ")"
		}
		fmt.Fprintf(w, "%8.1fms %8.1fms  %s  %s\n", float64(s.StartMS), float64(s.TookMS), string(bar), line)
	}
}

package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ultramcp/durable/analysis"
	"github.com/ultramcp/durable/config"
	"github.com/ultramcp/durable/runs"
	"github.com/ultramcp/durable/sanitize"
	"github.com/ultramcp/durable/workflow"
	"github.com/ultramcp/durable/workflow/codeanalysis"
	"github.com/ultramcp/durable/workflow/debate"
	"github.com/ultramcp/durable/workflow/registry"
)

func (a *app) workflowCommands() []*cobra.Command {
	run := &cobra.Command{
		Use:   "run <workflow>",
		Short: "Start a workflow",
		Long: `run starts a workflow of the registry. Each takes its request as flags (one
per field of the request) or whole as --input JSON (or @file); flags given
override the fields of --input.`,
	}
	// Sugar the generic flags cannot give: "name=model" participants, a
	// previous report cut down to what a comparison needs.
	custom := map[string]func() *cobra.Command{workflow.ChainOfDebate: a.runDebateCommand, workflow.SecurityScan: a.runScanCommand}
	for _, def := range registry.All(workflow.Deps{}) {
		if build, ok := custom[def.Name]; ok {
			run.AddCommand(build())
		} else {
			run.AddCommand(a.runCommand(def))
		}
	}

	var statusJSON bool
	status := &cobra.Command{
		Use:   "status <id>",
		Short: "Show a workflow's status, cost so far and live progress",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.status(cmd.Context(), args[0], statusJSON)
		},
	}
	status.Flags().BoolVar(&statusJSON, "json", false, "print JSON")

	var resultJSON bool
	var resultFormat string
	result := &cobra.Command{
		Use:   "result <id>",
		Short: "Print a finished workflow's result (from the store, else from Restate)",
		Long: `result prints a finished workflow's result: a debate as text, an analysis as
Markdown by default. --format json prints the result as JSON, --format sarif
an analysis's security findings as SARIF 2.1.0.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := a.runs().Result(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if resultJSON {
				resultFormat = runs.FormatJSON
			}
			return a.printResult(cmd.Context(), res, resultFormat)
		},
	}
	result.Flags().BoolVar(&resultJSON, "json", false, "same as --format json")
	result.Flags().StringVar(&resultFormat, "format", "", "text, json, markdown or sarif")

	var filter runs.Filter
	list := &cobra.Command{
		Use:   "list",
		Short: "List workflows from the metadata store, newest first",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ws, err := a.runs().List(cmd.Context(), filter)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tWORKFLOW\tSTATUS\tCREATED\tDURATION\tERROR")
			for _, w := range ws {
				dur := "-"
				if w.DurationMS != nil {
					dur = (time.Duration(*w.DurationMS) * time.Millisecond).String()
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", w.ID, w.Workflow, w.Status, w.CreatedAt.Local().Format(time.DateTime), dur, sanitize.FirstLine(w.Error, 100))
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&filter.Workflow, "workflow", "", "only this workflow type, e.g. chain-of-debate")
	list.Flags().StringVar(&filter.Status, "status", "", "only this status: pending, not-started, running, paused, completed, partial, failed, cancelled")
	list.Flags().IntVar(&filter.Limit, "limit", 50, "at most this many")

	olderThan := ""
	purge := &cobra.Command{
		Use:   "purge",
		Short: "Delete finished workflows older than an age from the metadata store",
		Long: `purge deletes finished (completed, failed, cancelled) workflows created more
than --older-than ago, with their agent executions and the artifacts no other
workflow uses, and repository checkouts fetched before then. Restate forgets finished workflows on its own after the same
retention (ULTRAMCP_RETENTION, default 7d), which is the default age here.`,
		Example: "  ultramcp purge --older-than 30d",
		RunE: func(cmd *cobra.Command, _ []string) error {
			age := a.cfg.Retention
			if olderThan != "" {
				var err error
				if age, err = config.ParseAge(olderThan); err != nil {
					return fmt.Errorf("older-than: %w", err)
				}
			}
			p, err := a.runs().Purge(cmd.Context(), age)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "purged %d workflow(s), %d agent execution(s), %d artifact(s) and %d repository checkout(s) older than %s\n", p.Workflows, p.Executions, p.Artifacts, p.Checkouts, age)
			return nil
		},
	}
	purge.Flags().StringVar(&olderThan, "older-than", "", "age such as 30d or 12h (default: ULTRAMCP_RETENTION)")

	cancel := &cobra.Command{
		Use:   "cancel <id>",
		Short: "Cancel a running workflow",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			inv, err := a.runs().Cancel(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "cancellation requested for %s (%s)\n", args[0], inv)
			return nil
		},
	}

	watch := &cobra.Command{
		Use:   "watch <id>",
		Short: "Follow a workflow's progress live, round by round, then print its result",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.follow(cmd.Context(), args[0], "")
		},
	}
	var decision, by string
	decide := &cobra.Command{
		Use:   "decide <id>",
		Short: "Give the human decision an escalated workflow is waiting for",
		Long: `decide resolves the durable decision a workflow waits for: a debate started
with --escalate whose agreement stayed below the consensus threshold. The
first decision counts; without one the workflow falls back to the vote when
its escalation timeout passes.`,
		Example: `  ultramcp decide debate-1a2b --decision "Pilot it on one service first" --by alice`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.decided(args[0], a.runs().Decide(cmd.Context(), args[0], runs.Decision{Decision: decision, By: by}))
		},
	}
	decide.Flags().StringVar(&decision, "decision", "", "the decision (required)")
	decide.Flags().StringVar(&by, "by", os.Getenv("USER"), "who decides")
	return []*cobra.Command{run, status, result, list, cancel, watch, purge, decide, a.approvalCommand(true), a.approvalCommand(false)}
}

func (a *app) runDebateCommand() *cobra.Command {
	var (
		topic, participants, mode, moderator, model, contextArg, id, priority string
		rounds                                                                int
		delay, escalateTimeout                                                time.Duration
		follow, asJSON, escalate                                              bool
		threshold                                                             float64
	)
	cmd := &cobra.Command{
		Use:   workflow.ChainOfDebate,
		Short: "Start a debate among LLM participants",
		Long: `Start a chain-of-debate: participants answer independently, then revise over
rounds seeing each other's positions, stop early on agreement, and end with a
confidence-weighted vote and a moderator's synthesis.

Participants are names, optionally with a model: "alice,bob=openai:gpt-4o-mini".`,
		Example: `  ultramcp run chain-of-debate --topic "Should we adopt Rust?" --participants alice,bob,carol --rounds 2 --follow`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in := map[string]any{"topic": topic, "rounds": rounds}
			var ps []any
			for _, p := range strings.Split(participants, ",") {
				p = strings.TrimSpace(p)
				if p == "" {
					continue
				}
				name, m, hasModel := strings.Cut(p, "=")
				switch {
				case hasModel:
					ps = append(ps, map[string]string{"name": name, "model": m})
				case model != "":
					ps = append(ps, map[string]string{"name": name, "model": model})
				default:
					ps = append(ps, name)
				}
			}
			in["participants"] = ps
			if mode != "" {
				in["mode"] = mode
			}
			if moderator != "" {
				in["moderator"] = moderator
			} else if model != "" {
				in["moderator"] = model
			}
			if cmd.Flags().Changed("delay") {
				in["delayBetweenRounds"] = delay.String()
			}
			if cmd.Flags().Changed("consensus-threshold") {
				in["consensusThreshold"] = threshold
			}
			if escalate {
				in["escalate"] = true
				in["escalateTimeout"] = escalateTimeout.String()
			}
			if raw, err := jsonArg("context", contextArg); err != nil {
				return err
			} else if raw != nil {
				in["context"] = raw
			}
			format := ""
			if asJSON {
				format = runs.FormatJSON
			}
			if priority != "" {
				in["priority"] = priority
			}
			withMaxCost(cmd, in)
			return a.submit(cmd.Context(), workflow.ChainOfDebate, in, id, follow, format)
		},
	}
	f := cmd.Flags()
	f.StringVar(&topic, "topic", "", "what to debate (required)")
	f.StringVar(&participants, "participants", "optimist,skeptic,pragmatist", "comma-separated names, each optionally name=provider:model")
	f.IntVar(&rounds, "rounds", debate.DefaultRounds, fmt.Sprintf("rounds, %d to %d", debate.MinRounds, debate.MaxRounds))
	f.StringVar(&mode, "mode", "", "debate (default) or vote (independent answers and a vote)")
	f.StringVar(&moderator, "moderator", "", "moderator model, e.g. openai:gpt-4o")
	f.StringVar(&model, "participant-model", "", "model for every participant without one")
	f.DurationVar(&delay, "delay", debate.DefaultDelay, "durable pause between rounds")
	f.StringVar(&contextArg, "context", "", "JSON context for the debate, or @file")
	f.Float64Var(&threshold, "consensus-threshold", debate.DefaultConsensusThreshold, "agreement under which the result is contested")
	f.BoolVar(&escalate, "escalate", false, "when contested, wait for a human decision (ultramcp decide)")
	f.DurationVar(&escalateTimeout, "escalate-timeout", debate.DefaultEscalateTimeout, "how long to wait for the decision before the vote stands")
	f.StringVar(&id, "id", "", "workflow id (default: generated); the same id never runs twice")
	f.BoolVarP(&follow, "follow", "f", false, "follow progress and print the result")
	f.BoolVar(&asJSON, "json", false, "with --follow, print the raw JSON result")
	f.StringVar(&priority, "priority", "", "interactive (default) or batch: batch calls wait behind interactive ones for a provider's limit")
	addMaxCost(cmd)
	_ = cmd.MarkFlagRequired("topic")
	return cmd
}

// approvalCommand is approve (or reject): the decision a full-analysis
// started with --require-approval waits for.
func (a *app) approvalCommand(approve bool) *cobra.Command {
	var reason, by string
	use, short := "approve <id>", "Approve a full-analysis that waits for approval: it goes on to the recommendations"
	if !approve {
		use, short = "reject <id>", "Reject a full-analysis that waits for approval: its compensations run and it ends rejected"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.decided(args[0], a.runs().Approve(cmd.Context(), args[0], approve, reason, by))
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded with the decision)")
	cmd.Flags().StringVar(&by, "by", "", "who decides")
	return cmd
}

func (a *app) runScanCommand() *cobra.Command {
	var in codeanalysis.ScanInput
	var id, format, contextArg string
	var follow bool
	cmd := &cobra.Command{
		Use:     workflow.SecurityScan,
		Short:   "Scan a git repository for secrets and vulnerable code",
		Example: `  ultramcp run security-scan --target https://github.com/org/repo.git --follow --format sarif > scan.sarif`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			raw, err := jsonArg("context", contextArg)
			if err != nil {
				return err
			}
			if in.Context, err = comparable(raw); err != nil {
				return err
			}
			return a.submit(cmd.Context(), workflow.SecurityScan, in, id, follow, format)
		},
	}
	f := cmd.Flags()
	f.StringVar(&in.Target, "target", "", "git URL, or a local path when allowed (required)")
	f.StringVar(&in.Branch, "branch", "", "branch or tag (default: the remote's default branch)")
	f.StringVar(&contextArg, "context", "", "a previous analysis as JSON, or @file")
	f.StringVar(&id, "id", "", "workflow id (default: generated)")
	f.BoolVarP(&follow, "follow", "f", false, "follow progress and print the findings")
	f.StringVar(&format, "format", "", "with --follow: markdown (default), json or sarif")
	_ = cmd.MarkFlagRequired("target")
	return cmd
}

// jsonArg reads a JSON flag given inline or as @file; "" gives nil.
func jsonArg(name, arg string) (json.RawMessage, error) {
	if arg == "" {
		return nil, nil
	}
	raw := []byte(arg)
	if strings.HasPrefix(arg, "@") {
		b, err := os.ReadFile(arg[1:])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		raw = b
	}
	if !json.Valid(raw) {
		return nil, fmt.Errorf("%s: not valid JSON", name)
	}
	return raw, nil
}

// comparable keeps of a previous report what a comparison needs (commit and
// findings' fingerprints), so the context stays small in the journal.
func comparable(raw json.RawMessage) (json.RawMessage, error) {
	if raw == nil {
		return nil, nil
	}
	var prev analysis.Report
	if err := json.Unmarshal(raw, &prev); err != nil {
		return nil, fmt.Errorf("context: must be a previous analysis report: %w", err)
	}
	return json.Marshal(prev.Baseline())
}

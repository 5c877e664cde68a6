package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ultramcp/durable/client"
	"github.com/ultramcp/durable/workflow"
	"github.com/ultramcp/durable/workflow/debate"
)

func newID(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

func (a *app) workflowCommands() []*cobra.Command {
	run := &cobra.Command{
		Use:   "run <workflow>",
		Short: "Start a workflow",
	}
	run.AddCommand(a.runDebateCommand())

	var statusJSON bool
	status := &cobra.Command{
		Use:   "status <id>",
		Short: "Show a workflow's status and progress",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := a.client()
			inv, err := c.Find(cmd.Context(), "", args[0])
			if err != nil {
				return err
			}
			progress, _ := c.Progress(cmd.Context(), inv.Service, args[0])
			if statusJSON {
				return json.NewEncoder(a.stdout).Encode(map[string]any{"invocation": inv, "progress": progress})
			}
			fmt.Fprintf(a.stdout, "workflow:   %s/%s\ninvocation: %s\nstatus:     %s\ncreated:    %s\n", inv.Service, inv.WorkflowID, inv.ID, inv.Outcome(), inv.CreatedAt)
			if inv.CompletedAt != "" {
				fmt.Fprintf(a.stdout, "completed:  %s\n", inv.CompletedAt)
			}
			if inv.Failure != "" {
				fmt.Fprintf(a.stdout, "error:      %s\n", inv.Failure)
			} else if inv.LastFailure != "" {
				fmt.Fprintf(a.stdout, "retrying:   %s (retry %d)\n", inv.LastFailure, inv.RetryCount)
			}
			printProgress(a.stdout, progress)
			return nil
		},
	}
	status.Flags().BoolVar(&statusJSON, "json", false, "print JSON")

	var resultJSON bool
	result := &cobra.Command{
		Use:   "result <id>",
		Short: "Print a finished workflow's result",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := a.client()
			inv, err := c.Find(cmd.Context(), "", args[0])
			if err != nil {
				return err
			}
			out, err := c.Output(cmd.Context(), inv.Service, args[0])
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			return a.printResult(inv.Service, out, resultJSON)
		},
	}
	result.Flags().BoolVar(&resultJSON, "json", false, "print the raw JSON result")

	var listService, listStatus string
	var listLimit int
	list := &cobra.Command{
		Use:   "list",
		Short: "List workflows, newest first",
		RunE: func(cmd *cobra.Command, _ []string) error {
			invs, err := a.client().Invocations(cmd.Context(), listService, listLimit)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tWORKFLOW\tSTATUS\tCREATED\tERROR")
			for _, inv := range invs {
				if listStatus != "" && inv.Outcome() != listStatus {
					continue
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", inv.WorkflowID, inv.Service, inv.Outcome(), inv.CreatedAt, firstLine(inv.Failure))
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&listService, "workflow", "", "only this workflow type, e.g. chain-of-debate")
	list.Flags().StringVar(&listStatus, "status", "", "only this status: running, succeeded, failed, cancelled, …")
	list.Flags().IntVar(&listLimit, "limit", 50, "at most this many")

	cancel := &cobra.Command{
		Use:   "cancel <id>",
		Short: "Cancel a running workflow",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := a.client()
			inv, err := c.Find(cmd.Context(), "", args[0])
			if err != nil {
				return err
			}
			if inv.Status == "completed" {
				return fmt.Errorf("%s already finished (%s)", args[0], inv.Outcome())
			}
			if err := c.Cancel(cmd.Context(), inv.ID); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "cancellation requested for %s (%s)\n", args[0], inv.ID)
			return nil
		},
	}

	watch := &cobra.Command{
		Use:   "watch <id>",
		Short: "Follow a workflow's progress live, round by round, then print its result",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			inv, err := a.client().Find(cmd.Context(), "", args[0])
			if err != nil {
				return err
			}
			return a.follow(cmd.Context(), inv.Service, args[0], false)
		},
	}
	return []*cobra.Command{run, status, result, list, cancel, watch}
}

func (a *app) runDebateCommand() *cobra.Command {
	var (
		topic, participants, mode, moderator, model, contextArg, id string
		rounds                                                      int
		delay                                                       time.Duration
		follow, asJSON                                              bool
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
			if contextArg != "" {
				raw := []byte(contextArg)
				if strings.HasPrefix(contextArg, "@") {
					b, err := os.ReadFile(contextArg[1:])
					if err != nil {
						return fmt.Errorf("context: %w", err)
					}
					raw = b
				}
				if !json.Valid(raw) {
					return fmt.Errorf("context: not valid JSON")
				}
				in["context"] = json.RawMessage(raw)
			}
			body, _ := json.Marshal(in)
			// Validate here too, so a bad request is refused before anything starts.
			if _, err := debate.Decode(body); err != nil {
				return err
			}
			if id == "" {
				id = newID("debate")
			}
			return a.start(cmd.Context(), workflow.ChainOfDebate, id, body, follow, asJSON)
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
	f.StringVar(&id, "id", "", "workflow id (default: generated); the same id never runs twice")
	f.BoolVarP(&follow, "follow", "f", false, "follow progress and print the result")
	f.BoolVar(&asJSON, "json", false, "with --follow, print the raw JSON result")
	_ = cmd.MarkFlagRequired("topic")
	return cmd
}

func (a *app) start(ctx context.Context, svc, id string, body []byte, follow, asJSON bool) error {
	c := a.client()
	started, err := c.Start(ctx, svc, id, body)
	if err != nil {
		return fmt.Errorf("start %s: %w (is the stack up? run `ultramcp up`)", svc, err)
	}
	if started.Status == "PreviouslyAccepted" {
		fmt.Fprintf(a.stderr, "%s %s already exists; following it\n", svc, id)
	}
	fmt.Fprintf(a.stdout, "started %s %s (invocation %s)\n", svc, id, started.InvocationID)
	if !follow {
		fmt.Fprintf(a.stdout, "follow it with: ultramcp watch %s\n", id)
		return nil
	}
	return a.follow(ctx, svc, id, asJSON)
}

// follow prints progress as it changes, then the result.
func (a *app) follow(ctx context.Context, svc, id string, asJSON bool) error {
	c := a.client()
	printed := 0
	out, err := c.WaitProgress(ctx, svc, id, 250*time.Millisecond, func(p json.RawMessage) {
		if asJSON {
			return
		}
		printed = printRounds(a.stdout, p, printed)
	})
	if err != nil {
		var rerr *client.Error
		if errors.As(err, &rerr) {
			return fmt.Errorf("%s %s failed: %s", svc, id, rerr.Message)
		}
		return err
	}
	return a.printResult(svc, out, asJSON)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 100 {
		s = s[:100] + "…"
	}
	return s
}

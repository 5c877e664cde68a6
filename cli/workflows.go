package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ultramcp/durable/analysis"
	"github.com/ultramcp/durable/analysis/repo"
	"github.com/ultramcp/durable/client"
	"github.com/ultramcp/durable/config"
	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/service"
	"github.com/ultramcp/durable/store"
	"github.com/ultramcp/durable/workflow"
	"github.com/ultramcp/durable/workflow/codeanalysis"
	"github.com/ultramcp/durable/workflow/debate"
	"github.com/ultramcp/durable/workflow/fullanalysis"
	"github.com/ultramcp/durable/workflow/registry"
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
	run.AddCommand(a.runDebateCommand(), a.runAnalysisCommand(), a.runScanCommand(), a.runFullAnalysisCommand())

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
			svc, out, err := a.result(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if resultJSON {
				resultFormat = formatJSON
			}
			if full, ok := a.savedReport(cmd.Context(), svc, args[0], resultFormat); ok {
				_, err := a.stdout.Write(full)
				return err
			}
			return a.printResult(svc, out, resultFormat)
		},
	}
	result.Flags().BoolVar(&resultJSON, "json", false, "same as --format json")
	result.Flags().StringVar(&resultFormat, "format", "", "text, json, markdown or sarif")

	var filter store.Filter
	list := &cobra.Command{
		Use:   "list",
		Short: "List workflows from the metadata store, newest first",
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := a.store(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			ws, err := st.List(cmd.Context(), filter)
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
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", w.ID, w.Workflow, w.Status, w.CreatedAt.Local().Format(time.DateTime), dur, firstLine(w.Error))
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
			st, err := a.store(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			cutoff := time.Now().Add(-age)
			p, err := st.Purge(cmd.Context(), cutoff)
			if err != nil {
				return err
			}
			checkouts, err := service.Checkouts(a.cfg).Prune(cutoff)
			if err != nil {
				return fmt.Errorf("prune checkouts: %w", err)
			}
			fmt.Fprintf(a.stdout, "purged %d workflow(s), %d agent execution(s), %d artifact(s) and %d repository checkout(s) older than %s\n", p.Workflows, p.Executions, p.Artifacts, checkouts, age)
			return nil
		},
	}
	purge.Flags().StringVar(&olderThan, "older-than", "", "age such as 30d or 12h (default: ULTRAMCP_RETENTION)")

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
			return a.follow(cmd.Context(), inv.Service, args[0], "")
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
			if strings.TrimSpace(decision) == "" {
				return fmt.Errorf("decision: required")
			}
			return a.sendDecision(cmd.Context(), args[0], map[string]string{"decision": decision, "by": by})
		},
	}
	decide.Flags().StringVar(&decision, "decision", "", "the decision (required)")
	decide.Flags().StringVar(&by, "by", os.Getenv("USER"), "who decides")
	return []*cobra.Command{run, status, result, list, cancel, watch, purge, decide, a.approvalCommand(true), a.approvalCommand(false)}
}

func (a *app) runDebateCommand() *cobra.Command {
	var (
		topic, participants, mode, moderator, model, contextArg, id string
		rounds                                                      int
		delay, escalateTimeout                                      time.Duration
		follow, asJSON, escalate                                    bool
		threshold                                                   float64
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
				format = formatJSON
			}
			return startValidated(a, cmd.Context(), workflow.ChainOfDebate, id, in, func(b []byte) (map[string]any, error) {
				_, err := debate.Decode(b)
				return in, err
			}, follow, format)
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
	_ = cmd.MarkFlagRequired("topic")
	return cmd
}

func (a *app) start(ctx context.Context, svc, id string, body []byte, follow bool, format string) error {
	c := a.client()
	// Record the request as pending first, so the store knows of it even if
	// the send fails; a failed send is recorded as failed.
	st, err := a.store(ctx)
	if err != nil {
		fmt.Fprintf(a.stderr, "warning: metadata store unavailable, not recording %s: %v\n", id, err)
	} else {
		defer st.Close()
		if err := st.Submitted(ctx, id, svc, body, time.Now()); err != nil {
			fmt.Fprintf(a.stderr, "warning: could not record %s as pending: %v\n", id, err)
		}
	}
	started, err := c.Start(ctx, svc, id, body)
	if err != nil {
		// The send may have reached Restate before it failed (a timeout on
		// the answer): ask Restate rather than guess.
		if inv, ferr := c.Find(ctx, svc, id); ferr == nil && inv.ID != "" {
			started, err = client.Started{InvocationID: inv.ID, Status: "PreviouslyAccepted"}, nil
		}
	}
	if err != nil {
		if st != nil {
			// Only the pending row this start made changes: a workflow that
			// already ran keeps its state and its result.
			_ = st.NotStarted(ctx, id, "could not start: "+err.Error(), time.Now())
		}
		return fmt.Errorf("start %s: %w (is the stack up? run `ultramcp up`)", svc, err)
	}
	if started.Status == "PreviouslyAccepted" {
		fmt.Fprintf(a.stderr, "%s %s already exists; following it\n", svc, id)
	}
	// Notices go to stderr: stdout carries only what was asked for (the
	// result), so `--format sarif > scan.sarif` is a SARIF file.
	fmt.Fprintf(a.stderr, "started %s %s (invocation %s)\n", svc, id, started.InvocationID)
	if !follow {
		fmt.Fprintf(a.stderr, "follow it with: ultramcp watch %s\n", id)
		return nil
	}
	return a.follow(ctx, svc, id, format)
}

// childFollow is what follow has shown of one child.
type childFollow struct {
	id, service, last, mark string
}

// followChildren prints what changed in each child's progress, rendered
// by the child's own definition, each line prefixed with its role.
func (a *app) followChildren(ctx context.Context, children map[string]*childFollow, w io.Writer) {
	roles := make([]string, 0, len(children))
	for role := range children {
		roles = append(roles, role)
	}
	sort.Strings(roles)
	c := a.client()
	for _, role := range roles {
		ch := children[role]
		if ch.service == "" {
			inv, err := c.Find(ctx, "", ch.id)
			if err != nil {
				continue // not started yet
			}
			ch.service = inv.Service
		}
		p, err := c.Progress(ctx, ch.service, ch.id)
		if err != nil || string(p) == ch.last || string(p) == "null" {
			continue
		}
		ch.last = string(p)
		if def, ok := registry.Lookup(ch.service); ok && def.Progress != nil {
			ch.mark = def.Progress(&prefixed{w: w, prefix: "  [" + role + "] "}, p, ch.mark)
		}
	}
}

// prefixed writes every line with a prefix.
type prefixed struct {
	w      io.Writer
	prefix string
	mid    bool // inside a line
}

func (p *prefixed) Write(b []byte) (int, error) {
	var out []byte
	for _, c := range b {
		if !p.mid && c != '\n' {
			out = append(out, p.prefix...)
			p.mid = true
		}
		out = append(out, c)
		if c == '\n' {
			p.mid = false
		}
	}
	if _, err := p.w.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}

// follow prints progress as it changes, with the children's as they
// happen, then the result; the workflow's definition says how.
func (a *app) follow(ctx context.Context, svc, id string, format string) error {
	c := a.client()
	def, _ := registry.Lookup(svc)
	progressTo := a.stdout
	if def.ProgressIsNotice {
		progressTo = a.stderr
	}
	mark := ""
	quiet := format == formatJSON || format == formatSARIF
	children := map[string]*childFollow{} // the tree: each child's own progress, as it happens
	out, err := c.WaitProgress(ctx, svc, id, 250*time.Millisecond, func(p json.RawMessage) {
		if def.Progress != nil && !quiet {
			mark = def.Progress(progressTo, p, mark)
		}
		var tree struct {
			Children map[string]string `json:"children"`
		}
		if json.Unmarshal(p, &tree) == nil {
			for role, child := range tree.Children {
				if _, ok := children[role]; !ok {
					children[role] = &childFollow{id: child}
				}
			}
		}
	}, func() {
		if !quiet {
			a.followChildren(ctx, children, progressTo)
		}
	})
	if err != nil {
		var rerr *client.Error
		if errors.As(err, &rerr) {
			return fmt.Errorf("%s %s failed: %s", svc, id, rerr.Message)
		}
		return err
	}
	if err := a.printResult(svc, out, format); err != nil {
		return err
	}
	// A result missing a part that matters (a security scanner failed)
	// says so in the exit code too, not only in the report.
	if def.Incomplete != nil {
		if why := def.Incomplete(out); why != "" {
			return fmt.Errorf("%s %s is incomplete: %s", svc, id, why)
		}
	}
	return nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 100 {
		s = s[:100] + "…"
	}
	return s
}

// store opens the metadata store without the service's patience: the CLI
// should answer at once. (The root command prepared the state dir.)
func (a *app) store(ctx context.Context) (*store.Store, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return store.Open(ctx, a.cfg.DatabaseURL, a.cfg.SQLitePath())
}

// status prints what the store knows of a workflow and, while it runs, its
// live progress from Restate.
func (a *app) status(ctx context.Context, id string, asJSON bool) error {
	c := a.client()
	st, err := a.store(ctx)
	if err != nil {
		return a.statusWithoutStore(ctx, id, err, asJSON)
	}
	defer st.Close()
	w, err := st.Get(ctx, id)
	if fault.KindOf(err) == fault.Unavailable {
		return a.statusWithoutStore(ctx, id, err, asJSON)
	}
	if err != nil {
		return err
	}
	execs, err := st.Executions(ctx, id)
	if err != nil {
		return a.statusWithoutStore(ctx, id, err, asJSON)
	}
	var progress json.RawMessage
	var inv client.Invocation
	if workflow.Open(w.Status) {
		progress, _ = c.Progress(ctx, w.Workflow, id)
		inv, _ = c.Find(ctx, w.Workflow, id)
	}
	if asJSON {
		w.Output = "" // use `result` for that
		return json.NewEncoder(a.stdout).Encode(map[string]any{"workflow": w, "executions": execs, "progress": progress, "invocation": inv})
	}
	fmt.Fprintf(a.stdout, "workflow:   %s/%s\nstatus:     %s\ncreated:    %s\n", w.Workflow, w.ID, w.Status, w.CreatedAt.Local().Format(time.DateTime))
	if w.CompletedAt != nil && w.DurationMS != nil {
		fmt.Fprintf(a.stdout, "finished:   %s (%s)\n", w.CompletedAt.Local().Format(time.DateTime), time.Duration(*w.DurationMS)*time.Millisecond)
	}
	if w.Error != "" {
		fmt.Fprintf(a.stdout, "error:      %s\n", w.Error)
	}
	if inv.LastFailure != "" && inv.Status != "completed" {
		fmt.Fprintf(a.stdout, "retrying:   %s (retry %d)\n", firstLine(inv.LastFailure), inv.RetryCount)
	}
	var tokensIn, tokensOut int
	var cost float64
	for _, e := range execs {
		tokensIn, tokensOut, cost = tokensIn+e.TokensIn, tokensOut+e.TokensOut, cost+e.CostUSD
	}
	fmt.Fprintf(a.stdout, "agent calls: %d, %d tokens in, %d out, est. $%.4f\n", len(execs), tokensIn, tokensOut, cost)
	if children, err := st.Children(ctx, id); err == nil && len(children) > 0 {
		fmt.Fprintln(a.stdout, "children:")
		for _, ch := range children {
			status := ch.Status
			if status == "" {
				status = "not started yet"
			}
			fmt.Fprintf(a.stdout, "  %-9s %s/%s  %s\n", ch.Role, ch.Workflow, ch.ID, status)
		}
	}
	printProgress(a.stdout, progress)
	return nil
}

// statusWithoutStore says the store is unreachable, then what Restate
// knows: a database outage delays workflows, it does not hide them.
func (a *app) statusWithoutStore(ctx context.Context, id string, storeErr error, asJSON bool) error {
	c := a.client()
	inv, err := c.Find(ctx, "", id)
	if err != nil {
		return fmt.Errorf("store unreachable (%v), and Restate: %w", storeErr, err)
	}
	progress, _ := c.Progress(ctx, inv.Service, id)
	if asJSON {
		return json.NewEncoder(a.stdout).Encode(map[string]any{"store": "unreachable: " + storeErr.Error(), "progress": progress, "invocation": inv})
	}
	fmt.Fprintf(a.stdout, "store:      unreachable (%s); workflows wait for it and go on\n", firstLine(storeErr.Error()))
	fmt.Fprintf(a.stdout, "workflow:   %s/%s\nstatus:     %s (from Restate)\n", inv.Service, id, inv.Outcome())
	if inv.LastFailure != "" && inv.Status != "completed" {
		fmt.Fprintf(a.stdout, "retrying:   %s (retry %d)\n", firstLine(inv.LastFailure), inv.RetryCount)
	}
	printProgress(a.stdout, progress)
	return nil
}

// result reads a finished workflow's output: from the store, which keeps it
// past Restate's retention, else from Restate.
func (a *app) result(ctx context.Context, id string) (string, json.RawMessage, error) {
	if st, err := a.store(ctx); err == nil {
		defer st.Close()
		if w, err := st.Get(ctx, id); err == nil {
			switch {
			case w.Output != "":
				return w.Workflow, json.RawMessage(w.Output), nil
			case w.Status == workflow.StatusFailed || w.Status == workflow.StatusCancelled:
				return "", nil, fmt.Errorf("%s %s: %s", id, w.Status, w.Error)
			}
		}
	}
	c := a.client()
	inv, err := c.Find(ctx, "", id)
	if err != nil {
		return "", nil, err
	}
	out, err := c.Output(ctx, inv.Service, id)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", id, err)
	}
	return inv.Service, out, nil
}

func (a *app) runAnalysisCommand() *cobra.Command {
	var in codeanalysis.Input
	var id, format string
	var follow bool
	cmd := &cobra.Command{
		Use:   workflow.CodeAnalysis,
		Short: "Analyse a git repository: secrets, vulnerable code, quality, structure",
		Long: `Start a code-analysis of a git repository: it is resolved to a commit, checked
out shallowly into a cache, and analysed step by step — secrets (gitleaks, tree
and history), gosec on Go modules, lines of code and complexity (scc,
gocyclo, gocognit), structure (with an LLM summary). Nothing from the
repository is executed. Local paths need ULTRAMCP_ALLOW_LOCAL_REPOS=true on
the service.`,
		Example: `  ultramcp run code-analysis --repository https://github.com/org/repo.git --analysis-type all --follow`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return startValidated(a, cmd.Context(), workflow.CodeAnalysis, id, in, codeanalysis.DecodeAnalysis(a.policy()), follow, format)
		},
	}
	f := cmd.Flags()
	f.StringVar(&in.Repository, "repository", "", "git URL (https, ssh, git), or a local path when allowed (required)")
	f.StringVar(&in.Branch, "branch", "", "branch or tag (default: the remote's default branch)")
	f.StringVar(&in.AnalysisType, "analysis-type", codeanalysis.TypeAll, "security, quality, patterns or all")
	f.StringVar(&id, "id", "", "workflow id (default: generated)")
	f.BoolVarP(&follow, "follow", "f", false, "follow progress and print the report")
	f.StringVar(&format, "format", "", "with --follow: markdown (default), json or sarif")
	_ = cmd.MarkFlagRequired("repository")
	return cmd
}

// sendDecision resolves the decision the workflow id waits for (an
// escalated debate's, a full-analysis's approval) with value.
func (a *app) sendDecision(ctx context.Context, id string, value any) error {
	c := a.client()
	inv, err := c.Find(ctx, "", id)
	if err != nil {
		return err
	}
	body, err := json.Marshal(value)
	if err != nil {
		return err
	}
	if err := c.Decide(ctx, inv.Service, id, body); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "decision sent to %s\n", id)
	return nil
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
			return a.sendDecision(cmd.Context(), args[0], map[string]any{"approved": approve, "reason": reason, "by": by})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded with the decision)")
	cmd.Flags().StringVar(&by, "by", "", "who decides")
	return cmd
}

func (a *app) runFullAnalysisCommand() *cobra.Command {
	var in fullanalysis.Input
	var id string
	var follow, noDebate, noRecommendations bool
	cmd := &cobra.Command{
		Use:   workflow.FullAnalysis,
		Short: "Analyse, scan, debate the findings and recommend: the meta-workflow",
		Long: `Start a full-analysis: a code-analysis of the repository, a security-scan
with the analysis as context, a debate of security-expert, code-architect and
devops-engineer on the findings, and prioritised recommendations that name
the findings they address. Each part is a workflow of its own (a child,
under an id derived from this one's); a crash resumes the run without
starting a finished child over.`,
		Example: `  ultramcp run full-analysis --repository https://github.com/org/repo.git --follow`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if noDebate {
				in.IncludeDebate = new(bool)
			}
			if noRecommendations {
				in.GenerateRecommendations = new(bool)
			}
			return startValidated(a, cmd.Context(), workflow.FullAnalysis, id, in, func(b []byte) (fullanalysis.Input, error) {
				parsed, err := fullanalysis.Decode(b)
				if err != nil {
					return parsed, err
				}
				// The children apply the repository policy; check it here
				// too, so that a bad target is refused before anything starts.
				r, err := a.policy().Validate(parsed.Repository)
				parsed.Repository = r
				return parsed, err
			}, follow, "")
		},
	}
	f := cmd.Flags()
	f.StringVar(&in.Repository, "repository", "", "git URL (https, ssh, git), or a local path when allowed (required)")
	f.StringVar(&in.Branch, "branch", "", "branch or tag (default: the remote's default branch)")
	f.BoolVar(&noDebate, "no-debate", false, "skip the experts' debate")
	f.BoolVar(&noRecommendations, "no-recommendations", false, "skip the recommendations")
	f.BoolVar(&in.RequireApproval, "require-approval", false, "wait for ultramcp approve|reject before the recommendations")
	var timeout time.Duration
	f.DurationVar(&timeout, "approval-timeout", fullanalysis.DefaultApprovalTimeout, "how long to wait for the approval")
	cmd.PreRun = func(cmd *cobra.Command, _ []string) {
		if cmd.Flags().Changed("approval-timeout") {
			d := debate.Duration(timeout)
			in.ApprovalTimeout = &d
		}
	}
	f.StringVar(&id, "id", "", "workflow id (default: generated)")
	f.BoolVarP(&follow, "follow", "f", false, "follow progress and print the report")
	_ = cmd.MarkFlagRequired("repository")
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
			return startValidated(a, cmd.Context(), workflow.SecurityScan, id, in, codeanalysis.DecodeScan(a.policy()), follow, format)
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

// policy is the repository policy the service applies, so the CLI refuses
// what the service would.
func (a *app) policy() repo.Policy {
	return service.Checkouts(a.cfg).Policy
}

// startValidated validates input with the workflow's own decoder, so that a
// bad request is refused before anything starts, and starts the normalized
// input (a local path made absolute here, not in the service's directory).
func startValidated[I any](a *app, ctx context.Context, svc, id string, input I, decode func([]byte) (I, error), follow bool, format string) error {
	body, err := json.Marshal(input)
	if err != nil {
		return err
	}
	norm, err := decode(body)
	if err != nil {
		return err
	}
	if body, err = json.Marshal(norm); err != nil {
		return err
	}
	if id == "" {
		def, _ := registry.Lookup(svc)
		id = newID(def.Prefix)
	}
	return a.start(ctx, svc, id, body, follow, format)
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

// savedReport returns a workflow's full report as saved in the store, for
// workflows whose result is cut short (an analysis carries at most
// codeanalysis.MaxFindingsInResult findings).
func (a *app) savedReport(ctx context.Context, svc, id, format string) ([]byte, bool) {
	def, _ := registry.Lookup(svc)
	name := def.Reports[format]
	if name == "" {
		return nil, false
	}
	st, err := a.store(ctx)
	if err != nil {
		return nil, false
	}
	defer st.Close()
	b, err := st.NamedArtifact(ctx, id, name)
	return b, err == nil
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
	slim := analysis.Report{Commit: prev.Commit, Findings: make([]analysis.Finding, len(prev.Findings))}
	for i, f := range prev.Findings {
		slim.Findings[i] = analysis.Finding{Tool: f.Tool, Fingerprint: f.Fingerprint}
	}
	return json.Marshal(slim)
}

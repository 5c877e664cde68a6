package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/spf13/cobra"

	"github.com/ultramcp/durable/client"
	"github.com/ultramcp/durable/config"
	"github.com/ultramcp/durable/runs"
	"github.com/ultramcp/durable/sanitize"
	"github.com/ultramcp/durable/service"
	"github.com/ultramcp/durable/telemetry"
	"github.com/ultramcp/durable/workflow"
	"github.com/ultramcp/durable/workflow/registry"
)

// runs is the application service every workflow command goes through,
// built on first use: after the flags have set the configuration.
func (a *app) runs() *runs.Service {
	if a.svc == nil {
		a.svc = newRuns(a.cfg, runs.PerCall{Config: a.cfg})
	}
	return a.svc
}

// newRuns is the application service of the stack cfg describes, over
// stores: the one place its ports are plugged in.
func newRuns(cfg config.Config, stores runs.Stores) *runs.Service {
	deps := service.SubmitDeps(cfg)
	o := runs.Options{Engine: client.ForStack(cfg), Stores: stores, Checkouts: deps.Checkouts, Deps: deps, Limits: cfg.LimitTable(), MaxCostUSD: cfg.MaxCostUSD}
	if cfg.WithJaeger || cfg.TracesEndpoint != "" {
		o.Traces = telemetry.Jaeger{URL: config.URL(cfg.JaegerAddr)}
	}
	return runs.New(o)
}

// runCommand is `run <workflow>` built from the workflow's definition: a
// flag per field of its request schema, named as the field in kebab case,
// and --input for the whole request.
func (a *app) runCommand(def workflow.Definition) *cobra.Command {
	schema, err := def.InputSchema()
	if err != nil {
		panic(fmt.Sprintf("%s: request schema: %v", def.Name, err)) // a definition's bug, caught by the registry's test
	}
	var (
		id, input, format string
		follow            bool
	)
	fields := map[string]string{} // flag → field
	values := map[string]*string{}
	bools := map[string]*bool{}
	cmd := &cobra.Command{
		Use:   def.Name,
		Short: def.Summary,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in := map[string]any{}
			if input != "" {
				raw, err := jsonArg("input", input)
				if err != nil {
					return err
				}
				if err := json.Unmarshal(raw, &in); err != nil {
					return fmt.Errorf("input: must be a JSON object")
				}
			}
			if err := fromFlags(cmd, schema, fields, values, bools, in); err != nil {
				return err
			}
			if _, ok := schema.Properties["budget"]; ok {
				withMaxCost(cmd, in)
			}
			return a.submit(cmd.Context(), def.Name, in, id, follow, format)
		},
	}
	f := cmd.Flags()
	if _, ok := schema.Properties["budget"]; ok {
		addMaxCost(cmd)
	}
	for _, field := range slices.Sorted(maps.Keys(schema.Properties)) {
		p := schema.Properties[field]
		flag := kebab(field)
		usage := p.Description
		if slices.Contains(schema.Required, field) {
			usage += " (required)"
		}
		fields[flag] = field
		if hasType(p, "boolean") {
			bools[flag] = f.Bool(flag, false, usage)
			continue
		}
		if !hasType(p, "string") {
			usage += " — JSON, or @file"
		}
		values[flag] = f.String(flag, "", usage)
	}
	f.StringVar(&input, "input", "", "the whole request as JSON, or @file")
	f.StringVar(&id, "id", "", "workflow id (default: generated); the same id never runs twice")
	f.BoolVarP(&follow, "follow", "f", false, "follow progress and print the result")
	f.StringVar(&format, "format", "", "with --follow: the result's format (json, or what the workflow renders: markdown, sarif)")
	return cmd
}

// fromFlags puts the request's fields given as flags into in: fields maps
// a flag to its field, values and bools hold what was given.
func fromFlags(cmd *cobra.Command, schema *jsonschema.Schema, fields map[string]string, values map[string]*string, bools map[string]*bool, in map[string]any) error {
	for flag, field := range fields {
		if !cmd.Flags().Changed(flag) {
			continue
		}
		if b, ok := bools[flag]; ok {
			in[field] = *b
			continue
		}
		v := *values[flag]
		switch p := schema.Properties[field]; {
		case hasType(p, "string") && !strings.HasPrefix(v, "@"):
			in[field] = v
		default:
			raw, err := jsonArg(flag, v)
			if err != nil && hasType(p, "string") {
				raw, err = json.Marshal(v) // a plain string where JSON is also allowed
			}
			if err != nil {
				return err
			}
			in[field] = json.RawMessage(raw)
		}
	}
	return nil
}

// hasType reports whether the schema allows JSON type t.
func hasType(s *jsonschema.Schema, t string) bool {
	return s != nil && (s.Type == t || slices.Contains(s.Types, t))
}

// kebab turns "analysisType" into "analysis-type".
func kebab(field string) string {
	var b strings.Builder
	for _, c := range field {
		if c >= 'A' && c <= 'Z' {
			b.WriteByte('-')
			c += 'a' - 'A'
		}
		b.WriteRune(c)
	}
	return b.String()
}

// submit starts workflow name with input through the application service,
// which refuses a bad request before anything starts; with follow, it
// follows the workflow to its result.
func (a *app) submit(ctx context.Context, name string, input any, id string, follow bool, format string) error {
	body, err := json.Marshal(input)
	if err != nil {
		return err
	}
	sub, err := a.runs().Submit(ctx, name, body, id)
	for _, w := range sub.Warnings {
		fmt.Fprintln(a.stderr, "warning:", w)
	}
	if err != nil {
		return err
	}
	if sub.Existing {
		fmt.Fprintf(a.stderr, "%s %s already exists; following it\n", sub.Workflow, sub.ID)
	}
	// Notices go to stderr: stdout carries only what was asked for (the
	// result), so `--format sarif > scan.sarif` is a SARIF file.
	fmt.Fprintf(a.stderr, "started %s %s (invocation %s)\n", sub.Workflow, sub.ID, sub.InvocationID)
	if !follow {
		fmt.Fprintf(a.stderr, "follow it with: ultramcp watch %s\n", sub.ID)
		return nil
	}
	return a.follow(ctx, sub.ID, format)
}

// follow prints progress as it changes, with the children's as they
// happen (each line prefixed with the child's role), then the result; each
// workflow's definition says how.
func (a *app) follow(ctx context.Context, id string, format string) error {
	quiet := format == runs.FormatJSON || format == runs.FormatSARIF
	if !quiet {
		stop := a.printTokens(ctx, id)
		defer stop()
	}
	marks := map[string]string{} // per workflow id: what its printer has shown
	var progressTo io.Writer = a.stdout
	res, err := a.runs().Watch(ctx, id, runs.DefaultWatchInterval, func(e runs.Event) {
		if e.Role == "" {
			// The workflow's own events come first: they say where its
			// progress goes, and its children's with it.
			if root, ok := registry.Lookup(e.Workflow); ok && root.ProgressIsNotice {
				progressTo = a.stderr
			}
		}
		if e.Type == runs.EventWaiting && !quiet {
			// A notice: it goes to stderr whatever the progress does.
			if e.Waiting != "" {
				fmt.Fprintf(a.stderr, "… %s\n", e.Waiting)
			} else {
				fmt.Fprintln(a.stderr, "… going on: the provider's limit has room")
			}
			return
		}
		if quiet || (e.Type != runs.EventProgress && e.Type != runs.EventChild) || e.Progress == nil {
			return
		}
		def, ok := registry.Lookup(e.Workflow)
		if !ok || def.Progress == nil {
			return
		}
		w := progressTo
		if e.Role != "" {
			w = &prefixed{w: w, prefix: "  [" + e.Role + "] "}
		}
		marks[e.ID] = def.Progress(w, e.Progress, marks[e.ID])
	})
	if err != nil {
		return err
	}
	if err := a.printResult(ctx, res, format); err != nil {
		return err
	}
	// A result missing a part that matters (a security scanner failed)
	// says so in the exit code too, not only in the report.
	if def, ok := registry.Lookup(res.Workflow); ok && def.Incomplete != nil {
		if why := def.Incomplete(res.Output); why != "" {
			return fmt.Errorf("%s %s is incomplete: %s", res.Workflow, id, why)
		}
	}
	return nil
}

// printResult prints a result rendered in format.
func (a *app) printResult(ctx context.Context, res runs.Result, format string) error {
	rep, err := a.runs().Render(ctx, res, format)
	if err != nil {
		return err
	}
	_, err = a.stdout.Write(rep.Body)
	return err
}

// decided reports a decision sent (or why not).
func (a *app) decided(id string, err error) error {
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "decision sent to %s\n", id)
	return nil
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

// status prints what is known of a workflow and, while it runs, its live
// progress.
func (a *app) status(ctx context.Context, id string, asJSON bool) error {
	st, err := a.runs().Status(ctx, id)
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(a.stdout).Encode(st)
	}
	if st.StoreError != "" {
		fmt.Fprintf(a.stdout, "store:      unreachable (%s); workflows wait for it and go on\n", sanitize.FirstLine(st.StoreError, 100))
	}
	fmt.Fprintf(a.stdout, "workflow:   %s/%s\n", st.Workflow, st.ID)
	if w := st.Record; w != nil {
		fmt.Fprintf(a.stdout, "status:     %s\ncreated:    %s\n", w.Status, w.CreatedAt.Local().Format(time.DateTime))
		if w.CompletedAt != nil && w.DurationMS != nil {
			fmt.Fprintf(a.stdout, "finished:   %s (%s)\n", w.CompletedAt.Local().Format(time.DateTime), time.Duration(*w.DurationMS)*time.Millisecond)
		}
		if w.Error != "" {
			fmt.Fprintf(a.stdout, "error:      %s\n", w.Error)
		}
	} else {
		fmt.Fprintf(a.stdout, "status:     %s (from Restate)\n", st.Status)
	}
	if d := st.DerivedFrom; d != nil {
		fmt.Fprintf(a.stdout, "derived:    from %s, run again from its %s\n", d.Workflow, d.Step)
	}
	if st.Waiting != "" {
		fmt.Fprintf(a.stdout, "waiting:    %s\n", st.Waiting)
	}
	if inv := st.Invocation; inv != nil && inv.Status == "paused" {
		fmt.Fprintf(a.stdout, "paused:     go on with: ultramcp resume %s\n", st.ID)
	}
	if inv := st.Invocation; inv != nil && inv.LastFailure != "" && inv.Status != "completed" {
		fmt.Fprintf(a.stdout, "retrying:   %s (retry %d)\n", sanitize.FirstLine(inv.LastFailure, 100), inv.RetryCount)
	}
	if st.Record != nil {
		fmt.Fprintf(a.stdout, "agent calls: %d, %d tokens in, %d out, est. $%.4f\n", st.Cost.Calls, st.Cost.TokensIn, st.Cost.TokensOut, st.Cost.USD)
	}
	if len(st.Children) > 0 {
		fmt.Fprintln(a.stdout, "children:")
		for _, ch := range st.Children {
			status := cmp.Or(ch.Status, "not started yet")
			fmt.Fprintf(a.stdout, "  %-9s %s/%s  %s\n", ch.Role, ch.Workflow, ch.ID, status)
		}
	}
	printProgress(a.stdout, st.Progress)
	return nil
}

// addMaxCost gives cmd --max-cost, the sugar of budget.maxCostUSD.
func addMaxCost(cmd *cobra.Command) {
	cmd.Flags().Float64("max-cost", 0, "the most the run may spend, in USD at list prices (budget.maxCostUSD); it stops before a call that would pass it and ends partial")
}

// withMaxCost puts --max-cost, when given, into the request's budget.
func withMaxCost(cmd *cobra.Command, in map[string]any) {
	if !cmd.Flags().Changed("max-cost") {
		return
	}
	v, _ := cmd.Flags().GetFloat64("max-cost")
	budget := map[string]any{}
	switch b := in["budget"].(type) {
	case map[string]any:
		budget = b
	case json.RawMessage:
		_ = json.Unmarshal(b, &budget)
	}
	budget["maxCostUSD"] = v
	in["budget"] = budget
}

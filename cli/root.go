// Package cli is the ultramcp command line: one file per group of
// subcommands, all sharing one Config built from defaults, the environment
// and flags. It is the only place, with cmd/, that wires the adapters
// together.
package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.opentelemetry.io/otel/trace"

	"github.com/ultramcp/durable/client"
	"github.com/ultramcp/durable/config"
	"github.com/ultramcp/durable/runs"
	"github.com/ultramcp/durable/sanitize"
	"github.com/ultramcp/durable/stack"
	"github.com/ultramcp/durable/telemetry"
	"github.com/ultramcp/durable/version"
)

// app holds what every command shares.
type app struct {
	cfg    config.Config
	stdout io.Writer
	stderr io.Writer
	svc    *runs.Service // see runs()
}

// Main runs the CLI with args and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Everything printed passes the sanitizer: results and messages carry
	// text from repositories, git servers and models.
	stdout, stderr = sanitize.NewWriter(stdout), sanitize.NewWriter(stderr)
	// The state dir holds keys, logs and the database: whatever this
	// process or its children create there is theirs alone.
	syscall.Umask(0o077)
	root := NewRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	endCommandSpan(err)
	if err != nil {
		fmt.Fprintln(stderr, "error:", err)
		return 1
	}
	return 0
}

// commandSpan is the span of the command running, when tracing is on, and
// flushTraces what sends its spans before the process exits.
var (
	commandSpan trace.Span
	flushTraces = func(context.Context) error { return nil }
)

// startTracing installs the tracer of this process when
// OTEL_EXPORTER_OTLP_ENDPOINT is set, and makes the command a span whose
// trace every request it sends carries (through the API or the Restate
// ingress into the workflow).
func (a *app) startTracing(cmd *cobra.Command) error {
	if a.cfg.TracesEndpoint == "" || cmd.Name() == "stop" {
		return nil // stop would flush its span to the collector it stops
	}
	service := "ultramcp-cli"
	if cmd.Name() == "serve" {
		service = "ultramcp"
	}
	shutdown, err := telemetry.Setup(cmd.Context(), telemetry.Options{Service: service, Version: version.Current(), Endpoint: a.cfg.TracesEndpoint, Content: a.cfg.TraceContent})
	if err != nil {
		return fmt.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT: %w", err)
	}
	flushTraces = shutdown
	if service == "ultramcp" {
		return nil // the service's spans are its requests' and workflows'
	}
	ctx, span := telemetry.Start(cmd.Context(), cmd.CommandPath())
	commandSpan = span
	cmd.SetContext(ctx)
	return nil
}

func endCommandSpan(err error) {
	if commandSpan != nil {
		telemetry.End(commandSpan, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = flushTraces(ctx)
}

// NewRoot builds the command tree.
func NewRoot(stdout, stderr io.Writer) *cobra.Command {
	a := &app{cfg: config.FromEnv(), stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "ultramcp",
		Short: "Durable multi-agent LLM workflows on Restate",
		Long: `ultramcp runs multi-agent LLM work (debates among models, code analysis,
security scans) as durable workflows on a local Restate server: crash any
process mid-run and the work resumes where it stopped.

Start the stack with "ultramcp up", run a debate with
"ultramcp run chain-of-debate --topic ... --follow", stop with "ultramcp stop".
Addresses and paths come from ULTRAMCP_* environment variables (see README).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			// The addresses of the stack this state dir holds, unless the
			// environment or a flag says otherwise.
			a.cfg.UseRecorded(func(variable string) bool {
				flag := config.FlagOf(variable)
				return flag != "" && cmd.Flags().Changed(flag)
			})
			if err := a.cfg.Validate(); err != nil {
				return err
			}
			if err := a.startTracing(cmd); err != nil {
				return err
			}
			return a.cfg.PrepareHome()
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	f := root.PersistentFlags()
	for _, flag := range a.cfg.Flags() {
		f.Var(flag.Value, flag.Name, flag.Usage)
	}

	root.AddCommand(a.stackCommands()...)
	root.AddCommand(a.workflowCommands()...)
	root.AddCommand(a.replayCommands()...)
	root.AddCommand(a.traceCommand(), a.limitsCommand())
	root.AddCommand(a.benchCommand())
	root.AddCommand(a.vulndbCommand())
	root.AddCommand(a.versionCommands()...)
	return root
}

func (a *app) stack() (*stack.Stack, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return stack.New(a.cfg, self, a.stdout), nil
}

func (a *app) client() *client.Client {
	return client.ForStack(a.cfg)
}

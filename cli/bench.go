package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ultramcp/durable/internal/bench"
	"github.com/ultramcp/durable/stack"
)

func (a *app) benchCommand() *cobra.Command {
	o := bench.DefaultOptions
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the product against the raw SDK and the direct engine, side by side",
		Long: `bench starts its own restate-server on free loopback ports (it does not
touch a running stack), serves the workflows in this process with a fake model
of known latency, and runs the same debate four ways in one run: the direct
engine, the product with its store (as shipped), the product without the
store, and the raw SDK (each call a RunAsync step, a round awaited with Wait)
as the reference. It prints orchestration time, wall/ideal time, throughput,
CPU (restate-server's part apart) and memory per debate in flight, the first
debates after start against warm ones, and the parallel-round ratio against a
fake OpenAI-compatible endpoint. docs/benchmarks.md records the figures.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bin, err := stack.RestateServerBin(a.cfg)
			if err != nil {
				return err
			}
			o.RestateServerBin = bin
			fmt.Fprintln(a.stderr, "starting a throwaway restate-server…")
			o.VulnDB = a.cfg.VulnDBURL()
			b, err := bench.Start(cmd.Context(), o)
			if err != nil {
				return err
			}
			defer b.Close()
			r, err := b.Run(cmd.Context(), a.stderr)
			if err != nil {
				return err
			}
			r.Print(a.stdout)
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Sequential, "sequential", o.Sequential, "debates per engine for the medians")
	f.IntVar(&o.Concurrent, "concurrent", o.Concurrent, "debates at once for throughput")
	f.IntVar(&o.Bursts, "bursts", o.Bursts, "concurrent bursts per column (the median counts)")
	f.IntVar(&o.RecoveryDebates, "recovery", o.RecoveryDebates, "debates in flight when the service is killed -9 (0 skips the figure)")
	f.DurationVar(&o.Latency, "latency", o.Latency, "fake model latency L")
	f.StringVar(&o.Repository, "repository", ".", "repository for the code-analysis figure (\"\" skips it)")
	f.IntVar(&o.Analyses, "analyses", 3, "full analyses per engine")
	f.BoolVar(&o.SkipDebate, "skip-debate", false, "only the code-analysis figure")
	f.StringVar(&o.ProfileDir, "profile", "", "directory for a CPU profile of each concurrent run")
	f.StringVar(&o.DatabaseURL, "database-url", "", "PostgreSQL for the product's store (default: SQLite in the run's state dir)")
	f.DurationVar(&o.CallLatency, "call-latency", o.CallLatency, "fake OpenAI endpoint latency for the parallel-round figure")
	return cmd
}

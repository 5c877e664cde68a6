package cli

import "github.com/spf13/cobra"

func (a *app) benchCommand() *cobra.Command {
	return &cobra.Command{Use: "bench", Short: "Benchmark durable vs direct engines (see docs/benchmarks.md)", RunE: func(*cobra.Command, []string) error { return nil }}
}

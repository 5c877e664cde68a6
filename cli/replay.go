package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ultramcp/durable/runs"
)

// replayCommands are pause, resume and replay: holding a running
// workflow, and running a finished one again from one of its steps.
func (a *app) replayCommands() []*cobra.Command {
	pause := &cobra.Command{
		Use:   "pause <id>",
		Short: "Hold a running workflow where it is, until resume",
		Long: `pause asks Restate to hold a running workflow at the end of its current
attempt: a step under way is run again on resume (what it had answered is
kept), completed steps are not. The workflow waits, paused, until
"ultramcp resume".`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			inv, err := a.runs().Pause(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "pause requested for %s (%s); go on with: ultramcp resume %s\n", args[0], inv, args[0])
			return nil
		},
	}
	resume := &cobra.Command{
		Use:   "resume <id>",
		Short: "Let a paused workflow go on from its journal",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			inv, err := a.runs().Resume(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "resumed %s (%s)\n", args[0], inv)
			return nil
		},
	}
	var r runs.Replay
	var follow bool
	replay := &cobra.Command{
		Use:   "replay <id> --from <step>",
		Short: "Run a finished workflow again from one of its steps, reusing the results before it",
		Long: `replay starts a new run of a finished or failed workflow that reuses the
recorded results of its steps before --from and runs the rest: a debate
replayed from round-2 pays only for round 2 onwards. --set changes the
request (field=value; the value is JSON when it parses, else a string).
The new run records the run it derives from (status shows it). The old
run must still be retained by Restate (ULTRAMCP_RETENTION).`,
		Example: `  ultramcp replay debate-1a2b --from round-2 --set moderator=openai:gpt-4o-mini
  ultramcp replay debate-1a2b --from round-3 --id debate-again --follow`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if r.From == "" {
				return fmt.Errorf("--from: name the first step to run again (ultramcp trace %s lists them)", args[0])
			}
			sub, err := a.runs().Replay(cmd.Context(), args[0], r)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "started %s %s from %s's %s (invocation %s)\n", sub.Workflow, sub.ID, args[0], r.From, sub.InvocationID)
			if !follow {
				fmt.Fprintln(a.stdout, sub.ID)
				return nil
			}
			return a.follow(cmd.Context(), sub.ID, "")
		},
	}
	replay.Flags().StringVar(&r.From, "from", "", "the first step to run again, e.g. round-2")
	replay.Flags().StringVar(&r.ID, "id", "", "id of the new run (default: generated)")
	replay.Flags().StringArrayVar(&r.Set, "set", nil, "field=value change to the request (repeatable)")
	replay.Flags().BoolVar(&follow, "follow", false, "follow the new run and print its result")
	return []*cobra.Command{pause, resume, replay}
}

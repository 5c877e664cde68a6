package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ultramcp/durable/retry"
	"github.com/ultramcp/durable/stack"
	"github.com/ultramcp/durable/store"
	"github.com/ultramcp/durable/version"
)

// versionCommands say which build runs, which versions Restate serves and
// drains, and move a workflow stuck on a version that cannot run on.
func (a *app) versionCommands() []*cobra.Command {
	ver := &cobra.Command{
		Use:   "version",
		Short: "Print this build's version, restate-server's and the store's schema version",
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(a.stdout, "ultramcp        %s\n", version.Current())
			if bin, err := stack.RestateServerBin(a.cfg); err != nil {
				fmt.Fprintf(a.stdout, "restate-server  not installed (%v)\n", err)
			} else if out, err := exec.Command(bin, "--version").Output(); err != nil {
				fmt.Fprintf(a.stdout, "restate-server  %s: %v\n", bin, err)
			} else {
				fmt.Fprintf(a.stdout, "restate-server  %s\n", strings.TrimPrefix(strings.TrimSpace(string(out)), "restate-server "))
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			st, err := store.Open(ctx, a.cfg.DatabaseURL, a.cfg.SQLitePath())
			if err != nil {
				fmt.Fprintf(a.stdout, "store schema    unknown (%v)\n", err)
				return nil
			}
			defer st.Close()
			applied, known, err := st.SchemaVersion(cmd.Context())
			if err != nil {
				fmt.Fprintf(a.stdout, "store schema    unknown (%v)\n", err)
				return nil
			}
			fmt.Fprintf(a.stdout, "store schema    %d (%s; this build knows up to %d)\n", applied, st.Dialect(), known)
			return nil
		},
	}
	var wait, asJSON bool
	deployments := &cobra.Command{
		Use:   "deployments",
		Short: "List each version of the service: its address, registration, workflows in flight and state",
		Long: `deployments lists every version of the workflow service this state dir
keeps or Restate has registered: its address, when Restate registered it,
how many invocations are pinned to it per workflow type (Restate keeps an
invocation on the deployment it started on), and its state: serving (the
newest: new workflows go to it), draining (older, finishing what it
started), or retired. up retires a version once nothing is pinned to it.

--wait blocks until only the newest remains, retiring each older version as
it drains.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.stack()
			if err != nil {
				return err
			}
			s.Out = a.stderr // what --wait's retirements do is progress
			for {
				rows, err := s.Report(cmd.Context())
				if err != nil {
					return err
				}
				if asJSON {
					return json.NewEncoder(a.stdout).Encode(rows)
				}
				draining := 0
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "VERSION\tSTATE\tADDRESS\tDEPLOYMENT\tREGISTERED\tIN FLIGHT")
				for _, r := range rows {
					if r.State == stack.Draining {
						draining++
					}
					registered := "-"
					if !r.Registered.IsZero() {
						registered = r.Registered.Local().Format(time.DateTime)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Version, r.State, r.Addr, orDash(r.Deployment), registered, inFlight(r.InFlight))
				}
				tw.Flush()
				if !wait || draining == 0 {
					return nil
				}
				fmt.Fprintf(a.stderr, "waiting for %d draining version(s)…\n", draining)
				select {
				case <-cmd.Context().Done():
					return cmd.Context().Err()
				case <-time.After(5 * time.Second):
				}
				if err := s.Up(cmd.Context()); err != nil {
					return err
				}
			}
		},
	}
	deployments.Flags().BoolVar(&wait, "wait", false, "block until only the newest version remains")
	deployments.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	var yes bool
	upgrade := &cobra.Command{
		Use:   "upgrade-workflow <id>",
		Short: "Move a workflow stuck on a version that cannot run any more to the newest deployment",
		Long: `upgrade-workflow moves a workflow pinned to a deployment that can no
longer run (its kept copy deleted, or a fix is needed) to the newest one, the
way Restate allows: it pauses the invocation, then resumes it on the latest
deployment. The workflow's journal is then replayed on the new code: if the
new code makes other steps in another order, the replay fails with a journal
mismatch, and the workflow stays paused (kill it with restate, or start it
again). Completed steps are not run again.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			inv, err := a.runs().Find(cmd.Context(), id)
			if err != nil {
				return err
			}
			if inv.Status == "completed" {
				return fmt.Errorf("%s already finished (%s): nothing to move", id, inv.Outcome())
			}
			fmt.Fprintf(a.stderr, "%s (%s, invocation %s) will be paused and resumed on the newest deployment.\nIts journal will be replayed on the new code: completed steps keep their results, and a step the new code makes differently stops it with a journal mismatch.\n", id, inv.Service, inv.ID)
			if !yes {
				if !isTerminal(os.Stdin) {
					return fmt.Errorf("not a terminal: pass --yes to move %s", id)
				}
				fmt.Fprint(a.stderr, "Move it? [y/N] ")
				line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
				if !strings.EqualFold(strings.TrimSpace(line), "y") {
					return fmt.Errorf("not moved")
				}
			}
			c := a.client()
			if err := c.Pause(cmd.Context(), inv.ID); err != nil {
				return fmt.Errorf("pause %s: %w", id, err)
			}
			// The pause lands when the invocation's current attempt ends;
			// only a paused invocation can change deployment.
			// Two minutes: an attempt in a model call ends within the
			// call's timeout.
			status := ""
			_, err = retry.Poll(200*time.Millisecond, 2*time.Minute).Do(cmd.Context(), func(ctx context.Context) error {
				now, err := c.Find(ctx, inv.Service, id)
				if status = now.Status; err != nil || status != "paused" {
					return retry.Again("not paused yet")
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("%s did not pause within 2 minutes (status %s): try again", id, status)
			}
			fmt.Fprintf(a.stderr, "%s paused\n", id)
			if err := c.ResumeOn(cmd.Context(), inv.ID, "latest"); err != nil {
				return fmt.Errorf("resume %s on the latest deployment: %w", id, err)
			}
			fmt.Fprintf(a.stderr, "%s resumed on the latest deployment\n", id)
			return nil
		},
	}
	upgrade.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask")
	return []*cobra.Command{ver, deployments, upgrade}
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func inFlight(m map[string]int) string {
	if len(m) == 0 {
		return "0"
	}
	var parts []string
	for svc, n := range m {
		parts = append(parts, fmt.Sprintf("%s %d", svc, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

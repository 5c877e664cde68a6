package cli

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

// limitsCommand shows the providers' limits and their use.
func (a *app) limitsCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "limits",
		Short: "Show each provider key's limits, its use in the last minute, calls in flight, waiters and 429s",
		Long: `limits shows the providers' limits in force (the defaults, overridden by
ULTRAMCP_LIMITS) and, across every service on the store, the calls in
flight and waiting for a permit (as each service last told the store, a
few times a second), the calls at once now allowed (halved by a 429, grown back by answers), the
requests and tokens of the last minute, the 429s met and a cool-down under
way.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			us, err := a.runs().Limits(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(a.stdout).Encode(us)
			}
			fmt.Fprintf(a.stdout, "%-28s %-34s %9s %7s %8s %9s %11s %5s  %s\n", "key", "limit", "in flight", "waiting", "allowed", "req/min", "tokens/min", "429s", "cooling")
			for _, u := range us {
				cooling := "—"
				if !u.CoolingUntil.IsZero() {
					cooling = "for " + time.Until(u.CoolingUntil).Round(100*time.Millisecond).String()
				}
				fmt.Fprintf(a.stdout, "%-28s %-34s %9d %7d %8d %9d %11d %5d  %s\n", u.Key, u.Bounds(), u.InFlight, u.Waiting, u.Allowed, u.Requests, u.Tokens, u.Throttled, cooling)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

package cli

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ultramcp/durable/config"
)

func (a *app) stackCommands() []*cobra.Command {
	up := &cobra.Command{
		Use:     "up",
		Aliases: []string{"start"},
		Short:   "Start the local stack (Restate server, workflow service with the API and MCP endpoint) and register it",
		Long: `up starts restate-server (loopback only, data in the state dir) and the
workflow service — which serves the UltraMCP API and the MCP endpoint
(/mcp) on ULTRAMCP_API_ADDR too — waits until all are healthy, and
registers the service with Restate. On first start it creates the request-identity keys with which
Restate signs its requests; the service refuses unsigned ones.

up is idempotent: run again, it starts only what is not running.

--with-jaeger also runs Jaeger v2 on loopback (ULTRAMCP_JAEGER_ADDR, OTLP on
ULTRAMCP_JAEGER_OTLP_ADDR) and sends the service's and restate-server's
spans to it: one trace per request, from the API through each step and
model call. The first time it builds the pinned Jaeger from its Go module
(about 5 minutes); later ups reuse the binary, and keep Jaeger up.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.stack()
			if err != nil {
				return err
			}
			if err := s.Up(cmd.Context()); err != nil {
				return err
			}
			a.printURLs()
			return nil
		},
	}
	up.Flags().BoolVar(&a.cfg.WithJaeger, "with-jaeger", false, "also run Jaeger and trace every workflow to it")
	stop := &cobra.Command{
		Use:   "stop",
		Short: "Stop what up started (by pid file)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.stack()
			if err != nil {
				return err
			}
			return s.Stop()
		},
	}
	restart := &cobra.Command{
		Use:   "restart",
		Short: "Stop, then start the stack",
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.stack()
			if err != nil {
				return err
			}
			if err := s.Stop(); err != nil {
				return err
			}
			return s.Up(cmd.Context())
		},
	}
	var healthJSON bool
	health := &cobra.Command{
		Use:   "health",
		Short: "Report the health of every component",
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.stack()
			if err != nil {
				return err
			}
			checks := s.Check()
			if healthJSON {
				return json.NewEncoder(a.stdout).Encode(checks)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "COMPONENT\tSTATUS\tPID\tURL\tDETAIL")
			bad := 0
			for _, c := range checks {
				status := "healthy"
				if !c.Healthy {
					status, bad = "DOWN", bad+1
				}
				pid := "-"
				if c.PID > 0 {
					pid = fmt.Sprint(c.PID)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Name, status, pid, c.URL, c.Detail)
			}
			tw.Flush()
			if bad > 0 {
				return fmt.Errorf("%d component(s) down; run `ultramcp up`", bad)
			}
			return nil
		},
	}
	health.Flags().BoolVar(&healthJSON, "json", false, "print JSON")
	dashboard := &cobra.Command{
		Use:   "dashboard",
		Short: "Print the URLs to look at",
		Run:   func(*cobra.Command, []string) { a.printURLs() },
	}
	register := &cobra.Command{
		Use:   "register <url>",
		Short: "Register a workflow service deployment with Restate",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.stack()
			if err != nil {
				return err
			}
			if err := s.Register(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "registered %s\n", args[0])
			return nil
		},
	}
	services := &cobra.Command{
		Use:   "services",
		Short: "List the services registered with Restate",
		RunE: func(cmd *cobra.Command, _ []string) error {
			list, err := a.client().Services(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SERVICE\tTYPE\tREVISION\tDEPLOYMENT")
			for _, s := range list {
				fmt.Fprintf(tw, "%v\t%v\t%v\t%v\n", s["name"], s["ty"], s["revision"], s["deployment_id"])
			}
			return tw.Flush()
		},
	}
	var lines int
	logs := &cobra.Command{
		Use:       "logs <component>",
		Short:     "Print the log of a component: restate-server or service",
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"restate-server", "service"},
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.stack()
			if err != nil {
				return err
			}
			switch args[0] {
			case "restate-server", "restate":
				p, err := s.Restate()
				if err != nil {
					return err
				}
				fmt.Fprintln(a.stdout, p.Tail(lines))
			case "service", "workflow-service":
				fmt.Fprintln(a.stdout, s.Service().Tail(lines))
			default:
				return fmt.Errorf("component: want restate-server or service, got %q", args[0])
			}
			return nil
		},
	}
	logs.Flags().IntVarP(&lines, "lines", "n", 100, "number of lines")
	return append([]*cobra.Command{up, stop, restart, health, dashboard, register, services, logs}, a.serveCommands()...)
}

func (a *app) printURLs() {
	c := a.cfg
	serviceURL := c.ServiceURL()
	if s, err := a.stack(); err == nil {
		if cur, err := s.Current(); err == nil {
			for _, v := range s.Versions() {
				if v.Name == cur {
					serviceURL = config.URL(v.Addr)
				}
			}
		}
	}
	fmt.Fprintf(a.stdout, `
URLs:
  Dashboard (runs, live debates):      %[1]s/
  UltraMCP API:                        %[1]s  (OpenAPI at /openapi.json)
  Restate UI (invocations, journals):  %[1]s/ui/
  Restate ingress paths (the seed's):  %[1]s/chain-of-debate/<id>/run/send, …
  MCP (streamable HTTP):               %[1]s/mcp  (stdio: ultramcp mcp)
  Workflow service (for Restate only): %[2]s
  Restate's own sockets (no TCP port): %[3]s, %[4]s
`, config.URL(c.APIAddr), serviceURL, c.IngressSocket(), c.AdminSocket())
	if c.WithJaeger {
		fmt.Fprintf(a.stdout, "  Jaeger query API (traces):           %s/api/traces/<trace id>  (ultramcp trace <id>)\n  Metrics (Prometheus):                %s/metrics\n", config.URL(c.JaegerAddr), config.URL(c.APIAddr))
	} else {
		fmt.Fprintf(a.stdout, "  Metrics (Prometheus):                %s/metrics\n", config.URL(c.APIAddr))
	}
}

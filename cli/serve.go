package cli

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"

	"github.com/ultramcp/durable/api"
	"github.com/ultramcp/durable/config"
	"github.com/ultramcp/durable/limits"
	"github.com/ultramcp/durable/live"
	"github.com/ultramcp/durable/llm/providers"
	"github.com/ultramcp/durable/mcpserver"
	"github.com/ultramcp/durable/runs"
	"github.com/ultramcp/durable/service"
)

// serveCommands are the long-running processes: serve (the workflow
// service with the API and MCP endpoint, what up runs) and mcp (stdio).
func (a *app) serveCommands() []*cobra.Command {
	serve := &cobra.Command{
		Use:   "serve",
		Short: "Run the workflow service, the API and the MCP endpoint in the foreground (up runs it for you)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
			return serve(cmd.Context(), a.cfg, logger)
		},
	}
	mcpCmd := &cobra.Command{
		Use:   "mcp",
		Short: "Serve MCP over stdio, for Claude Desktop, Cursor and other MCP clients",
		Long: `mcp speaks the Model Context Protocol on stdin and stdout: a tool to start
each workflow (it returns the id at once), get_status, get_result,
wait_for_result (with progress notifications), list_workflows,
cancel_workflow, approve, reject and decide; reports as resources
(ultramcp://workflows/{id}/report.md, report.sarif, report.json). The stack
must be up (ultramcp up). The same server answers over streamable HTTP at
/mcp on the API port.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			srv := mcpserver.New(a.runs())
			err := srv.Run(cmd.Context(), &mcp.StdioTransport{})
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		},
	}
	return []*cobra.Command{serve, mcpCmd}
}

// serve runs the workflow service and, in the same process, the API with
// the MCP endpoint, until ctx ends; either failing stops both.
func serve(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := service.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	// The providers this service has, written before the application
	// service below reads them: it and every other process check a
	// request's models against these.
	// One limiter for the process, its counts in the store: every service
	// on the store shares the providers' limits.
	limiter := limits.New(cfg.LimitTable(), st.Limits(), st)
	defer limiter.Close()
	models, err := providers.New(cfg, limiter)
	if err != nil {
		return err
	}
	// The answers as models write them, for this process's readers (the
	// event stream, the dashboard): a side channel, never journaled.
	hub := live.NewHub()
	models.Streaming(hub)
	if err := service.WriteProviders(cfg, models); err != nil {
		logger.Warn("could not write the configured providers; submissions check models against their own configuration", "err", err)
	}
	svc := newRuns(cfg, runs.Shared{Store: st})
	svc.MaxOpen = cfg.APIMaxOpen
	svc.Live = hub
	mcpSrv := mcpserver.New(svc)
	mcpHandler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return mcpSrv }, &mcp.StreamableHTTPOptions{
		Logger: logger,
		// The API's own Host allowlist guards /mcp, and allows the names
		// ULTRAMCP_API_HOSTS adds, which the SDK's localhost check would not.
		DisableLocalhostProtection: true,
		// Stateless, as the 2026-07-28 protocol intends: every tool is a
		// request and its answer (progress goes on that request's stream),
		// so a session kept between requests would only be memory that
		// nobody frees (20,000 initialize calls kept 300 MB).
		Stateless: true,
	})
	h := api.New(ctx, svc, cfg, mcpHandler, logger).Handler()
	apiDone := make(chan error, 1)
	go func() {
		if cfg.APIToken == "" {
			logger.Info("API listening without a token: loopback only (set ULTRAMCP_API_TOKEN to require one)", "addr", cfg.APIAddr)
		} else {
			logger.Info("API listening; every route but /health needs the bearer token", "addr", cfg.APIAddr)
		}
		err := api.Serve(ctx, cfg.APIAddr, h, logger)
		cancel() // the service does not run on without its API
		apiDone <- err
	}()
	// One store for the process: the API's submissions and the
	// workflows' writes go through the same writer.
	err = service.Serve(ctx, cfg, st, models, logger)
	cancel()
	if apiErr := <-apiDone; apiErr != nil {
		return apiErr
	}
	return err
}

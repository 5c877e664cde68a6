// Package mcpserver is UltraMCP as an MCP server (the official Go SDK): a
// tool to start each workflow of the registry, with the request's schema as
// its input schema, and tools to follow, read, list, cancel and decide, all
// thin adapters over the application service (package runs). Reports are
// resources. Served over stdio (`ultramcp mcp`) and streamable HTTP (/mcp on
// the API port). A start tool returns the id at once: a workflow can run
// for longer than an MCP request should stay open; wait_for_result blocks
// up to a timeout, sending progress notifications while it waits.
package mcpserver

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/attribute"

	"github.com/ultramcp/durable/runs"
	"github.com/ultramcp/durable/telemetry"
	"github.com/ultramcp/durable/workflow"
)

// Version is what the server says it is.
const Version = "1.0.0"

// New returns the MCP server over svc.
func New(svc *runs.Service) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "ultramcp", Title: "UltraMCP Durable", Version: Version}, &mcp.ServerOptions{
		Instructions: "Start a workflow with a start_ tool: it returns the workflow id at once. Then wait_for_result (up to a timeout, with progress) or get_status and get_result.",
	})
	s.AddReceivingMiddleware(traced)
	addStartTools(s, svc)
	addRunTools(s, svc)
	addDecisionTools(s, svc)
	addReports(s, svc)
	return s
}

// traced makes each MCP request a span ("tools/call start_debate"), under
// the HTTP request's (and its caller's traceparent) on /mcp, or a trace of
// its own over stdio; the tool's arguments stay out of it.
func traced(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		if !telemetry.On() {
			return next(ctx, method, req)
		}
		name := "mcp " + method
		if call, ok := req.GetParams().(*mcp.CallToolParamsRaw); ok {
			name += " " + call.Name
		}
		ctx, span := telemetry.Start(ctx, name, attribute.String("rpc.system", "mcp"), attribute.String("rpc.method", method))
		res, err := next(ctx, method, req)
		telemetry.End(span, err)
		return res, err
	}
}

// addStartTools adds a start_ tool per workflow, from its definition.
func addStartTools(s *mcp.Server, svc *runs.Service) {
	for _, def := range svc.Definitions() {
		in, err := def.InputSchema()
		if err != nil {
			panic(err) // a definition's bug, caught by the registry's test
		}
		name := def.Name
		s.AddTool(&mcp.Tool{
			Name:         def.ToolName(),
			Description:  def.Summary + ". Returns the workflow id at once; follow it with wait_for_result or get_status.",
			InputSchema:  in,
			OutputSchema: workflow.SchemaOf[runs.Submitted](),
		}, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			args := req.Params.Arguments
			if len(args) == 0 {
				args = json.RawMessage("{}")
			}
			sub, err := svc.Submit(ctx, name, args, "")
			if err != nil {
				return toolError(err), nil
			}
			sub.Warnings = nil
			return structured(sub), nil
		})
	}
}

// addRunTools adds the tools that follow, read, list and cancel workflows.
func addRunTools(s *mcp.Server, svc *runs.Service) {
	mcp.AddTool(s, &mcp.Tool{Name: "get_status", Description: "A workflow's status, live progress, children and cost so far", OutputSchema: workflow.SchemaOf[runs.Status]()},
		func(ctx context.Context, _ *mcp.CallToolRequest, in IDInput) (*mcp.CallToolResult, runs.Status, error) {
			st, err := svc.Status(ctx, in.ID)
			return nil, st, err
		})
	mcp.AddTool(s, &mcp.Tool{Name: "get_result", Description: "A finished workflow's result: Markdown for an analysis, text for a debate, or json / sarif"},
		func(ctx context.Context, _ *mcp.CallToolRequest, in ResultInput) (*mcp.CallToolResult, any, error) {
			res, err := svc.Result(ctx, in.ID)
			if err != nil {
				return nil, nil, err
			}
			rep, err := svc.Render(ctx, res, in.Format)
			if err != nil {
				return nil, nil, err
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(rep.Body)}}}, nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "wait_for_result", Description: "Wait for a workflow to finish, at most timeoutSeconds (default 60), with progress notifications; returns its result, or its status if it still runs", OutputSchema: workflow.SchemaOf[WaitOutput]()},
		func(ctx context.Context, req *mcp.CallToolRequest, in WaitInput) (*mcp.CallToolResult, WaitOutput, error) {
			return wait(ctx, svc, req, in)
		})
	mcp.AddTool(s, &mcp.Tool{Name: "list_workflows", Description: "List workflows, newest first", OutputSchema: workflow.SchemaOf[ListOutput]()},
		func(ctx context.Context, _ *mcp.CallToolRequest, in ListInput) (*mcp.CallToolResult, ListOutput, error) {
			ws, err := svc.List(ctx, runs.Filter{Workflow: in.Workflow, Status: in.Status, Limit: in.Limit})
			return nil, ListOutput{Workflows: append([]runs.Summary{}, ws...)}, err
		})
	mcp.AddTool(s, &mcp.Tool{Name: "cancel_workflow", Description: "Cancel a running workflow: its children are cancelled and its compensations run"},
		func(ctx context.Context, _ *mcp.CallToolRequest, in IDInput) (*mcp.CallToolResult, Done, error) {
			inv, err := svc.Cancel(ctx, in.ID)
			return nil, Done{ID: in.ID, Status: "cancelling (invocation " + inv + ")"}, err
		})
}

// addDecisionTools adds the tools a human decides with.
func addDecisionTools(s *mcp.Server, svc *runs.Service) {
	for _, approve := range []bool{true, false} {
		name, desc := "approve", "Approve a full-analysis waiting for approval: it goes on to the recommendations"
		if !approve {
			name, desc = "reject", "Reject a full-analysis waiting for approval: its compensations run and it ends rejected"
		}
		mcp.AddTool(s, &mcp.Tool{Name: name, Description: desc},
			func(ctx context.Context, _ *mcp.CallToolRequest, in ApprovalInput) (*mcp.CallToolResult, Done, error) {
				return nil, Done{ID: in.ID, Status: "sent"}, svc.Approve(ctx, in.ID, approve, in.Reason, in.By)
			})
	}
	mcp.AddTool(s, &mcp.Tool{Name: "decide", Description: "Give the decision an escalated debate waits for; the first decision counts"},
		func(ctx context.Context, _ *mcp.CallToolRequest, in DecideInput) (*mcp.CallToolResult, Done, error) {
			return nil, Done{ID: in.ID, Status: "sent"}, svc.Decide(ctx, in.ID, runs.Decision{Decision: in.Decision, By: in.By})
		})
}

// addReports adds a finished workflow's reports as resources.
func addReports(s *mcp.Server, svc *runs.Service) {
	for _, r := range []struct{ file, format, mime string }{
		{"report.md", runs.FormatMarkdown, "text/markdown"},
		{"report.sarif", runs.FormatSARIF, "application/sarif+json"},
		{"report.json", runs.FormatJSON, "application/json"},
	} {
		s.AddResourceTemplate(&mcp.ResourceTemplate{
			Name: r.file, URITemplate: "ultramcp://workflows/{id}/" + r.file, MIMEType: r.mime,
			Description: "a finished workflow's report as " + r.format,
		}, func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			id, ok := strings.CutPrefix(req.Params.URI, "ultramcp://workflows/")
			id, ok2 := strings.CutSuffix(id, "/"+r.file)
			if !ok || !ok2 || runs.CheckID(id) != nil {
				return nil, mcp.ResourceNotFoundError(req.Params.URI)
			}
			res, err := svc.Result(ctx, id)
			if err != nil {
				return nil, err
			}
			rep, err := svc.Render(ctx, res, r.format)
			if err != nil {
				return nil, err
			}
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, MIMEType: r.mime, Text: string(rep.Body)}}}, nil
		})
	}
}

// IDInput names a workflow.
type IDInput struct {
	ID string `json:"id" jsonschema:"the workflow id a start tool returned"`
}

// ResultInput asks for a result in a format.
type ResultInput struct {
	ID     string `json:"id" jsonschema:"the workflow id"`
	Format string `json:"format,omitempty" jsonschema:"json, markdown, sarif or text (default: the workflow's own)"`
}

// WaitInput asks to wait for a result.
type WaitInput struct {
	ID             string `json:"id" jsonschema:"the workflow id"`
	TimeoutSeconds int    `json:"timeoutSeconds,omitempty" jsonschema:"how long to wait, 1 to 600 (default 60)"`
}

// WaitOutput is a result, or the status of a workflow still running.
type WaitOutput struct {
	ID       string          `json:"id"`
	Finished bool            `json:"finished"`
	Status   string          `json:"status"`
	Result   json.RawMessage `json:"result,omitempty"`
}

// ListInput filters workflows.
type ListInput struct {
	Workflow string `json:"workflow,omitempty" jsonschema:"only this workflow, e.g. chain-of-debate"`
	Status   string `json:"status,omitempty" jsonschema:"only this status, e.g. running"`
	Limit    int    `json:"limit,omitempty" jsonschema:"at most this many (default 50)"`
}

// ListOutput is a list of workflows.
type ListOutput struct {
	Workflows []runs.Summary `json:"workflows"`
}

// ApprovalInput approves or rejects.
type ApprovalInput struct {
	ID     string `json:"id" jsonschema:"the full-analysis waiting for approval"`
	Reason string `json:"reason,omitempty" jsonschema:"why"`
	By     string `json:"by,omitempty" jsonschema:"who decides"`
}

// DecideInput gives a decision.
type DecideInput struct {
	ID       string `json:"id" jsonschema:"the escalated debate"`
	Decision string `json:"decision" jsonschema:"the decision"`
	By       string `json:"by,omitempty" jsonschema:"who decides"`
}

// Done says a request was sent.
type Done struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// MaxWait bounds wait_for_result.
const MaxWait = 10 * time.Minute

// wait follows the workflow's shared feed (the one the API's event streams
// read): however many clients wait on a workflow, it is watched once.
func wait(ctx context.Context, svc *runs.Service, req *mcp.CallToolRequest, in WaitInput) (*mcp.CallToolResult, WaitOutput, error) {
	timeout := 60 * time.Second
	if in.TimeoutSeconds != 0 {
		timeout = time.Duration(in.TimeoutSeconds) * time.Second
	}
	if timeout <= 0 || timeout > MaxWait {
		return nil, WaitOutput{}, fmt.Errorf("timeoutSeconds: must be 1 to %d", int(MaxWait.Seconds()))
	}
	if err := runs.CheckID(in.ID); err != nil {
		return nil, WaitOutput{}, err
	}
	// Nothing here asks Restate or the store: the feed's one watch does,
	// for every waiter (an unknown id ends it with a failure at once).
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	feed := svc.Feeds().Join(in.ID)
	defer feed.Leave()
	token := req.Params.GetProgressToken()
	seen, steps, status := 0, 0, ""
	for {
		events, done, changed := feed.Since(seen)
		for _, e := range events {
			seen++
			if e.ID == in.ID && e.Status != "" {
				status = e.Status
			}
			switch {
			case e.Type == runs.EventResult && e.ID == in.ID:
				return nil, WaitOutput{ID: in.ID, Finished: true, Status: "finished", Result: e.Output}, nil
			case e.Type == runs.EventFailed && e.ID == in.ID:
				return nil, WaitOutput{}, fmt.Errorf("%s", e.Error)
			case token != nil:
				steps++
				_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: token, Progress: float64(steps), Message: describe(e)})
			}
		}
		if done && len(events) == 0 {
			break // ended without a result of its own: say its status
		}
		select {
		case <-changed:
			continue
		case <-wctx.Done():
		}
		break
	}
	if ctx.Err() != nil {
		return nil, WaitOutput{}, ctx.Err()
	}
	if status == "" {
		st, err := svc.Status(ctx, in.ID)
		if err != nil {
			return nil, WaitOutput{}, err
		}
		status = st.Status
	}
	return nil, WaitOutput{ID: in.ID, Status: status}, nil
}

// describe says in a line what an event is.
func describe(e runs.Event) string {
	who := e.Workflow + " " + e.ID
	if e.Role != "" {
		who = e.Role + " (" + who + ")"
	}
	switch {
	case e.Waiting != "":
		return who + ": " + e.Waiting
	case e.Status != "":
		return who + ": " + e.Status
	case e.Error != "":
		return who + ": " + e.Error
	}
	var p struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(e.Progress, &p) == nil && p.Message != "" {
		return who + ": " + p.Message
	}
	return who + ": " + e.Type
}

// toolError is a refusal as a tool error naming the field, not a crash.
func toolError(err error) *mcp.CallToolResult {
	r := &mcp.CallToolResult{}
	r.SetError(err)
	return r
}

func structured(v any) *mcp.CallToolResult {
	b, _ := json.Marshal(v)
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(b)}}, StructuredContent: json.RawMessage(b)}
}

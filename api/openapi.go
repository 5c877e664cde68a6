package api

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// Document is the OpenAPI 3.1 document of the routes: built from the same
// table the handlers are registered from, so the two cannot drift.
func (s *Server) Document() map[string]any {
	paths := map[string]map[string]any{}
	for _, r := range s.table {
		op := map[string]any{"summary": r.Summary, "operationId": operationID(r)}
		var params []map[string]any
		for _, p := range r.Parameters {
			params = append(params, map[string]any{"name": p.Name, "in": p.In, "description": p.Description, "required": p.In == "path", "schema": p.Schema})
		}
		if params != nil {
			op["parameters"] = params
		}
		if r.Request != nil {
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": r.Request}}}
		}
		responses := map[string]any{}
		for code, resp := range r.Responses {
			ct := resp.ContentType
			if ct == "" {
				ct = "application/json"
			}
			content := map[string]any{}
			if resp.Schema != nil {
				content["schema"] = resp.Schema
			}
			responses[strconv.Itoa(code)] = map[string]any{"description": resp.Description, "content": map[string]any{ct: content}}
		}
		op["responses"] = responses
		if r.Pattern != "/health" {
			op["security"] = []map[string][]string{{"bearer": {}}}
		}
		if paths[r.Pattern] == nil {
			paths[r.Pattern] = map[string]any{}
		}
		paths[r.Pattern][strings.ToLower(r.Method)] = op
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":       "UltraMCP API",
			"version":     "1",
			"description": "Durable multi-agent LLM workflows on Restate. The MCP endpoint (streamable HTTP) is at /mcp.",
		},
		"servers": []map[string]string{{"url": "http://" + s.cfg.APIAddr}},
		"paths":   paths,
		"components": map[string]any{"securitySchemes": map[string]any{
			"bearer": map[string]string{"type": "http", "scheme": "bearer", "description": "ULTRAMCP_API_TOKEN, when the API has one"},
		}},
	}
}

var nonWord = regexp.MustCompile(`[^A-Za-z0-9]+`)

func operationID(r route) string {
	return strings.ToLower(r.Method) + nonWord.ReplaceAllString(r.Pattern, "_")
}

func (s *Server) openapi(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Document())
}

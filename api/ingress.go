package api

import (
	"encoding/json"
	"net/http"
	"net/http/httputil"
	"strings"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/ultramcp/durable/runs"
	"github.com/ultramcp/durable/workflow"
)

// The Restate ingress's own paths, as the seed's curl requests use them,
// served here behind the API's guards: restate-server listens on unix
// sockets only, because its ingress has no auth and answers CORS for any
// origin. Each goes through the application service, so what the API
// refuses (a bad id or body, too much open, a gate not open) is refused
// here too.

// IngressStarted is the ingress's answer to a send.
type IngressStarted struct {
	InvocationID string `json:"invocationId"`
	Status       string `json:"status" jsonschema:"Accepted, or PreviouslyAccepted for an id started before"`
}

func (s *Server) ingressRoutes(def workflow.Definition) []route {
	in, _ := def.InputSchema()
	idParam := parameter{Name: "id", In: "path", Description: "workflow id", Schema: &jsonschema.Schema{Type: "string"}}
	raw := with(errs(400, 401, 403, 404, 409, 503), 200, response{Description: "the JSON the workflow answers"})
	name := def.Name
	return []route{
		{Method: http.MethodPost, Pattern: "/" + name + "/{id}/" + workflow.RunHandler + "/send", Summary: "Start " + name + " under id (the Restate ingress's path)", Request: in, Parameters: []parameter{idParam},
			Responses: with(errs(400, 401, 403, 409, 413, 415, 429, 503), http.StatusAccepted, response{Description: "accepted", Schema: workflow.SchemaOf[IngressStarted]()}),
			handle: func(w http.ResponseWriter, r *http.Request) {
				body, err := readBody(r)
				if err != nil {
					writeError(w, err)
					return
				}
				sub, err := s.runs.Submit(r.Context(), name, body, r.PathValue("id"))
				if err != nil {
					writeError(w, err)
					return
				}
				status := "Accepted"
				if sub.Existing {
					status = "PreviouslyAccepted"
				}
				writeJSON(w, http.StatusAccepted, IngressStarted{InvocationID: sub.InvocationID, Status: status})
			}},
		{Method: http.MethodGet, Pattern: "/restate/workflow/" + name + "/{id}/attach", Summary: "Wait for " + name + " id to finish and answer its output (the Restate ingress's path)", Parameters: []parameter{idParam}, Responses: raw,
			handle: func(w http.ResponseWriter, r *http.Request) {
				out, err := s.runs.Attach(r.Context(), name, r.PathValue("id"))
				writeRaw(w, out, err)
			}},
		{Method: http.MethodGet, Pattern: "/restate/workflow/" + name + "/{id}/output", Summary: "The output of " + name + " id if it finished (the Restate ingress's path)", Parameters: []parameter{idParam}, Responses: raw,
			handle: func(w http.ResponseWriter, r *http.Request) {
				out, err := s.runs.Output(r.Context(), name, r.PathValue("id"))
				writeRaw(w, out, err)
			}},
		{Method: http.MethodPost, Pattern: "/" + name + "/{id}/" + workflow.ProgressHandler, Summary: "What " + name + " id published last (the Restate ingress's path)", Parameters: []parameter{idParam}, Responses: raw,
			handle: func(w http.ResponseWriter, r *http.Request) {
				out, err := s.runs.Progress(r.Context(), name, r.PathValue("id"))
				writeRaw(w, out, err)
			}},
		{Method: http.MethodPost, Pattern: "/" + name + "/{id}/" + workflow.DecideHandler, Summary: "Send the decision or approval " + name + " id waits for (the Restate ingress's path)", Request: workflow.SchemaOf[runs.Decision](), Parameters: []parameter{idParam},
			Responses: with(errs(400, 401, 403, 404, 409, 415, 503), 200, response{Description: "decision sent", Schema: workflow.SchemaOf[Decided]()}),
			handle: func(w http.ResponseWriter, r *http.Request) {
				var d runs.Decision
				if !decodeBody(w, r, &d) {
					return
				}
				s.decided(w, r, s.runs.DecideAs(r.Context(), name, r.PathValue("id"), d))
			}},
	}
}

func writeRaw(w http.ResponseWriter, out json.RawMessage, err error) {
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// consolePaths are the Restate admin API's paths the Restate UI calls (it
// calls them from the origin it is served from), proxied to the admin
// socket behind the API's guards. The UI is the way to see journals; the
// admin API itself can read every journal and kill any invocation, so it
// gets the token, Host and Origin rules like everything else here.
var consolePaths = []string{"/ui/", "/query", "/query/", "/deployments", "/deployments/", "/services", "/services/", "/invocations/",
	"/subscriptions", "/subscriptions/", "/version", "/cluster-health", "/openapi", "/limits/", "/vqueues/", "/kafka-clusters", "/kafka-clusters/"}

// console is the reverse proxy to the admin socket.
func (s *Server) newConsole() http.Handler {
	target, transport := s.runs.Console()
	p := httputil.NewSingleHostReverseProxy(target)
	p.Transport = transport // its connections to the sockets
	director := p.Director
	p.Director = func(r *http.Request) {
		director(r)
		// The admin API needs none of what the browser sent to the API.
		r.Header.Del("Authorization")
		r.Header.Del("Cookie")
		r.Host = target.Host
	}
	p.ModifyResponse = func(resp *http.Response) error {
		// The API's guards decide who may read; nothing Restate says of
		// cross-origin access reaches a browser.
		for k := range resp.Header {
			if strings.HasPrefix(strings.ToLower(k), "access-control-") {
				resp.Header.Del(k)
			}
		}
		return nil
	}
	p.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, err error) {
		s.log.Warn("restate admin unreachable", "err", err)
		writeJSON(w, http.StatusBadGateway, ErrorBody{ErrorDetail{Code: "unavailable", Message: "restate-server's admin API does not answer: is the stack up? run `ultramcp up`"}})
	}
	return p
}

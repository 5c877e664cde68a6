// Package dashboard is the product's own page, served at / on the API port
// by the same process and the same application service as the API: the
// workflows, a debate whose answers stream in as the models write them,
// an analysis's findings and metrics, a full-analysis waiting for
// approval, the trace of any run, and a form to start each workflow. It is
// server-rendered HTML (html/template escapes every string a user or a
// model wrote) with one small script, its assets embedded: no CDN and no
// build step. Its buttons and forms call the JSON API from the same
// origin, with the login's cookie (HttpOnly, SameSite=Strict); the API's
// Origin check and JSON-only bodies keep them safe from other sites.
package dashboard

import (
	"cmp"
	"context"
	"embed"
	"encoding/json"
	"html/template"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/runs"
	"github.com/ultramcp/durable/workflow"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed assets
var assetFiles embed.FS

// PageSize is how many workflows a page of the list shows.
const PageSize = 50

// Dashboard serves the pages.
type Dashboard struct {
	runs  *runs.Service
	pages map[string]*template.Template
	// TraceUI is Jaeger's UI, when the stack runs it ("" otherwise).
	TraceUI string
}

// New returns the dashboard over svc.
func New(svc *runs.Service) *Dashboard {
	d := &Dashboard{runs: svc, pages: map[string]*template.Template{}}
	for _, page := range []string{"list", "run", "trace", "start"} {
		d.pages[page] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFiles, "templates/layout.html", "templates/"+page+".html"))
	}
	return d
}

// Paths are the dashboard's routes, for the API's mux: a GET of any of
// them without the token goes to the login.
var Paths = []string{"GET /{$}", "GET /runs/{id}", "GET /runs/{id}/trace", "GET /start/{workflow}", "GET /assets/"}

// Register adds the pages to mux.
func (d *Dashboard) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", d.list)
	mux.HandleFunc("GET /runs/{id}", d.run)
	mux.HandleFunc("GET /runs/{id}/trace", d.trace)
	mux.HandleFunc("GET /start/{workflow}", d.start)
	assets, _ := fs.Sub(assetFiles, "assets")
	mux.Handle("GET /assets/", http.StripPrefix("/assets/", http.FileServerFS(assets)))
}

// IsPage says whether a GET of path is one of the dashboard's pages.
func IsPage(path string) bool {
	return path == "/" || strings.HasPrefix(path, "/runs/") || strings.HasPrefix(path, "/start/") || strings.HasPrefix(path, "/assets/")
}

func (d *Dashboard) render(w http.ResponseWriter, page string, status int, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	// Only this origin's script and style run: a model's answer holding
	// markup is text already (html/template), and this is the second lock.
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = d.pages[page].Execute(w, data)
}

// listPage is the workflows page.
type listPage struct {
	Workflows       []runs.Summary
	Names, Statuses []string
	Workflow        string
	Status          string
	Before          string // the next page's cursor, "" on the last
	Took            time.Duration
	Error           string
}

func (d *Dashboard) list(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	q := r.URL.Query()
	p := listPage{Workflow: q.Get("workflow"), Status: q.Get("status"), Statuses: workflow.Statuses}
	for _, def := range d.runs.Definitions() {
		p.Names = append(p.Names, def.Name)
	}
	f := runs.Filter{Workflow: p.Workflow, Status: p.Status, Limit: PageSize + 1}
	if b := q.Get("before"); b != "" {
		t, err := time.Parse(time.RFC3339Nano, b)
		if err != nil {
			p.Error = "before: not a time"
		}
		f.Before = t
	}
	ws, err := d.runs.List(r.Context(), f)
	if err != nil {
		p.Error = fault.Message(err)
	}
	if len(ws) > PageSize {
		ws = ws[:PageSize]
		p.Before = ws[len(ws)-1].CreatedAt.UTC().Format(time.RFC3339Nano)
	}
	p.Workflows, p.Took = ws, time.Since(start)
	d.render(w, "list", http.StatusOK, p)
}

// runPage is one workflow's page; View is the part its kind shows.
type runPage struct {
	Status   runs.Status
	Output   json.RawMessage
	Live     bool // it runs: the page follows its events
	Awaiting string
	View     any
	Kind     string // "debate", "analysis", "full", or "" for the JSON alone
	Formats  []string
	Error    string
}

func (d *Dashboard) run(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	st, err := d.runs.Status(r.Context(), id)
	if err != nil {
		d.render(w, "run", statusOf(err), runPage{Error: fault.Message(err), Status: runs.Status{ID: id}})
		return
	}
	p := runPage{Status: st, Live: workflow.Open(st.Status)}
	if !p.Live {
		if res, err := d.runs.Result(r.Context(), id); err == nil {
			p.Output = res.Output
		}
	}
	p.Kind, p.View = view(st, p.Output)
	p.Awaiting = awaiting(st.Progress)
	if def, err := d.runs.Definition(st.Workflow); err == nil && p.Output != nil {
		p.Formats = formats(def)
	}
	d.render(w, "run", http.StatusOK, p)
}

// formats are the downloads of a finished run: JSON, and what its
// definition renders (its reports' formats, else text).
func formats(def workflow.Definition) []string {
	out := []string{"json"}
	for _, f := range sortedKeys(def.Reports) {
		if f != "" && f != "json" && f != "text" {
			out = append(out, f)
		}
	}
	if len(out) == 1 && def.Render != nil {
		out = append(out, "text")
	}
	return out
}

// awaiting is the gate a run's progress says it waits at, or "".
func awaiting(progress json.RawMessage) string {
	var p struct {
		Phase string `json:"phase"`
	}
	_ = json.Unmarshal(progress, &p)
	switch p.Phase {
	case "awaiting-approval", "awaiting-decision":
		return p.Phase
	}
	return ""
}

func (d *Dashboard) trace(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	tr, err := d.runs.Trace(ctx, r.PathValue("id"))
	if err != nil {
		d.render(w, "trace", statusOf(err), tracePage{runs.Trace{ID: r.PathValue("id")}, fault.Message(err), d.TraceUI})
		return
	}
	d.render(w, "trace", http.StatusOK, tracePage{tr, "", d.TraceUI})
}

// tracePage is a run's trace, and Jaeger's UI when there is one.
type tracePage struct {
	Trace runs.Trace
	Error string
	UI    string
}

// startPage is a workflow's start form.
type startPage struct {
	Name, Summary, Error string
	Fields               []field
	Names                []string
}

// field is one input of a start form.
type field struct {
	Name, Label, Kind, Help string // Kind: text, number, checkbox, json, list
	Required                bool
}

func (d *Dashboard) start(w http.ResponseWriter, r *http.Request) {
	def, err := d.runs.Definition(r.PathValue("workflow"))
	if err != nil {
		d.render(w, "start", http.StatusNotFound, startPage{Error: fault.Message(err)})
		return
	}
	schema, err := def.InputSchema()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	var fields []field
	for _, name := range sortedKeys(schema.Properties) {
		p := schema.Properties[name]
		f := field{Name: name, Label: name, Help: p.Description, Kind: "json"}
		for _, req := range schema.Required {
			f.Required = f.Required || req == name
		}
		switch {
		case p.Type == "string" || len(p.Types) > 0 && p.Types[0] == "string":
			f.Kind = "text"
		case p.Type == "integer" || p.Type == "number":
			f.Kind = "number"
		case p.Type == "boolean":
			f.Kind = "checkbox"
		case name == "participants":
			f.Kind, f.Help = "list", "names, one a line or apart by commas; name=provider:model for a model of its own"
		}
		fields = append(fields, f)
	}
	var names []string
	for _, def := range d.runs.Definitions() {
		names = append(names, def.Name)
	}
	d.render(w, "start", http.StatusOK, startPage{def.Name, def.Summary, "", fields, names})
}

func statusOf(err error) int {
	switch fault.KindOf(err) {
	case fault.NotFound:
		return http.StatusNotFound
	case fault.Invalid:
		return http.StatusBadRequest
	}
	return http.StatusServiceUnavailable
}

var funcs = template.FuncMap{
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return time.Since(t).Round(time.Second).String() + " ago"
	},
	"ms": func(v any) string {
		switch n := v.(type) {
		case runs.Millis:
			return strconv.FormatFloat(float64(n), 'f', 0, 64) + " ms"
		case int64:
			return strconv.FormatInt(n, 10) + " ms"
		}
		return ""
	},
	"pct": func(part, whole any) string {
		p, w := toFloat(part), toFloat(whole)
		if w <= 0 {
			return "0"
		}
		return strconv.FormatFloat(min(100, 100*p/w), 'f', 1, 64)
	},
	"conf": func(c *float64) string {
		if c == nil {
			return "—"
		}
		return strconv.FormatFloat(*c, 'f', 2, 64)
	},
	"usd":    func(v float64) string { return "$" + strconv.FormatFloat(v, 'f', 6, 64) },
	"pretty": prettyJSON,
	"or":     func(a, b string) string { return cmp.Or(a, b) },
	"join":   strings.Join,
	"deref": func(p *int64) int64 {
		if p == nil {
			return 0
		}
		return *p
	},
}

func toFloat(v any) float64 {
	switch n := v.(type) {
	case int:
		return float64(n)
	case int64:
		return float64(n)
	case float64:
		return n
	case runs.Millis:
		return float64(n)
	}
	return 0
}

func prettyJSON(raw json.RawMessage) string {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

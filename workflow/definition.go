package workflow

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/ultramcp/durable/analysis/repo"
	"github.com/ultramcp/durable/engine"
	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/llm"
)

// Deps are what the workflows are built from (registry.All).
type Deps struct {
	Models    llm.Models
	Records   Records     // nil keeps no records
	Checkouts *repo.Cache // its Policy is what Validate applies; nil is repo.DefaultPolicy
	VulnDB    string
	// AnalysisSlots bounds the checkouts and scans at once; zero is the
	// default.
	AnalysisSlots int
}

// Policy is the repository policy of d.
func (d Deps) Policy() repo.Policy {
	if d.Checkouts == nil {
		return repo.DefaultPolicy
	}
	return d.Checkouts.Policy
}

// Definition declares one workflow, once: everything the service, the
// engines, the CLI, the API and the MCP server need of it. A workflow
// package builds its own from its dependencies (Definitions); package
// registry lists them all, so adding a workflow is one new package and one
// line there.
type Definition struct {
	Name    string // the Restate service name, as the seed's URLs spell it
	Prefix  string // of generated ids: "debate-1a2b…"
	Summary string // one line: the CLI's help, the MCP tool's and the API's description
	// Tool is the MCP tool that starts it; "" is start_<name>.
	Tool string
	// Input is a zero value of the request type: its JSON schema (with
	// SchemaTypes for the types whose JSON is not their Go shape, and the
	// fields' `jsonschema` tags as descriptions) describes the request to
	// the API and MCP clients, and gives the CLI its flags.
	Input       any
	SchemaTypes map[reflect.Type]*jsonschema.Schema
	// Validate decodes a request, checks it under the configuration the
	// service applies (the repository policy) and returns it normalized:
	// every interface refuses through it what the workflow would, naming
	// the field, before anything starts.
	Validate func(body []byte) (json.RawMessage, error)
	// Body is the workflow: it decodes and validates its own input, so
	// that a refused request is recorded like any failure.
	Body engine.Body
	// Progress prints what changed in a progress value since mark (""
	// at first) and returns the new mark; nil prints nothing.
	Progress func(w io.Writer, progress json.RawMessage, mark string) string
	// ProgressIsNotice sends progress to stderr: the result alone goes to
	// stdout (a report), rather than progress being part of it (rounds).
	ProgressIsNotice bool
	// Render prints a result for people in format ("" is the workflow's
	// default); nil prints the JSON.
	Render func(w io.Writer, out json.RawMessage, format string) error
	// Reports names the artifacts that hold the full result per format
	// ("" for the default), when the result itself is cut short.
	Reports map[string]string
	// Incomplete says why a result lacks a part that matters (a security
	// scanner failed), or "": the CLI's exit code follows it. (Any result
	// with "partial": true and "incomplete" reasons is stored as partial.)
	Incomplete func(out json.RawMessage) string
	// Reseed, if set, adapts a recorded step result that a replay reuses
	// in a new run (ultramcp replay): what the old run decided from its own
	// request, and the new one decides again from its own, goes.
	Reseed func(step string, recorded json.RawMessage) (json.RawMessage, error)
}

// PrintMessage is the Progress of a workflow that publishes a "message":
// it prints the message whenever it changes (the mark is the last one).
func PrintMessage(w io.Writer, raw json.RawMessage, last string) string {
	var p struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(raw, &p) == nil && p.Message != "" && p.Message != last {
		fmt.Fprintf(w, "… %s\n", p.Message)
		return p.Message
	}
	return last
}

// Typed makes a Body of a body taking decoded input and returning typed
// output: decode validates the request (naming the field at fault) before
// body runs any step.
func Typed[I, O any](decode func([]byte) (I, error), body func(engine.Context, I) (O, error)) engine.Body {
	return func(c engine.Context, raw json.RawMessage) (json.RawMessage, error) {
		in, err := decodeUTF8(decode, raw)
		if err != nil {
			c.Logger().Warn("rejected input", "err", err)
			return nil, err
		}
		out, err := body(c, in)
		if err != nil {
			return nil, err
		}
		return json.Marshal(out)
	}
}

// ToolName is the MCP tool that starts the workflow.
func (d Definition) ToolName() string {
	if d.Tool != "" {
		return d.Tool
	}
	name := []byte("start_" + d.Name)
	for i, c := range name {
		if c == '-' {
			name[i] = '_'
		}
	}
	return string(name)
}

// InputSchema is the JSON schema of the workflow's request.
func (d Definition) InputSchema() (*jsonschema.Schema, error) {
	if d.Input == nil {
		return &jsonschema.Schema{Type: "object"}, nil
	}
	types := maps.Clone(schemaTypes)
	maps.Copy(types, d.SchemaTypes)
	s, err := jsonschema.ForType(reflect.TypeOf(d.Input), &jsonschema.ForOptions{TypeSchemas: types})
	if err != nil {
		return nil, err
	}
	for _, p := range s.Properties {
		notNull(p)
	}
	return s, nil
}

// Fields are the top-level fields of the workflow's request.
func (d Definition) Fields() []string {
	s, err := d.InputSchema()
	if err != nil {
		return nil
	}
	return slices.Collect(maps.Keys(s.Properties))
}

// notNull drops "null" from a request field's types: an optional field is
// left out, not sent as null, and a client filling a form from the schema
// (the MCP Inspector) reads a single type best.
func notNull(s *jsonschema.Schema) {
	if !slices.Contains(s.Types, "null") {
		return
	}
	s.Types = slices.DeleteFunc(slices.Clone(s.Types), func(t string) bool { return t == "null" })
	if len(s.Types) == 1 {
		s.Type, s.Types = s.Types[0], nil
	}
}

// schemaTypes are the schemas of the common types whose JSON is not their
// Go shape.
var schemaTypes = map[reflect.Type]*jsonschema.Schema{
	reflect.TypeFor[json.RawMessage](): {Description: "any JSON value"},
	reflect.TypeFor[time.Time]():       {Type: "string", Format: "date-time"},
}

// SchemaOf is the JSON schema of T as it marshals: for the API's and the
// MCP tools' answers.
func SchemaOf[T any]() *jsonschema.Schema {
	s, err := jsonschema.For[T](&jsonschema.ForOptions{TypeSchemas: schemaTypes})
	if err != nil {
		panic(fmt.Sprintf("schema of %T: %v", *new(T), err)) // a type with no schema: a bug
	}
	return s
}

// Validator makes a Definition's Validate of a decoder that checks and
// normalizes a request.
func Validator[I any](decode func([]byte) (I, error)) func([]byte) (json.RawMessage, error) {
	return func(body []byte) (json.RawMessage, error) {
		in, err := decodeUTF8(decode, body)
		if err != nil {
			return nil, err
		}
		return json.Marshal(in)
	}
}

// decodeUTF8 refuses a body that is not UTF-8 before decode sees it:
// decoding would replace what is invalid with U+FFFD, and no later check
// could tell.
func decodeUTF8[I any](decode func([]byte) (I, error), body []byte) (I, error) {
	if !utf8.Valid(body) {
		var zero I
		return zero, fault.Invalidf("body", "must be valid UTF-8")
	}
	return decode(body)
}

package workflow

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/ultramcp/durable/engine"
)

// Definition declares one workflow, once: everything the service, the
// engines and the CLI need of it. A workflow package builds its own from
// its dependencies; package workflows lists them all, so adding a workflow
// is one new package and one line there.
type Definition struct {
	Name   string // the Restate service name, as the seed's URLs spell it
	Prefix string // of generated ids: "debate-1a2b…"
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
		in, err := decode(raw)
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

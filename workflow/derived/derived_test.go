package derived

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/ultramcp/durable/engine"
	"github.com/ultramcp/durable/engine/direct"
)

// A derived request's body sees the request without the reserved field,
// and its steps before the step run again return the recorded results,
// each name's in order, without running; the rest run.
func TestSeededStepsDoNotRun(t *testing.T) {
	var ran []string
	var seen json.RawMessage
	body := func(c engine.Context, in json.RawMessage) (json.RawMessage, error) {
		seen = in
		var outs []string
		for _, name := range []string{"round", "round", "round"} {
			out, err := c.Run(engine.Step{Name: name, Fn: func(context.Context) ([]byte, error) {
				ran = append(ran, name)
				return []byte(`"fresh"`), nil
			}})
			if err != nil {
				return nil, err
			}
			outs = append(outs, string(out))
		}
		return json.Marshal(outs)
	}
	req, err := Wrap(json.RawMessage(`{"topic":"t"}`), From{Workflow: "old", Step: "round", Steps: []Step{{Name: "round", Result: json.RawMessage(`"one"`)}, {Name: "round", Result: json.RawMessage(`"two"`)}}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := Body(body)(direct.New(context.Background(), "new", nil), req)
	if err != nil {
		t.Fatal(err)
	}
	if string(seen) != `{"topic":"t"}` {
		t.Errorf("the body saw %s, want the request without %s", seen, Field)
	}
	if string(out) != `["\"one\"","\"two\"","\"fresh\""]` || len(ran) != 1 {
		t.Errorf("out %s, ran %v: want the two recorded results, then one step run", out, ran)
	}
	from, rest, ok, err := Of(req)
	if err != nil || !ok || from.Workflow != "old" || string(rest) != `{"topic":"t"}` {
		t.Errorf("Of: %+v %s %v %v", from, rest, ok, err)
	}
	if _, _, ok, _ := Of(json.RawMessage(`{"topic":"t"}`)); ok {
		t.Error("a plain request derives from nothing")
	}
}

package registry_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/workflow"
	"github.com/ultramcp/durable/workflow/registry"
)

// Every shipped workflow is declared whole: what the CLI, the API and the
// MCP server build from it is there, and its schema says what it accepts.
func TestEveryDefinitionIsComplete(t *testing.T) {
	defs := registry.All(workflow.Deps{})
	var names []string
	for _, def := range defs {
		names = append(names, def.Name)
		if def.Summary == "" || def.Prefix == "" || def.Body == nil || def.Validate == nil || def.Input == nil {
			t.Errorf("%s: incomplete definition", def.Name)
		}
		s, err := def.InputSchema()
		if err != nil {
			t.Fatalf("%s: schema: %v", def.Name, err)
		}
		if s.Type != "object" || len(s.Required) == 0 {
			t.Errorf("%s: schema %+v has no required field", def.Name, s)
		}
		if _, err := s.Resolve(nil); err != nil {
			t.Errorf("%s: schema does not resolve: %v", def.Name, err)
		}
		// An empty request is refused naming a field.
		if _, err := def.Validate([]byte(`{}`)); fault.FieldOf(err) == "" {
			t.Errorf("%s: {} accepted or refused without a field: %v", def.Name, err)
		}
	}
	if got := strings.Join(names, " "); got != "chain-of-debate code-analysis full-analysis security-scan" {
		t.Fatalf("registered: %s", got)
	}
}

// The debate's schema accepts what its decoder accepts: participants as
// names or objects, durations as strings or milliseconds.
func TestDebateSchemaMatchesDecoder(t *testing.T) {
	def, ok := registry.Lookup("chain-of-debate")
	if !ok {
		t.Fatal("chain-of-debate not registered")
	}
	s, err := def.InputSchema()
	if err != nil {
		t.Fatal(err)
	}
	rs, err := s.Resolve(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{
		`{"topic":"t","participants":["a",{"name":"b","model":"offline"}],"rounds":2,"delayBetweenRounds":"1s"}`,
		`{"topic":"t","participants":["a","b"],"delayBetweenRounds":0,"context":{"k":[1]}}`,
	} {
		var v any
		_ = json.Unmarshal([]byte(body), &v)
		if err := rs.Validate(v); err != nil {
			t.Errorf("schema refuses %s: %v", body, err)
		}
		if _, err := def.Validate([]byte(body)); err != nil {
			t.Errorf("decoder refuses %s: %v", body, err)
		}
	}
	var bad any
	_ = json.Unmarshal([]byte(`{"topic":"t","participants":[{"name":"b","colour":"red"}]}`), &bad)
	if rs.Validate(bad) == nil {
		t.Error("schema accepts an unknown participant field")
	}
}

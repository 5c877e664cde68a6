// Package sariftest checks SARIF logs against the official SARIF 2.1.0
// JSON schema (kept in analysis/testdata), for the tests of every package
// that writes SARIF.
package sariftest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Schema is the official SARIF 2.1.0 schema, compiled.
func Schema(t testing.TB) *jsonschema.Schema {
	t.Helper()
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(filepath.Dir(strings.TrimSpace(string(gomod))), "analysis", "testdata", "sarif-2.1.0.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("sarif-2.1.0.json", doc); err != nil {
		t.Fatal(err)
	}
	schema, err := c.Compile("sarif-2.1.0.json")
	if err != nil {
		t.Fatal(err)
	}
	return schema
}

// Validate fails t unless raw is a SARIF 2.1.0 log the schema accepts.
func Validate(t testing.TB, raw []byte) {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatalf("not JSON: %v\n%.300s", err, raw)
	}
	if err := Schema(t).Validate(inst); err != nil {
		t.Fatalf("SARIF does not validate: %v", err)
	}
}

package runs

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ultramcp/durable/client"
	"github.com/ultramcp/durable/config"
	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/internal/stacktest"
	"github.com/ultramcp/durable/service"
	"github.com/ultramcp/durable/store"
	"github.com/ultramcp/durable/workflow"
)

// downStack is the application service of a stack that is not running, with
// a real SQLite store: what it refuses, it refuses before reaching either.
func downStack(t *testing.T) (*Service, config.Config) {
	t.Helper()
	cfg := config.Default()
	cfg.Home = stacktest.Home(t)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := cfg.PrepareHome(); err != nil {
		t.Fatal(err)
	}
	return forStack(cfg, PerCall{Config: cfg}), cfg
}

// forStack is the service over the stack cfg describes, plugged as the CLI
// plugs it.
func forStack(cfg config.Config, stores Stores) *Service {
	deps := service.SubmitDeps(cfg)
	return New(Options{Engine: client.ForStack(cfg), Stores: stores, Checkouts: deps.Checkouts, Deps: deps})
}

func TestSubmitRefusesBeforeAnything(t *testing.T) {
	svc, cfg := downStack(t)
	for _, tc := range []struct {
		workflow, body, id, field string
	}{
		{"nope", `{}`, "", "workflow"},
		{workflow.ChainOfDebate, `{"topic":"t"}`, "", "participants"},
		{workflow.ChainOfDebate, `{"topic":"t","participants":["a","b"]}`, "a/b", "id"},
		{workflow.ChainOfDebate, `{"topic":"t","participants":["a","b"]}`, strings.Repeat("x", MaxIDChars+1), "id"},
		{workflow.CodeAnalysis, `{"repository":"file:///etc"}`, "", "repository"}, // local paths are off by default
		{workflow.SecurityScan, `{"target":"https://169.254.169.254/x.git"}`, "", "target"},
	} {
		_, err := svc.Submit(context.Background(), tc.workflow, []byte(tc.body), tc.id)
		if fault.KindOf(err) != fault.Invalid || fault.FieldOf(err) != tc.field {
			t.Errorf("%s %s: %v, want invalid %s", tc.workflow, tc.body, err, tc.field)
		}
	}
	st, err := store.Open(context.Background(), "", cfg.SQLitePath())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if ws, _ := st.List(context.Background(), store.Filter{}); len(ws) != 0 {
		t.Errorf("refused requests left %d rows", len(ws))
	}
}

// A start Restate does not take is recorded as not started, and said to be
// unavailable (retry), not invalid.
func TestSubmitWithTheStackDown(t *testing.T) {
	svc, cfg := downStack(t)
	_, err := svc.Submit(context.Background(), workflow.ChainOfDebate, []byte(`{"topic":"t","participants":["a","b"]}`), "down-1")
	if fault.KindOf(err) != fault.Unavailable {
		t.Fatalf("stack down: %v, want unavailable", err)
	}
	st, err := store.Open(context.Background(), "", cfg.SQLitePath())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	w, err := st.Get(context.Background(), "down-1")
	if err != nil || w.Status != workflow.StatusNotStarted {
		t.Errorf("row %+v %v, want not-started", w, err)
	}
	if _, err := svc.Status(context.Background(), "down-1"); err != nil {
		t.Errorf("status of a request that never started: %v", err)
	}
}

func TestListChecksItsFilter(t *testing.T) {
	svc, _ := downStack(t)
	for _, f := range []Filter{{Workflow: "nope"}, {Status: "done"}, {Limit: -1}} {
		if _, err := svc.List(context.Background(), f); fault.KindOf(err) != fault.Invalid {
			t.Errorf("%+v: %v, want invalid", f, err)
		}
	}
	if _, err := svc.Purge(context.Background(), -time.Hour); fault.FieldOf(err) != "olderThan" {
		t.Errorf("negative age: %v", err)
	}
}

func TestRenderFormats(t *testing.T) {
	svc, _ := downStack(t)
	res := Result{ID: "r1", Workflow: workflow.ChainOfDebate, Output: []byte(`{"id":"r1","topic":"t","mode":"debate"}`)}
	rep, err := svc.Render(context.Background(), res, FormatJSON)
	if err != nil || rep.ContentType != "application/json" {
		t.Errorf("json: %+v %v", rep, err)
	}
	if _, err := svc.Render(context.Background(), res, FormatSARIF); fault.FieldOf(err) != "format" {
		t.Errorf("a debate as sarif: %v, want refused naming format", err)
	}
	if rep, err := svc.Render(context.Background(), res, ""); err != nil || !strings.HasPrefix(rep.ContentType, "text/plain") || !strings.Contains(string(rep.Body), "t") {
		t.Errorf("default: %+v %v", rep, err)
	}
}

// A service's default budget goes into a request that has none, of a
// workflow that takes one; a request's own budget stands.
func TestDefaultBudget(t *testing.T) {
	cfg := config.Default()
	deps := service.SubmitDeps(cfg)
	svc := New(Options{Deps: deps, MaxCostUSD: 0.5})
	def, err := svc.Definition(workflow.ChainOfDebate)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(svc.withBudget(def, []byte(`{"topic":"t","participants":["a","b"]}`))); !strings.Contains(got, `"budget":{"maxCostUSD":0.5}`) {
		t.Errorf("without a budget: %s", got)
	}
	own := `{"topic":"t","participants":["a","b"],"budget":{"maxCalls":3}}`
	if got := string(svc.withBudget(def, []byte(own))); got != own {
		t.Errorf("its own budget: %s", got)
	}
	scan, _ := svc.Definition(workflow.SecurityScan)
	if got := string(svc.withBudget(scan, []byte(`{"target":"x"}`))); got != `{"target":"x"}` {
		t.Errorf("a scan, which calls no model: %s", got)
	}
}

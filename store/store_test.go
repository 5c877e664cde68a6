package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/store"
	"github.com/ultramcp/durable/workflow"
	"github.com/ultramcp/durable/workflow/fullanalysis"
)

// backends opens a fresh store on every backend: SQLite always, PostgreSQL
// when ULTRAMCP_TEST_POSTGRES_URL names a server (each test gets its own
// database there).
func backends(t *testing.T) map[string]*store.Store {
	t.Helper()
	ctx := context.Background()
	out := map[string]*store.Store{}
	lite, err := store.Open(ctx, "", filepath.Join(t.TempDir(), "test.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lite.Close() })
	out["sqlite"] = lite
	if pg := os.Getenv("ULTRAMCP_TEST_POSTGRES_URL"); pg != "" {
		out["postgres"] = freshPostgres(t, pg)
	}
	return out
}

func freshPostgres(t *testing.T, serverURL string) *store.Store {
	t.Helper()
	admin, err := sql.Open("pgx", serverURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	name := fmt.Sprintf("conformance_%d", time.Now().UnixNano())
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	dbURL := replaceDatabase(serverURL, name)
	s, err := store.Open(context.Background(), dbURL, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		if db, err := sql.Open("pgx", serverURL); err == nil {
			db.Exec("DROP DATABASE " + name + " WITH (FORCE)")
			db.Close()
		}
	})
	return s
}

// replaceDatabase swaps the database of a postgres:// URL.
func replaceDatabase(raw, name string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.Path = "/" + name
	return u.String()
}

func forEach(t *testing.T, f func(t *testing.T, s *store.Store)) {
	for name, s := range backends(t) {
		t.Run(name, func(t *testing.T) { f(t, s) })
	}
}

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func TestLifecycle(t *testing.T) {
	forEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		must(t, submit(ctx, s, "w1", workflow.ChainOfDebate, []byte(`{"topic":"x"}`), t0))
		w, err := s.Get(ctx, "w1")
		must(t, err)
		if w.Status != workflow.StatusPending {
			t.Errorf("status = %s, want pending", w.Status)
		}
		must(t, s.Started(ctx, "w1", workflow.ChainOfDebate, []byte(`{"topic":"x"}`), t0.Add(time.Second)))
		must(t, s.Started(ctx, "w1", workflow.ChainOfDebate, []byte(`{"topic":"x"}`), t0.Add(2*time.Second))) // replayed
		w, _ = s.Get(ctx, "w1")
		if w.Status != workflow.StatusRunning || !w.CreatedAt.Equal(t0) {
			t.Errorf("after start: status %s created %s", w.Status, w.CreatedAt)
		}
		must(t, s.Finished(ctx, "w1", workflow.ChainOfDebate, workflow.StatusCompleted, []byte(`{"ok":true}`), "", t0.Add(4*time.Second)))
		must(t, s.Started(ctx, "w1", workflow.ChainOfDebate, nil, t0.Add(5*time.Second))) // late replay must not reopen it
		w, _ = s.Get(ctx, "w1")
		if w.Status != workflow.StatusCompleted || w.Output != `{"ok":true}` || w.CompletedAt == nil || *w.DurationMS != 3000 {
			t.Errorf("after finish: %+v", w)
		}
		must(t, s.Started(ctx, "w2", workflow.ChainOfDebate, nil, t0))
		must(t, s.Finished(ctx, "w2", workflow.ChainOfDebate, workflow.StatusFailed, nil, "openai: 401 unauthorized", t0.Add(time.Second)))
		w, _ = s.Get(ctx, "w2")
		if w.Status != workflow.StatusFailed || w.Error != "openai: 401 unauthorized" || w.Output != "" {
			t.Errorf("failed: %+v", w)
		}
		if _, err := s.Get(ctx, "nope"); fault.KindOf(err) != fault.NotFound {
			t.Errorf("missing workflow: %v", err)
		}
	})
}

// Starting never destroys: a start that fails changes only the pending row
// it made; the engine's word brings an open row in line, never a finished
// one; finishing a workflow the store never saw is an error.
func TestFailedStartsAndReconciliation(t *testing.T) {
	forEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		must(t, s.Started(ctx, "done", workflow.ChainOfDebate, nil, t0))
		must(t, s.Finished(ctx, "done", workflow.ChainOfDebate, workflow.StatusCompleted, []byte(`{"kept":true}`), "", t0.Add(time.Second)))
		must(t, submit(ctx, s, "done", workflow.ChainOfDebate, nil, t0.Add(2*time.Second)))
		must(t, s.NotStarted(ctx, "done", "could not reach Restate", t0.Add(2*time.Second)))
		must(t, s.Reconciled(ctx, "done", workflow.StatusFailed, nil, "vanished", t0.Add(3*time.Second)))
		if w, _ := s.Get(ctx, "done"); w.Status != workflow.StatusCompleted || w.Output != `{"kept":true}` || w.Error != "" {
			t.Errorf("a finished workflow changed: %+v", w)
		}
		must(t, submit(ctx, s, "new", workflow.ChainOfDebate, nil, t0))
		must(t, s.NotStarted(ctx, "new", "could not reach Restate", t0))
		if w, _ := s.Get(ctx, "new"); w.Status != workflow.StatusNotStarted || w.Error != "could not reach Restate" {
			t.Errorf("not started: %+v", w)
		}
		must(t, s.Started(ctx, "new", workflow.ChainOfDebate, nil, t0.Add(time.Second))) // a later start runs it
		must(t, s.Reconciled(ctx, "new", workflow.StatusPaused, nil, "paused after 200 attempts", t0.Add(2*time.Second)))
		if w, _ := s.Get(ctx, "new"); w.Status != workflow.StatusPaused || w.CompletedAt != nil {
			t.Errorf("paused: %+v", w)
		}
		must(t, s.Reconciled(ctx, "new", workflow.StatusFailed, nil, "killed", t0.Add(3*time.Second)))
		if w, _ := s.Get(ctx, "new"); w.Status != workflow.StatusFailed || w.Error != "killed" || w.CompletedAt == nil {
			t.Errorf("killed: %+v", w)
		}
		if err := s.Finished(ctx, "never-seen", workflow.ChainOfDebate, workflow.StatusCompleted, nil, "", t0); err == nil || !strings.Contains(err.Error(), "ULTRAMCP_DATABASE_URL") {
			t.Errorf("finishing an unknown workflow: %v", err)
		}
	})
}

// A workflow's children are linked by role, once, and listed with their
// status.
func TestChildrenLinked(t *testing.T) {
	forEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		must(t, s.Started(ctx, "p", fullanalysis.Name, nil, t0))
		must(t, s.Started(ctx, "p-analysis", workflow.CodeAnalysis, nil, t0))
		kids := []workflow.Child{{ID: "p-analysis", Role: "analysis", Workflow: workflow.CodeAnalysis}, {ID: "p-scan", Role: "scan", Workflow: workflow.SecurityScan}}
		must(t, s.LinkChildren(ctx, "p", kids, t0))
		must(t, s.LinkChildren(ctx, "p", kids, t0.Add(time.Second))) // replayed
		got, err := s.Children(ctx, "p")
		must(t, err)
		if len(got) != 2 || got[0].ID != "p-analysis" || got[0].Status != workflow.StatusRunning || got[1].Role != "scan" || got[1].Status != "" {
			t.Errorf("children = %+v", got)
		}
	})
}

func TestExecutionsAreIdempotent(t *testing.T) {
	forEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		execs := []workflow.Execution{
			{WorkflowID: "w1", AgentName: "alice", Step: "round-1/alice", Status: "completed", DurationMS: 100, TokensIn: 10, TokensOut: 5, CostUSD: 0.001, CreatedAt: t0},
			{WorkflowID: "w1", AgentName: "bob", Step: "round-1/bob", Status: "completed", DurationMS: 300, TokensIn: 12, TokensOut: 6, CreatedAt: t0},
		}
		must(t, s.RecordExecutions(ctx, execs))
		execs[1].Attempt = 2
		must(t, s.RecordExecutions(ctx, execs)) // a replayed record step
		got, err := s.Executions(ctx, "w1")
		must(t, err)
		if len(got) != 2 {
			t.Fatalf("rows = %d, want 2", len(got))
		}
		for _, e := range got {
			if e.Step == "round-1/bob" && e.Attempt != 2 {
				t.Errorf("bob attempt = %d", e.Attempt)
			}
			if e.Step == "round-1/alice" && (e.CostUSD != 0.001 || e.TokensIn != 10 || !e.CreatedAt.Equal(t0)) {
				t.Errorf("alice = %+v", e)
			}
		}
	})
}

func TestArtifactsAreContentAddressed(t *testing.T) {
	forEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		content := []byte(`{"rounds":[1,2,3]}`)
		a, err := s.PutArtifact(ctx, "w1", "transcript.json", content)
		must(t, err)
		b, err := s.PutArtifact(ctx, "w2", "transcript.json", content)
		must(t, err)
		if a.ID != b.ID || len(a.ID) != 64 || a.Bytes != len(content) {
			t.Errorf("refs %+v %+v", a, b)
		}
		got, err := s.Artifact(ctx, a.ID)
		must(t, err)
		if string(got) != string(content) {
			t.Errorf("content = %q", got)
		}
		named, err := s.NamedArtifact(ctx, "w2", "transcript.json")
		if err != nil || string(named) != string(content) {
			t.Errorf("named artifact: %q, %v", named, err)
		}
		if _, err := s.NamedArtifact(ctx, "w2", "other"); fault.KindOf(err) != fault.NotFound {
			t.Errorf("missing named artifact: %v", err)
		}
		if _, err := s.Artifact(ctx, "00"); fault.KindOf(err) != fault.NotFound {
			t.Errorf("missing artifact: %v", err)
		}
	})
}

func TestListAndPurge(t *testing.T) {
	forEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		old, recent := t0.Add(-40*24*time.Hour), t0
		must(t, s.Started(ctx, "old-done", workflow.ChainOfDebate, nil, old))
		must(t, s.Finished(ctx, "old-done", workflow.ChainOfDebate, workflow.StatusCompleted, []byte(`{}`), "", old))
		must(t, s.Started(ctx, "old-running", workflow.ChainOfDebate, nil, old))
		must(t, s.Started(ctx, "new-failed", workflow.CodeAnalysis, nil, recent))
		must(t, s.Finished(ctx, "new-failed", workflow.CodeAnalysis, workflow.StatusFailed, nil, "boom", recent))
		must(t, s.RecordExecutions(ctx, []workflow.Execution{{WorkflowID: "old-done", AgentName: "a", Step: "s", Status: "completed", CreatedAt: old}}))
		_, err := s.PutArtifact(ctx, "old-done", "t", []byte("only old"))
		must(t, err)
		shared, err := s.PutArtifact(ctx, "old-done", "u", []byte("shared"))
		must(t, err)
		_, err = s.PutArtifact(ctx, "new-failed", "u", []byte("shared"))
		must(t, err)

		all, err := s.List(ctx, store.Filter{})
		must(t, err)
		if len(all) != 3 || all[0].ID != "new-failed" {
			t.Errorf("list = %v", ids(all))
		}
		failed, _ := s.List(ctx, store.Filter{Status: workflow.StatusFailed})
		debates, _ := s.List(ctx, store.Filter{Workflow: workflow.ChainOfDebate})
		if len(failed) != 1 || len(debates) != 2 {
			t.Errorf("filters: failed %v debates %v", ids(failed), ids(debates))
		}

		p, err := s.Purge(ctx, t0.Add(-30*24*time.Hour))
		must(t, err)
		if p.Workflows != 1 || p.Executions != 1 || p.Artifacts != 1 {
			t.Errorf("purged %+v, want 1 workflow, 1 execution, 1 artifact", p)
		}
		left, _ := s.List(ctx, store.Filter{})
		if len(left) != 2 {
			t.Errorf("left %v: a running workflow is never purged", ids(left))
		}
		if _, err := s.Artifact(ctx, shared.ID); err != nil {
			t.Errorf("an artifact still linked was purged: %v", err)
		}
	})
}

func ids(ws []store.Workflow) []string {
	var out []string
	for _, w := range ws {
		out = append(out, w.ID)
	}
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// A call's answer is kept for the run that made it: Answers finds it for
// that run only, a later write of the row without an answer keeps it, and
// progress keeps the latest publication however the writes land.
func TestAnswersAndProgress(t *testing.T) {
	forEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		must(t, s.Started(ctx, "w1", workflow.ChainOfDebate, nil, t0))
		row := workflow.Execution{WorkflowID: "w1", AgentName: "alice", Step: "round-1/alice", Status: "completed", CreatedAt: t0, RunID: "run-a", Answer: []byte(`{"position":"yes"}`)}
		must(t, s.RecordExecutions(ctx, []workflow.Execution{row}))
		row.RunID, row.Answer = "", nil // the row written again from the journal
		must(t, s.RecordExecutions(ctx, []workflow.Execution{row}))
		got, err := s.Answers(ctx, "w1", "run-a")
		must(t, err)
		if string(got["round-1/alice"]) != `{"position":"yes"}` || len(got) != 1 {
			t.Errorf("answers of run-a = %v", got)
		}
		if other, err := s.Answers(ctx, "w1", "run-b"); err != nil || len(other) != 0 {
			t.Errorf("answers of another run = %v, %v", other, err)
		}
		must(t, s.Progress(ctx, "w1", 2, []byte(`{"round":2}`)))
		must(t, s.Progress(ctx, "w1", 1, []byte(`{"round":1}`))) // late
		must(t, s.Progress(ctx, "w1", 2, []byte(`{"round":2}`))) // replayed
		p, err := s.PublishedProgress(ctx, "w1")
		must(t, err)
		w, _ := s.Get(ctx, "w1")
		if string(p) != `{"round":2}` || string(w.Progress) != `{"round":2}` {
			t.Errorf("progress = %s, row %s", p, w.Progress)
		}
		if p, err := s.PublishedProgress(ctx, "nope"); err != nil || p != nil {
			t.Errorf("progress of a workflow with none = %s, %v", p, err)
		}
	})
}

// Warming the store prepares every write and leaves nothing behind.
func TestWarmLeavesNothing(t *testing.T) {
	forEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		must(t, s.Warm(ctx))
		if ws, err := s.List(ctx, store.Filter{}); err != nil || len(ws) != 0 {
			t.Errorf("after warm-up: %v, %v", ws, err)
		}
		if ex, err := s.Executions(ctx, "ultramcp-warm-up"); err != nil || len(ex) != 0 {
			t.Errorf("rows after warm-up: %v, %v", ex, err)
		}
		if _, err := s.NamedArtifact(ctx, "ultramcp-warm-up", "warm-up"); fault.KindOf(err) != fault.NotFound {
			t.Errorf("artifact after warm-up: %v", err)
		}
	})
}

// submit records a submission with no limit on what is open.
func submit(ctx context.Context, s *store.Store, id, wf string, input []byte, at time.Time) error {
	_, err := s.Submitted(ctx, id, wf, input, at, 0)
	return err
}

// An id is one workflow's: another type, or the same type with another
// input, is a Conflict, and the first row is untouched; the open limit is
// counted and recorded together, so concurrent submissions never pass it.
func TestSubmissionsOwnTheirIDs(t *testing.T) {
	forEach(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		fresh, err := s.Submitted(ctx, "own-1", workflow.ChainOfDebate, []byte(`{"topic":"x"}`), t0, 0)
		if err != nil || !fresh {
			t.Fatalf("first: %v %v", fresh, err)
		}
		if fresh, err := s.Submitted(ctx, "own-1", workflow.ChainOfDebate, []byte(`{"topic":"x"}`), t0, 0); err != nil || fresh {
			t.Errorf("the same again: %v %v", fresh, err)
		}
		if _, err := s.Submitted(ctx, "own-1", workflow.CodeAnalysis, []byte(`{"repository":"r"}`), t0, 0); fault.KindOf(err) != fault.Conflict || !strings.Contains(err.Error(), workflow.ChainOfDebate) {
			t.Errorf("another type: %v", err)
		}
		if _, err := s.Submitted(ctx, "own-1", workflow.ChainOfDebate, []byte(`{"topic":"y"}`), t0, 0); fault.KindOf(err) != fault.Conflict {
			t.Errorf("another body: %v", err)
		}
		if err := s.Started(ctx, "own-1", workflow.CodeAnalysis, []byte(`{"repository":"r"}`), t0); fault.KindOf(err) != fault.Conflict {
			t.Errorf("another type's start: %v", err)
		}
		must(t, s.Started(ctx, "own-1", workflow.ChainOfDebate, []byte(`{"topic":"x"}`), t0))
		must(t, s.Finished(ctx, "own-1", workflow.ChainOfDebate, workflow.StatusCompleted, []byte(`{"ok":1}`), "", t0.Add(time.Second)))
		if err := s.Finished(ctx, "own-1", workflow.CodeAnalysis, workflow.StatusFailed, nil, "scan failed", t0.Add(2*time.Second)); err == nil {
			t.Error("another type finished the debate's row")
		}
		if w, _ := s.Get(ctx, "own-1"); w.Workflow != workflow.ChainOfDebate || w.Input != `{"topic":"x"}` || w.Status != workflow.StatusCompleted || w.Output != `{"ok":1}` {
			t.Errorf("the first row changed: %+v", w)
		}

		const maxOpen, n = 5, 200
		var wg sync.WaitGroup
		var admitted, busy atomic.Int32
		for i := range n {
			wg.Go(func() {
				fresh, err := s.Submitted(ctx, fmt.Sprintf("race-%d", i), workflow.ChainOfDebate, []byte(`{}`), t0, maxOpen)
				switch {
				case err == nil && fresh:
					admitted.Add(1)
				case errors.Is(err, store.ErrBusy):
					busy.Add(1)
				default:
					t.Errorf("submission %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		if open, err := s.CountOpen(ctx); err != nil || open != maxOpen || admitted.Load() != maxOpen || int(busy.Load()) != n-maxOpen {
			t.Errorf("%d admitted, %d busy, %d open (%v); want %d open", admitted.Load(), busy.Load(), open, err, maxOpen)
		}
	})
}

// Two stores on one SQLite file (the CLI's and the service's): a
// submission, which reads before it writes, waits for the other's writes
// instead of failing with a busy snapshot.
func TestSubmissionsBesideAnotherWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.db")
	ctx := context.Background()
	a, err := store.Open(ctx, "", path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := store.Open(ctx, "", path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := a.Started(ctx, fmt.Sprintf("other-%d", i), workflow.ChainOfDebate, []byte(`{}`), t0); err != nil {
				t.Errorf("the other writer: %v", err)
				return
			}
		}
	})
	for i := range 200 {
		if _, err := b.Submitted(ctx, fmt.Sprintf("sub-%d", i), workflow.ChainOfDebate, []byte(`{}`), t0, 0); err != nil {
			t.Errorf("submission %d beside another writer: %v", i, err)
			break
		}
	}
	close(stop)
	wg.Wait()
}

package dashboard

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ultramcp/durable/runs"
	"github.com/ultramcp/durable/store"
	"github.com/ultramcp/durable/workflow"
)

// withWorkflows is the dashboard over a real SQLite store holding n
// debates, one a second apart.
func withWorkflows(t testing.TB, n int) http.Handler {
	t.Helper()
	st, err := store.Open(context.Background(), "", filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	at := time.Now().Add(-time.Duration(n) * time.Second)
	for i := range n {
		if _, err := st.Submitted(context.Background(), fmt.Sprintf("debate-%04d", i), workflow.ChainOfDebate, []byte(`{"topic":"t"}`), at.Add(time.Duration(i)*time.Second), 0); err != nil {
			t.Fatal(err)
		}
	}
	mux := http.NewServeMux()
	New(runs.New(runs.Options{Stores: runs.Shared{Store: st}})).Register(mux)
	return mux
}

// The list pages through 1,000 workflows, newest first, 50 a page.
func TestListPaginates(t *testing.T) {
	h := withWorkflows(t, 1000)
	seen := map[string]bool{}
	next := "/"
	pages := 0
	for next != "" {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", next, nil))
		if w.Code != 200 {
			t.Fatalf("%s: %d", next, w.Code)
		}
		body := w.Body.String()
		if pages == 0 && !strings.Contains(body, "debate-0999") {
			t.Fatal("the first page does not start with the newest")
		}
		rows := strings.Count(body, `<tr data-id=`)
		for i := range 1000 {
			if id := fmt.Sprintf(`data-id="debate-%04d"`, i); strings.Contains(body, id) {
				if seen[id] {
					t.Fatalf("%s on two pages", id)
				}
				seen[id] = true
			}
		}
		if rows > PageSize {
			t.Fatalf("%d rows on a page", rows)
		}
		next = ""
		if i := strings.Index(body, `<a href="/?`); i >= 0 {
			rest := body[i+len(`<a href="`):]
			next = strings.ReplaceAll(rest[:strings.IndexByte(rest, '"')], "&amp;", "&")
		}
		pages++
	}
	if len(seen) != 1000 || pages != 20 {
		t.Errorf("%d workflows over %d pages, want 1000 over 20", len(seen), pages)
	}
}

// BenchmarkListPage is the list page's time with 1,000 workflows in the
// store (docs/benchmarks.md).
func BenchmarkListPage(b *testing.B) {
	h := withWorkflows(b, 1000)
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}

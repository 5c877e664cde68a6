package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ultramcp/durable/store"
)

// The writes of the previous schema's release (testdata) run on this
// build's schema, on both backends: while the newer version drains the
// older one, both write to one store.
func TestPreviousReleaseWritesStillWork(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "writes-schema-4.sql"))
	if err != nil {
		t.Fatal(err)
	}
	var stmts []string
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "--") {
			stmts = append(stmts, line)
		}
	}
	type backend struct{ driver, dsn, url, path string }
	path := filepath.Join(t.TempDir(), "compat.db")
	backends := map[string]backend{"sqlite": {driver: "sqlite", dsn: "file:" + path, path: path}}
	if server := os.Getenv("ULTRAMCP_TEST_POSTGRES_URL"); server != "" {
		admin, err := sql.Open("pgx", server)
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("compat_%d", time.Now().UnixNano())
		if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { admin.Exec("DROP DATABASE " + name + " WITH (FORCE)"); admin.Close() })
		u := replaceDatabase(server, name)
		backends["postgres"] = backend{driver: "pgx", dsn: u, url: u}
	}
	for name, be := range backends {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s, err := store.Open(ctx, be.url, be.path) // migrates to this build's schema
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			db, err := sql.Open(be.driver, be.dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			for _, q := range stmts {
				if _, err := db.ExecContext(ctx, q); err != nil {
					t.Errorf("a previous release's write fails on this schema: %v\n%s", err, q)
				}
			}
			w, err := s.Get(ctx, "compat-1")
			if err != nil || w.Status != "completed" || w.Output != `{"ok":true}` {
				t.Errorf("read back: %+v %v", w, err)
			}
			if execs, err := s.Executions(ctx, "compat-1"); err != nil || len(execs) != 1 {
				t.Errorf("executions: %v %v", execs, err)
			}
		})
	}
}

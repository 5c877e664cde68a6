package registry_test

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ultramcp/durable/analysis/repo"
	"github.com/ultramcp/durable/engine"
	"github.com/ultramcp/durable/engine/replay"
	"github.com/ultramcp/durable/internal/repotest"
	"github.com/ultramcp/durable/llm"
	"github.com/ultramcp/durable/llm/offline"
	"github.com/ultramcp/durable/store"
	"github.com/ultramcp/durable/workflow"
	"github.com/ultramcp/durable/workflow/registry"
	"github.com/ultramcp/durable/workflow/writebehind"
)

var update = flag.Bool("update", false, "write the journals' golden files anew")

// The journal's shape is a contract with every workflow in flight: Restate
// replays a journal on the code of the deployment it started on, and up
// keeps that deployment running until it drains, but a change of the shape
// means the new code could not take over an old run (upgrade-workflow, a
// crash on a host that lost the old copy). Each workflow runs as the service
// runs it (tracked in a real store) on the direct engine with the offline
// model and fixed inputs, and the names and kinds
// of its commands are compared with testdata/journals/<workflow>.golden. A
// change that alters them must update the file in the same commit (go test
// ./workflow/registry -run Journal -update), so that review sees it.
func TestJournalShapes(t *testing.T) {
	parent := t.TempDir()
	r := repotest.Build(t, parent)
	models := llm.NewRouter(llm.Ref{Provider: "offline"}, &offline.Provider{})
	cache := &repo.Cache{Dir: filepath.Join(parent, "cache"), Policy: repo.Policy{AllowLocal: true, MaxBytes: 50 << 20, CloneTimeout: time.Minute, HistoryDepth: 50}}
	// The store on, as the service runs them: a debate's round is then
	// one step, its answers in the store.
	st, err := store.Open(context.Background(), "", filepath.Join(parent, "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	bodies := map[string]engine.Body{}
	defs := registry.All(workflow.Deps{Models: models, Records: st, Checkouts: cache, VulnDB: "file://" + t.TempDir()})
	for _, def := range defs {
		bodies[def.Name] = writebehind.Tracked(st, def.Name, def.Body)
	}
	repoURL := "file://" + r.Dir
	inputs := map[string]string{
		"chain-of-debate": `{"topic":"Adopt Go?","participants":["architect","skeptic","pragmatist"],"rounds":2,"delayBetweenRounds":0}`,
		"code-analysis":   `{"repository":"` + repoURL + `","analysisType":"all"}`,
		"security-scan":   `{"target":"` + repoURL + `"}`,
		"full-analysis":   `{"repository":"` + repoURL + `","includeDebate":true}`,
	}
	for _, def := range defs {
		t.Run(def.Name, func(t *testing.T) {
			in, ok := inputs[def.Name]
			if !ok {
				t.Fatalf("no fixed input for %s: add one, and its golden file", def.Name)
			}
			got, err := replay.Journal(context.Background(), "journal-"+def.Name, bodies, func(c engine.Context) (json.RawMessage, error) {
				return bodies[def.Name](c, json.RawMessage(in))
			})
			if err != nil {
				t.Fatalf("%s failed: %v", def.Name, err)
			}
			text := strings.Join(got, "\n") + "\n"
			golden := filepath.Join("testdata", "journals", def.Name+".golden")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v: run go test ./workflow/registry -run Journal -update", err)
			}
			if string(want) != text {
				t.Errorf("the journal of %s changed shape: workflows in flight on the old code could not be replayed on this one.\nIf that is meant, update %s in the same commit (-update) and say so in the change.\nwant:\n%s\ngot:\n%s", def.Name, golden, want, text)
			}
		})
	}
}

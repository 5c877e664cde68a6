package fullanalysis_test

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ultramcp/durable/analysis/repo"
	"github.com/ultramcp/durable/engine"
	"github.com/ultramcp/durable/engine/replay"
	"github.com/ultramcp/durable/internal/repotest"
	"github.com/ultramcp/durable/llm"
	"github.com/ultramcp/durable/llm/offline"
	"github.com/ultramcp/durable/workflow"
	"github.com/ultramcp/durable/workflow/fullanalysis"
	"github.com/ultramcp/durable/workflow/registry"
)

// The meta-workflow replays as it ran, its children included, and its
// recommendations (derived from the findings with the offline provider)
// cite findings by rule and file:line.
func TestFullAnalysisReplaysAndCitesFindings(t *testing.T) {
	parent := t.TempDir()
	r := repotest.Build(t, parent)
	models := llm.NewRouter(llm.Ref{Provider: "offline"}, &offline.Provider{})
	cache := &repo.Cache{Dir: filepath.Join(parent, "cache"), Policy: repo.Policy{AllowLocal: true, MaxBytes: 50 << 20, CloneTimeout: time.Minute, HistoryDepth: 50}}
	children := map[string]engine.Body{}
	for _, def := range registry.All(workflow.Deps{Models: models, Checkouts: cache, VulnDB: "file://" + t.TempDir()}) {
		children[def.Name] = def.Body
	}
	f := &fullanalysis.FullAnalysis{Models: models}
	res, err := replay.CheckCalling(context.Background(), "fa", children, func(c engine.Context) (fullanalysis.Result, error) {
		return f.Run(c, fullanalysis.Input{Repository: "file://" + r.Dir})
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Children["analysis"] != "fa-analysis" || res.Children["scan"] != "fa-scan" || res.Children["debate"] != "fa-debate" {
		t.Errorf("children %v", res.Children)
	}
	if res.Debate == nil || !res.Debate.Simulated || res.RecommendationsFrom != "findings" || len(res.Recommendations) == 0 {
		t.Fatalf("result %+v", res)
	}
	known := map[string]bool{}
	for _, fd := range res.TopFindings {
		known[fd.RuleID+" "+fd.File+":"+strconv.Itoa(fd.Line)] = true
	}
	for _, rec := range res.Recommendations {
		for _, a := range rec.Addresses {
			if !known[a] {
				t.Errorf("%q cites %q", rec.Title, a)
			}
		}
	}
	if md := fullanalysis.Markdown(res); !strings.Contains(md, "## Recommendations (from findings)") || strings.Contains(md, repotest.TreeAWSKey) {
		t.Errorf("markdown:\n%s", md)
	}
}

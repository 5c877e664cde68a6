package codeanalysis

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/ultramcp/durable/analysis"
	"github.com/ultramcp/durable/analysis/repo"
	"github.com/ultramcp/durable/engine"
	"github.com/ultramcp/durable/engine/replay"
	"github.com/ultramcp/durable/internal/repotest"
	"github.com/ultramcp/durable/llm"
	"github.com/ultramcp/durable/llm/offline"
)

// Both workflows replay as they ran: every value that reaches a journaled
// command (progress with the scanners' durations, the report) comes from a
// step, not from a clock or the configuration read in the body.
func TestAnalysesReplayDeterministically(t *testing.T) {
	parent := t.TempDir()
	r := repotest.Build(t, parent)
	a := &Analyzer{
		Cache:  &repo.Cache{Dir: filepath.Join(parent, "cache"), Policy: repo.Policy{AllowLocal: true, MaxBytes: 50 << 20, CloneTimeout: time.Minute, HistoryDepth: 50}},
		Models: llm.NewRouter(llm.Ref{Provider: "offline"}, &offline.Provider{}),
		VulnDB: "file://" + t.TempDir(), // an empty local database: tests reach no other site
	}
	rep, err := replay.Check(context.Background(), "ca", func(c engine.Context) (analysis.Report, error) {
		return a.RunAnalysis(c, Input{Repository: "file://" + r.Dir, AnalysisType: TypeAll})
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Scanners) != 6 || len(rep.Findings) == 0 || rep.Partial {
		t.Fatalf("scanners %+v, %d findings", rep.Scanners, len(rep.Findings))
	}
	if _, err := replay.Check(context.Background(), "ss", func(c engine.Context) (analysis.Report, error) {
		return a.RunScan(c, ScanInput{Target: "file://" + r.Dir})
	}); err != nil {
		t.Fatal(err)
	}
	// The policy is applied in the resolve step: refused there, journaled.
	strict := &Analyzer{Cache: &repo.Cache{Dir: a.Cache.Dir, Policy: repo.Policy{}}, Models: a.Models}
	_, err = replay.Check(context.Background(), "refused", func(c engine.Context) (analysis.Report, error) {
		return strict.RunScan(c, ScanInput{Target: "file://" + r.Dir})
	})
	if err == nil || err.Error() != "target: local repositories are not allowed (set ULTRAMCP_ALLOW_LOCAL_REPOS=true)" {
		t.Errorf("err = %v", err)
	}
}

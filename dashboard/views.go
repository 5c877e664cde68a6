package dashboard

import (
	"encoding/json"
	"maps"
	"slices"
	"sort"

	"github.com/ultramcp/durable/analysis"
	"github.com/ultramcp/durable/runs"
	"github.com/ultramcp/durable/workflow"
	"github.com/ultramcp/durable/workflow/debate"
	"github.com/ultramcp/durable/workflow/fullanalysis"
)

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// debateView is a debate as its page shows it: the rounds done (from the
// result, or while it runs from its progress), how each participant's
// position moved, the vote and the synthesis.
type debateView struct {
	Topic      string
	Rounds     []debate.Round
	Of         int // rounds asked for
	Moves      []move
	Result     *debate.Result
	Message    string
	Incomplete []string
}

// move is one participant's positions round by round.
type move struct {
	Participant string
	Positions   []string
	Changed     bool
}

// analysisView is a code analysis or a security scan.
type analysisView struct {
	Report     analysis.Report
	Groups     []severityGroup
	Vulns      []analysis.Finding
	MaxLines   int64
	Functions  []analysis.FunctionComplexity
	Incomplete []string
}

type severityGroup struct {
	Severity string
	Findings []analysis.Finding
}

// fullView is a full-analysis: its children, its approval, its
// recommendations with the findings they cite.
type fullView struct {
	Result   fullanalysis.Result
	Children []childRow
}

type childRow struct {
	Role, ID, Workflow, Status string
}

// view decodes a run's output (or, while it runs, its progress) for its
// kind's part of the page.
func view(st runs.Status, output json.RawMessage) (string, any) {
	switch st.Workflow {
	case workflow.ChainOfDebate:
		return "debate", debateOf(st, output)
	case workflow.CodeAnalysis, workflow.SecurityScan:
		var rep analysis.Report
		if output == nil || json.Unmarshal(output, &rep) != nil {
			return "", nil
		}
		return "analysis", analysisOf(rep)
	case fullanalysis.Name:
		v := fullView{}
		if output != nil {
			_ = json.Unmarshal(output, &v.Result)
		}
		for _, c := range st.Children {
			v.Children = append(v.Children, childRow{Role: c.Role, ID: c.ID, Workflow: c.Workflow, Status: c.Status})
		}
		return "full", v
	}
	return "", nil
}

func debateOf(st runs.Status, output json.RawMessage) debateView {
	var v debateView
	if st.Record != nil {
		var in struct {
			Topic string `json:"topic"`
		}
		_ = json.Unmarshal([]byte(st.Record.Input), &in)
		v.Topic = in.Topic
	}
	var res debate.Result
	if output != nil && json.Unmarshal(output, &res) == nil {
		v.Result, v.Rounds, v.Of, v.Incomplete = &res, res.Rounds, len(res.Rounds), res.Incomplete
	} else {
		var p debate.Progress
		if json.Unmarshal(st.Progress, &p) == nil {
			v.Rounds, v.Of, v.Message = p.CompletedRounds, p.Rounds, p.Message
		}
	}
	byName := map[string]*move{}
	var order []string
	for _, r := range v.Rounds {
		for _, resp := range r.Responses {
			m := byName[resp.Participant]
			if m == nil {
				m = &move{Participant: resp.Participant}
				byName[resp.Participant] = m
				order = append(order, resp.Participant)
			}
			if n := len(m.Positions); n > 0 && m.Positions[n-1] != resp.Position {
				m.Changed = true
			}
			m.Positions = append(m.Positions, resp.Position)
		}
	}
	for _, name := range order {
		v.Moves = append(v.Moves, *byName[name])
	}
	return v
}

func analysisOf(rep analysis.Report) analysisView {
	v := analysisView{Report: rep, Incomplete: rep.Incomplete}
	by := map[string][]analysis.Finding{}
	for _, f := range rep.Findings {
		if f.Module != "" {
			v.Vulns = append(v.Vulns, f)
			continue
		}
		by[f.Severity] = append(by[f.Severity], f)
	}
	sevs := sortedKeys(by)
	sort.SliceStable(sevs, func(i, j int) bool { return analysis.SeverityRank(sevs[i]) < analysis.SeverityRank(sevs[j]) })
	for _, s := range sevs {
		v.Groups = append(v.Groups, severityGroup{Severity: s, Findings: by[s]})
	}
	if m := rep.Metrics; m != nil {
		for _, l := range m.Languages {
			v.MaxLines = max(v.MaxLines, l.Code)
		}
		v.Functions = slices.Clone(m.Functions)
		sort.SliceStable(v.Functions, func(i, j int) bool { return v.Functions[i].Cyclomatic > v.Functions[j].Cyclomatic })
		v.Functions = v.Functions[:min(len(v.Functions), 10)]
	}
	return v
}

// Anchor is the id a finding's row has on a page, which a recommendation
// citing it ("rule file:line") links to.
func Anchor(cite string) string {
	b := []byte("f-")
	for _, c := range []byte(cite) {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			b = append(b, c)
		} else {
			b = append(b, '-')
		}
	}
	return string(b)
}

func init() {
	funcs["anchor"] = Anchor
	funcs["cite"] = fullanalysis.Cite
}

// Package fullanalysis is the meta-workflow of the seed ("Meta-Workflow de
// Orquestación Completa"): one durable run that analyses a repository
// (code-analysis), scans it with the analysis as context (security-scan),
// has a security expert, a code architect and a devops engineer debate the
// findings (chain-of-debate), and writes prioritised recommendations that
// name the findings they address.
//
// Journaled: "record-children" (the store's links, with a store), the three children, each a workflow of its own called from
// this one under an id derived from its id (engine.Call: a replay reaches
// the same children and does not run them again), "recommendations" (an
// LLM step), and "save-report" with a store. Terminal: invalid input
// (before any child starts), a child that failed, naming it.
package fullanalysis

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/ultramcp/durable/analysis"
	"github.com/ultramcp/durable/analysis/repo"
	"github.com/ultramcp/durable/engine"
	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/llm"
	"github.com/ultramcp/durable/workflow"
	"github.com/ultramcp/durable/workflow/codeanalysis"
	"github.com/ultramcp/durable/workflow/debate"
	"github.com/ultramcp/durable/workflow/writebehind"
)

// Name is the workflow's service name, as the seed's URL spells it.
const Name = "full-analysis"

// Input is the request of full-analysis.
type Input struct {
	Repository              string `json:"repository" jsonschema:"git URL (https, ssh, git), or a local path when the service allows it"`
	Branch                  string `json:"branch,omitempty" jsonschema:"branch or tag (default: the remote's default branch)"`
	IncludeDebate           *bool  `json:"includeDebate,omitempty" jsonschema:"have the experts debate the findings (default true)"`
	GenerateRecommendations *bool  `json:"generateRecommendations,omitempty" jsonschema:"write prioritised recommendations (default true)"`
	// RequireApproval makes the run wait, before the recommendations, for
	// a human to approve or reject it (ultramcp approve|reject), at most
	// ApprovalTimeout (default 24h); rejection and timeout end it rejected.
	RequireApproval bool             `json:"requireApproval,omitempty" jsonschema:"wait for approve or reject before the recommendations"`
	ApprovalTimeout *debate.Duration `json:"approvalTimeout,omitempty" jsonschema:"how long to wait for the approval (default 24h)"`
	// Budget is split among the children and the recommendations by the
	// model calls each is expected to make (Result.BudgetSplit says how).
	Budget   *workflow.Budget `json:"budget,omitempty" jsonschema:"caps on cost, tokens and calls, split among the children by their expected model calls"`
	Priority string           `json:"priority,omitempty" jsonschema:"interactive (default) or batch; the children inherit it"`
}

// DefaultApprovalTimeout is how long a run waits for its approval.
const DefaultApprovalTimeout = 24 * time.Hour

// MaxApprovalTimeout bounds the wait.
const MaxApprovalTimeout = 30 * 24 * time.Hour

func (in Input) approvalTimeout() time.Duration {
	if in.ApprovalTimeout == nil {
		return DefaultApprovalTimeout
	}
	return time.Duration(*in.ApprovalTimeout)
}

// Decode parses and checks a request; the repository policy is applied by
// the children's own resolve steps.
func Decode(body []byte) (Input, error) {
	var in Input
	if err := workflow.DecodeStrict(body, &in); err != nil {
		return in, err
	}
	if err := repo.CheckSyntax("repository", in.Repository); err != nil {
		return in, err
	}
	if d := in.ApprovalTimeout; d != nil && (*d <= 0 || time.Duration(*d) > MaxApprovalTimeout) {
		return in, fault.Invalidf("approvalTimeout", "must be a positive duration of at most 30 days")
	}
	if err := in.Budget.Validate(); err != nil {
		return in, err
	}
	if err := workflow.CheckPriority(in.Priority); err != nil {
		return in, err
	}
	return in, repo.ValidateBranch(in.Branch)
}

func orTrue(b *bool) bool { return b == nil || *b }

// BudgetSplit is how a run's budget was divided: by the model calls each
// part is expected to make.
type BudgetSplit struct {
	How   string                      `json:"how"`
	Parts map[string]*workflow.Budget `json:"parts"` // "analysis", "debate", "recommendations"
}

// debateCalls is the calls the debate child is expected to make: its
// three participants over three rounds, and the moderator.
const debateCalls = 3*3 + 1

// split divides in's budget among the parts that call models.
func split(in Input) *BudgetSplit {
	if in.Budget == nil {
		return nil
	}
	weights := map[string]int{"analysis": 1}
	if orTrue(in.IncludeDebate) {
		weights["debate"] = debateCalls
	}
	if orTrue(in.GenerateRecommendations) {
		weights["recommendations"] = 1
	}
	total := 0
	for _, w := range weights {
		total += w
	}
	s := &BudgetSplit{Parts: map[string]*workflow.Budget{}}
	var how []string
	for _, part := range []string{"analysis", "debate", "recommendations"} {
		if w, ok := weights[part]; ok {
			s.Parts[part] = in.Budget.Share(float64(w) / float64(total))
			how = append(how, fmt.Sprintf("%s %d/%d (%s)", part, w, total, s.Parts[part]))
		}
	}
	s.How = fmt.Sprintf("%s split by the model calls each part is expected to make: %s; the scan makes none", in.Budget, strings.Join(how, ", "))
	return s
}

// ChildSummary is what the result keeps of an analysis child.
type ChildSummary struct {
	ID         string         `json:"id"`
	Commit     string         `json:"commit"`
	Findings   int            `json:"findings"`
	BySeverity map[string]int `json:"bySeverity"`
	Partial    bool           `json:"partial,omitempty"`
	Incomplete []string       `json:"incomplete,omitempty"`
}

// DebateSummary is what the result keeps of the debate child.
type DebateSummary struct {
	ID             string   `json:"id"`
	Consensus      string   `json:"consensus"`
	Disagreements  []string `json:"disagreements,omitempty"`
	Recommendation string   `json:"recommendation"`
	Agreement      float64  `json:"agreement"`
	Simulated      bool     `json:"simulated,omitempty"`
}

// Recommendation is one action, naming the findings it addresses.
type Recommendation struct {
	Title     string   `json:"title"`
	Addresses []string `json:"addresses"` // "rule file:line"
	Impact    string   `json:"impact"`
	Effort    string   `json:"effort"`
}

// Result is the meta-workflow's output.
type Result struct {
	ID                  string                `json:"id"`
	Repository          string                `json:"repository"`
	Children            map[string]string     `json:"children"` // role → workflow id
	Analysis            ChildSummary          `json:"analysis"`
	Scan                ChildSummary          `json:"scan"`
	Debate              *DebateSummary        `json:"debate,omitempty"`
	Recommendations     []Recommendation      `json:"recommendations"`
	RecommendationsFrom string                `json:"recommendationsFrom,omitempty"` // the model, or "findings" when derived from them
	TopFindings         []analysis.Finding    `json:"topFindings"`
	Report              *workflow.ArtifactRef `json:"report,omitempty"`
	Partial             bool                  `json:"partial"`
	Incomplete          []string              `json:"incomplete,omitempty"`
	BudgetSplit         *BudgetSplit          `json:"budgetSplit,omitempty"`
	// Approval is the human decision of a run that required one;
	// Rejected ends the run (stored as rejected) after its compensations,
	// listed in the order they ran.
	Approval      *Approval `json:"approval,omitempty"`
	Rejected      bool      `json:"rejected,omitempty"`
	Rejection     string    `json:"rejection,omitempty"`
	Compensations []string  `json:"compensations,omitempty"`
}

// Approval is the decision a run waited for.
type Approval struct {
	Approved bool   `json:"approved"`
	By       string `json:"by,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// FullAnalysis runs the meta-workflow; its fields are its dependencies.
type FullAnalysis struct {
	Models  llm.Models
	Records workflow.Records // nil keeps no report
}

// Participants of the debate on the findings.
var Participants = []string{"security-expert", "code-architect", "devops-engineer"}

// MaxTopFindings bounds the findings handed to the debate and the
// recommendations (and kept in the result).
const MaxTopFindings = 20

var llmStep = engine.StepOptions{MaxAttempts: 1}

// Run is the workflow body: the children (analysis, scan, debate), the
// approval, the recommendations and the report. A run that fails, is
// cancelled or is rejected undoes what it did (the saga).
func (f *FullAnalysis) Run(c engine.Context, in Input) (res Result, err error) {
	r := &fullRun{f: f, c: c, in: in, saga: engine.NewSaga(c), outcome: workflow.StatusRejected, writes: writebehind.NewWrites(c, f.Records),
		res: Result{ID: c.WorkflowID(), Repository: in.Repository, Children: map[string]string{}, Recommendations: []Recommendation{}, BudgetSplit: split(in)}}
	defer func() {
		if err = r.writes.Done(err); err != nil {
			r.unwind(err)
		}
		res = r.res
	}()
	if err := r.linkChildren(); err != nil {
		return r.res, err
	}
	rep, err := r.analyse()
	if err != nil {
		return r.res, err
	}
	if orTrue(in.IncludeDebate) {
		if err := r.debate(rep); err != nil {
			return r.res, err
		}
	}
	if in.RequireApproval {
		if approved, err := r.approval(); err != nil || !approved {
			return r.res, err
		}
	}
	if orTrue(in.GenerateRecommendations) {
		if err := r.publish("recommendations", "writing the recommendations"); err != nil {
			return r.res, err
		}
		if err := f.recommend(c, &r.res, r.part("recommendations"), in.Priority == workflow.PriorityBatch); err != nil {
			return r.res, err
		}
	}
	if err := r.publish("report", "writing the report"); err != nil {
		return r.res, err
	}
	return r.res, f.save(c, &r.res)
}

// fullRun is one full-analysis as it goes: what its parts share.
type fullRun struct {
	f    *FullAnalysis
	c    engine.Context
	in   Input
	res  Result
	saga *engine.Saga
	// outcome and why are what the compensations record on the children:
	// the parent's own end (rejected, cancelled, failed) and its reason.
	outcome, why string

	writes    *writebehind.Writes // where its progress goes
	published int                 // the progress published so far, which orders them
}

// unwind undoes what a run that failed or was cancelled did, as a
// rejected one does; the compensations are steps, which run after a
// cancellation too.
func (r *fullRun) unwind(err error) {
	r.outcome, r.why = workflow.StatusFailed, "failed"
	if fault.KindOf(err) == fault.Cancelled {
		r.outcome, r.why = workflow.StatusCancelled, "cancelled"
	}
	ran, uerr := r.saga.Unwind()
	r.res.Compensations = ran
	if uerr != nil {
		r.c.Logger().Error("compensation failed", "err", uerr)
	}
}

// publish makes the run's progress phase and msg, in its one home
// (writebehind.Writes.Publish).
func (r *fullRun) publish(phase, msg string) error {
	r.published++
	return r.writes.Publish(r.published, map[string]any{"phase": phase, "message": msg, "children": r.res.Children})
}

// call runs a child workflow in role and returns its output; its
// compensation withdraws what it published.
func (r *fullRun) call(role, wf string, input any) (json.RawMessage, error) {
	body, err := json.Marshal(input)
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err, "encode %s input", role)
	}
	id := engine.ChildID(r.c, role)
	r.res.Children[role] = id
	if err := r.publish(role, "running "+wf+" "+id); err != nil {
		return nil, err
	}
	outs, errs := r.c.Call([]engine.Child{{Workflow: wf, ID: id, Input: body}})
	if errs[0] != nil {
		return nil, fmt.Errorf("child %s %s: %w", wf, id, errs[0])
	}
	// A rejected run withdraws what its children published: their
	// records say rejected, with the parent's reason.
	if rec := r.f.Records; rec != nil {
		r.saga.Add("withdraw-"+role, func(ctx context.Context) error {
			return writebehind.RetryStore(ctx, func(ctx context.Context) error {
				return rec.Withdraw(ctx, id, r.outcome, "withdrawn: the full-analysis "+r.c.WorkflowID()+" was "+r.why)
			})
		})
	}
	return outs[0], nil
}

// linkChildren has the store link the children to this run before they
// start, so status can show the tree while it runs.
func (r *fullRun) linkChildren() error {
	if r.f.Records == nil {
		return nil
	}
	children := []workflow.Child{{ID: engine.ChildID(r.c, "analysis"), Role: "analysis", Workflow: workflow.CodeAnalysis}, {ID: engine.ChildID(r.c, "scan"), Role: "scan", Workflow: workflow.SecurityScan}}
	if orTrue(r.in.IncludeDebate) {
		children = append(children, workflow.Child{ID: engine.ChildID(r.c, "debate"), Role: "debate", Workflow: workflow.ChainOfDebate})
	}
	_, err := writebehind.Record(r.c, "record-children", func(ctx context.Context) (bool, error) {
		return true, r.f.Records.LinkChildren(ctx, r.c.WorkflowID(), children, time.Now().UTC())
	})
	return err
}

// analyse runs the analysis, then the scan compared with it, and returns
// the analysis.
func (r *fullRun) analyse() (analysis.Report, error) {
	raw, err := r.call("analysis", workflow.CodeAnalysis, codeanalysis.Input{Repository: r.in.Repository, Branch: r.in.Branch, AnalysisType: codeanalysis.TypeAll,
		Budget: r.part("analysis"), Priority: r.in.Priority})
	if err != nil {
		return analysis.Report{}, err
	}
	var rep analysis.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		return rep, fault.Wrap(fault.Internal, err, "decode the analysis")
	}
	r.res.Analysis = summary(r.res.Children["analysis"], rep)
	// The scan compares with the analysis: it needs only its commit and
	// fingerprints, which keeps the child's input small.
	prev, _ := json.Marshal(rep.Baseline())
	raw, err = r.call("scan", workflow.SecurityScan, codeanalysis.ScanInput{Target: rep.Repository, Branch: rep.Branch, Context: prev})
	if err != nil {
		return rep, err
	}
	var scan analysis.Report
	if err := json.Unmarshal(raw, &scan); err != nil {
		return rep, fault.Wrap(fault.Internal, err, "decode the scan")
	}
	r.res.Scan = summary(r.res.Children["scan"], scan)
	r.res.TopFindings = top(scan.Findings)
	for _, s := range []ChildSummary{r.res.Analysis, r.res.Scan} {
		if s.Partial {
			r.res.Partial = true
			r.res.Incomplete = append(r.res.Incomplete, s.Incomplete...)
		}
	}
	return rep, nil
}

// debate has the participants debate which findings to fix first.
func (r *fullRun) debate(rep analysis.Report) error {
	findings, _ := json.Marshal(r.res.TopFindings) // redacted by the scanners
	participants := make([]map[string]string, len(Participants))
	for i, p := range Participants {
		participants[i] = map[string]string{"name": p}
	}
	raw, err := r.call("debate", workflow.ChainOfDebate, map[string]any{
		"topic":              fmt.Sprintf("Which of the findings of %s should the team fix first, and how?", rep.Repository),
		"participants":       participants,
		"rounds":             3,
		"delayBetweenRounds": "0s",
		"context":            map[string]any{"repository": rep.Repository, "commit": rep.Commit, "findings": json.RawMessage(findings)},
		"budget":             r.part("debate"),
		"priority":           r.in.Priority,
	})
	if err != nil {
		return err
	}
	var d debate.Result
	if err := json.Unmarshal(raw, &d); err != nil {
		return fault.Wrap(fault.Internal, err, "decode the debate")
	}
	if d.Partial {
		r.res.Partial = true
		for _, why := range d.Incomplete {
			r.res.Incomplete = append(r.res.Incomplete, "debate: "+why)
		}
	}
	s := d.Synthesis
	r.res.Debate = &DebateSummary{ID: r.res.Children["debate"], Consensus: s.Consensus, Disagreements: s.Disagreements, Recommendation: s.Recommendation, Agreement: s.Agreement, Simulated: d.Simulated}
	return nil
}

// part is the budget of one part of the run; nil without a budget.
func (r *fullRun) part(name string) *workflow.Budget {
	if r.res.BudgetSplit == nil {
		return nil
	}
	return r.res.BudgetSplit.Parts[name]
}

// approval waits for a human's approval; a rejection (or none in time)
// runs the compensations and ends the run rejected.
func (r *fullRun) approval() (approved bool, err error) {
	timeout, id := r.in.approvalTimeout(), r.c.WorkflowID()
	if err := r.publish("awaiting-approval", fmt.Sprintf("waiting up to %s for approval: ultramcp approve %s (or reject %s --reason …)", timeout, id, id)); err != nil {
		return false, err
	}
	raw, ok, err := r.c.Await(workflow.ApprovalPromise, timeout)
	if err != nil {
		return false, err
	}
	a := Approval{}
	switch {
	case !ok:
		a.Reason = fmt.Sprintf("no approval within %s", timeout)
	case json.Unmarshal(raw, &a) != nil:
		a = Approval{Reason: "the decision was not {\"approved\": true|false}"}
	}
	r.res.Approval = &a
	if a.Approved {
		return true, nil
	}
	r.res.Rejected, r.res.Rejection = true, cmp.Or(a.Reason, "rejected")
	r.why = "rejected: " + r.res.Rejection
	ran, err := r.saga.Unwind()
	r.res.Compensations = ran
	if err != nil {
		return false, err
	}
	return false, r.publish("rejected", "rejected: "+r.res.Rejection)
}

func summary(id string, r analysis.Report) ChildSummary {
	return ChildSummary{ID: id, Commit: r.Commit, Findings: len(r.Findings), BySeverity: r.BySeverity, Partial: r.Partial, Incomplete: r.Incomplete}
}

// top is the most severe findings, as the report sorted them.
func top(fs []analysis.Finding) []analysis.Finding {
	out := make([]analysis.Finding, 0, min(len(fs), MaxTopFindings))
	for _, f := range fs[:min(len(fs), MaxTopFindings)] {
		out = append(out, analysis.Finding{Tool: f.Tool, RuleID: f.RuleID, Title: f.Title, Severity: f.Severity, CWE: f.CWE, File: f.File, Line: f.Line, Excerpt: f.Excerpt, Fingerprint: f.Fingerprint})
	}
	return out
}

// cite is how a recommendation names a finding.
// Cite is how a recommendation names a finding ("rule file:line"), and the
// dashboard links it.
func Cite(f analysis.Finding) string { return fmt.Sprintf("%s %s:%d", f.RuleID, f.File, f.Line) }

type recommendations struct {
	Items []Recommendation `json:"items"`
	From  string           `json:"from"`
}

// recommend asks the model for prioritised recommendations on the top
// findings and the debate's synthesis. An answer that names no finding (or
// the offline provider's) is replaced by recommendations derived from the
// findings themselves, labelled so.
func (f *FullAnalysis) recommend(c engine.Context, res *Result, budget *workflow.Budget, batch bool) error {
	ref, err := f.Models.Resolve("")
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Repository %s. Findings (most severe first):\n", res.Repository)
	for _, fd := range res.TopFindings {
		fmt.Fprintf(&b, "- [%s] %s — %s\n", fd.Severity, Cite(fd), fd.Title)
	}
	if d := res.Debate; d != nil {
		fmt.Fprintf(&b, "\nThe experts' consensus: %s\nTheir recommendation: %s\n", d.Consensus, d.Recommendation)
	}
	b.WriteString("\nAnswer with JSON only: {\"items\":[{\"title\":…,\"addresses\":[\"<rule> <file>:<line>\", …],\"impact\":\"high|medium|low\",\"effort\":\"small|medium|large\"}]}, most urgent first, at most 8 items, each addressing findings listed above.")
	findings := res.TopFindings
	req := llm.Request{
		System:   "You are a staff engineer who turns security and quality findings into a short, prioritised plan.",
		Messages: []llm.Message{{Role: "user", Content: b.String()}},
		JSON:     true,
		Label:    c.WorkflowID() + "/recommendations",
		Batch:    batch,
	}
	if field, used := budget.Over(workflow.Spend{}, workflow.EstimateOf([]llm.Ref{ref}, []llm.Request{req})); field != "" {
		res.Recommendations, res.RecommendationsFrom = derive(findings), "findings"
		res.Partial = true
		res.Incomplete = append(res.Incomplete, fmt.Sprintf("recommendations: budget reached (%s): %s; derived from the findings, no model was asked", field, used))
		return nil
	}
	out, err := engine.Run(c, "recommendations", llmStep, func(ctx context.Context) (recommendations, error) {
		answer, err := f.Models.Complete(ctx, ref, req)
		if err != nil {
			return recommendations{}, err
		}
		if items := parse(answer.Text, findings); len(items) > 0 && !answer.Simulated {
			return recommendations{Items: items, From: answer.Model}, nil
		}
		return recommendations{Items: derive(findings), From: "findings"}, nil
	})
	if err != nil {
		return err
	}
	res.Recommendations, res.RecommendationsFrom = out.Items, out.From
	return nil
}

// parse reads the model's items, keeping the citations of listed findings.
func parse(text string, findings []analysis.Finding) []Recommendation {
	known := map[string]bool{}
	for _, f := range findings {
		known[Cite(f)] = true
	}
	text = strings.TrimSpace(text)
	if i := strings.IndexByte(text, '{'); i >= 0 {
		text = text[i:]
	}
	if j := strings.LastIndexByte(text, '}'); j >= 0 {
		text = text[:j+1]
	}
	var r recommendations
	if json.Unmarshal([]byte(text), &r) != nil {
		return nil
	}
	var out []Recommendation
	for _, it := range r.Items {
		var cited []string
		for _, a := range it.Addresses {
			if known[strings.TrimSpace(a)] {
				cited = append(cited, strings.TrimSpace(a))
			}
		}
		if strings.TrimSpace(it.Title) == "" || len(cited) == 0 {
			continue
		}
		it.Addresses = cited
		out = append(out, it)
		if len(out) == 8 {
			break
		}
	}
	return out
}

// derive groups the findings by rule, most severe first: one
// recommendation per rule.
func derive(findings []analysis.Finding) []Recommendation {
	type group struct {
		first analysis.Finding
		cites []string
	}
	var order []string
	groups := map[string]*group{}
	for _, f := range findings {
		key := f.Tool + "/" + f.RuleID
		g, ok := groups[key]
		if !ok {
			g = &group{first: f}
			groups[key] = g
			order = append(order, key)
		}
		g.cites = append(g.cites, Cite(f))
	}
	sort.SliceStable(order, func(i, j int) bool {
		return analysis.SeverityRank(groups[order[i]].first.Severity) < analysis.SeverityRank(groups[order[j]].first.Severity)
	})
	out := []Recommendation{}
	for _, key := range order[:min(len(order), 8)] {
		g := groups[key]
		impact := map[string]string{analysis.SeverityCritical: "high", analysis.SeverityHigh: "high", analysis.SeverityMedium: "medium"}[g.first.Severity]
		if impact == "" {
			impact = "low"
		}
		effort := "small"
		if len(g.cites) > 3 {
			effort = "medium"
		}
		title := fmt.Sprintf("Fix %s: %s (%d place(s))", g.first.RuleID, g.first.Title, len(g.cites))
		if g.first.Tool == "gitleaks" {
			title = fmt.Sprintf("Revoke and rotate the credential found by %s, then remove it (%d place(s))", g.first.RuleID, len(g.cites))
		}
		out = append(out, Recommendation{Title: title, Addresses: g.cites, Impact: impact, Effort: effort})
	}
	return out
}

// save keeps the result as JSON and Markdown in the store; the journal
// holds its ref.
func (f *FullAnalysis) save(c engine.Context, res *Result) error {
	if f.Records == nil {
		return nil
	}
	js, err := json.Marshal(res)
	if err != nil {
		return fault.Wrap(fault.Internal, err, "encode the report")
	}
	md := Markdown(*res)
	ref, err := writebehind.Record(c, "save-report", func(ctx context.Context) (workflow.ArtifactRef, error) {
		if _, err := f.Records.PutArtifact(ctx, c.WorkflowID(), "report.md", []byte(md)); err != nil {
			return workflow.ArtifactRef{}, err
		}
		return f.Records.PutArtifact(ctx, c.WorkflowID(), "report.json", js)
	})
	if err != nil {
		return err
	}
	res.Report = &ref
	return nil
}

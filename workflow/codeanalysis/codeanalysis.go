// Package codeanalysis is the code-analysis and security-scan workflows:
// point them at a git repository and get back, durably, a report a team can
// act on (secrets, vulnerable code, complexity, structure) and SARIF for
// code-scanning tools.
//
// Journaled steps: "resolve" (the commit the branch points at, so a replay
// analyses the same commit whatever the branch does later), "checkout",
// then one step per scanner ("metrics", "patterns", "patterns-summary",
// "secrets", "gosec"), each with its own timeout and bounded retries, and
// "save-report" when a store is configured. Every scanner step re-creates
// the checkout if its host lacks it, from the journaled commit. A scanner
// that keeps failing is reported as failed; the others still run.
// Terminal: invalid input, a repository that does not exist or refuses
// access, a repository over the size limit.
package codeanalysis

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/ultramcp/durable/analysis"
	"github.com/ultramcp/durable/analysis/metrics"
	"github.com/ultramcp/durable/analysis/patterns"
	"github.com/ultramcp/durable/analysis/repo"
	"github.com/ultramcp/durable/analysis/sast"
	"github.com/ultramcp/durable/analysis/secrets"
	"github.com/ultramcp/durable/analysis/vulns"
	"github.com/ultramcp/durable/engine"
	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/llm"
	"github.com/ultramcp/durable/retry"
	"github.com/ultramcp/durable/workflow"
	"github.com/ultramcp/durable/workflow/writebehind"
)

// Analyzer runs both workflows; its fields are its dependencies.
type Analyzer struct {
	Cache   *repo.Cache
	Models  llm.Models
	Records workflow.Records // nil keeps no artifacts
	// Timeouts of the scanner steps; zero means the default.
	ScannerTimeout time.Duration
	// VulnDB is govulncheck's vulnerability database; "" is vuln.go.dev.
	VulnDB string
	// Slots bounds how many checkout and scanner steps run at once in this
	// process, whatever the number of analyses; nil means DefaultSlots.
	Slots chan struct{}
}

// DefaultSlots is how many checkouts and scans run at once by default: each
// can take a core and hundreds of megabytes.
const DefaultSlots = 2

var defaultSlots = make(chan struct{}, DefaultSlots)

// slot waits for a free slot and returns its release.
func (a *Analyzer) slot(ctx context.Context) (func(), error) {
	slots := a.Slots
	if slots == nil {
		slots = defaultSlots
	}
	select {
	case slots <- struct{}{}:
		return func() { <-slots }, nil
	case <-ctx.Done():
		return nil, fault.Wrap(fault.Unavailable, ctx.Err(), "waiting for a free analysis slot")
	}
}

// DefaultScannerTimeout bounds one scanner step.
const DefaultScannerTimeout = 5 * time.Minute

// MaxFindingsInResult bounds the findings the result carries; the saved
// report has all of them.
const MaxFindingsInResult = 500

// MaxFindingsPerScanner bounds the findings one scanner step keeps, so its
// journal entry stays under about 200 KB; the scanner's count is exact.
const MaxFindingsPerScanner = 400

var (
	gitStep     = engine.StepOptions{MaxAttempts: 3, InitialBackoff: time.Second}
	scannerStep = engine.StepOptions{MaxAttempts: 2, InitialBackoff: time.Second}
	llmStep     = engine.StepOptions{MaxAttempts: 1}
)

// Progress is what a running analysis publishes.
type Progress struct {
	Phase    string                `json:"phase"`
	Commit   string                `json:"commit,omitempty"`
	Scanners []analysis.ScannerRun `json:"scanners"`
	Message  string                `json:"message"`
}

type resolved struct {
	Repository string    `json:"repository"` // as the policy normalized it
	Commit     string    `json:"commit"`
	Branch     string    `json:"branch"`
	At         time.Time `json:"at"`
}

// RunAnalysis is the code-analysis workflow body.
func (a *Analyzer) RunAnalysis(c engine.Context, in Input) (analysis.Report, error) {
	t := in.AnalysisType
	if t == "" {
		t = TypeAll
	}
	return a.run(c, job{field: "repository", requested: in.Repository, branch: in.Branch, kind: t,
		security: t == TypeAll || t == TypeSecurity, quality: t == TypeAll || t == TypeQuality, structure: t == TypeAll || t == TypePatterns,
		budget: in.Budget, batch: in.Priority == workflow.PriorityBatch})
}

// RunScan is the security-scan workflow body. With a previous analysis as
// context, findings it did not have are marked new and the ones gone are
// counted as fixed.
func (a *Analyzer) RunScan(c engine.Context, in ScanInput) (analysis.Report, error) {
	var previous *analysis.Report
	if len(in.Context) > 0 && string(in.Context) != "null" {
		var p analysis.Report
		if err := json.Unmarshal(in.Context, &p); err != nil {
			return analysis.Report{}, fault.Invalidf("context", "must be a previous analysis report: %v", err)
		}
		previous = &p
	}
	return a.run(c, job{field: "target", requested: in.Target, branch: in.Branch, kind: TypeSecurity, security: true, previous: previous})
}

// job is what one run of either workflow is asked to do.
type job struct {
	field, requested, branch, kind string // the field the repository came in
	security, quality, structure   bool
	previous                       *analysis.Report // to compare with, or nil
	budget                         *workflow.Budget // of its model call
	batch                          bool
}

// analysisRun is one run of either workflow as it goes: what its steps
// share.
type analysisRun struct {
	a        *Analyzer
	c        engine.Context
	job      job
	rep      analysis.Report
	progress Progress
	at       resolved // the commit the run analyses

	writes    *writebehind.Writes // where its progress goes
	published int                 // the progress published so far, which orders them
}

// run is both workflows: resolve, checkout, the scanners (metrics,
// patterns, the security scanners side by side), then the report.
func (a *Analyzer) run(c engine.Context, j job) (analysis.Report, error) {
	r := &analysisRun{a: a, c: c, job: j, rep: analysis.Report{ID: c.WorkflowID(), Repository: j.requested, AnalysisType: j.kind},
		writes: writebehind.NewWrites(c, a.Records)}
	r.progress = Progress{Phase: "resolve", Message: "resolving " + j.requested}
	rep, err := r.analyse()
	return rep, r.writes.Done(err)
}

func (r *analysisRun) analyse() (analysis.Report, error) {
	j := r.job
	if err := r.resolve(); err != nil {
		return r.rep, err
	}
	if err := r.checkout(); err != nil {
		return r.rep, err
	}
	var langs []string
	if j.quality || j.structure {
		var err error
		if langs, err = r.measure(); err != nil {
			return r.rep, err
		}
	}
	if j.structure {
		if err := r.structure(langs); err != nil {
			return r.rep, err
		}
	}
	if j.security {
		if err := r.securityScans(); err != nil {
			return r.rep, err
		}
	}
	return r.report()
}

// publish makes the run's progress phase and msg, in its one home
// (writebehind.Writes.Publish).
func (r *analysisRun) publish(phase, msg string) error {
	r.progress.Phase, r.progress.Message, r.progress.Scanners = phase, msg, r.rep.Scanners
	r.published++
	return r.writes.Publish(r.published, r.progress)
}

// resolve applies the repository policy and finds the commit, in the
// "resolve" step: a replay under other settings follows the first run's
// decision.
func (r *analysisRun) resolve() error {
	res, err := engine.Run(r.c, "resolve", gitStep, func(ctx context.Context) (resolved, error) {
		repository, err := r.a.Cache.Policy.Validate(r.job.requested)
		if err != nil {
			if r.job.field == "target" {
				err = asTarget(err)
			}
			return resolved{}, err
		}
		sha, b, err := r.a.Cache.Policy.Resolve(ctx, repository, r.job.branch)
		return resolved{Repository: repository, Commit: sha, Branch: b, At: time.Now().UTC()}, err
	})
	if err != nil {
		return err
	}
	r.at = res
	r.rep.Repository, r.rep.Commit, r.rep.Branch, r.progress.Commit = res.Repository, res.Commit, res.Branch, res.Commit
	r.rep.GeneratedAt = res.At
	return nil
}

// checkout fetches the commit into the cache, holding a slot.
func (r *analysisRun) checkout() error {
	if err := r.publish("checkout", "fetching "+r.at.Commit); err != nil {
		return err
	}
	_, err := engine.Run(r.c, "checkout", gitStep, func(ctx context.Context) (bool, error) {
		release, err := r.a.slot(ctx)
		if err != nil {
			return false, err
		}
		defer release()
		_, err = r.a.Cache.Ensure(ctx, r.at.Repository, r.at.Commit)
		return true, err
	})
	return err
}

// scanned is what a scanner's step journals.
type scanned struct {
	Data       json.RawMessage `json:"data"`
	Count      int             `json:"count"`
	DurationMS int64           `json:"durationMs"`
}

// scanFunc is a scanner over a checkout: its data, how many findings.
type scanFunc func(ctx context.Context, dir string) (json.RawMessage, int, error)

// step is one scanner as a step of its own, holding a slot and the
// checkout while it runs.
func (r *analysisRun) step(name string, opts engine.StepOptions, fn scanFunc) engine.Step {
	return engine.TypedStep[scanned]{Name: name, Opts: opts, Fn: func(ctx context.Context) (scanned, error) {
		release, err := r.a.slot(ctx)
		if err != nil {
			return scanned{}, err
		}
		defer release()
		start := time.Now()
		ctx, cancel := context.WithTimeout(ctx, r.a.timeout())
		defer cancel()
		// Held while the scanner reads it: neither the cache's cap nor
		// purge removes it meanwhile.
		co, err := r.a.Cache.Acquire(ctx, r.at.Repository, r.at.Commit)
		if err != nil {
			return scanned{}, err
		}
		defer co.Release()
		data, n, err := fn(ctx, co.Dir)
		if err != nil && ctx.Err() == context.DeadlineExceeded {
			err = fault.New(fault.Permanent, "%s timed out after %s", name, r.a.timeout())
		}
		return scanned{Data: data, Count: n, DurationMS: time.Since(start).Milliseconds()}, err
	}}.Raw()
}

// outcome records how a scanner step fared; its failure is recorded, not
// fatal (nil data).
func (r *analysisRun) outcome(name string, raw []byte, err error) (json.RawMessage, error) {
	var o scanned
	if err == nil {
		o, err = engine.Decode[scanned](name, raw)
	}
	run := analysis.ScannerRun{Name: name, Status: analysis.ScannerCompleted, Findings: o.Count, DurationMS: o.DurationMS}
	if err != nil {
		if fault.KindOf(err) == fault.Cancelled {
			return nil, err
		}
		run.Status, run.Error = analysis.ScannerFailed, scannerError(err)
		r.c.Logger().Warn("scanner failed", "scanner", name, "err", err)
	}
	r.rep.Scanners = append(r.rep.Scanners, run)
	if err != nil {
		return nil, nil
	}
	return o.Data, nil
}

// scan runs one scanner as its own step.
func (r *analysisRun) scan(name string, opts engine.StepOptions, fn scanFunc) (json.RawMessage, error) {
	if err := r.publish("scan", "running "+name); err != nil {
		return nil, err
	}
	raw, err := r.c.Run(r.step(name, opts, fn))
	return r.outcome(name, raw, err)
}

// findings is a security scanner as a scanFunc. The step's result is a
// journal entry: it keeps at most MaxFindingsPerScanner, and the store
// keeps every finding for the saved report.
func (r *analysisRun) findings(name string, fn func(context.Context, string) ([]analysis.Finding, error)) scanFunc {
	return func(ctx context.Context, dir string) (json.RawMessage, int, error) {
		fs, err := fn(ctx, dir)
		if err != nil {
			return nil, 0, err
		}
		if len(fs) > MaxFindingsPerScanner && r.a.Records != nil {
			all, err := json.Marshal(fs)
			if err != nil {
				return nil, 0, fault.Wrap(fault.Internal, err, "encode findings")
			}
			if err := writebehind.RetryStore(ctx, func(ctx context.Context) error {
				_, err := r.a.Records.PutArtifact(ctx, r.c.WorkflowID(), findingsArtifact(name), all)
				return err
			}); err != nil {
				return nil, 0, err
			}
		}
		b, err := json.Marshal(fs[:min(len(fs), MaxFindingsPerScanner)])
		return b, len(fs), err
	}
}

// measure runs the metrics scanner and returns the languages it found.
func (r *analysisRun) measure() ([]string, error) {
	raw, err := r.scan("metrics", scannerStep, func(ctx context.Context, dir string) (json.RawMessage, int, error) {
		m, err := metrics.Measure(ctx, dir)
		if err != nil {
			return nil, 0, err
		}
		b, err := json.Marshal(m)
		return b, 0, err // measures, not findings
	})
	if err != nil || raw == nil {
		return nil, err
	}
	var m analysis.Metrics
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fault.Wrap(fault.Internal, err, "decode metrics")
	}
	var langs []string
	for _, l := range m.Languages {
		langs = append(langs, l.Name)
	}
	if r.job.quality {
		r.rep.Metrics = &m
	}
	return langs, nil
}

// securityScans runs the security scanners side by side, each a step that
// retries inside itself, so one failing never re-runs the others.
func (r *analysisRun) securityScans() error {
	scanners := r.a.SecurityScanners(r.c.Logger())
	steps := make([]engine.Step, len(scanners))
	names := make([]string, len(scanners))
	for i, s := range scanners {
		steps[i] = r.step(s.Name(), concurrentStep, r.findings(s.Name(), retried(s.Scan)))
		names[i] = s.Name()
	}
	if err := r.publish("scan", "running "+strings.Join(names, ", ")); err != nil {
		return err
	}
	results, errs := r.c.RunAll(steps)
	for i, s := range scanners {
		raw, err := r.outcome(s.Name(), results[i], errs[i])
		if err != nil {
			return err
		}
		var fs []analysis.Finding
		if raw != nil {
			if err := json.Unmarshal(raw, &fs); err != nil {
				return fault.Wrap(fault.Internal, err, "decode %s findings", s.Name())
			}
		}
		r.rep.Findings = append(r.rep.Findings, fs...)
	}
	return nil
}

// report finishes the report, compares it, saves it whole and returns it
// cut to what a result carries.
func (r *analysisRun) report() (analysis.Report, error) {
	if err := r.publish("report", "writing the report"); err != nil {
		return r.rep, err
	}
	r.rep.Finish()
	if r.job.previous != nil {
		r.rep.CompareWith(*r.job.previous)
	}
	if err := r.a.save(r.c, &r.rep, r.job.previous); err != nil {
		return r.rep, err
	}
	if len(r.rep.Findings) > MaxFindingsInResult {
		r.rep.Findings = r.rep.Findings[:MaxFindingsInResult]
	}
	return r.rep, nil
}

// structure detects the patterns and asks a model to summarize them.
func (r *analysisRun) structure(langs []string) error {
	raw, err := r.scan("patterns", scannerStep, func(ctx context.Context, dir string) (json.RawMessage, int, error) {
		p, err := patterns.Detect(ctx, dir, langs)
		if err != nil {
			return nil, 0, err
		}
		b, err := json.Marshal(p)
		return b, 0, err
	})
	if err != nil || raw == nil {
		return err
	}
	var p analysis.Patterns
	if err := json.Unmarshal(raw, &p); err != nil {
		return fault.Wrap(fault.Internal, err, "decode patterns")
	}
	r.rep.Patterns = &p
	run, err := r.summarize(&p)
	if err != nil {
		return err
	}
	r.rep.Scanners = append(r.rep.Scanners, run)
	return nil
}

// summarize asks a model for a summary of the patterns, in the
// "patterns-summary" step; a failure is the step's row, not the run's.
func (r *analysisRun) summarize(p *analysis.Patterns) (analysis.ScannerRun, error) {
	ref, err := r.a.Models.Resolve("")
	if err != nil {
		return analysis.ScannerRun{}, err
	}
	type summary struct {
		Text       string `json:"text"`
		Model      string `json:"model"`
		Simulated  bool   `json:"simulated"`
		DurationMS int64  `json:"durationMs"`
	}
	req := llm.Request{
		System:   "You are a software architect. Describe a codebase's structure briefly and concretely.",
		Messages: []llm.Message{{Role: "user", Content: summaryPrompt(r.rep.Repository, p)}},
		Label:    r.c.WorkflowID() + "/patterns-summary",
		Batch:    r.job.batch,
	}
	if field, used := r.job.budget.Over(workflow.Spend{}, workflow.EstimateOf([]llm.Ref{ref}, []llm.Request{req})); field != "" {
		return analysis.ScannerRun{Name: "patterns-summary", Status: analysis.ScannerSkipped,
			Error: fmt.Sprintf("budget reached (%s): %s; the summary was not asked", field, used)}, nil
	}
	// The duration is measured inside the step, so a replay reads the
	// journaled one instead of a clock that has moved on.
	s, err := engine.Run(r.c, "patterns-summary", llmStep, func(ctx context.Context) (summary, error) {
		start := time.Now()
		out, err := r.a.Models.Complete(ctx, ref, req)
		return summary{Text: out.Text, Model: out.Model, Simulated: out.Simulated, DurationMS: time.Since(start).Milliseconds()}, err
	})
	run := analysis.ScannerRun{Name: "patterns-summary", Status: analysis.ScannerCompleted, DurationMS: s.DurationMS}
	if err != nil {
		if fault.KindOf(err) == fault.Cancelled {
			return run, err
		}
		run.Status, run.Error = analysis.ScannerFailed, scannerError(err)
	} else {
		p.Summary, p.SummaryModel, p.Simulated = s.Text, s.Model, s.Simulated
	}
	return run, nil
}

func summaryPrompt(repository string, p *analysis.Patterns) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Repository: %s\nLanguages: %s\nFrameworks: %s\nBuild systems: %s\nTop-level layers: %s\n",
		repository, strings.Join(p.Languages, ", "), strings.Join(p.Frameworks, ", "), strings.Join(p.BuildSystems, ", "), strings.Join(p.Layers, ", "))
	if len(p.Dependencies) > 0 {
		b.WriteString("Internal imports (from -> to):\n")
		for _, d := range p.Dependencies[:min(len(p.Dependencies), 60)] {
			fmt.Fprintf(&b, "  %s -> %s\n", d.From, d.To)
		}
	}
	b.WriteString("\nIn at most 150 words: the architecture, how dependencies flow between layers, and one concrete improvement.")
	return b.String()
}

func findingsArtifact(scanner string) string { return "findings-" + scanner + ".json" }

// save keeps the report as JSON, Markdown and SARIF artifacts. When a
// scanner found more than its step could journal, the saved report reads
// its full list back from the store, inside the step.
func (a *Analyzer) save(c engine.Context, rep *analysis.Report, previous *analysis.Report) error {
	if a.Records == nil {
		return nil
	}
	// The whole write is retried until the store answers: every part of it
	// is idempotent (content-addressed artifacts).
	_, err := writebehind.Record(c, "save-report", func(ctx context.Context) (bool, error) {
		full, err := a.fullReport(ctx, c.WorkflowID(), *rep, previous)
		if err != nil {
			return false, err
		}
		js, err := json.Marshal(full)
		if err != nil {
			return false, fault.Wrap(fault.Permanent, err, "encode report") // not worth a retry
		}
		sarif, err := full.SARIF()
		if err != nil {
			return false, fault.Wrap(fault.Permanent, err, "encode SARIF")
		}
		for name, content := range map[string][]byte{"report.json": js, "report.md": []byte(full.Markdown()), "report.sarif": sarif} {
			if _, err := a.Records.PutArtifact(ctx, c.WorkflowID(), name, content); err != nil {
				return false, err
			}
		}
		return true, nil
	})
	return err
}

// fullReport is rep with the findings of every scanner whose step kept
// only part of them.
func (a *Analyzer) fullReport(ctx context.Context, workflowID string, rep analysis.Report, previous *analysis.Report) (analysis.Report, error) {
	kept := map[string]int{}
	for _, f := range rep.Findings {
		kept[f.Tool]++
	}
	tools := map[string]string{}
	for _, s := range a.SecurityScanners(nil) {
		tools[s.Name()] = s.Tool()
	}
	var extra []analysis.Finding
	truncated := map[string]bool{}
	for _, s := range rep.Scanners {
		tool, ok := tools[s.Name]
		if !ok || s.Status != analysis.ScannerCompleted || s.Findings <= kept[tool] {
			continue
		}
		raw, err := a.Records.NamedArtifact(ctx, workflowID, findingsArtifact(s.Name))
		if err != nil {
			return rep, err
		}
		var all []analysis.Finding
		if err := json.Unmarshal(raw, &all); err != nil {
			return rep, fault.Wrap(fault.Internal, err, "decode %s findings", s.Name)
		}
		extra, truncated[tool] = append(extra, all...), true
	}
	if len(truncated) == 0 {
		return rep, nil
	}
	findings := extra
	for _, f := range rep.Findings {
		if !truncated[f.Tool] {
			findings = append(findings, f)
		}
	}
	rep.Findings = findings
	rep.Finish()
	if previous != nil {
		rep.CompareWith(*previous)
	}
	return rep, nil
}

// SecurityScanners are the scanners of security-scan and of code-analysis's
// security part, in report order.
func (a *Analyzer) SecurityScanners(log *slog.Logger) []analysis.Scanner {
	return []analysis.Scanner{
		analysis.ScannerOf("secrets", "gitleaks", func(ctx context.Context, dir string) ([]analysis.Finding, error) { return secrets.Scan(ctx, dir, log) }),
		analysis.ScannerOf("gosec", "gosec", func(ctx context.Context, dir string) ([]analysis.Finding, error) { return sast.Scan(ctx, dir, log) }),
		analysis.ScannerOf("govulncheck", "govulncheck", func(ctx context.Context, dir string) ([]analysis.Finding, error) {
			return vulns.Scan(ctx, dir, a.VulnDB, log)
		}),
	}
}

// concurrentStep: a step run beside others is tried once by the engine
// (on Restate a retryable error would end the attempt and re-run its
// siblings); it retries inside itself instead (retried).
var concurrentStep = engine.StepOptions{MaxAttempts: 1}

// retried runs scan again once after a transient fault: a scanner's
// faults are local (a busy disk, a tool's hiccup), so one more try a
// second later is all that is worth its time.
func retried(scan func(context.Context, string) ([]analysis.Finding, error)) func(context.Context, string) ([]analysis.Finding, error) {
	return func(ctx context.Context, dir string) (fs []analysis.Finding, err error) {
		_, err = retry.Policy{Initial: time.Second, Attempts: 2, Cause: "scanner"}.Do(ctx, func(ctx context.Context) (err error) {
			fs, err = scan(ctx, dir)
			return err
		})
		return fs, err
	}
}

func (a *Analyzer) timeout() time.Duration {
	if a.ScannerTimeout > 0 {
		return a.ScannerTimeout
	}
	return DefaultScannerTimeout
}

// scannerError is the failure text of a scanner, without the engine's
// wrapping.
func scannerError(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, "]"); strings.HasPrefix(s, "[") && i > 0 {
		s = strings.TrimSpace(s[i+1:])
	}
	return s
}

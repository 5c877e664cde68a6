// Package analysis holds what the code-analysis and security-scan
// workflows produce — findings, metrics, patterns, the report — and renders
// the report as Markdown and SARIF 2.1.0. The scanners live in subpackages
// (repo, secrets, sast, metrics, patterns), each a thin adapter over a
// well-kept tool; none of them ever executes code from the analyzed
// repository.
package analysis

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"

	"github.com/ultramcp/durable/telemetry"
)

// Severities, highest first.
const (
	SeverityCritical = "critical"
	SeverityHigh     = "high"
	SeverityMedium   = "medium"
	SeverityLow      = "low"
	SeverityInfo     = "info"
)

// SeverityRank orders severities, 0 highest.
func SeverityRank(s string) int {
	switch s {
	case SeverityCritical:
		return 0
	case SeverityHigh:
		return 1
	case SeverityMedium:
		return 2
	case SeverityLow:
		return 3
	}
	return 4
}

// Finding is one security finding. A secret appears only redacted.
type Finding struct {
	Tool       string `json:"tool"` // gitleaks, gosec
	RuleID     string `json:"ruleId"`
	Title      string `json:"title"`
	Severity   string `json:"severity"`
	Confidence string `json:"confidence,omitempty"`
	CWE        string `json:"cwe,omitempty"`
	File       string `json:"file"`
	Line       int    `json:"line"`
	Commit     string `json:"commit,omitempty"` // set for findings in history
	Excerpt    string `json:"excerpt,omitempty"`
	// Fingerprint identifies the finding across scans whatever line it
	// moved to: rule, file and the flagged code (or secret), not the line.
	Fingerprint string `json:"fingerprint"`
	// Also are the other places the same finding was seen: a secret in
	// the tree and in history is one finding.
	Also []Location `json:"also,omitempty"`
	// A vulnerable dependency: the module and version in the build, the
	// version that fixes it, the vulnerability's other ids (CVE, GHSA),
	// whether the code calls the vulnerable function, and the call path.
	Module       string   `json:"module,omitempty"`
	Version      string   `json:"version,omitempty"`
	FixedVersion string   `json:"fixedVersion,omitempty"`
	Aliases      []string `json:"aliases,omitempty"`
	URL          string   `json:"url,omitempty"`
	Reachable    bool     `json:"reachable,omitempty"`
	Trace        []string `json:"trace,omitempty"`
	// New is set when the report is compared with a previous one and this
	// finding was not in it.
	New bool `json:"new,omitempty"`
}

// Location is a place in the tree, or in a commit of history.
type Location struct {
	File   string `json:"file"`
	Line   int    `json:"line"`
	Commit string `json:"commit,omitempty"`
}

// Fingerprint is the line-independent identity of a finding: tool, rule,
// file and a digest of what was flagged.
func Fingerprint(file, rule, flagged string) string {
	h := sha256.Sum256([]byte(strings.Join(strings.Fields(flagged), " ")))
	return file + ":" + rule + ":" + hex.EncodeToString(h[:6])
}

// Comparison says how a report differs from a previous one.
type Comparison struct {
	PreviousCommit string   `json:"previousCommit,omitempty"`
	New            int      `json:"new"`
	Unchanged      int      `json:"unchanged"`
	Fixed          int      `json:"fixed"`
	FixedFindings  []string `json:"fixedFindings,omitempty"` // fingerprints, at most 100
}

// Scanner statuses.
const (
	ScannerCompleted = "completed"
	ScannerFailed    = "failed"
	ScannerSkipped   = "skipped" // not run, with why (the run's budget)
)

// ScannerRun says how one scanner fared; a failed scanner does not fail
// the analysis.
type ScannerRun struct {
	Name       string `json:"name"`
	Status     string `json:"status"`
	Error      string `json:"error,omitempty"`
	Findings   int    `json:"findings"`
	DurationMS int64  `json:"durationMs"`
}

// LanguageStats are scc's counts for one language.
type LanguageStats struct {
	Name       string `json:"name"`
	Files      int64  `json:"files"`
	Lines      int64  `json:"lines"`
	Code       int64  `json:"code"`
	Comment    int64  `json:"comment"`
	Blank      int64  `json:"blank"`
	Complexity int64  `json:"complexity"`
}

// FileStats are scc's counts for one file.
type FileStats struct {
	Path       string `json:"path"`
	Language   string `json:"language"`
	Lines      int64  `json:"lines"`
	Code       int64  `json:"code"`
	Complexity int64  `json:"complexity"`
}

// FunctionComplexity is one Go function's complexity.
type FunctionComplexity struct {
	Package    string `json:"package"`
	Function   string `json:"function"`
	File       string `json:"file"`
	Line       int    `json:"line"`
	Cyclomatic int    `json:"cyclomatic"`
	Cognitive  int    `json:"cognitive"`
}

// Metrics is the quality analysis.
type Metrics struct {
	Languages []LanguageStats      `json:"languages"`
	Files     []FileStats          `json:"files"` // largest first, at most MaxFiles
	Functions []FunctionComplexity `json:"functions"`
	TestLines int64                `json:"testLines"`
	CodeLines int64                `json:"codeLines"` // code lines of non-test source files
	TestRatio float64              `json:"testRatio"`
}

// Dependency is an import between two directories of the repository.
type Dependency struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// Patterns is the structure analysis.
type Patterns struct {
	Languages    []string     `json:"languages"`
	Frameworks   []string     `json:"frameworks"`
	BuildSystems []string     `json:"buildSystems"`
	Layers       []string     `json:"layers"` // top-level directories with code
	Dependencies []Dependency `json:"dependencies"`
	Summary      string       `json:"summary,omitempty"`
	SummaryModel string       `json:"summaryModel,omitempty"`
	Simulated    bool         `json:"simulated,omitempty"`
}

// Report is the analysis result.
type Report struct {
	ID           string         `json:"id"`
	Repository   string         `json:"repository"`
	Branch       string         `json:"branch"`
	Commit       string         `json:"commit"`
	AnalysisType string         `json:"analysisType"`
	Scanners     []ScannerRun   `json:"scanners"`
	Findings     []Finding      `json:"findings"`
	BySeverity   map[string]int `json:"bySeverity"`
	Metrics      *Metrics       `json:"metrics,omitempty"`
	Patterns     *Patterns      `json:"patterns,omitempty"`
	Comparison   *Comparison    `json:"comparison,omitempty"`
	GeneratedAt  time.Time      `json:"generatedAt"`
	// Partial is set when a scanner failed; Incomplete says which and why.
	Partial    bool     `json:"partial"`
	Incomplete []string `json:"incomplete,omitempty"`
}

// Baseline is what a later report is compared with (CompareWith): the commit
// and each finding's tool and fingerprint. It keeps a previous report
// small where it travels as a workflow's input.
func (r Report) Baseline() Report {
	slim := Report{Commit: r.Commit, Findings: make([]Finding, len(r.Findings))}
	for i, f := range r.Findings {
		slim.Findings[i] = Finding{Tool: f.Tool, Fingerprint: f.Fingerprint}
	}
	return slim
}

// ScannerOf is the Scanner called name whose findings name tool, scanning
// with scan.
func ScannerOf(name, tool string, scan func(ctx context.Context, dir string) ([]Finding, error)) Scanner {
	return scannerFunc{name, tool, scan}
}

type scannerFunc struct {
	name, tool string
	scan       func(ctx context.Context, dir string) ([]Finding, error)
}

func (s scannerFunc) Name() string { return s.name }
func (s scannerFunc) Tool() string { return s.tool }

// Scan runs the scanner in a span of its own: its name, tool and how many
// findings it made (never what they say: a found secret stays out).
func (s scannerFunc) Scan(ctx context.Context, dir string) ([]Finding, error) {
	ctx, span := telemetry.Start(ctx, "scan "+s.name, telemetry.Scanner.String(s.name))
	fs, err := s.scan(ctx, dir)
	span.SetAttributes(telemetry.Findings.Int(len(fs)))
	telemetry.End(span, err)
	return fs, err
}

// Scanner is a security scanner of a checkout (gitleaks, gosec,
// govulncheck). Scanners are independent and only read the tree, so a
// workflow runs them side by side, each as a step of its own.
type Scanner interface {
	// Name is its step and its row in the report.
	Name() string
	// Tool is the tool its findings name.
	Tool() string
	Scan(ctx context.Context, dir string) ([]Finding, error)
}

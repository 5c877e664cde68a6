package codeanalysis

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/ultramcp/durable/analysis/repo"
	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/workflow"
)

// Analysis types.
const (
	TypeSecurity = "security"
	TypeQuality  = "quality"
	TypePatterns = "patterns"
	TypeAll      = "all"
)

// Input is the request of code-analysis.
type Input struct {
	Repository   string `json:"repository" jsonschema:"git URL (https, ssh, git), or a local path when the service allows it"`
	Branch       string `json:"branch,omitempty" jsonschema:"branch or tag (default: the remote's default branch)"`
	AnalysisType string `json:"analysisType,omitempty" jsonschema:"security, quality, patterns or all (default)"`
	// Budget caps the model call of the patterns summary: one that would
	// pass it is not made, and the report is partial.
	Budget   *workflow.Budget `json:"budget,omitempty" jsonschema:"caps on cost, tokens and calls of the run's model calls"`
	Priority string           `json:"priority,omitempty" jsonschema:"interactive (default) or batch"`
}

// ScanInput is the request of security-scan.
type ScanInput struct {
	Target  string          `json:"target" jsonschema:"git URL, or a local path when the service allows it"`
	Branch  string          `json:"branch,omitempty" jsonschema:"branch or tag (default: the remote's default branch)"`
	Context json.RawMessage `json:"context,omitempty" jsonschema:"a previous analysis report: its findings are compared with this scan's"`
}

// MaxContextBytes bounds the context of a security scan (it is journaled
// with the input); the CLI sends only the previous findings' fingerprints.
const MaxContextBytes = 256 << 10

// decodeAnalysis parses a code-analysis request and checks it: under p
// when given (Validate: every interface's check before anything starts),
// else only what needs no configuration (the body's: the workflow applies
// the repository policy in its journaled "resolve" step, so that a replay
// under other settings follows the decision the first run made).
func decodeAnalysis(p *repo.Policy) func([]byte) (Input, error) {
	return func(body []byte) (Input, error) {
		var in Input
		if err := workflow.DecodeStrict(body, &in); err != nil {
			return in, err
		}
		if p != nil {
			return in, in.Validate(*p)
		}
		if err := repo.CheckSyntax("repository", in.Repository); err != nil {
			return in, err
		}
		return in, in.checkRest()
	}
}

// Validate checks the input and normalizes the repository.
func (in *Input) Validate(p repo.Policy) error {
	r, err := p.Validate(in.Repository)
	if err != nil {
		return err
	}
	in.Repository = r
	return in.checkRest()
}

func (in *Input) checkRest() error {
	if err := repo.ValidateBranch(in.Branch); err != nil {
		return err
	}
	switch in.AnalysisType {
	case "":
		in.AnalysisType = TypeAll
	case TypeSecurity, TypeQuality, TypePatterns, TypeAll:
	default:
		return fault.Invalidf("analysisType", "must be security, quality, patterns or all, got %q", in.AnalysisType)
	}
	if err := in.Budget.Validate(); err != nil {
		return err
	}
	return workflow.CheckPriority(in.Priority)
}

// decodeScan is decodeAnalysis for security-scan.
func decodeScan(p *repo.Policy) func([]byte) (ScanInput, error) {
	return func(body []byte) (ScanInput, error) {
		var in ScanInput
		if err := workflow.DecodeStrict(body, &in); err != nil {
			return in, err
		}
		if p == nil {
			if err := repo.CheckSyntax("target", in.Target); err != nil {
				return in, err
			}
			return in, in.checkRest()
		}
		t, err := p.Validate(in.Target)
		if err != nil {
			return in, asTarget(err)
		}
		in.Target = t
		return in, in.checkRest()
	}
}

// asTarget names security-scan's field in a repository error.
func asTarget(err error) error {
	if fault.FieldOf(err) != "repository" {
		return err
	}
	return fault.Invalidf("target", "%s", strings.TrimPrefix(err.Error(), "repository: "))
}

func (in *ScanInput) checkRest() error {
	if err := repo.ValidateBranch(in.Branch); err != nil {
		return err
	}
	if len(in.Context) > MaxContextBytes {
		return fault.Invalidf("context", "too large: %d bytes, at most %d", len(in.Context), MaxContextBytes)
	}
	if len(in.Context) > 0 && string(in.Context) != "null" {
		var previous struct {
			Findings []json.RawMessage `json:"findings"`
		}
		if err := json.Unmarshal(in.Context, &previous); err != nil {
			return fault.Invalidf("context", "must be a previous analysis report (a JSON object with findings)")
		}
	}
	return nil
}

func (in Input) String() string {
	return fmt.Sprintf("%s@%s (%s)", in.Repository, in.Branch, in.AnalysisType)
}

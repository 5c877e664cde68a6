package analysis

import (
	"encoding/json"
	"net/url"
	"runtime/debug"
	"sort"
	"strings"
)

// SARIF 2.1.0 types: only the parts we fill.
type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool                     sarifTool          `json:"tool"`
	Results                  []sarifResult      `json:"results"`
	VersionControlProvenance []sarifVCS         `json:"versionControlProvenance,omitempty"`
	Invocations              []sarifInvocation  `json:"invocations,omitempty"`
	Properties               map[string]any     `json:"properties,omitempty"`
	OriginalURIBaseIDs       map[string]sarifAL `json:"originalUriBaseIds,omitempty"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	Version        string      `json:"version,omitempty"`
	InformationURI string      `json:"informationUri,omitempty"`
	Rules          []sarifRule `json:"rules"`
}

type sarifRule struct {
	ID                   string         `json:"id"`
	ShortDescription     sarifMessage   `json:"shortDescription"`
	Help                 *sarifMessage  `json:"help,omitempty"`
	HelpURI              string         `json:"helpUri,omitempty"`
	DefaultConfiguration sarifConfig    `json:"defaultConfiguration"`
	Properties           map[string]any `json:"properties,omitempty"`
}

type sarifRelated struct {
	ID               int           `json:"id"`
	PhysicalLocation sarifPhysical `json:"physicalLocation"`
	Message          sarifMessage  `json:"message"`
}

type sarifConfig struct {
	Level string `json:"level"`
}

type sarifMessage struct {
	Text string `json:"text"`
}

type sarifResult struct {
	RuleID              string            `json:"ruleId"`
	RuleIndex           int               `json:"ruleIndex"`
	Level               string            `json:"level"`
	Message             sarifMessage      `json:"message"`
	Locations           []sarifLocation   `json:"locations"`
	RelatedLocations    []sarifRelated    `json:"relatedLocations,omitempty"`
	PartialFingerprints map[string]string `json:"partialFingerprints,omitempty"`
	Properties          map[string]any    `json:"properties,omitempty"`
}

type sarifLocation struct {
	PhysicalLocation sarifPhysical `json:"physicalLocation"`
}

type sarifPhysical struct {
	ArtifactLocation sarifAL     `json:"artifactLocation"`
	Region           sarifRegion `json:"region"`
}

type sarifAL struct {
	URI       string `json:"uri"`
	URIBaseID string `json:"uriBaseId,omitempty"`
}

type sarifRegion struct {
	StartLine int           `json:"startLine"`
	Snippet   *sarifMessage `json:"snippet,omitempty"`
}

type sarifVCS struct {
	RepositoryURI string `json:"repositoryUri"`
	RevisionID    string `json:"revisionId,omitempty"`
	Branch        string `json:"branch,omitempty"`
}

type sarifInvocation struct {
	ExecutionSuccessful bool                `json:"executionSuccessful"`
	ToolExecutionNotes  []sarifNotification `json:"toolExecutionNotifications,omitempty"`
}

type sarifNotification struct {
	Message sarifMessage `json:"message"`
	Level   string       `json:"level"`
}

var toolURIs = map[string]string{
	"gitleaks":    "https://github.com/gitleaks/gitleaks",
	"gosec":       "https://github.com/securego/gosec",
	"govulncheck": "https://go.dev/security/vuln",
}

// toolModules are the Go modules of the tools, whose versions the build
// records.
var toolModules = map[string]string{
	"gitleaks":    "github.com/zricethezav/gitleaks/v8",
	"gosec":       "github.com/securego/gosec/v2",
	"govulncheck": "golang.org/x/vuln",
}

// toolVersion is the version of tool built into this binary.
func toolVersion(tool string) string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, d := range info.Deps {
		if d.Path == toolModules[tool] {
			return strings.TrimPrefix(d.Version, "v")
		}
	}
	return ""
}

// securitySeverity is GitHub code scanning's 0–10 score of a severity.
func securitySeverity(severity string) string {
	switch severity {
	case SeverityCritical:
		return "9.5"
	case SeverityHigh:
		return "8.0"
	case SeverityMedium:
		return "5.5"
	case SeverityLow:
		return "3.0"
	}
	return "1.0"
}

// ruleHelp is the help of a rule: what was found and where to read more.
func ruleHelp(f Finding) (*sarifMessage, string) {
	text := f.Title + "."
	uri := toolURIs[f.Tool]
	if n, ok := strings.CutPrefix(f.CWE, "CWE-"); ok {
		uri = "https://cwe.mitre.org/data/definitions/" + n + ".html"
		text += " " + f.CWE + ": see " + uri + "."
	}
	if f.URL != "" {
		uri = f.URL
	}
	if f.Tool == "govulncheck" {
		text += " Upgrade the module to the fixed version; a vulnerable function that the code calls is the urgent case."
	}
	if f.Tool == "gitleaks" {
		text += " Revoke the credential and rotate it: removing it from the code does not remove it from history."
	}
	return &sarifMessage{Text: text}, uri
}

// srcRoot is the URI the results' paths are relative to: the repository
// itself when it is a URL.
func srcRoot(repository string) string {
	if u, err := url.Parse(repository); err == nil && u.Scheme != "" && u.Host+u.Path != "" && len(u.Scheme) > 1 {
		return strings.TrimSuffix(repository, "/") + "/"
	}
	return "file:///src/"
}

// scannerOf names the scanner run that feeds each security tool's results:
// the one list of security scanners the report knows (the scanners
// themselves, analysis.Scanner implementations, say the same).
var scannerOf = map[string]string{"gitleaks": "secrets", "gosec": "gosec", "govulncheck": "govulncheck"}

func level(severity string) string {
	switch severity {
	case SeverityCritical, SeverityHigh:
		return "error"
	case SeverityMedium:
		return "warning"
	}
	return "note"
}

// SARIF renders the security findings as a SARIF 2.1.0 log: one run per
// tool, rules with their default level, results with location, redacted
// snippet and a stable fingerprint.
func (r *Report) SARIF() ([]byte, error) {
	byTool := map[string][]Finding{}
	for _, f := range r.Findings {
		byTool[f.Tool] = append(byTool[f.Tool], f)
	}
	for _, s := range r.Scanners { // a scanner that ran but found nothing still gets its run
		for tool, scanner := range scannerOf {
			if s.Name == scanner {
				if _, ok := byTool[tool]; !ok {
					byTool[tool] = nil
				}
			}
		}
	}
	tools := make([]string, 0, len(byTool))
	for t := range byTool {
		tools = append(tools, t)
	}
	sort.Strings(tools)
	log := sarifLog{Schema: "https://json.schemastore.org/sarif-2.1.0.json", Version: "2.1.0", Runs: []sarifRun{}}
	for _, tool := range tools {
		log.Runs = append(log.Runs, r.sarifRun(tool, byTool[tool]))
	}
	return json.MarshalIndent(log, "", "  ")
}

// sarifRun is the run of one tool: its invocation, rules and results.
func (r *Report) sarifRun(tool string, findings []Finding) sarifRun {
	run := sarifRun{
		Tool:    sarifTool{Driver: sarifDriver{Name: tool, Version: toolVersion(tool), InformationURI: toolURIs[tool], Rules: []sarifRule{}}},
		Results: []sarifResult{},
		OriginalURIBaseIDs: map[string]sarifAL{
			"SRCROOT": {URI: srcRoot(r.Repository)},
		},
	}
	if r.Repository != "" {
		run.VersionControlProvenance = []sarifVCS{{RepositoryURI: r.Repository, RevisionID: r.Commit, Branch: r.Branch}}
	}
	inv := sarifInvocation{ExecutionSuccessful: true}
	for _, s := range r.Scanners {
		if s.Name == scannerOf[tool] && s.Status == ScannerFailed {
			inv = sarifInvocation{ExecutionSuccessful: false, ToolExecutionNotes: []sarifNotification{{Message: sarifMessage{Text: s.Error}, Level: "error"}}}
		}
	}
	run.Invocations = []sarifInvocation{inv}
	ruleIndex := map[string]int{}
	for _, f := range findings {
		idx, ok := ruleIndex[f.RuleID]
		if !ok {
			idx = len(run.Tool.Driver.Rules)
			ruleIndex[f.RuleID] = idx
			run.Tool.Driver.Rules = append(run.Tool.Driver.Rules, sarifRuleOf(f))
		}
		run.Results = append(run.Results, sarifResultOf(f, idx))
	}
	return run
}

// sarifRuleOf is the rule a finding is the first of.
func sarifRuleOf(f Finding) sarifRule {
	help, uri := ruleHelp(f)
	rule := sarifRule{ID: f.RuleID, ShortDescription: sarifMessage{Text: f.Title}, Help: help, HelpURI: uri,
		DefaultConfiguration: sarifConfig{Level: level(f.Severity)}}
	tags := []string{"security"}
	if f.CWE != "" {
		tags = append(tags, f.CWE, "external/cwe/"+strings.ToLower(f.CWE))
	}
	rule.Properties = map[string]any{"tags": tags, "security-severity": securitySeverity(f.Severity)}
	return rule
}

// sarifResultOf is a finding as a result of the rule at idx.
func sarifResultOf(f Finding, idx int) sarifResult {
	res := sarifResult{
		RuleID: f.RuleID, RuleIndex: idx, Level: level(f.Severity),
		Message: sarifMessage{Text: f.Title},
		Locations: []sarifLocation{{PhysicalLocation: sarifPhysical{
			ArtifactLocation: sarifAL{URI: f.File, URIBaseID: "SRCROOT"},
			Region:           sarifRegion{StartLine: max(f.Line, 1)},
		}}},
		PartialFingerprints: map[string]string{"ultramcp/v1": f.Fingerprint},
	}
	if f.Excerpt != "" {
		res.Locations[0].PhysicalLocation.Region.Snippet = &sarifMessage{Text: f.Excerpt}
	}
	if f.Commit != "" {
		res.Properties = map[string]any{"commit": f.Commit}
	}
	for i, o := range f.Also {
		msg := "also here"
		if o.Commit != "" {
			msg = "also in commit " + o.Commit
		}
		res.RelatedLocations = append(res.RelatedLocations, sarifRelated{ID: i + 1, Message: sarifMessage{Text: msg},
			PhysicalLocation: sarifPhysical{ArtifactLocation: sarifAL{URI: o.File, URIBaseID: "SRCROOT"}, Region: sarifRegion{StartLine: max(o.Line, 1)}}})
	}
	return res
}

// Package workflow names the durable workflows UltraMCP serves and holds what
// they share. Each workflow's logic lives in its own subpackage (debate, …),
// written against engine.Context so that Restate or the direct engine can run
// it.
package workflow

// Service names, as the seed's URLs spell them.
const (
	ChainOfDebate = "chain-of-debate"
	CodeAnalysis  = "code-analysis"
	SecurityScan  = "security-scan"
	FullAnalysis  = "full-analysis"
)

// Handler names on every workflow service.
const (
	RunHandler      = "run"
	ProgressHandler = "progress"
	// DecideHandler takes a human decision for a workflow waiting on one.
	DecideHandler = "decide"
)

// DecisionPromise is the durable promise DecideHandler resolves.
const DecisionPromise = "decision"

// ProgressKey is the state key under which a workflow publishes progress.
const ProgressKey = "progress"

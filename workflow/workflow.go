// Package workflow names the durable workflows UltraMCP serves and holds what
// they share. Each workflow's logic lives in its own subpackage (debate, …),
// written against engine.Context so that Restate or the direct engine can run
// it.
package workflow

import "github.com/ultramcp/durable/engine"

// Service names, as the seed's URLs spell them, of the workflows others
// call as children (a workflow nobody calls names itself in its package).
const (
	ChainOfDebate = "chain-of-debate"
	CodeAnalysis  = "code-analysis"
	SecurityScan  = "security-scan"
)

// Handler names on every workflow service (the engines define them).
const (
	RunHandler      = engine.RunHandler
	ProgressHandler = engine.ProgressHandler
	// DecideHandler takes a human decision for a workflow waiting on one.
	DecideHandler = engine.DecideHandler
)

// The gates DecideHandler opens, only while the workflow waits at one:
// an escalated debate's decision and a full-analysis's approval.
const (
	DecisionPromise = engine.DecisionPromise
	ApprovalPromise = engine.ApprovalPromise
)

// GateOf says which gate a decision's JSON is for ("" for neither).
func GateOf(value []byte) string { return engine.GateOf(value) }

// ProgressKey is the state key under which a workflow publishes progress.
const ProgressKey = engine.ProgressKey

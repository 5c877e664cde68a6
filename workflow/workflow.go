// Package workflow names the durable workflows UltraMCP serves and holds what
// they share. Each workflow's logic lives in its own subpackage (debate, …),
// written against engine.Context so that Restate or the direct engine can run
// it.
package workflow

import (
	"github.com/ultramcp/durable/engine"
	"github.com/ultramcp/durable/fault"
)

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

// MaxIDChars bounds a workflow id (a client's Idempotency-Key).
const MaxIDChars = 128

// CheckID refuses an id Restate's URLs, the store, a path and a terminal
// should not carry: letters, digits, '-', '_' and '.' only, and not first a
// dot (".", ".." and their like are path steps, which a link cannot
// reach). The application service checks it at submit; every workflow
// checks its own key again, since the ingress socket reaches it without
// the service.
func CheckID(id string) error {
	if id == "" {
		return fault.Invalidf("id", "empty")
	}
	if len(id) > MaxIDChars {
		return fault.Invalidf("id", "longer than %d characters", MaxIDChars)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fault.Invalidf("id", "may hold only letters, digits, '-', '_' and '.'")
		}
	}
	if id[0] == '.' {
		return fault.Invalidf("id", "must not start with '.'")
	}
	return nil
}

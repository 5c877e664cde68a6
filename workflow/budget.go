package workflow

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/llm"
)

// Budget caps what one run may spend on models. The workflow checks it
// before each call (or each batch of calls made side by side), on their
// estimate: a run that would go over stops cleanly before them and ends
// partial, saying so, with everything done so far. What has been spent is
// read from the journaled answers, so a replay decides the same.
type Budget struct {
	MaxCostUSD *float64 `json:"maxCostUSD,omitempty" jsonschema:"most the run may spend, in USD, at list prices"`
	MaxTokens  *int     `json:"maxTokens,omitempty" jsonschema:"most tokens (input plus output) the run may use"`
	MaxCalls   *int     `json:"maxCalls,omitempty" jsonschema:"most model calls the run may make"`
}

// Spend is what calls cost: spent so far, or estimated.
type Spend struct {
	CostUSD float64 `json:"costUSD"`
	Tokens  int     `json:"tokens"`
	Calls   int     `json:"calls"`
}

// Plus is s and o together.
func (s Spend) Plus(o Spend) Spend {
	return Spend{CostUSD: s.CostUSD + o.CostUSD, Tokens: s.Tokens + o.Tokens, Calls: s.Calls + o.Calls}
}

// EstimateOf is what asking each request of its model should cost: its
// tokens as llm.Estimate counts them, at the model's list price. Every
// budget check estimates the calls it is about to make with it.
func EstimateOf(refs []llm.Ref, reqs []llm.Request) Spend {
	var s Spend
	for i, req := range reqs {
		in, out := llm.Estimate(req)
		cost, _ := llm.EstimateCostOf(refs[i], in, out)
		s = s.Plus(Spend{CostUSD: cost, Tokens: in + out, Calls: 1})
	}
	return s
}

// BudgetUse is a budget and what the run spent of it, for its result.
type BudgetUse struct {
	Budget
	Spent Spend `json:"spent"`
}

// DecodeBudget reads a request's "budget", field by field, so that an
// error names the one at fault ("budget.maxCostUSD").
func DecodeBudget(raw json.RawMessage) (*Budget, error) {
	if string(raw) == "null" {
		return nil, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, fault.Invalidf("budget", "must be an object {maxCostUSD, maxTokens, maxCalls}")
	}
	b := &Budget{}
	targets := map[string]any{"maxCostUSD": &b.MaxCostUSD, "maxTokens": &b.MaxTokens, "maxCalls": &b.MaxCalls}
	for name, v := range fields {
		target, ok := targets[name]
		if !ok {
			return nil, fault.Invalidf("budget."+name, "unknown field; the bounds are maxCostUSD, maxTokens and maxCalls")
		}
		if err := json.Unmarshal(v, target); err != nil {
			return nil, fault.Invalidf("budget."+name, "%s", DescribeJSONError(err))
		}
	}
	return b, b.Validate()
}

// Validate refuses a bound that is negative or not a finite number.
func (b *Budget) Validate() error {
	if b == nil {
		return nil
	}
	if c := b.MaxCostUSD; c != nil && (*c < 0 || math.IsNaN(*c) || math.IsInf(*c, 0)) {
		return fault.Invalidf("budget.maxCostUSD", "must be a number of USD, 0 or more")
	}
	for name, n := range map[string]*int{"budget.maxTokens": b.MaxTokens, "budget.maxCalls": b.MaxCalls} {
		if n != nil && *n < 0 {
			return fault.Invalidf(name, "must be a whole number, 0 or more")
		}
	}
	return nil
}

// Over is the bound ("budget.maxCostUSD", …) that spending next on top of
// spent would pass, and how far it is spent ("$0.48 of $0.50"); "" when
// none.
func (b *Budget) Over(spent, next Spend) (field, used string) {
	if b == nil {
		return "", ""
	}
	after := spent.Plus(next)
	switch {
	case b.MaxCostUSD != nil && after.CostUSD > *b.MaxCostUSD:
		return "budget.maxCostUSD", fmt.Sprintf("%s of %s", usd(spent.CostUSD), usd(*b.MaxCostUSD))
	case b.MaxTokens != nil && after.Tokens > *b.MaxTokens:
		return "budget.maxTokens", fmt.Sprintf("%d tokens of %d", spent.Tokens, *b.MaxTokens)
	case b.MaxCalls != nil && after.Calls > *b.MaxCalls:
		return "budget.maxCalls", fmt.Sprintf("%d calls of %d", spent.Calls, *b.MaxCalls)
	}
	return "", ""
}

// CheckFirst refuses at submit a budget that the run's first calls (first,
// estimated) would pass: it could make no call at all.
func (b *Budget) CheckFirst(first Spend, what string) error {
	field, _ := b.Over(Spend{}, first)
	if field == "" {
		return nil
	}
	var need string
	switch field {
	case "budget.maxCostUSD":
		need = usd(first.CostUSD)
	case "budget.maxTokens":
		need = fmt.Sprintf("about %d tokens", first.Tokens)
	default:
		need = fmt.Sprintf("%d calls", first.Calls)
	}
	return fault.Invalidf(field, "too small: %s is estimated at %s", what, need)
}

// Share is b divided among n parts (a parent's children): each gets
// weight of the whole.
func (b *Budget) Share(weight float64) *Budget {
	if b == nil {
		return nil
	}
	out := &Budget{}
	if b.MaxCostUSD != nil {
		c := *b.MaxCostUSD * weight
		out.MaxCostUSD = &c
	}
	if b.MaxTokens != nil {
		n := int(float64(*b.MaxTokens) * weight)
		out.MaxTokens = &n
	}
	if b.MaxCalls != nil {
		n := int(float64(*b.MaxCalls) * weight)
		out.MaxCalls = &n
	}
	return out
}

// String is the budget as people read it: "$0.50, 20000 tokens".
func (b *Budget) String() string {
	if b == nil {
		return "none"
	}
	var parts []string
	if b.MaxCostUSD != nil {
		parts = append(parts, usd(*b.MaxCostUSD))
	}
	if b.MaxTokens != nil {
		parts = append(parts, fmt.Sprintf("%d tokens", *b.MaxTokens))
	}
	if b.MaxCalls != nil {
		parts = append(parts, fmt.Sprintf("%d calls", *b.MaxCalls))
	}
	return strings.Join(parts, ", ")
}

func usd(v float64) string {
	if v < 0.01 && v > 0 {
		return fmt.Sprintf("$%.6f", v)
	}
	return fmt.Sprintf("$%.2f", v)
}

// Priorities: interactive work (the default: API, CLI, MCP) goes ahead of
// batch work when both wait for one provider's limit.
const (
	PriorityInteractive = "interactive"
	PriorityBatch       = "batch"
)

// CheckPriority refuses a priority that is neither.
func CheckPriority(p string) error {
	if p != "" && p != PriorityInteractive && p != PriorityBatch {
		return fault.Invalidf("priority", "must be %q or %q, got %q", PriorityInteractive, PriorityBatch, p)
	}
	return nil
}

package llm

import "time"

// Usage is what one model call cost: which model answered, the tokens each
// way, the estimated price and how long it took. Every record of a call (a
// debate's answer, the moderator's, the store's row) carries this one
// value.
type Usage struct {
	Model     string  `json:"model,omitempty"` // "provider:model"
	TokensIn  int     `json:"tokensIn,omitempty"`
	TokensOut int     `json:"tokensOut,omitempty"`
	CostUSD   float64 `json:"costUSD,omitempty"`
	LatencyMS int64   `json:"latencyMs"`
}

// UsageOf is the usage of an answer that took latency, its price
// estimated from the model's (EstimateCost).
func UsageOf(r Response, latency time.Duration) Usage {
	cost, _ := EstimateCost(r.Model, r.TokensIn, r.TokensOut)
	return Usage{Model: r.Model, TokensIn: r.TokensIn, TokensOut: r.TokensOut, CostUSD: cost, LatencyMS: latency.Milliseconds()}
}

// Tally sums the usage of calls.
type Tally struct {
	Calls     int     `json:"calls"`
	TokensIn  int     `json:"tokensIn"`
	TokensOut int     `json:"tokensOut"`
	CostUSD   float64 `json:"costUSD"`
}

// Add counts one call.
func (t *Tally) Add(u Usage) {
	t.Calls++
	t.TokensIn += u.TokensIn
	t.TokensOut += u.TokensOut
	t.CostUSD += u.CostUSD
}

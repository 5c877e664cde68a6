package llm

import (
	"strings"
	"sync"
)

// price is USD per million tokens.
type price struct{ in, out float64 }

// prices are list prices for common models, used only to estimate cost; a
// model that is not listed costs 0 and is flagged as unpriced by the caller.
var prices = map[string]price{
	"gpt-4o":            {2.50, 10.00},
	"gpt-4o-mini":       {0.15, 0.60},
	"gpt-4.1":           {2.00, 8.00},
	"gpt-4.1-mini":      {0.40, 1.60},
	"gpt-4.1-nano":      {0.10, 0.40},
	"o4-mini":           {1.10, 4.40},
	"claude-sonnet-4":   {3.00, 15.00},
	"claude-opus-4":     {15.00, 75.00},
	"claude-3-5-haiku":  {0.80, 4.00},
	"claude-haiku-4":    {1.00, 5.00},
	"claude-3-7-sonnet": {3.00, 15.00},
}

// EstimateCost returns the estimated cost in USD of a call to model
// ("provider:model" or a bare model name) and whether the model is priced.
func EstimateCost(model string, tokensIn, tokensOut int) (float64, bool) {
	_, name, found := strings.Cut(model, ":")
	if !found {
		name = model
	}
	best, bestLen := price{}, 0
	// Longest prefix wins so dated snapshots ("gpt-4o-mini-2024-07-18") match.
	for prefix, p := range prices {
		if strings.HasPrefix(name, prefix) && len(prefix) > bestLen {
			best, bestLen = p, len(prefix)
		}
	}
	if bestLen == 0 {
		return 0, false
	}
	return (float64(tokensIn)*best.in + float64(tokensOut)*best.out) / 1e6, true
}

// defaultModels are the model each provider calls when a request names
// none: the price of a call to "openai" is its default model's.
var defaultModels sync.Map

// RegisterDefaultModel records provider's default model (each provider
// package does, for EstimateCostOf).
func RegisterDefaultModel(provider, model string) { defaultModels.Store(provider, model) }

// EstimateCostOf is EstimateCost of a call to ref: to its provider's
// default model when it names none.
func EstimateCostOf(ref Ref, tokensIn, tokensOut int) (float64, bool) {
	if ref.Model == "" {
		if m, ok := defaultModels.Load(ref.Provider); ok {
			ref.Model = m.(string)
		}
	}
	return EstimateCost(ref.Provider+":"+ref.Model, tokensIn, tokensOut)
}

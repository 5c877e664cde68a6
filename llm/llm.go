// Package llm is the one interface every model provider implements, plus what
// is shared by all of them: the retry policy for transient faults, the
// per-call timeout, the router that picks a provider from a model reference
// such as "openai:gpt-4o-mini", and the price table for cost estimates.
//
// Providers live in subpackages (openai, anthropic, offline) and import only
// this package and fault.
package llm

import (
	"context"
	"fmt"
	"net/http"
	"strings"
)

// Endpoint configures a remote provider (openai.Config, anthropic.Config).
// APIKey never leaves the provider: it is not logged and is scrubbed from
// error messages.
type Endpoint struct {
	BaseURL    string // "" means the provider's own
	APIKey     string
	Model      string // "" means the provider's default model
	HTTPClient *http.Client
}

// Message is one chat message.
type Message struct {
	Role    string `json:"role"` // "user" or "assistant"
	Content string `json:"content"`
}

// Request is one completion request.
type Request struct {
	Model     string    // provider-specific model name; "" means the provider's default
	System    string    // system prompt
	Messages  []Message // conversation, usually one user message
	JSON      bool      // ask for a JSON object in the content (JSON mode where supported)
	MaxTokens int       // 0 means the provider's default
	// Label names the step for logs and for the endpoint (sent as the
	// X-UltraMCP-Step header), e.g. "debate-1/round-2/alice".
	Label string
	// Batch is batch work (an eval): waiting for a permit of the
	// provider's limits, it goes behind interactive calls.
	Batch bool
	// OnDelta, if set, is told the answer's text as it is written, by a
	// provider that streams; restart (with no text) when the call starts
	// again. The Response is the whole answer still.
	OnDelta func(delta string, restart bool)
}

// Response is one completion.
type Response struct {
	Text      string `json:"text"`
	Model     string `json:"model"` // "provider:model" that answered
	TokensIn  int    `json:"tokensIn"`
	TokensOut int    `json:"tokensOut"`
	// Simulated is true for the offline provider: no model was asked.
	Simulated bool `json:"simulated,omitempty"`
	// Attempts is how many calls the answer took (set by Retrying).
	Attempts int `json:"attempts,omitempty"`
}

// Model completes chat requests. Implementations classify their failures with
// package fault: Unavailable for what may pass (429, 5xx, timeouts, network),
// Permanent for what cannot (400, 401, 403), and never put an API key in an
// error.
type Model interface {
	Complete(ctx context.Context, req Request) (Response, error)
	// Name is the provider name: "openai", "anthropic", "offline".
	Name() string
}

// StepHeader carries Request.Label to the endpoint.
const StepHeader = "X-UltraMCP-Step"

// Ref is a parsed model reference "provider:model".
type Ref struct {
	Provider string
	Model    string
}

func (r Ref) String() string {
	if r.Model == "" {
		return r.Provider
	}
	return r.Provider + ":" + r.Model
}

// DefaultRef is the default model of a configuration: provider (offline
// when empty), with model in place of the provider's default when set.
func DefaultRef(provider, model string) (Ref, error) {
	def, err := ParseRef(provider, "offline")
	if err != nil {
		return Ref{}, err
	}
	if model != "" {
		def.Model = model
	}
	return def, nil
}

// Providers are the known provider names.
var Providers = []string{"offline", "openai", "anthropic"}

// ParseRef parses "provider[:model]". A bare model name is taken to belong to
// defaultProvider.
func ParseRef(s, defaultProvider string) (Ref, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Ref{Provider: defaultProvider}, nil
	}
	p, m, found := strings.Cut(s, ":")
	if !found {
		for _, known := range Providers {
			if s == known {
				return Ref{Provider: s}, nil
			}
		}
		return Ref{Provider: defaultProvider, Model: s}, nil
	}
	for _, known := range Providers {
		if p == known {
			return Ref{Provider: p, Model: m}, nil
		}
	}
	return Ref{}, fmt.Errorf("unknown provider %q (want one of %s)", p, strings.Join(Providers, ", "))
}

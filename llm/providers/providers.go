// Package providers builds the model router a service runs with from the
// configuration: the offline provider always, the OpenAI-compatible and
// Anthropic clients where the configuration enables them. It is the one
// package that links the providers' SDKs, so that what only checks a
// request's models (the CLI, the API, their tests) does not.
package providers

import (
	"net/http"

	"github.com/ultramcp/durable/config"
	"github.com/ultramcp/durable/llm"
	"github.com/ultramcp/durable/llm/anthropic"
	"github.com/ultramcp/durable/llm/offline"
	"github.com/ultramcp/durable/llm/openai"
)

// New builds the router over every provider cfg enables (config.Providers),
// each retrying transient faults with the default policy and cfg's call
// timeout, each attempt under a permit of gate (nil: no limits).
func New(cfg config.Config, gate llm.Gate) (*llm.Router, error) {
	def, err := llm.DefaultRef(cfg.LLM, cfg.Model)
	if err != nil {
		return nil, err
	}
	policy := llm.DefaultRetryPolicy
	policy.CallTimeout = cfg.LLMCallTimeout
	policy.Gate = gate
	// One pool of connections a provider, large enough for every call at
	// once: Go's default keeps two idle per host, so 32 calls at once to
	// one provider opened (and shook hands on) a connection per call.
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 256
	httpClient := &http.Client{Transport: transport}
	var models []llm.Model
	for _, p := range cfg.Providers() {
		switch p {
		case "offline":
			models = append(models, &offline.Provider{})
		case "openai":
			models = append(models, llm.Retrying(openai.New(openai.Config{BaseURL: cfg.OpenAIBaseURL, APIKey: cfg.OpenAIAPIKey, HTTPClient: httpClient}), policy))
		case "anthropic":
			models = append(models, llm.Retrying(anthropic.New(anthropic.Config{BaseURL: cfg.AnthropicBaseURL, APIKey: cfg.AnthropicAPIKey, HTTPClient: httpClient}), policy))
		}
	}
	return llm.NewRouter(def, models...), nil
}

// Package openai is the provider for OpenAI and every OpenAI-compatible
// endpoint (Ollama, vLLM, LM Studio, llama.cpp, OpenRouter), built on the
// official client github.com/openai/openai-go/v3.
package openai

import (
	"context"
	"errors"
	"net/http"

	oai "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"

	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/llm"
)

// DefaultModel is used when neither the request nor the config names one.
const DefaultModel = "gpt-4o-mini"

func init() { llm.RegisterDefaultModel("openai", DefaultModel) }

// Config configures the provider.
type Config = llm.Endpoint

// Provider talks to one OpenAI-compatible endpoint.
type Provider struct {
	client oai.Client
	cfg    Config
}

var _ llm.Model = (*Provider)(nil)

// New returns a provider. The client's own retries are off: llm.Retrying
// owns the retry policy so that it is the same for every provider.
func New(cfg Config) *Provider {
	if cfg.Model == "" {
		cfg.Model = DefaultModel
	}
	opts := []option.RequestOption{option.WithMaxRetries(0)}
	if cfg.BaseURL != "" {
		opts = append(opts, option.WithBaseURL(cfg.BaseURL))
	}
	key := cfg.APIKey
	if key == "" {
		key = "unused" // local servers (Ollama, vLLM) accept any key
	}
	opts = append(opts, option.WithAPIKey(key))
	if cfg.HTTPClient != nil {
		opts = append(opts, option.WithHTTPClient(cfg.HTTPClient))
	}
	return &Provider{client: oai.NewClient(opts...), cfg: cfg}
}

// Name implements llm.Model.
func (p *Provider) Name() string { return "openai" }

// Complete implements llm.Model.
func (p *Provider) Complete(ctx context.Context, req llm.Request) (llm.Response, error) {
	model := req.Model
	if model == "" {
		model = p.cfg.Model
	}
	var msgs []oai.ChatCompletionMessageParamUnion
	if req.System != "" {
		msgs = append(msgs, oai.SystemMessage(req.System))
	}
	for _, m := range req.Messages {
		if m.Role == "assistant" {
			msgs = append(msgs, oai.AssistantMessage(m.Content))
		} else {
			msgs = append(msgs, oai.UserMessage(m.Content))
		}
	}
	params := oai.ChatCompletionNewParams{Model: model, Messages: msgs}
	if req.MaxTokens > 0 {
		params.MaxCompletionTokens = oai.Int(int64(req.MaxTokens))
	}
	if req.JSON {
		params.ResponseFormat = oai.ChatCompletionNewParamsResponseFormatUnion{OfJSONObject: &shared.ResponseFormatJSONObjectParam{}}
	}
	var opts []option.RequestOption
	if req.Label != "" {
		opts = append(opts, option.WithHeader(llm.StepHeader, req.Label))
	}
	if req.OnDelta != nil {
		return p.stream(ctx, params, req.OnDelta, opts)
	}
	out, err := p.client.Chat.Completions.New(ctx, params, opts...)
	if err != nil {
		return llm.Response{}, p.classify(err)
	}
	return p.response(out, model)
}

// stream makes the call with the streaming API, telling onDelta each piece
// of the answer as it comes; the usage comes in the last chunk.
func (p *Provider) stream(ctx context.Context, params oai.ChatCompletionNewParams, onDelta func(string, bool), opts []option.RequestOption) (llm.Response, error) {
	params.StreamOptions = oai.ChatCompletionStreamOptionsParam{IncludeUsage: oai.Bool(true)}
	s := p.client.Chat.Completions.NewStreaming(ctx, params, opts...)
	defer s.Close()
	var acc oai.ChatCompletionAccumulator
	for s.Next() {
		chunk := s.Current()
		acc.AddChunk(chunk)
		if len(chunk.Choices) > 0 && chunk.Choices[0].Delta.Content != "" {
			onDelta(chunk.Choices[0].Delta.Content, false)
		}
	}
	if err := s.Err(); err != nil {
		return llm.Response{}, p.classify(err)
	}
	return p.response(&acc.ChatCompletion, params.Model)
}

func (p *Provider) response(out *oai.ChatCompletion, model string) (llm.Response, error) {
	if len(out.Choices) == 0 {
		return llm.Response{}, fault.New(fault.Unavailable, "openai: empty response (no choices)")
	}
	return llm.Response{
		Text:      out.Choices[0].Message.Content,
		Model:     "openai:" + firstNonEmpty(out.Model, model),
		TokensIn:  int(out.Usage.PromptTokens),
		TokensOut: int(out.Usage.CompletionTokens),
	}, nil
}

func (p *Provider) classify(err error) error {
	var apiErr *oai.Error
	if errors.As(err, &apiErr) {
		var header http.Header
		if apiErr.Response != nil {
			header = apiErr.Response.Header
		}
		return llm.ClassifyResponse("openai", apiErr.StatusCode, llm.Redact(apiErr.Message, p.cfg.APIKey), header)
	}
	return llm.ClassifyTransport("openai", err, p.cfg.APIKey)
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

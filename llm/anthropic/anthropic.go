// Package anthropic is the provider for Anthropic's Messages API, built on
// the official client github.com/anthropics/anthropic-sdk-go/v2.
package anthropic

import (
	"context"
	"errors"
	"net/http"
	"strings"

	ant "github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"

	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/llm"
)

// DefaultModel is used when neither the request nor the config names one.
const DefaultModel = "claude-sonnet-4-5"

func init() { llm.RegisterDefaultModel("anthropic", DefaultModel) }

// defaultMaxTokens is required by the Messages API.
const defaultMaxTokens = 1024

// Config configures the provider.
type Config = llm.Endpoint

// Provider talks to the Anthropic Messages API.
type Provider struct {
	client ant.Client
	cfg    Config
}

var _ llm.Model = (*Provider)(nil)

// New returns a provider with the client's own retries off (llm.Retrying
// owns the policy).
func New(cfg Config) *Provider {
	if cfg.Model == "" {
		cfg.Model = DefaultModel
	}
	opts := []option.RequestOption{option.WithMaxRetries(0), option.WithAPIKey(cfg.APIKey)}
	if cfg.BaseURL != "" {
		opts = append(opts, option.WithBaseURL(cfg.BaseURL))
	}
	if cfg.HTTPClient != nil {
		opts = append(opts, option.WithHTTPClient(cfg.HTTPClient))
	}
	return &Provider{client: ant.NewClient(opts...), cfg: cfg}
}

// Name implements llm.Model.
func (p *Provider) Name() string { return "anthropic" }

// Complete implements llm.Model. The Messages API has no JSON mode; the
// prompt asks for JSON and the caller's parser tolerates prose around it.
func (p *Provider) Complete(ctx context.Context, req llm.Request) (llm.Response, error) {
	model := req.Model
	if model == "" {
		model = p.cfg.Model
	}
	maxTokens := req.MaxTokens
	if maxTokens <= 0 {
		maxTokens = defaultMaxTokens
	}
	params := ant.MessageNewParams{Model: model, MaxTokens: int64(maxTokens)}
	if req.System != "" {
		params.System = []ant.TextBlockParam{{Text: req.System}}
	}
	for _, m := range req.Messages {
		block := ant.NewTextBlock(m.Content)
		if m.Role == "assistant" {
			params.Messages = append(params.Messages, ant.NewAssistantMessage(block))
		} else {
			params.Messages = append(params.Messages, ant.NewUserMessage(block))
		}
	}
	var opts []option.RequestOption
	if req.Label != "" {
		opts = append(opts, option.WithHeader(llm.StepHeader, req.Label))
	}
	if req.OnDelta != nil {
		return p.stream(ctx, params, req.OnDelta, opts)
	}
	out, err := p.client.Messages.New(ctx, params, opts...)
	if err != nil {
		return llm.Response{}, p.classify(err)
	}
	return response(out)
}

// stream makes the call with the streaming API, telling onDelta each piece
// of text as it comes; the accumulated message is the answer.
func (p *Provider) stream(ctx context.Context, params ant.MessageNewParams, onDelta func(string, bool), opts []option.RequestOption) (llm.Response, error) {
	s := p.client.Messages.NewStreaming(ctx, params, opts...)
	defer s.Close()
	var msg ant.Message
	for s.Next() {
		event := s.Current()
		if err := msg.Accumulate(event); err != nil {
			return llm.Response{}, fault.Wrap(fault.Unavailable, err, "anthropic: stream")
		}
		if event.Type == "content_block_delta" && event.Delta.Type == "text_delta" && event.Delta.Text != "" {
			onDelta(event.Delta.Text, false)
		}
	}
	if err := s.Err(); err != nil {
		return llm.Response{}, p.classify(err)
	}
	return response(&msg)
}

func (p *Provider) classify(err error) error {
	var apiErr *ant.Error
	if errors.As(err, &apiErr) {
		var header http.Header
		if apiErr.Response != nil {
			header = apiErr.Response.Header
		}
		return llm.ClassifyResponse("anthropic", apiErr.StatusCode, "", header)
	}
	return llm.ClassifyTransport("anthropic", err, p.cfg.APIKey)
}

func response(out *ant.Message) (llm.Response, error) {
	var text strings.Builder
	for _, block := range out.Content {
		if block.Type == "text" {
			text.WriteString(block.Text)
		}
	}
	if text.Len() == 0 {
		return llm.Response{}, fault.New(fault.Unavailable, "anthropic: response had no text")
	}
	return llm.Response{
		Text:      text.String(),
		Model:     "anthropic:" + string(out.Model),
		TokensIn:  int(out.Usage.InputTokens),
		TokensOut: int(out.Usage.OutputTokens),
	}, nil
}

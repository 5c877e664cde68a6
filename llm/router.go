package llm

import (
	"cmp"
	"context"
	"sort"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/ultramcp/durable/engine"
	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/live"
	"github.com/ultramcp/durable/sanitize"
	"github.com/ultramcp/durable/telemetry"
)

// Models is how workflows reach LLMs: a Router, or a fake in tests. They
// name a model and never hold a client or a key.
type Models interface {
	Resolve(ref string) (Ref, error)
	Complete(ctx context.Context, ref Ref, req Request) (Response, error)
}

var _ Models = (*Router)(nil)

// Router picks the provider for a model reference. It is how the workflows
// reach models: they name a model ("openai:gpt-4o-mini", "offline", or ""
// for the default) and never hold a client or a key themselves.
type Router struct {
	models   map[string]Model
	fallback Ref
	live     *live.Hub
}

// Streaming makes every call that has a label stream its answer to hub as
// it is written (live.Token): the journaled result is still the whole
// answer.
func (r *Router) Streaming(hub *live.Hub) *Router {
	r.live = hub
	return r
}

// NewRouter returns a router over the given providers; defaultRef is used for
// an empty reference and for bare model names.
func NewRouter(defaultRef Ref, models ...Model) *Router {
	r := &Router{models: map[string]Model{}, fallback: defaultRef}
	for _, m := range models {
		r.models[m.Name()] = m
	}
	return r
}

// Default is the reference used when a participant names no model.
func (r *Router) Default() Ref { return r.fallback }

// Available lists the configured provider names.
func (r *Router) Available() []string {
	var names []string
	for n := range r.models {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Resolve parses ref and checks that its provider is configured.
func (r *Router) Resolve(ref string) (Ref, error) {
	parsed, err := ParseRef(ref, r.fallback.Provider)
	if err != nil {
		return Ref{}, fault.Wrap(fault.Invalid, err, "model")
	}
	if parsed.Model == "" && parsed.Provider == r.fallback.Provider {
		parsed.Model = r.fallback.Model
	}
	if _, ok := r.models[parsed.Provider]; !ok {
		return Ref{}, notConfigured(parsed.Provider)
	}
	return parsed, nil
}

// Complete sends req to the provider named by ref.
func (r *Router) Complete(ctx context.Context, ref Ref, req Request) (Response, error) {
	m, ok := r.models[ref.Provider]
	if !ok {
		return Response{}, notConfigured(ref.Provider)
	}
	if req.Model == "" {
		req.Model = ref.Model
	}
	if r.live != nil && req.Label != "" && req.OnDelta == nil {
		label, hub := req.Label, r.live
		// A run resumed after its process died mid-call asks again: its
		// first piece says so, and a reader drops what it was shown of
		// the call before.
		resumed := engine.AttemptOf(ctx) > 1
		req.OnDelta = func(delta string, restart bool) {
			restart, resumed = restart || resumed, false
			hub.Publish(live.TokenOf(label, delta, restart))
		}
	}
	ctx, span := startChat(ctx, ref, req)
	resp, err := m.Complete(ctx, req)
	// A model's text is untrusted: no control character of it goes on to
	// journals, reports or terminals.
	resp.Text, resp.Model = sanitize.Text(resp.Text), sanitize.Line(resp.Model)
	endChat(span, ref, req, resp, err)
	return resp, err
}

// startChat starts the span of one model call, named and attributed as the
// OpenTelemetry GenAI conventions say (telemetry.GenAIConventions). No
// prompt goes in unless ULTRAMCP_TRACE_CONTENT allows it.
func startChat(ctx context.Context, ref Ref, req Request) (context.Context, trace.Span) {
	if !telemetry.On() {
		return ctx, nil
	}
	attrs := []attribute.KeyValue{
		semconv.GenAIOperationNameChat,
		semconv.GenAIProviderNameKey.String(ref.Provider),
		semconv.GenAIRequestModel(cmp.Or(req.Model, ref.String())),
		telemetry.Participant.String(participantOf(req.Label)),
	}
	if req.MaxTokens > 0 {
		attrs = append(attrs, semconv.GenAIRequestMaxTokens(req.MaxTokens))
	}
	if telemetry.Content() {
		// Built only when asked for: a prompt is kilobytes.
		a, _ := telemetry.ContentAttr(telemetry.Prompt, promptOf(req))
		attrs = append(attrs, a)
	}
	return telemetry.Start(ctx, "chat "+cmp.Or(req.Model, ref.Provider), attrs...)
}

// endChat ends a call's span and counts it.
func endChat(span trace.Span, ref Ref, req Request, resp Response, err error) {
	model := modelLabel(ref, req, resp)
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	telemetry.ModelCalls.WithLabelValues(ref.Provider, model, outcome).Inc()
	cost, _ := EstimateCost(resp.Model, resp.TokensIn, resp.TokensOut)
	if err == nil {
		telemetry.ModelTokens.WithLabelValues(ref.Provider, model, "input").Add(float64(resp.TokensIn))
		telemetry.ModelTokens.WithLabelValues(ref.Provider, model, "output").Add(float64(resp.TokensOut))
		telemetry.ModelCost.WithLabelValues(ref.Provider, model).Add(cost)
	}
	if span == nil {
		return
	}
	span.SetAttributes(
		semconv.GenAIResponseModel(resp.Model),
		semconv.GenAIUsageInputTokens(resp.TokensIn),
		semconv.GenAIUsageOutputTokens(resp.TokensOut),
		telemetry.CostUSD.Float64(cost),
	)
	if resp.Attempts > 1 {
		span.SetAttributes(telemetry.StepAttempt.Int(resp.Attempts))
	}
	if a, ok := telemetry.ContentAttr(telemetry.Answer, resp.Text); ok {
		span.SetAttributes(a)
	}
	telemetry.End(span, err)
}

// modelLabel names a call's model in metrics: the one that answered when
// its name is a plain model name, else the one asked for (an endpoint's
// answer is untrusted text, and a label must not carry any).
func modelLabel(ref Ref, req Request, resp Response) string {
	if m := resp.Model; m != "" && len(m) <= 100 && strings.Trim(m, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.:_/-") == "" {
		return m
	}
	return ref.Provider + ":" + cmp.Or(req.Model, "default")
}

// participantOf is the last part of a call's label ("debate-1/round-2/alice"
// is alice's).
func participantOf(label string) string {
	if i := strings.LastIndexByte(label, '/'); i >= 0 {
		return label[i+1:]
	}
	return label
}

func promptOf(req Request) string {
	var b strings.Builder
	b.WriteString(req.System)
	for _, m := range req.Messages {
		b.WriteString("\n")
		b.WriteString(m.Content)
	}
	return b.String()
}

// settings names what configures each provider.
var settings = map[string]string{
	"openai":    "OPENAI_API_KEY or OPENAI_BASE_URL",
	"anthropic": "ANTHROPIC_API_KEY",
}

func notConfigured(provider string) error {
	if s, ok := settings[provider]; ok {
		return fault.New(fault.Invalid, "provider %q is not configured on this service (set %s)", provider, s)
	}
	return fault.New(fault.Invalid, "provider %q is not configured on this service", provider)
}

// Configured is a router that knows which providers a service has
// configured, without their clients or keys: for checking at submit, in
// any process, the model a request names. Its Complete fails.
func Configured(defaultRef Ref, providers []string) *Router {
	models := make([]Model, len(providers))
	for i, p := range providers {
		models[i] = elsewhere(p)
	}
	return NewRouter(defaultRef, models...)
}

// elsewhere is a provider configured in another process.
type elsewhere string

func (e elsewhere) Name() string { return string(e) }
func (e elsewhere) Complete(context.Context, Request) (Response, error) {
	return Response{}, fault.New(fault.Internal, "provider %s runs in the workflow service, not here", string(e))
}

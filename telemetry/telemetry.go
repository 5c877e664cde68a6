// Package telemetry is the product's OpenTelemetry and Prometheus wiring:
// the tracer provider (OTLP, configured by the standard OTEL_* variables,
// off unless OTEL_EXPORTER_OTLP_ENDPOINT is set, and then nothing is
// installed so that tracing costs nothing), the W3C propagator that carries
// a caller's trace through the API, the Restate ingress and into the
// service, the names of the attributes every layer sets, and the metrics
// the API serves at /metrics.
//
// It is a leaf (it imports sanitize alone of this module), so the
// workflow logic, the providers and the store can all report through it.
package telemetry

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/ultramcp/durable/sanitize"
)

// Scope is the instrumentation scope of every span the product makes.
const Scope = "github.com/ultramcp/durable"

// GenAIConventions is the version of the OpenTelemetry semantic conventions
// whose gen_ai.* attributes the model-call spans carry (still marked
// Development there, so pinned and named in docs/operations.md).
const GenAIConventions = "1.41.0"

// Attributes of our own, beside the GenAI conventions'.
const (
	WorkflowName  = attribute.Key("ultramcp.workflow.name")
	WorkflowID    = attribute.Key("ultramcp.workflow.id")
	WorkflowRun   = attribute.Key("ultramcp.workflow.run")
	WorkflowEnded = attribute.Key("ultramcp.workflow.status")
	StepName      = attribute.Key("ultramcp.step.name")
	StepKind      = attribute.Key("ultramcp.step.kind") // run, sleep, await, child
	// StepReplayed marks a step whose recorded result the engine returned
	// from its journal: it did not run in this attempt.
	StepReplayed = attribute.Key("ultramcp.step.replayed")
	// StepSeeded marks a step whose result a replay (ultramcp replay) took
	// from the run it derives from.
	StepSeeded = attribute.Key("ultramcp.step.seeded")
	// StepAttempt counts this step's attempts, those the service died in
	// included.
	StepAttempt = attribute.Key("ultramcp.step.attempt")
	// StepSuspended marks a step during which the engine suspended the
	// workflow (a long sleep or wait): it goes on in a later attempt.
	StepSuspended = attribute.Key("ultramcp.step.suspended")
	Participant   = attribute.Key("ultramcp.participant")
	CostUSD       = attribute.Key("ultramcp.cost_usd")
	Scanner       = attribute.Key("ultramcp.scanner")
	Findings      = attribute.Key("ultramcp.scanner.findings")
	Prompt        = attribute.Key("ultramcp.prompt")
	// StoreWriteMS is how long a store write took, on its event.
	StoreWriteMS = attribute.Key("ultramcp.store.write_ms")
	// LimitKey and LimitReason say which provider limit a call waited for,
	// and which bound held it (concurrency, rpm, tpm, retry-after).
	LimitKey    = attribute.Key("ultramcp.limit.key")
	LimitReason = attribute.Key("ultramcp.limit.reason")
	Answer      = attribute.Key("ultramcp.answer")
)

var (
	on       atomic.Bool
	content  atomic.Bool
	tracer   atomic.Pointer[trace.Tracer]
	provider atomic.Pointer[sdktrace.TracerProvider]
)

// Propagator carries W3C trace context (and baggage) in HTTP headers: the
// API takes a caller's from its request, the Restate client passes it on
// to the ingress. It is in force whether this process exports spans or
// not, so that a caller's trace reaches Restate through a process that
// traces nothing itself.
var Propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

func init() { otel.SetTextMapPropagator(Propagator) }

// Flush sends the spans still batched.
func Flush(ctx context.Context) error {
	if tp := provider.Load(); tp != nil {
		return tp.ForceFlush(ctx)
	}
	return nil
}

// On says whether spans are exported: the hooks of every layer do nothing
// when it is false.
func On() bool { return on.Load() }

// Content says whether prompts and answers go into spans
// (ULTRAMCP_TRACE_CONTENT).
func Content() bool { return content.Load() }

// Tracer is the product's tracer: a no-op one while tracing is off.
func Tracer() trace.Tracer {
	if t := tracer.Load(); t != nil {
		return *t
	}
	return noTracer
}

var noTracer = noop.NewTracerProvider().Tracer(Scope)

// Options of Setup.
type Options struct {
	// Service is the service.name of the spans (OTEL_SERVICE_NAME wins).
	Service string
	Version string
	// Endpoint is OTEL_EXPORTER_OTLP_ENDPOINT as configured; "" leaves
	// tracing off.
	Endpoint string
	// Content puts prompts and answers in spans.
	Content bool
}

// Setup installs the OTLP tracer provider and the W3C propagator when an
// endpoint is configured, and returns what flushes and stops it. The
// exporter reads the endpoint, headers, timeouts and protocol from the
// OTEL_* variables itself; OTEL_EXPORTER_OTLP_PROTOCOL picks grpc or
// http/protobuf (the default, as the OpenTelemetry specification says).
// OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none keeps it off.
func Setup(ctx context.Context, o Options) (shutdown func(context.Context) error, err error) {
	if o.Endpoint == "" || os.Getenv("OTEL_SDK_DISABLED") == "true" || os.Getenv("OTEL_TRACES_EXPORTER") == "none" {
		return func(context.Context) error { return nil }, nil
	}
	// The exporter reads OTEL_EXPORTER_OTLP_ENDPOINT itself; an endpoint
	// the stack recorded (up --with-jaeger) is given to it when the
	// environment has none.
	fromEnv := os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
	var exp sdktrace.SpanExporter
	switch Protocol() {
	case "grpc":
		var opts []otlptracegrpc.Option
		if !fromEnv {
			opts = append(opts, otlptracegrpc.WithEndpointURL(o.Endpoint))
		}
		exp, err = otlptracegrpc.New(ctx, opts...)
	default:
		var opts []otlptracehttp.Option
		if !fromEnv {
			opts = append(opts, otlptracehttp.WithEndpointURL(strings.TrimSuffix(o.Endpoint, "/")+"/v1/traces"))
		}
		exp, err = otlptracehttp.New(ctx, opts...)
	}
	if err != nil {
		return nil, err
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", o.Service)}
	if o.Version != "" {
		attrs = append(attrs, attribute.String("service.version", o.Version))
	}
	// WithFromEnv after ours: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win.
	res, rerr := resource.New(ctx, resource.WithTelemetrySDK(), resource.WithAttributes(attrs...), resource.WithFromEnv())
	if rerr != nil && !errors.Is(rerr, resource.ErrSchemaURLConflict) {
		return nil, rerr
	}
	otel.SetErrorHandler(exportErrors())
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp, batching()...), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	restore := Install(tp, o.Content)
	return func(ctx context.Context) error {
		restore()
		return tp.Shutdown(ctx)
	}, nil
}

// Install makes tp the product's tracer provider and turns tracing on:
// Setup's way, and the tests' with an in-memory exporter. It returns what
// turns it off again.
func Install(tp *sdktrace.TracerProvider, withContent bool) (restore func()) {
	t := tp.Tracer(Scope)
	tracer.Store(&t)
	provider.Store(tp)
	content.Store(withContent)
	on.Store(true)
	return func() {
		on.Store(false)
		content.Store(false)
		tracer.Store(nil)
		provider.Store(nil)
	}
}

// exportErrors reports the exporter's failures (a collector down) as a
// warning at most once a minute, not a line per batch.
func exportErrors() otel.ErrorHandler {
	var last atomic.Int64
	return otel.ErrorHandlerFunc(func(err error) {
		now := time.Now().UnixNano()
		if prev := last.Load(); now-prev > int64(time.Minute) && last.CompareAndSwap(prev, now) {
			slog.Warn("spans not exported (is the collector up?)", "err", sanitize.FirstLine(err.Error(), 300))
		}
	})
}

// batching sizes the span queue for a service with hundreds of debates in
// flight (some 30 spans each): the SDK's default queue of 2,048 drops
// spans under such a burst. OTEL_BSP_MAX_QUEUE_SIZE and
// OTEL_BSP_MAX_EXPORT_BATCH_SIZE, when set, win.
func batching() []sdktrace.BatchSpanProcessorOption {
	var opts []sdktrace.BatchSpanProcessorOption
	if os.Getenv("OTEL_BSP_MAX_QUEUE_SIZE") == "" {
		opts = append(opts, sdktrace.WithMaxQueueSize(32768))
	}
	if os.Getenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE") == "" {
		opts = append(opts, sdktrace.WithMaxExportBatchSize(2048))
	}
	return opts
}

// SetExporting turns the installed tracing off and on again without
// reinstalling it: the benchmark measures the product with and without
// spans side by side in one process. It does nothing before Setup.
func SetExporting(enabled bool) {
	if tracer.Load() != nil {
		on.Store(enabled)
	}
}

// Protocol is the OTLP protocol the traces exporter speaks: "grpc" or
// "http/protobuf".
func Protocol() string {
	p := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if p == "" {
		p = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	if p == "grpc" {
		return p
	}
	return "http/protobuf"
}

// RestateEndpoint is endpoint as restate-server's tracing-endpoint spells
// it: a bare URL is OTLP/gRPC there, otlp+http:// with the traces path is
// OTLP/HTTP.
func RestateEndpoint(endpoint string) string {
	if endpoint == "" {
		return ""
	}
	if Protocol() == "grpc" {
		return endpoint
	}
	return "otlp+" + strings.TrimSuffix(endpoint, "/") + "/v1/traces"
}

// Start starts a span under ctx's; a no-op one while tracing is off.
func Start(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if !On() {
		return ctx, noSpan
	}
	return Tracer().Start(ctx, name, trace.WithAttributes(attrs...))
}

// noSpan is what Start returns while tracing is off: it records nothing,
// and ending it ends nothing (not the caller's span).
var noSpan = trace.SpanFromContext(context.Background())

// End ends span with err's first line as its error status: no stack, no
// payload, nothing a provider or a store put after it.
func End(span trace.Span, err error) {
	if err != nil {
		span.SetStatus(codes.Error, sanitize.FirstLine(err.Error(), 300))
	}
	span.End()
}

// ContentAttr is the prompt or answer text as attribute k, cut to 4 KiB,
// when ULTRAMCP_TRACE_CONTENT allows it; ok is false otherwise.
func ContentAttr(k attribute.Key, text string) (attribute.KeyValue, bool) {
	if !Content() {
		return attribute.KeyValue{}, false
	}
	return k.String(sanitize.Cut(text, 4096)), true
}

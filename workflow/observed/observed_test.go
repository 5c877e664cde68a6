package observed

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/ultramcp/durable/engine"
	"github.com/ultramcp/durable/engine/direct"
	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/telemetry"
)

// body runs one step, two side by side, a sleep, and fails its last step
// when fail is set; the first step makes a span of its own under its
// step's, as a model call does.
func body(fail bool) engine.Body {
	return func(c engine.Context, _ json.RawMessage) (json.RawMessage, error) {
		if _, err := c.Run(engine.Step{Name: "first", Fn: func(ctx context.Context) ([]byte, error) {
			_, span := telemetry.Start(ctx, "chat test")
			span.End()
			return []byte(`1`), nil
		}}); err != nil {
			return nil, err
		}
		ok := func(context.Context) ([]byte, error) { return []byte(`2`), nil }
		c.RunAll([]engine.Step{{Name: "left", Fn: ok}, {Name: "right", Fn: ok}})
		if err := c.Sleep("pause", time.Millisecond); err != nil {
			return nil, err
		}
		if fail {
			_, err := c.Run(engine.Step{Name: "last", Opts: engine.StepOptions{MaxAttempts: 1}, Fn: func(context.Context) ([]byte, error) {
				return nil, fault.New(fault.Permanent, "boom\nsecond line")
			}})
			return nil, err
		}
		return json.RawMessage(`{"done":true}`), nil
	}
}

// With tracing on, a run is a span with a child per step, sleep and call
// made inside a step; each step says it ran, in attempt 1; a failed step
// and run carry the error's first line.
func TestRunAndStepsAreSpans(t *testing.T) {
	spans := tracetest.NewSpanRecorder()
	defer telemetry.Install(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)), false)()
	_, err := Body("test-flow", body(true))(direct.New(context.Background(), "flow-1", nil), json.RawMessage(`{}`))
	if err == nil {
		t.Fatal("the body should fail")
	}
	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans.Ended() {
		byName[s.Name()] = s
	}
	run, ok := byName["invoke_workflow test-flow"]
	if !ok {
		t.Fatalf("no run span among %v", keysOf(byName))
	}
	for _, name := range []string{"step first", "step left", "step right", "sleep pause", "step last"} {
		s, ok := byName[name]
		if !ok {
			t.Errorf("no span %q among %v", name, keysOf(byName))
			continue
		}
		if s.Parent().SpanID() != run.SpanContext().SpanID() {
			t.Errorf("%s is not a child of the run's span", name)
		}
		attrs := map[string]any{}
		for _, a := range s.Attributes() {
			attrs[string(a.Key)] = a.Value.AsInterface()
		}
		if name != "sleep pause" && (attrs["ultramcp.step.replayed"] != false || attrs["ultramcp.step.attempt"] != int64(1)) {
			t.Errorf("%s: attributes %v, want replayed false and attempt 1", name, attrs)
		}
	}
	if chat := byName["chat test"]; chat == nil || chat.Parent().SpanID() != byName["step first"].SpanContext().SpanID() {
		t.Error("a span made inside a step is not the step's child")
	}
	if d := byName["step last"].Status().Description; d != "boom" {
		t.Errorf("the failed step's status says %q, want its first line", d)
	}
	if d := run.Status().Description; d == "" {
		t.Error("the failed run's span has no error status")
	}
}

// With tracing off no span is made, and the metrics still count: a run
// started and completed, each step's duration.
func TestOffMakesNoSpanAndStillCounts(t *testing.T) {
	before := counts(t)
	spans := tracetest.NewSpanRecorder()
	restore := telemetry.Install(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)), false)
	telemetry.SetExporting(false)
	_, err := Body("quiet-flow", body(false))(direct.New(context.Background(), "flow-2", nil), json.RawMessage(`{}`))
	restore()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(spans.Ended()); n != 0 {
		t.Errorf("tracing off made %d spans", n)
	}
	after := counts(t)
	for _, name := range []string{"started quiet-flow", "completed quiet-flow", "step quiet-flow/first"} {
		if after[name]-before[name] != 1 {
			t.Errorf("%s moved by %g, want 1", name, after[name]-before[name])
		}
	}
}

func counts(t *testing.T) map[string]float64 {
	t.Helper()
	families, err := telemetry.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch f.GetName() {
			case "ultramcp_workflows_started_total":
				out["started "+labels["workflow"]] = m.GetCounter().GetValue()
			case "ultramcp_workflows_finished_total":
				out[labels["status"]+" "+labels["workflow"]] = m.GetCounter().GetValue()
			case "ultramcp_step_duration_seconds":
				out["step "+labels["workflow"]+"/"+labels["step"]] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

func keysOf(m map[string]sdktrace.ReadOnlySpan) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

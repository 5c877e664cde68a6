// Package observed makes a workflow visible from outside while it runs,
// whichever engine runs it: a span for the run, for every step (with its
// attempt, and whether it ran or was replayed from the journal), for every
// sleep, wait and child workflow, and the metrics of runs and steps. It
// wraps the body the engine runs, so the workflow logic does not know it
// is watched.
package observed

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/ultramcp/durable/engine"
	"github.com/ultramcp/durable/telemetry"
	"github.com/ultramcp/durable/workflow"
)

// Body wraps the body of the workflow called name.
func Body(name string, body engine.Body) engine.Body {
	return func(c engine.Context, input json.RawMessage) (out json.RawMessage, err error) {
		ctx, span := telemetry.Start(c.Context(), "invoke_workflow "+name,
			semconv.GenAIOperationNameKey.String("invoke_workflow"), telemetry.WorkflowName.String(name),
			telemetry.WorkflowID.String(c.WorkflowID()), telemetry.WorkflowRun.String(c.RunID()))
		o := &observedContext{engineContext: c, ctx: ctx, workflow: name}
		running := telemetry.WorkflowsRunning.WithLabelValues(name)
		running.Inc()
		returned := false
		defer func() {
			running.Dec()
			if !returned {
				// The engine suspended the workflow (it panics out of the
				// body): it goes on in a later attempt.
				span.SetAttributes(telemetry.StepSuspended.Bool(true))
				span.End()
			}
		}()
		out, err = body(o, input)
		returned = true
		status, _ := workflow.EndedAs(out, err)
		telemetry.WorkflowsEnded.WithLabelValues(name, status).Inc()
		span.SetAttributes(telemetry.WorkflowEnded.String(status))
		telemetry.End(span, err)
		return out, err
	}
}

// observedContext is the context the body runs in.
type observedContext struct {
	engineContext
	ctx      context.Context
	workflow string
	// first is set once the first step of this attempt has been seen: a
	// run is counted started where its first step runs, not where a later
	// attempt replays it.
	first sync.Once
}

// engineContext names the embedded context, whose Context method this one
// replaces.
type engineContext = engine.Context

// Context carries the run's span, so that what the body does outside
// steps (its store writes) is part of its trace.
func (o *observedContext) Context() context.Context { return o.ctx }

func (o *observedContext) Run(step engine.Step) ([]byte, error) {
	s := o.begin(step)
	out, err := o.engineContext.Run(s.step)
	s.end(err)
	return out, err
}

func (o *observedContext) RunAll(steps []engine.Step) ([][]byte, []error) {
	observed := make([]*observedStep, len(steps))
	inner := make([]engine.Step, len(steps))
	for i, st := range steps {
		observed[i] = o.begin(st)
		inner[i] = observed[i].step
	}
	outs, errs := o.engineContext.RunAll(inner)
	for i, s := range observed {
		s.end(errs[i])
	}
	return outs, errs
}

func (o *observedContext) Sleep(name string, d time.Duration) (err error) {
	_, span := telemetry.Start(o.ctx, "sleep "+name, telemetry.StepName.String(name), telemetry.StepKind.String("sleep"))
	defer func() { telemetry.End(span, err) }() // also when the engine suspends out of it
	return o.engineContext.Sleep(name, d)
}

func (o *observedContext) Await(name string, timeout time.Duration) (v json.RawMessage, ok bool, err error) {
	_, span := telemetry.Start(o.ctx, "await "+name, telemetry.StepName.String(name), telemetry.StepKind.String("await"))
	defer func() { telemetry.End(span, err) }()
	return o.engineContext.Await(name, timeout)
}

func (o *observedContext) Call(children []engine.Child) ([]json.RawMessage, []error) {
	spans := make([]trace.Span, len(children))
	for i, ch := range children {
		_, spans[i] = telemetry.Start(o.ctx, "invoke_workflow "+ch.Workflow, semconv.GenAIOperationNameKey.String("invoke_workflow"),
			telemetry.StepKind.String("child"), telemetry.WorkflowName.String(ch.Workflow), telemetry.WorkflowID.String(ch.ID))
	}
	outs, errs := o.engineContext.Call(children)
	for i, span := range spans {
		telemetry.End(span, errs[i])
	}
	return outs, errs
}

// observedStep is one step as it is watched.
type observedStep struct {
	o    *observedContext
	step engine.Step
	span trace.Span
	runs atomic.Int32 // how often Fn ran in this attempt: 0 is a replay
	took atomic.Int64 // the nanoseconds of its last run
	// attempt is the engine's count of this step's attempts (engine.AttemptOf)
	attempt atomic.Int32
}

func (o *observedContext) begin(step engine.Step) *observedStep {
	s := &observedStep{o: o}
	_, span := telemetry.Start(o.ctx, "step "+step.Name, telemetry.StepName.String(step.Name), telemetry.StepKind.String("run"))
	s.span = span
	fn := step.Fn
	step.Fn = func(stepCtx context.Context) ([]byte, error) {
		s.runs.Add(1)
		s.attempt.Store(int32(engine.AttemptOf(stepCtx)))
		o.first.Do(func() { telemetry.WorkflowsStarted.WithLabelValues(o.workflow).Inc() })
		if telemetry.On() {
			stepCtx = trace.ContextWithSpan(stepCtx, span)
		}
		start := time.Now()
		out, err := fn(stepCtx)
		s.took.Store(int64(time.Since(start)))
		return out, err
	}
	s.step = step
	return s
}

func (s *observedStep) end(err error) {
	runs := s.runs.Load()
	if runs == 0 {
		// Replayed: a later step may still be the first to run.
		s.o.first.Do(func() {})
	} else {
		telemetry.StepSeconds.WithLabelValues(s.o.workflow, s.step.Name).Observe(time.Duration(s.took.Load()).Seconds())
	}
	if telemetry.On() {
		attempt := int(s.attempt.Load())
		if attempt == 0 {
			attempt = int(runs)
		}
		s.span.SetAttributes(telemetry.StepReplayed.Bool(runs == 0), telemetry.StepAttempt.Int(max(attempt, 1)))
	}
	telemetry.End(s.span, err)
}

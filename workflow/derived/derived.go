// Package derived runs a workflow again from one of its steps: a replay
// (ultramcp replay) is a new run whose request carries, under one reserved
// field, the recorded results of the earlier run's steps before that step.
// The new run's engine journals those results as its own steps' without
// running them, so the model calls they stand for are not paid again, and
// everything from the step on runs anew.
//
// Restate cannot do this itself for workflows: its restart-as-new refuses
// them ("Restarting workflows is not supported"), keeps the same id and
// input, and a replay needs a new id and may change the input (another
// moderator).
package derived

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"

	"go.opentelemetry.io/otel/trace"

	"github.com/ultramcp/durable/engine"
	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/telemetry"
)

// Field is the reserved request field of a derived run.
const Field = "_derivedFrom"

// From says which run a derived one comes from and what it keeps of it.
type From struct {
	Workflow string `json:"workflow"` // the earlier run's id
	Step     string `json:"step"`     // the first step that runs again
	// Steps are the earlier run's step results before Step, in journal
	// order.
	Steps []Step `json:"steps,omitempty"`
}

// Step is one recorded step result.
type Step struct {
	Name   string          `json:"name"`
	Result json.RawMessage `json:"result"`
}

// Wrap is request with from under Field.
func Wrap(request json.RawMessage, from From) (json.RawMessage, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(request, &fields); err != nil {
		return nil, fault.Invalidf("body", "want a JSON object: %v", err)
	}
	b, err := json.Marshal(from)
	if err != nil {
		return nil, err
	}
	fields[Field] = b
	return json.Marshal(fields)
}

// Of is the From of a request, and the request without it; ok is false
// for a request that derives from nothing.
func Of(request json.RawMessage) (from From, rest json.RawMessage, ok bool, err error) {
	if !bytes.Contains(request, []byte(`"`+Field+`"`)) {
		return From{}, request, false, nil
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(request, &fields) != nil || fields[Field] == nil {
		return From{}, request, false, nil
	}
	if err := json.Unmarshal(fields[Field], &from); err != nil {
		return From{}, nil, false, fault.Invalidf(Field, "%v", err)
	}
	delete(fields, Field)
	rest, err = json.Marshal(fields)
	return from, rest, true, err
}

// Body wraps a workflow body so that a derived request runs from its step
// on: the body sees the request without Field, and its steps before the
// step return their recorded results.
func Body(body engine.Body) engine.Body {
	return func(c engine.Context, input json.RawMessage) (json.RawMessage, error) {
		from, rest, ok, err := Of(input)
		if err != nil {
			return nil, err
		}
		if !ok {
			return body(c, input)
		}
		seeds := map[string][]json.RawMessage{}
		for _, s := range from.Steps {
			seeds[s.Name] = append(seeds[s.Name], s.Result)
		}
		return body(&seededContext{engineContext: c, seeds: seeds}, rest)
	}
}

type engineContext = engine.Context

// seededContext gives the first steps of each recorded name their
// recorded results, in order.
type seededContext struct {
	engineContext
	mu    sync.Mutex
	seeds map[string][]json.RawMessage
}

func (s *seededContext) seed(step engine.Step) engine.Step {
	s.mu.Lock()
	defer s.mu.Unlock()
	recorded := s.seeds[step.Name]
	if len(recorded) == 0 {
		return step
	}
	result := recorded[0]
	s.seeds[step.Name] = recorded[1:]
	step.Fn = func(ctx context.Context) ([]byte, error) {
		trace.SpanFromContext(ctx).SetAttributes(telemetry.StepSeeded.Bool(true))
		return result, nil
	}
	return step
}

func (s *seededContext) Run(step engine.Step) ([]byte, error) {
	return s.engineContext.Run(s.seed(step))
}

func (s *seededContext) RunAll(steps []engine.Step) ([][]byte, []error) {
	seeded := make([]engine.Step, len(steps))
	for i, st := range steps {
		seeded[i] = s.seed(st)
	}
	return s.engineContext.RunAll(seeded)
}

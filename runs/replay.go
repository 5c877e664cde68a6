package runs

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/ultramcp/durable/client"
	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/workflow"
	"github.com/ultramcp/durable/workflow/derived"
)

// Pause holds running workflow id: Restate stops it at the end of its
// current attempt (a step under way runs again on resume; what it had
// answered is kept) and it waits, paused, until Resume. It returns the
// invocation paused.
func (s *Service) Pause(ctx context.Context, id string) (string, error) {
	return s.onRunning(ctx, id, "pause", ": nothing to pause", s.restate.Pause)
}

// Resume lets paused workflow id go on from its journal, on the deployment
// it ran on.
func (s *Service) Resume(ctx context.Context, id string) (string, error) {
	inv, err := s.Find(ctx, id)
	if err != nil {
		return "", err
	}
	if inv.Status != "paused" {
		return "", fault.New(fault.Invalid, "%s is not paused (it is %s)", id, inv.Outcome())
	}
	if err := s.restate.ResumeOn(ctx, inv.ID, "keep"); err != nil {
		return "", fault.Wrap(fault.Unavailable, err, "resume %s", id)
	}
	return inv.ID, nil
}

// Replay asks for a run derived from another.
type Replay struct {
	// From is the first step that runs again ("round-2"); the recorded
	// results of the steps before it are reused, not paid for again.
	From string `json:"from" jsonschema:"the first step to run again, e.g. round-2"`
	// ID of the new run; "" generates one.
	ID string `json:"id,omitempty" jsonschema:"id of the new run"`
	// Set changes fields of the request: field=value, the value JSON when
	// it parses as JSON, else a string ("moderator=openai:gpt-4o").
	Set []string `json:"set,omitempty" jsonschema:"field=value changes to the request"`
}

// Replay runs workflow id again as a new run, from step r.From on: the new
// run journals the recorded results of the steps before it as its own
// (derived.Body) and runs the rest, with the request changed by r.Set. It
// reads the old run's journal from Restate, so the old run must still be
// retained there (ULTRAMCP_RETENTION).
func (s *Service) Replay(ctx context.Context, id string, r Replay) (Submitted, error) {
	inv, err := s.Find(ctx, id)
	if err != nil {
		return Submitted{}, fault.Wrap(fault.NotFound, err, "%s is not retained by Restate (purged, or finished longer ago than ULTRAMCP_RETENTION): its steps' results are gone", id)
	}
	if inv.Status != "completed" {
		return Submitted{}, fault.New(fault.Invalid, "%s is still %s: replay a run that has finished or failed", id, inv.Status)
	}
	def, err := s.Definition(inv.Service)
	if err != nil {
		return Submitted{}, err
	}
	journal, err := s.restate.Journal(ctx, inv.ID)
	if err != nil {
		return Submitted{}, fault.Wrap(fault.Unavailable, err, "read the journal of %s", id)
	}
	input, seeds, err := prefix(journal, id, r.From)
	if err != nil {
		return Submitted{}, err
	}
	// The old request, as its workflow got it (a replay of a replay
	// derives from the run it replays, not from the first).
	if _, rest, ok, err := derived.Of(input); err == nil && ok {
		input = rest
	}
	changed, err := setFields(def, input, r.Set)
	if err != nil {
		return Submitted{}, err
	}
	norm, err := def.Validate(changed)
	if err != nil {
		return Submitted{}, err
	}
	if def.Reseed != nil {
		for i, seed := range seeds {
			if seeds[i].Result, err = def.Reseed(seed.Name, seed.Result); err != nil {
				return Submitted{}, fault.Wrap(fault.Internal, err, "reuse step %s of %s", seed.Name, id)
			}
		}
	}
	link := derived.From{Workflow: id, Step: r.From}
	recorded, err := derived.Wrap(norm, link)
	if err != nil {
		return Submitted{}, err
	}
	link.Steps = seeds
	request, err := derived.Wrap(norm, link)
	if err != nil {
		return Submitted{}, err
	}
	return s.submit(ctx, def, request, recorded, r.ID)
}

// prefix is a journal's request and the results of its steps before the
// step called from.
func prefix(journal []client.Entry, id, from string) (json.RawMessage, []derived.Step, error) {
	var input json.RawMessage
	var names []string
	var seeds []derived.Step
	found := false
	for _, e := range journal {
		switch {
		case e.Input != nil:
			input = e.Input
		case e.Type != "Command: Run":
		case e.Name == from:
			found = true
		case !found:
			names = append(names, e.Name)
			if e.Failure == "" && e.Result != nil {
				seeds = append(seeds, derived.Step{Name: e.Name, Result: e.Result})
			}
		}
		if found {
			break
		}
	}
	if input == nil {
		return nil, nil, fault.New(fault.NotFound, "%s's journal is gone from Restate (its journal retention ended): nothing to replay from", id)
	}
	if !found {
		var all []string
		for _, e := range journal {
			if e.Type == "Command: Run" && !slices.Contains(all, e.Name) {
				all = append(all, e.Name)
			}
		}
		return nil, nil, fault.Invalidf("from", "%s has no step %q; its steps are: %s", id, from, strings.Join(all, ", "))
	}
	return input, seeds, nil
}

// setFields applies field=value changes to a request's top-level fields,
// refusing a field the workflow's request does not have.
func setFields(def workflow.Definition, request json.RawMessage, sets []string) (json.RawMessage, error) {
	if len(sets) == 0 {
		return request, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(request, &fields); err != nil {
		return nil, fault.Invalidf("body", "the recorded request is not a JSON object: %v", err)
	}
	known := def.Fields()
	for _, set := range sets {
		name, value, ok := strings.Cut(set, "=")
		if !ok || name == "" {
			return nil, fault.Invalidf("set", "%q: want field=value", set)
		}
		if !slices.Contains(known, name) {
			sort.Strings(known)
			return nil, fault.Invalidf("set", "%q names no field of a %s request; its fields are: %s", name, def.Name, strings.Join(known, ", "))
		}
		if json.Valid([]byte(value)) {
			fields[name] = json.RawMessage(value)
		} else {
			b, _ := json.Marshal(value)
			fields[name] = b
		}
	}
	out, err := json.Marshal(fields)
	if err != nil {
		return nil, fmt.Errorf("encode the changed request: %w", err)
	}
	return out, nil
}

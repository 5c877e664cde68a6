package debate

import (
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/workflow"
)

// Definitions are chain-of-debate built from d.
func Definitions(d workflow.Deps) []workflow.Definition {
	return []workflow.Definition{Definition(&Debate{Models: d.Models, Records: d.Records})}
}

// SchemaTypes are the JSON schemas of the request's types whose JSON is
// not their Go shape, for the definitions that use them.
var SchemaTypes = map[reflect.Type]*jsonschema.Schema{
	reflect.TypeFor[Duration](): {Types: []string{"string", "number"}, Description: `a duration such as "2s", or milliseconds`},
	reflect.TypeFor[Participant](): {AnyOf: []*jsonschema.Schema{
		{Type: "string", Description: "a role name"},
		{Type: "object", Required: []string{"name"}, AdditionalProperties: &jsonschema.Schema{Not: &jsonschema.Schema{}}, Properties: map[string]*jsonschema.Schema{
			"name":  {Type: "string"},
			"role":  {Type: "string", Description: "what the participant stands for"},
			"model": {Type: "string", Description: "provider:model, e.g. openai:gpt-4o-mini"},
		}},
	}},
}

// Definition declares chain-of-debate for the registry.
func Definition(d *Debate) workflow.Definition {
	return workflow.Definition{
		Name: workflow.ChainOfDebate, Prefix: "debate", Tool: "start_debate",
		Summary:     "Start a debate among LLM participants: rounds of revised positions, a vote and a moderator's synthesis",
		Input:       Input{},
		SchemaTypes: SchemaTypes,
		Validate: func(body []byte) (json.RawMessage, error) {
			if !utf8.Valid(body) {
				return nil, fault.Invalidf("body", "must be valid UTF-8")
			}
			in, err := Decode(body)
			if err == nil && d != nil && d.Models != nil {
				// The providers the service has configured, at submit.
				err = in.CheckModels(d.Models)
				if refs, _, rerr := d.resolveModels(in); err == nil && rerr == nil {
					err = in.CheckBudget(refs)
				}
			}
			if err != nil {
				return nil, err
			}
			return json.Marshal(in)
		},
		Body:     workflow.Typed(Decode, d.Run),
		Reseed:   reseed,
		Progress: printRounds,
		Render:   render,
		Incomplete: func(out json.RawMessage) string {
			var r Result
			if json.Unmarshal(out, &r) != nil || !r.Partial {
				return ""
			}
			return strings.Join(r.Incomplete, "; ")
		},
	}
}

// printRounds prints the rounds not yet printed (mark counts them).
func printRounds(w io.Writer, raw json.RawMessage, mark string) string {
	printed, _ := strconv.Atoi(mark)
	var p Progress
	if json.Unmarshal(raw, &p) != nil {
		return mark
	}
	for _, r := range p.CompletedRounds[min(printed, len(p.CompletedRounds)):] {
		fmt.Fprintf(w, "\n── round %d of %d ──\n", r.Number, p.Rounds)
		for _, resp := range r.Responses {
			fmt.Fprintf(w, "  %-12s %s  (confidence %s, %d ms)\n", resp.Participant+":", resp.Position, conf(resp.Confidence), resp.LatencyMS)
		}
		if r.Agreement {
			fmt.Fprintln(w, "  → all participants agree")
		}
		printed++
	}
	if p.Phase == "synthesis" && printed == len(p.CompletedRounds) {
		fmt.Fprintln(w, "\n… moderator is writing the synthesis")
	}
	return strconv.Itoa(printed)
}

func conf(c *float64) string {
	if c == nil {
		return "?"
	}
	return fmt.Sprintf("%.2f", *c)
}

// render prints a debate's result as text.
func render(w io.Writer, out json.RawMessage, format string) error {
	if format != "" && format != "text" {
		return fmt.Errorf("format: a debate prints as text or json, not %q", format)
	}
	var r Result
	if err := json.Unmarshal(out, &r); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n══ debate %s ══\n", r.ID)
	if r.Partial {
		fmt.Fprintf(w, "PARTIAL: %s\n", strings.Join(r.Incomplete, "; "))
	}
	if r.Simulated {
		fmt.Fprintln(w, "SIMULATED: answers come from the offline provider; no model was called.")
	}
	fmt.Fprintf(w, "topic:   %s\nmode:    %s, %d round(s)", r.Topic, r.Mode, len(r.Rounds))
	if r.StoppedEarly {
		fmt.Fprint(w, " (stopped early: participants agreed)")
	}
	fmt.Fprintln(w)
	for _, round := range r.Rounds {
		fmt.Fprintf(w, "\nround %d:\n", round.Number)
		for _, resp := range round.Responses {
			fmt.Fprintf(w, "  %-12s %s\n  %-12s confidence %s, %s, %d+%d tokens, %d ms\n", resp.Participant+":", resp.Position, "", conf(resp.Confidence), resp.Model, resp.TokensIn, resp.TokensOut, resp.LatencyMS)
		}
	}
	if b := r.Budget; b != nil {
		fmt.Fprintf(w, "\nbudget:  %s; spent $%.6f, %d tokens, %d calls\n", b.Budget.String(), b.Spent.CostUSD, b.Spent.Tokens, b.Spent.Calls)
	}
	fmt.Fprintf(w, "\nvote:    %q with %.0f%% of the weight\n", r.Vote.Winner, r.Vote.Share*100)
	s := r.Synthesis
	fmt.Fprintf(w, "\nsynthesis (agreement %.2f", s.Agreement)
	if s.Contested {
		fmt.Fprint(w, ", below the consensus threshold")
	}
	fmt.Fprintf(w, "):\n  consensus:      %s\n", s.Consensus)
	if len(s.Disagreements) > 0 {
		fmt.Fprintf(w, "  disagreements:  %s\n", strings.Join(s.Disagreements, "; "))
	}
	fmt.Fprintf(w, "  recommendation: %s\n", s.Recommendation)
	if d := r.Decision; d != nil {
		if d.Source == "human" {
			fmt.Fprintf(w, "\ndecision by %s: %s\n", orSomeone(d.By), d.Decision)
		} else {
			fmt.Fprintf(w, "\nno decision in time; the vote stands: %s\n", d.Decision)
		}
	}
	t := r.Totals
	fmt.Fprintf(w, "\ntotals:  %d calls, %d tokens in, %d out, est. $%.4f, %d ms wall\n", t.Calls, t.TokensIn, t.TokensOut, t.CostUSD, t.WallMS)
	for _, p := range t.PerParticipant {
		fmt.Fprintf(w, "  %-12s %d calls, %d+%d tokens, $%.4f\n", p.Participant+":", p.Calls, p.TokensIn, p.TokensOut, p.CostUSD)
	}
	if t.Unpriced {
		fmt.Fprintln(w, "  (some models have no known price; their cost counts as 0)")
	}
	return nil
}

func orSomeone(s string) string {
	if s == "" {
		return "a human"
	}
	return s
}

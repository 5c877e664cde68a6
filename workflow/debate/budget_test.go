package debate

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/llm"
	"github.com/ultramcp/durable/workflow"
)

// A maxCostUSD that allows two rounds stops the debate before round 3: it
// ends partial, saying why, with the two rounds and their vote, and makes
// no call past the budget (neither round 3 nor the moderator).
func TestBudgetStopsBeforeTheRoundThatWouldPassIt(t *testing.T) {
	script := map[string][]string{"a": {answer("yes", 0.9)}, "b": {answer("no", 0.8)}}
	in := Input{Topic: "t", Participants: []Participant{{Name: "a", Model: "gpt-4o-mini"}, {Name: "b", Model: "gpt-4o-mini"}},
		Moderator: "gpt-4o-mini", Rounds: rounds(3), DelayBetweenRounds: zeroDelay()}
	free, err := run(t, &scripted{script: script}, in)
	if err != nil || len(free.Rounds) != 3 {
		t.Fatalf("without a budget: %d rounds, %v", len(free.Rounds), err)
	}
	refs := []llm.Ref{{Provider: "fake", Model: "gpt-4o-mini"}, {Provider: "fake", Model: "gpt-4o-mini"}}
	estimate := func(n int, previous []Response) float64 {
		var reqs []llm.Request
		for _, p := range in.Participants {
			reqs = append(reqs, participantRequest("d1", in, p, n, previous))
		}
		return workflow.EstimateOf(refs, reqs).CostUSD
	}
	spent1 := spentOf(free.Rounds[:1], nil).CostUSD
	spent2 := spentOf(free.Rounds[:2], nil).CostUSD
	allows2, allows3 := spent1+estimate(2, free.Rounds[0].Responses), spent2+estimate(3, free.Rounds[1].Responses)
	if allows2 >= allows3 {
		t.Fatalf("no budget allows round 2 but not 3: %v, %v", allows2, allows3)
	}
	limit := (allows2 + allows3) / 2

	m := &scripted{script: script}
	in.Budget = mustBudget(t, `{"maxCostUSD":`+jsonNumber(limit)+`}`)
	res, err := run(t, m, in)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rounds) != 2 || !res.Partial || len(res.Incomplete) != 1 ||
		!strings.Contains(res.Incomplete[0], "budget reached (budget.maxCostUSD)") || !strings.Contains(res.Incomplete[0], "after round 2; round 3 and the moderator were not asked") {
		t.Fatalf("%d rounds, partial %v, %q", len(res.Rounds), res.Partial, res.Incomplete)
	}
	if slices.ContainsFunc(m.calls, func(l string) bool { return strings.Contains(l, "round-3") || strings.HasSuffix(l, "moderator") }) {
		t.Errorf("calls past the budget: %v", m.calls)
	}
	if res.Budget == nil || res.Budget.Spent.CostUSD > limit || res.Budget.Spent.Calls != 4 || res.Vote.Winner == "" {
		t.Errorf("budget %+v, vote %+v", res.Budget, res.Vote)
	}
	// Enough for the rounds but not the moderator: the rounds, no synthesis.
	m = &scripted{script: script}
	in.Budget = mustBudget(t, `{"maxCalls":6}`)
	if res, err = run(t, m, in); err != nil || len(res.Rounds) != 3 || !res.Partial || !strings.Contains(res.Incomplete[0], "after round 3; the moderator was not asked") || len(m.calls) != 6 {
		t.Errorf("maxCalls 6 of 7: %d rounds, %q, %d calls, %v", len(res.Rounds), res.Incomplete, len(m.calls), err)
	}
}

// At submit, a budget below the first round's estimate is refused naming
// the field, and so are negative or non-numeric bounds.
func TestBadBudgetsAreRefusedNamingTheField(t *testing.T) {
	in := Input{Topic: "t", Participants: []Participant{{Name: "a"}, {Name: "b"}}, Budget: mustBudget(t, `{"maxCostUSD":0.00001}`)}
	refs := []llm.Ref{{Provider: "openai", Model: "gpt-4o-mini"}, {Provider: "openai", Model: "gpt-4o-mini"}}
	if err := in.CheckBudget(refs); fault.FieldOf(err) != "budget.maxCostUSD" || !strings.Contains(err.Error(), "first round") {
		t.Errorf("a budget below the first round: %v", err)
	}
	in.Budget = mustBudget(t, `{"maxCalls":1}`)
	if err := in.CheckBudget(refs); fault.FieldOf(err) != "budget.maxCalls" {
		t.Errorf("one call for two participants: %v", err)
	}
	for body, field := range map[string]string{
		`{"maxCostUSD":-1}`:     "budget.maxCostUSD",
		`{"maxCostUSD":"lots"}`: "budget.maxCostUSD",
		`{"maxTokens":-5}`:      "budget.maxTokens",
		`{"maxCalls":1.5}`:      "budget.maxCalls",
		`{"maxDollars":1}`:      "budget.maxDollars",
		`5`:                     "budget",
	} {
		_, err := Decode([]byte(`{"topic":"t","participants":["a","b"],"budget":` + body + `}`))
		if fault.FieldOf(err) != field {
			t.Errorf("budget %s: %v, want an error naming %s", body, err, field)
		}
	}
	if _, err := Decode([]byte(`{"topic":"t","participants":["a","b"],"priority":"urgent"}`)); fault.FieldOf(err) != "priority" {
		t.Errorf("priority urgent: %v", err)
	}
}

func mustBudget(t *testing.T, raw string) *workflow.Budget {
	t.Helper()
	in, err := Decode([]byte(`{"topic":"t","participants":["a","b"],"budget":` + raw + `}`))
	if err != nil {
		t.Fatal(err)
	}
	return in.Budget
}

func jsonNumber(v float64) string {
	b, _ := json.Marshal(v)
	return string(b)
}

package debate

import (
	"strings"
	"testing"
)

func TestParseAnswer(t *testing.T) {
	cases := []struct {
		name, text, position string
		confidence           float64 // -1: unknown
		structured           bool
	}{
		{"plain json", `{"position":"yes","reasoning":"r","confidence":0.8}`, "yes", 0.8, true},
		{"fenced", "Sure!\n```json\n{\"position\":\"no\",\"confidence\":0.4}\n```\nThanks", "no", 0.4, true},
		{"prose around braces", `I think {"position":"maybe","confidence":"70%"} overall`, "maybe", 0.7, true},
		{"percent number", `{"position":"p","confidence":85}`, "p", 0.85, true},
		{"unknown fields ignored", `{"position":"p","mood":"happy","confidence":0.5}`, "p", 0.5, true},
		{"no json", "I would rather not.", "I would rather not.", -1, false},
		{"json without position", `{"answer":"x"}`, `{"answer":"x"}`, -1, false},
		{"bad confidence", `{"position":"p","confidence":"high"}`, "p", -1, true},
		{"array reasoning", `{"position":"p","reasoning":["a","b"],"confidence":0.5}`, "p", 0.5, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := ParseAnswer(tc.text)
			if a.Position != tc.position || a.Structured != tc.structured {
				t.Errorf("got %+v", a)
			}
			switch {
			case tc.confidence < 0 && a.Confidence != nil:
				t.Errorf("confidence = %v, want unknown", *a.Confidence)
			case tc.confidence >= 0 && (a.Confidence == nil || *a.Confidence != tc.confidence):
				t.Errorf("confidence = %v, want %v", a.Confidence, tc.confidence)
			}
		})
	}
}

func TestParseSynthesis(t *testing.T) {
	s := ParseSynthesis("```\n{\"consensus\":\"c\",\"disagreements\":\"just one\",\"recommendation\":\"r\",\"agreement\":0.6}\n```")
	if s.Consensus != "c" || s.Recommendation != "r" || s.Agreement != 0.6 || len(s.Disagreements) != 1 {
		t.Errorf("got %+v", s)
	}
	s = ParseSynthesis("They mostly agree.")
	if s.Consensus != "They mostly agree." || s.Agreement != -1 || s.Structured {
		t.Errorf("fallback got %+v", s)
	}
}

func TestGroupingToleratesRephrasing(t *testing.T) {
	c := 0.9
	rs := []Response{
		{Participant: "a", Position: "Yes, adopt it with a staged rollout.", Confidence: &c},
		{Participant: "b", Position: "yes - adopt it with a staged rollout", Confidence: &c},
		{Participant: "c", Position: "No, not this year"},
	}
	g := GroupPositions(rs)
	if len(g) != 2 || len(g[0].Participants) != 2 || strings.Join(g[0].Participants, ",") != "a,b" {
		t.Errorf("groups = %+v", g)
	}
	if Agree(rs) || !Agree(rs[:2]) {
		t.Error("Agree is wrong")
	}
}

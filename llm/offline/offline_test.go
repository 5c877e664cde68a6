package offline

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/ultramcp/durable/llm"
)

func ask(t *testing.T, system, prompt string) map[string]any {
	t.Helper()
	resp, err := (&Provider{}).Complete(context.Background(), llm.Request{JSON: true, System: system, Messages: []llm.Message{{Role: "user", Content: prompt}}})
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(resp.Text), &out); err != nil {
		t.Fatalf("not JSON: %s", resp.Text)
	}
	return out
}

func TestJoinsTheMajorityOrTheMostConfident(t *testing.T) {
	cases := []struct{ name, prompt, want string }{
		{"majority wins", `Your previous position: "[simulated] A" (confidence 0.90)
- "[simulated] B" held by x, y
    x (confidence 0.60): r
    y (confidence 0.60): r
`, "[simulated] B"},
		{"tie goes to the most confident", `Your previous position: "[simulated] A" (confidence 0.70)
- "[simulated] B" held by x
    x (confidence 0.95): r
`, "[simulated] B"},
		{"keeps its own when more confident", `Your previous position: "[simulated] A" (confidence 0.99)
- "[simulated] B" held by x
    x (confidence 0.95): r
`, "[simulated] A"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := ask(t, "You are z", tc.prompt)["position"]; got != tc.want {
				t.Errorf("position = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestModeratorEchoesTheVote(t *testing.T) {
	out := ask(t, "moderator", `Confidence-weighted vote: "[simulated] B" with 75% of the weight. Fill "recommendation".`)
	if out["agreement"] != 0.75 || !strings.Contains(out["consensus"].(string), "B") {
		t.Errorf("synthesis = %v", out)
	}
}

// Asked for prose (a codebase summary), the offline provider restates the
// prompt's facts, labelled, instead of a debate answer.
func TestOfflineSummaryIsProse(t *testing.T) {
	out, err := (&Provider{}).Complete(context.Background(), llm.Request{Messages: []llm.Message{{Role: "user",
		Content: "Repository: file:///app\nLanguages: Go, Python\nFrameworks: chi\nInternal imports (from -> to):\n  . -> internal/db\n\nIn at most 150 words: the architecture."}}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.Text, Label) || strings.Contains(out.Text, "position") || !strings.Contains(out.Text, "languages Go, Python") || !strings.Contains(out.Text, "1 internal import edges") {
		t.Errorf("summary = %q", out.Text)
	}
}

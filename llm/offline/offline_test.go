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
	resp, err := (&Provider{}).Complete(context.Background(), llm.Request{System: system, Messages: []llm.Message{{Role: "user", Content: prompt}}})
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

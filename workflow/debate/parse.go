package debate

import (
	"encoding/json"
	"strconv"
	"strings"
)

// Answer is a participant's structured response.
type Answer struct {
	Position   string   `json:"position"`
	Reasoning  string   `json:"reasoning,omitempty"`
	Confidence *float64 `json:"confidence,omitempty"` // nil: the model did not say
	// Structured is false when the model's text held no usable JSON and the
	// whole text was taken as the position.
	Structured bool `json:"structured"`
}

// Synthesis is the moderator's summary.
type Synthesis struct {
	Consensus      string   `json:"consensus"`
	Disagreements  []string `json:"disagreements"`
	Recommendation string   `json:"recommendation"`
	Agreement      float64  `json:"agreement"` // 0..1
	Structured     bool     `json:"structured"`
}

// extractJSON finds the JSON object in a model's text: the text itself, a
// Markdown code fence, or the outermost braces in prose.
func extractJSON(text string) (map[string]json.RawMessage, bool) {
	candidates := []string{strings.TrimSpace(text)}
	if i := strings.Index(text, "```"); i >= 0 {
		rest := text[i+3:]
		if nl := strings.IndexByte(rest, '\n'); nl >= 0 {
			rest = rest[nl+1:] // drop the fence's language tag
		}
		if j := strings.Index(rest, "```"); j >= 0 {
			candidates = append(candidates, strings.TrimSpace(rest[:j]))
		}
	}
	if i, j := strings.IndexByte(text, '{'), strings.LastIndexByte(text, '}'); i >= 0 && j > i {
		candidates = append(candidates, text[i:j+1])
	}
	for _, c := range candidates {
		var obj map[string]json.RawMessage
		if json.Unmarshal([]byte(c), &obj) == nil && obj != nil {
			return obj, true
		}
	}
	return nil, false
}

// str reads a field as text whatever JSON type the model used.
func str(obj map[string]json.RawMessage, key string) string {
	raw, ok := obj[key]
	if !ok {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return strings.TrimSpace(s)
	}
	var list []any
	if json.Unmarshal(raw, &list) == nil {
		parts := make([]string, 0, len(list))
		for _, v := range list {
			b, _ := json.Marshal(v)
			parts = append(parts, strings.Trim(string(b), `"`))
		}
		return strings.Join(parts, "; ")
	}
	return strings.TrimSpace(string(raw))
}

// number reads a 0..1 score given as 0.8, "0.8", "80%" or 80.
func number(obj map[string]json.RawMessage, key string) (float64, bool) {
	raw, ok := obj[key]
	if !ok {
		return 0, false
	}
	var f float64
	if json.Unmarshal(raw, &f) != nil {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0, false
		}
		s = strings.TrimSpace(s)
		pct := strings.HasSuffix(s, "%")
		v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
		if err != nil {
			return 0, false
		}
		if pct {
			v /= 100
		}
		f = v
	}
	if f > 1 && f <= 100 {
		f /= 100
	}
	if f < 0 || f > 1 {
		return 0, false
	}
	return f, true
}

// Bounds on what a step keeps of a reply, so that no journal entry grows
// with a model's verbosity.
const (
	MaxPositionChars  = 1000
	MaxReasoningChars = 4000
)

// truncate cuts s to n characters, marking the cut; n = 0 drops s.
func truncate(s string, n int) string {
	if n == 0 {
		return ""
	}
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// ParseAnswer reads a participant's reply. It never fails: without usable
// JSON the whole text is the position and the confidence is unknown.
func ParseAnswer(text string) Answer {
	a := parseAnswer(text)
	a.Position = truncate(a.Position, MaxPositionChars)
	a.Reasoning = truncate(a.Reasoning, MaxReasoningChars)
	return a
}

func parseAnswer(text string) Answer {
	obj, ok := extractJSON(text)
	if ok {
		if pos := str(obj, "position"); pos != "" {
			a := Answer{Position: pos, Reasoning: str(obj, "reasoning"), Structured: true}
			if c, ok := number(obj, "confidence"); ok {
				a.Confidence = &c
			}
			return a
		}
	}
	return Answer{Position: strings.TrimSpace(text)}
}

// ParseSynthesis reads the moderator's reply, with the same tolerance.
func ParseSynthesis(text string) Synthesis {
	obj, ok := extractJSON(text)
	if !ok {
		return Synthesis{Consensus: strings.TrimSpace(text), Agreement: -1}
	}
	s := Synthesis{
		Consensus:      str(obj, "consensus"),
		Recommendation: str(obj, "recommendation"),
		Structured:     true,
		Agreement:      -1,
	}
	if raw, ok := obj["disagreements"]; ok {
		var list []string
		if json.Unmarshal(raw, &list) == nil {
			s.Disagreements = list
		} else if d := str(obj, "disagreements"); d != "" {
			s.Disagreements = []string{d}
		}
	}
	if a, ok := number(obj, "agreement"); ok {
		s.Agreement = a
	}
	return s
}

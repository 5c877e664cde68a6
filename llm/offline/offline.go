// Package offline is the default provider: deterministic, free, and needing
// no network or key, so that the demo and the tests run anywhere. Every answer
// is labelled simulated — in Response.Simulated and in its text — because no
// model was asked.
//
// It answers in the JSON shape the prompt asks for (a debate position or a
// moderator's synthesis). In later debate rounds it leans toward the position
// the prompt shows held by the most others, so debates converge as real ones
// often do.
package offline

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"regexp"
	"strings"
	"time"

	"github.com/ultramcp/durable/llm"
)

// Label prefixes every simulated text.
const Label = "[simulated]"

// Provider is the offline model. Latency, if set, is slept per call (for
// benchmarks of orchestration under a known model latency).
type Provider struct {
	Latency time.Duration
}

var _ llm.Model = (*Provider)(nil)

// Name implements llm.Model.
func (p *Provider) Name() string { return "offline" }

var stances = []string{
	"Yes, adopt it with safeguards and a staged rollout",
	"No, the risks outweigh the benefits for now",
	"Adopt it only after a small pilot proves the value",
}

// heldBy matches the grouped positions that laterRoundPrompt writes:
// - "position" held by a, b
var heldBy = regexp.MustCompile(`(?m)^- "([^"]+)" held by (.+)$`)

var ownPosition = regexp.MustCompile(`(?m)^Your previous position: "([^"]+)" \(confidence ([0-9.]+)`)

var othersConfidence = regexp.MustCompile(`(?m)^\s+(\S+) \(confidence ([0-9.]+)\):`)

// persuaded picks the position a simulated participant holds after seeing
// the others: the one held by the most (its own counts once), and on a tie
// the one held with the highest confidence.
func persuaded(text string, groups [][]string) string {
	type support struct {
		count int
		conf  float64
	}
	conf := map[string]float64{}
	for _, c := range othersConfidence.FindAllStringSubmatch(text, -1) {
		var v float64
		fmt.Sscan(c[2], &v)
		conf[c[1]] = v
	}
	by := map[string]*support{}
	best := ""
	if o := ownPosition.FindStringSubmatch(text); o != nil {
		var v float64
		fmt.Sscan(o[2], &v)
		by[o[1]] = &support{count: 1, conf: v}
		best = o[1]
	}
	for _, g := range groups {
		sp := by[g[1]]
		if sp == nil {
			sp = &support{}
			by[g[1]] = sp
		}
		for _, name := range strings.Split(g[2], ", ") {
			sp.count++
			sp.conf = max(sp.conf, conf[name])
		}
		if b := by[best]; b == nil || sp.count > b.count || sp.count == b.count && sp.conf > b.conf {
			best = g[1]
		}
	}
	return best
}

var voteShare = regexp.MustCompile(`with (\d+)% of the weight`)

// Complete implements llm.Model.
func (p *Provider) Complete(ctx context.Context, req llm.Request) (llm.Response, error) {
	resp, err := p.complete(ctx, req)
	if err == nil && req.OnDelta != nil {
		req.OnDelta(resp.Text, false) // no model writes it: it comes whole
	}
	return resp, err
}

func (p *Provider) complete(ctx context.Context, req llm.Request) (llm.Response, error) {
	if p.Latency > 0 {
		select {
		case <-ctx.Done():
			return llm.Response{}, ctx.Err()
		case <-time.After(p.Latency):
		}
	}
	var prompt strings.Builder
	for _, m := range req.Messages {
		prompt.WriteString(m.Content)
	}
	text := prompt.String()
	if !req.JSON {
		// Prose is asked for (a codebase summary), not a debate answer:
		// restate the facts the prompt gives, labelled as no model's.
		out := restate(text)
		return llm.Response{Text: out, Model: "offline", TokensIn: len(text) / 4, TokensOut: len(out) / 4, Simulated: true}, nil
	}
	// The stance depends on who is asked (the system prompt), so a
	// participant keeps a recognisable view across topics and rounds.
	seed := hash(req.System)
	var body any
	if strings.Contains(text, `"recommendation"`) {
		body = map[string]any{
			"consensus":      Label + " The participants converge on: " + majority(text),
			"disagreements":  []string{Label + " how fast to move and what to measure first"},
			"recommendation": Label + " " + majority(text) + "; revisit after the first results",
			"agreement":      agreement(text),
		}
	} else {
		position := stances[seed%uint32(len(stances))]
		if m := heldBy.FindAllStringSubmatch(text, -1); len(m) > 0 {
			position = strings.TrimPrefix(persuaded(text, m), Label+" ")
		}
		body = map[string]any{
			"position":   Label + " " + position,
			"reasoning":  fmt.Sprintf("%s deterministic answer %d; no model was called.", Label, seed%1000),
			"confidence": float64(60+seed%40) / 100,
		}
	}
	out, _ := json.Marshal(body)
	return llm.Response{
		Text:      string(out),
		Model:     "offline",
		TokensIn:  len(text) / 4,
		TokensOut: len(out) / 4,
		Simulated: true,
	}, nil
}

// restate turns the "Name: value" lines of a prompt into one paragraph.
func restate(prompt string) string {
	var facts []string
	edges := 0
	for _, line := range strings.Split(prompt, "\n") {
		if strings.HasPrefix(line, "  ") && strings.Contains(line, " -> ") {
			edges++
			continue
		}
		name, value, ok := strings.Cut(line, ": ")
		if !ok || strings.TrimSpace(value) == "" || len(name) > 40 || strings.HasPrefix(name, "In at most") {
			continue
		}
		facts = append(facts, strings.ToLower(name)+" "+strings.TrimSpace(value))
	}
	out := Label + " No model was called; from the analysis alone: " + strings.Join(facts, "; ")
	if edges > 0 {
		out += fmt.Sprintf("; %d internal import edges", edges)
	}
	return out + "."
}

// majority returns the first final position quoted in a moderator prompt.
func majority(text string) string {
	if i := strings.Index(text, "Confidence-weighted vote: \""); i >= 0 {
		rest := text[i+len("Confidence-weighted vote: \""):]
		if j := strings.IndexByte(rest, '"'); j >= 0 {
			return strings.TrimPrefix(rest[:j], Label+" ")
		}
	}
	return "proceed carefully"
}

// agreement echoes the vote share the moderator prompt reports.
func agreement(text string) float64 {
	if m := voteShare.FindStringSubmatch(text); m != nil {
		var pct float64
		fmt.Sscan(m[1], &pct)
		return pct / 100
	}
	return 0.5
}

func hash(s string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	return h.Sum32()
}

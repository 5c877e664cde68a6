package debate

import (
	"fmt"
	"strings"
)

const participantFormat = `Answer with one JSON object and nothing else:
{"position": "<your answer in at most 15 words>", "reasoning": "<why, at most 120 words>", "confidence": <0.0 to 1.0>}`

const moderatorFormat = `Answer with one JSON object and nothing else:
{"consensus": "<what the participants agree on>", "disagreements": ["<each point still disputed>"], "recommendation": "<what to do>", "agreement": <0.0 to 1.0, how far the participants agree>}`

func systemPrompt(p Participant) string {
	role := p.Role
	if role == "" {
		role = p.Name
	}
	return fmt.Sprintf("You are %s, taking part in a structured debate as: %s. "+
		"Argue from that perspective, be concrete, and change your position only for good reasons.", p.Name, role)
}

func topicBlock(in Input) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Topic: %s\n", in.Topic)
	if len(in.Context) > 0 && string(in.Context) != "null" {
		fmt.Fprintf(&b, "\nContext (JSON):\n%s\n", in.Context)
	}
	return b.String()
}

// firstRoundPrompt asks for an independent answer.
func firstRoundPrompt(in Input) string {
	return topicBlock(in) + "\nGive your own answer, independently of anyone else.\n\n" + participantFormat
}

// laterRoundPrompt shows the others' previous positions, grouped, with their
// confidence, and asks the participant to revise or defend.
func laterRoundPrompt(in Input, self string, round int, previous []Response) string {
	var b strings.Builder
	b.WriteString(topicBlock(in))
	fmt.Fprintf(&b, "\nRound %d. Positions from the previous round:\n", round)
	var others []Response
	for _, r := range previous {
		if r.Participant == self {
			fmt.Fprintf(&b, "Your previous position: %q (confidence %s)\n", r.Position, confText(r.Confidence))
			continue
		}
		others = append(others, r)
	}
	for _, g := range GroupPositions(others) {
		fmt.Fprintf(&b, "- %q held by %s\n", g.Position, strings.Join(g.Participants, ", "))
		for _, r := range others {
			if contains(g.Participants, r.Participant) && r.Reasoning != "" {
				fmt.Fprintf(&b, "    %s (confidence %s): %s\n", r.Participant, confText(r.Confidence), r.Reasoning)
			}
		}
	}
	b.WriteString("\nConsider the others' arguments. Revise your position if they convinced you; otherwise defend it.\n\n")
	b.WriteString(participantFormat)
	return b.String()
}

func moderatorPrompt(in Input, final []Response, vote Vote) string {
	var b strings.Builder
	b.WriteString(topicBlock(in))
	b.WriteString("\nFinal positions:\n")
	for _, r := range final {
		fmt.Fprintf(&b, "- %s (confidence %s): %q. %s\n", r.Participant, confText(r.Confidence), r.Position, r.Reasoning)
	}
	fmt.Fprintf(&b, "\nConfidence-weighted vote: %q with %.0f%% of the weight.\n\n", vote.Winner, vote.Share*100)
	b.WriteString("As the moderator, synthesize the debate.\n\n")
	b.WriteString(moderatorFormat)
	return b.String()
}

const moderatorSystem = "You are the moderator of a structured debate. Summarize fairly; do not add positions of your own."

func confText(c *float64) string {
	if c == nil {
		return "unknown"
	}
	return fmt.Sprintf("%.2f", *c)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

package debate

import (
	"sort"
	"strings"
	"unicode"
)

// Group is the set of participants holding the same position.
type Group struct {
	Position     string   `json:"position"`
	Participants []string `json:"participants"`
	Weight       float64  `json:"weight"`
}

// Vote is the confidence-weighted vote over the final positions.
type Vote struct {
	Winner string  `json:"winner"`
	Share  float64 `json:"share"` // winner's weight / total weight
	Groups []Group `json:"groups"`
}

// recalibrate maps a self-reported confidence to a vote weight, as ReConcile
// (Chen et al. 2024) does: models are over-confident, so only near-certainty
// counts fully, and an unknown confidence counts little.
func recalibrate(c *float64) float64 {
	switch {
	case c == nil:
		return 0.1
	case *c >= 1.0:
		return 1.0
	case *c >= 0.9:
		return 0.8
	case *c >= 0.8:
		return 0.5
	case *c > 0.6:
		return 0.3
	default:
		return 0.1
	}
}

// words normalizes a position to its set of lowercase words.
func words(s string) map[string]bool {
	set := map[string]bool{}
	for _, w := range strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsNumber(r)
	}) {
		set[w] = true
	}
	return set
}

// similar says whether two positions say the same thing: the same words, or
// mostly the same (Jaccard ≥ 0.6). Positions are short by prompt, so word
// overlap is a fair test; a real model's paraphrase may still count apart.
func similar(a, b string) bool {
	wa, wb := words(a), words(b)
	if len(wa) == 0 || len(wb) == 0 {
		return strings.EqualFold(strings.TrimSpace(a), strings.TrimSpace(b))
	}
	inter := 0
	for w := range wa {
		if wb[w] {
			inter++
		}
	}
	union := len(wa) + len(wb) - inter
	return float64(inter)/float64(union) >= 0.6
}

// GroupPositions clusters responses by position, in the order first seen.
func GroupPositions(responses []Response) []Group {
	var groups []Group
	for _, r := range responses {
		if r.Failed {
			continue
		}
		w := recalibrate(r.Confidence)
		placed := false
		for i := range groups {
			if similar(groups[i].Position, r.Position) {
				groups[i].Participants = append(groups[i].Participants, r.Participant)
				groups[i].Weight += w
				placed = true
				break
			}
		}
		if !placed {
			groups = append(groups, Group{Position: r.Position, Participants: []string{r.Participant}, Weight: w})
		}
	}
	return groups
}

// Agree reports whether every answering participant holds one position.
func Agree(responses []Response) bool {
	return len(GroupPositions(responses)) == 1
}

// WeightedVote tallies the responses.
func WeightedVote(responses []Response) Vote {
	groups := GroupPositions(responses)
	sort.SliceStable(groups, func(i, j int) bool { return groups[i].Weight > groups[j].Weight })
	var total float64
	for _, g := range groups {
		total += g.Weight
	}
	v := Vote{Groups: groups}
	if len(groups) > 0 && total > 0 {
		v.Winner = groups[0].Position
		v.Share = groups[0].Weight / total
	}
	return v
}

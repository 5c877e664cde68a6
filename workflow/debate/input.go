package debate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/llm"
	"github.com/ultramcp/durable/workflow"
)

// Limits on input, so that a debate cannot be asked to do unbounded work.
const (
	MinParticipants = 2
	MaxParticipants = 12
	MinRounds       = 1
	MaxRounds       = 10
	DefaultRounds   = 3
	MaxTopicChars   = 8000
	MaxContextBytes = 64 << 10
	MaxNameChars    = 64
	MaxRoleChars    = 500
	MaxDelay        = time.Hour
	DefaultDelay    = 2 * time.Second
	// DefaultConsensusThreshold is the agreement score under which the
	// result is flagged as contested.
	DefaultConsensusThreshold = 0.7
	// DefaultEscalateTimeout and MaxEscalateTimeout bound the wait for a
	// human decision.
	DefaultEscalateTimeout = time.Hour
	MaxEscalateTimeout     = 7 * 24 * time.Hour
)

// Modes.
const (
	ModeDebate = "debate"
	ModeVote   = "vote"
)

// Participant is one debater. In JSON it is a role name string or an object.
type Participant struct {
	Name  string `json:"name"`
	Role  string `json:"role,omitempty"`
	Model string `json:"model,omitempty"`
}

// UnmarshalJSON accepts "alice" as well as {"name":"alice","role":…}.
func (p *Participant) UnmarshalJSON(b []byte) error {
	var name string
	if err := json.Unmarshal(b, &name); err == nil {
		*p = Participant{Name: name}
		return nil
	}
	type plain Participant
	var v plain
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("must be a name or an object {name, role, model}: %w", err)
	}
	*p = Participant(v)
	return nil
}

// Duration is a time.Duration that reads "2s" or a number of milliseconds.
type Duration time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var ms float64
	if err := json.Unmarshal(b, &ms); err == nil {
		*d = Duration(time.Duration(ms * float64(time.Millisecond)))
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`must be a duration such as "2s" or a number of milliseconds`)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("must be a duration such as \"2s\": %w", err)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration as "2s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Input is the request for a debate.
type Input struct {
	Topic              string          `json:"topic" jsonschema:"what to debate"`
	Participants       []Participant   `json:"participants" jsonschema:"2 to 12 participants: role names, or objects {name, role, model}"`
	Rounds             *int            `json:"rounds,omitempty" jsonschema:"rounds, 1 to 10 (default 3)"`
	Context            json.RawMessage `json:"context,omitempty" jsonschema:"JSON context every participant sees"`
	DelayBetweenRounds *Duration       `json:"delayBetweenRounds,omitempty" jsonschema:"durable pause between rounds (default 2s)"`
	Moderator          string          `json:"moderator,omitempty" jsonschema:"moderator model, e.g. openai:gpt-4o"`
	Mode               string          `json:"mode,omitempty" jsonschema:"debate (default) or vote"`
	ConsensusThreshold *float64        `json:"consensusThreshold,omitempty" jsonschema:"agreement under which the result is contested (default 0.7)"`
	// Escalate waits for a human decision when agreement stays below the
	// threshold, at most EscalateTimeout, then falls back to the vote.
	Escalate        bool      `json:"escalate,omitempty" jsonschema:"when contested, wait for a human decision"`
	EscalateTimeout *Duration `json:"escalateTimeout,omitempty" jsonschema:"how long to wait for the decision (default 1h)"`
	// Budget caps what the debate spends: it stops before a round (or the
	// moderator) that would pass it and ends partial.
	Budget   *workflow.Budget `json:"budget,omitempty" jsonschema:"caps on cost, tokens and calls; the debate stops before a round that would pass them"`
	Priority string           `json:"priority,omitempty" jsonschema:"interactive (default) or batch: batch calls wait behind interactive ones for a provider's limit"`
}

// Decode parses and validates a request body. Every error names the field at
// fault, so the caller can say what to fix; a request that fails here never
// starts a debate. Fields are decoded one by one for that reason.
func Decode(body []byte) (Input, error) {
	var in Input
	if len(bytes.TrimSpace(body)) == 0 {
		return in, fault.Invalidf("body", "empty; want a JSON object with topic, participants and rounds")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return in, fault.Invalidf("body", "must be a JSON object")
		}
		return in, fault.Invalidf("body", "invalid JSON: %v", err)
	}
	targets := map[string]any{
		"topic":              &in.Topic,
		"rounds":             &in.Rounds,
		"context":            &in.Context,
		"delayBetweenRounds": &in.DelayBetweenRounds,
		"moderator":          &in.Moderator,
		"mode":               &in.Mode,
		"consensusThreshold": &in.ConsensusThreshold,
		"escalate":           &in.Escalate,
		"escalateTimeout":    &in.EscalateTimeout,
		"priority":           &in.Priority,
	}
	for name, raw := range fields {
		if name == "participants" {
			continue
		}
		if name == "budget" {
			var err error
			if in.Budget, err = workflow.DecodeBudget(raw); err != nil {
				return in, err
			}
			continue
		}
		target, ok := targets[name]
		if !ok {
			return in, fault.Invalidf(name, "unknown field")
		}
		if err := json.Unmarshal(raw, target); err != nil {
			return in, fault.Invalidf(name, "%s", workflow.DescribeJSONError(err))
		}
	}
	if raw, ok := fields["participants"]; ok {
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return in, fault.Invalidf("participants", "%s", workflow.DescribeJSONError(err))
		}
		in.Participants = make([]Participant, len(items))
		for i, item := range items {
			if err := json.Unmarshal(item, &in.Participants[i]); err != nil {
				return in, fault.Invalidf(fmt.Sprintf("participants[%d]", i), "%s", workflow.DescribeJSONError(err))
			}
		}
	}
	return in, in.Validate()
}

// RoundsOrDefault returns the number of rounds asked for.
func (in Input) RoundsOrDefault() int { return orDefault(in.Rounds, DefaultRounds) }

// Delay returns the pause between rounds.
func (in Input) Delay() time.Duration {
	return time.Duration(orDefault(in.DelayBetweenRounds, Duration(DefaultDelay)))
}

// Threshold returns the consensus threshold.
func (in Input) Threshold() float64 {
	return orDefault(in.ConsensusThreshold, DefaultConsensusThreshold)
}

// DecisionTimeout is how long an escalated debate waits for a decision.
func (in Input) DecisionTimeout() time.Duration {
	return time.Duration(orDefault(in.EscalateTimeout, Duration(DefaultEscalateTimeout)))
}

// orDefault is *p, or def when the request left the field out.
func orDefault[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// ModeOrDefault returns the mode.
func (in Input) ModeOrDefault() string {
	if in.Mode == "" {
		return ModeDebate
	}
	return in.Mode
}

// Validate checks the input's values; Decode calls it.
func (in Input) Validate() error {
	topic := strings.TrimSpace(in.Topic)
	switch {
	case topic == "":
		return fault.Invalidf("topic", "required")
	case !utf8.ValidString(in.Topic):
		return fault.Invalidf("topic", "must be valid UTF-8")
	case utf8.RuneCountInString(in.Topic) > MaxTopicChars:
		return fault.Invalidf("topic", "too long: %d characters, at most %d", utf8.RuneCountInString(in.Topic), MaxTopicChars)
	case workflow.HasControl(in.Topic, "\n\r\t"):
		return fault.Invalidf("topic", "must not contain control characters (but newlines and tabs)")
	}
	if err := checkModel("moderator", in.Moderator); err != nil {
		return err
	}
	n := len(in.Participants)
	if n < MinParticipants || n > MaxParticipants {
		return fault.Invalidf("participants", "need %d to %d participants, got %d", MinParticipants, MaxParticipants, n)
	}
	seen := map[string]bool{}
	for i, p := range in.Participants {
		field := fmt.Sprintf("participants[%d]", i)
		name := strings.TrimSpace(p.Name)
		switch {
		case name == "":
			return fault.Invalidf(field+".name", "required")
		case utf8.RuneCountInString(name) > MaxNameChars:
			return fault.Invalidf(field+".name", "too long: at most %d characters", MaxNameChars)
		case strings.ContainsRune(name, '/') || workflow.HasControl(name, ""):
			return fault.Invalidf(field+".name", "must not contain '/' or control characters")
		case seen[strings.ToLower(name)]:
			return fault.Invalidf(field+".name", "duplicate participant %q", name)
		case utf8.RuneCountInString(p.Role) > MaxRoleChars:
			return fault.Invalidf(field+".role", "too long: at most %d characters", MaxRoleChars)
		case workflow.HasControl(p.Role, "\n\t"):
			return fault.Invalidf(field+".role", "must not contain control characters (but newlines and tabs)")
		}
		if err := checkModel(field+".model", p.Model); err != nil {
			return err
		}
		seen[strings.ToLower(name)] = true
	}
	if in.Rounds != nil && (*in.Rounds < MinRounds || *in.Rounds > MaxRounds) {
		return fault.Invalidf("rounds", "must be between %d and %d, got %d", MinRounds, MaxRounds, *in.Rounds)
	}
	if len(in.Context) > MaxContextBytes {
		return fault.Invalidf("context", "too large: %d bytes, at most %d", len(in.Context), MaxContextBytes)
	}
	if d := in.Delay(); d < 0 || d > MaxDelay {
		return fault.Invalidf("delayBetweenRounds", "must be between 0 and %s", MaxDelay)
	}
	if m := in.ModeOrDefault(); m != ModeDebate && m != ModeVote {
		return fault.Invalidf("mode", "must be %q or %q, got %q", ModeDebate, ModeVote, m)
	}
	if t := in.Threshold(); t < 0 || t > 1 {
		return fault.Invalidf("consensusThreshold", "must be between 0 and 1")
	}
	if d := in.DecisionTimeout(); d <= 0 || d > MaxEscalateTimeout {
		return fault.Invalidf("escalateTimeout", "must be between 0 and %s", MaxEscalateTimeout)
	}
	if err := in.Budget.Validate(); err != nil {
		return err
	}
	return workflow.CheckPriority(in.Priority)
}

// MaxModelChars bounds a model reference ("provider:model").
const MaxModelChars = 200

// checkModel refuses a model reference no provider could take: too long,
// with spaces or control characters, or of an unknown provider. Whether its
// provider is configured is CheckModels' question.
func checkModel(field, ref string) error {
	switch {
	case ref == "":
		return nil
	case len(ref) > MaxModelChars:
		return fault.Invalidf(field, "too long: at most %d characters", MaxModelChars)
	case strings.ContainsAny(ref, " \n\r\t") || workflow.HasControl(ref, ""):
		return fault.Invalidf(field, "must not contain spaces or control characters")
	}
	if _, err := llm.ParseRef(ref, llm.Providers[0]); err != nil {
		return fault.Invalidf(field, "%v", err)
	}
	return nil
}

// CheckModels refuses a participant's model or the moderator whose
// provider models does not have configured, naming the field.
func (in Input) CheckModels(models llm.Models) error {
	check := func(field, ref string) error {
		if ref == "" {
			return nil
		}
		if _, err := models.Resolve(ref); err != nil {
			return fault.Invalidf(field, "%s", fault.Message(err))
		}
		return nil
	}
	for i, p := range in.Participants {
		if err := check(fmt.Sprintf("participants[%d].model", i), p.Model); err != nil {
			return err
		}
	}
	return check("moderator", in.Moderator)
}

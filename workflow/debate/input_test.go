package debate

import (
	"strings"
	"testing"
	"time"

	"github.com/ultramcp/durable/fault"
)

func TestDecodeRejectsBadInput(t *testing.T) {
	cases := []struct {
		name, body, field string
	}{
		{"empty body", ``, "body"},
		{"not an object", `[1,2]`, "body"},
		{"broken json", `{"topic":`, "body"},
		{"no topic", `{"participants":["a","b"],"rounds":2}`, "topic"},
		{"blank topic", `{"topic":"  ","participants":["a","b"]}`, "topic"},
		{"huge topic", `{"topic":"` + strings.Repeat("é", MaxTopicChars+1) + `","participants":["a","b"]}`, "topic"},
		{"topic wrong type", `{"topic":1,"participants":["a","b"]}`, "topic"},
		{"one participant", `{"topic":"t","participants":["a"]}`, "participants"},
		{"thirteen participants", `{"topic":"t","participants":["a","b","c","d","e","f","g","h","i","j","k","l","m"]}`, "participants"},
		{"participants wrong type", `{"topic":"t","participants":"a,b"}`, "participants"},
		{"participant wrong type", `{"topic":"t","participants":["a",7]}`, "participants[1]"},
		{"participant unknown field", `{"topic":"t","participants":["a",{"name":"b","colour":"red"}]}`, "participants[1]"},
		{"duplicate participant", `{"topic":"t","participants":["a","A"]}`, "participants[1].name"},
		{"empty participant", `{"topic":"t","participants":["a",""]}`, "participants[1].name"},
		{"zero rounds", `{"topic":"t","participants":["a","b"],"rounds":0}`, "rounds"},
		{"fifty rounds", `{"topic":"t","participants":["a","b"],"rounds":50}`, "rounds"},
		{"rounds string", `{"topic":"t","participants":["a","b"],"rounds":"2"}`, "rounds"},
		{"rounds fraction", `{"topic":"t","participants":["a","b"],"rounds":1.5}`, "rounds"},
		{"bad delay", `{"topic":"t","participants":["a","b"],"delayBetweenRounds":"soon"}`, "delayBetweenRounds"},
		{"long delay", `{"topic":"t","participants":["a","b"],"delayBetweenRounds":"2h"}`, "delayBetweenRounds"},
		{"bad mode", `{"topic":"t","participants":["a","b"],"mode":"chaos"}`, "mode"},
		{"threshold", `{"topic":"t","participants":["a","b"],"consensusThreshold":2}`, "consensusThreshold"},
		{"unknown field", `{"topic":"t","participants":["a","b"],"round":2}`, "round"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode([]byte(tc.body))
			if err == nil {
				t.Fatal("accepted")
			}
			if fault.KindOf(err) != fault.Invalid || fault.FieldOf(err) != tc.field {
				t.Errorf("err = %v (field %q), want field %q", err, fault.FieldOf(err), tc.field)
			}
			if !strings.HasPrefix(err.Error(), tc.field+": ") {
				t.Errorf("message %q does not start with the field", err)
			}
		})
	}
}

func TestDecodeAcceptsBothParticipantForms(t *testing.T) {
	in, err := Decode([]byte(`{"topic":"t","participants":["a",{"name":"b","role":"critic","model":"openai:gpt-4o"}],"delayBetweenRounds":1500,"context":{"findings":[1]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if in.Participants[0].Name != "a" || in.Participants[1].Role != "critic" || in.Participants[1].Model != "openai:gpt-4o" {
		t.Errorf("participants = %+v", in.Participants)
	}
	if in.RoundsOrDefault() != DefaultRounds || in.Delay() != 1500*time.Millisecond || in.ModeOrDefault() != ModeDebate {
		t.Errorf("defaults: rounds %d delay %s mode %s", in.RoundsOrDefault(), in.Delay(), in.ModeOrDefault())
	}
}

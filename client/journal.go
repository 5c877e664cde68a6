package client

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"
)

// Entry is one entry of an invocation's journal, as the admin API's
// sys_journal table shows it, with the result of a step (a Run command's
// completion) joined to its command.
type Entry struct {
	Index int    `json:"index"`
	Type  string `json:"type"` // "Command: Run", "Command: Sleep", "Command: Call", …
	Name  string `json:"name,omitempty"`
	// At is when Restate appended the entry; Done, for a step, when its
	// result was (the end of the step as the journal knows it).
	At   time.Time `json:"at"`
	Done time.Time `json:"done,omitzero"`
	// Result is a step's recorded value, Failure its recorded failure.
	Result  json.RawMessage `json:"result,omitempty"`
	Failure string          `json:"failure,omitempty"`
	// Input is the invocation's request (the Input command's payload).
	Input json.RawMessage `json:"input,omitempty"`
}

// Journal returns the commands of an invocation's journal in order: the
// input, each step with its result, sleeps, calls, the output. Restate
// keeps it for the journal retention (a day by default) after the end.
func (c *Client) Journal(ctx context.Context, invocationID string) ([]Entry, error) {
	rows, err := c.Query(ctx, fmt.Sprintf("SELECT index, entry_type, name, appended_at, entry_json FROM sys_journal WHERE id = %s ORDER BY index", quote(invocationID)))
	if err != nil {
		return nil, err
	}
	var entries []Entry
	byCompletion := map[float64]int{}
	for _, r := range rows {
		kind, _ := r["entry_type"].(string)
		name, _ := r["name"].(string)
		index, _ := r["index"].(float64)
		at, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(r["appended_at"]))
		var raw journalJSON
		_ = json.Unmarshal([]byte(fmt.Sprint(r["entry_json"])), &raw)
		switch {
		case kind == "Notification: Run" && raw.Notification.Completion.Run != nil:
			run := raw.Notification.Completion.Run
			if i, ok := byCompletion[run.CompletionID]; ok {
				entries[i].Done = at
				entries[i].Result, entries[i].Failure = run.Result.value()
			}
			continue
		case len(kind) < 8 || kind[:8] != "Command:":
			continue
		}
		e := Entry{Index: int(index), Type: kind, Name: name, At: at}
		if raw.Command.Run != nil {
			byCompletion[raw.Command.Run.CompletionID] = len(entries)
		}
		if raw.Command.Input != nil {
			e.Input = bytesOf(raw.Command.Input.Payload)
		}
		entries = append(entries, e)
	}
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].Index < entries[j].Index })
	return entries, nil
}

// journalJSON is the part of sys_journal.entry_json read here: payloads
// are arrays of bytes.
type journalJSON struct {
	Command struct {
		Input *struct {
			Payload []int `json:"payload"`
		} `json:"Input"`
		Run *struct {
			CompletionID float64 `json:"completion_id"`
		} `json:"Run"`
	} `json:"Command"`
	Notification struct {
		Completion struct {
			Run *struct {
				CompletionID float64       `json:"completion_id"`
				Result       journalResult `json:"result"`
			} `json:"Run"`
		} `json:"Completion"`
	} `json:"Notification"`
}

type journalResult struct {
	Success []int `json:"Success"`
	Failure *struct {
		Message string `json:"message"`
	} `json:"Failure"`
}

func (r journalResult) value() (json.RawMessage, string) {
	if r.Failure != nil {
		return nil, r.Failure.Message
	}
	return bytesOf(r.Success), ""
}

func bytesOf(ints []int) json.RawMessage {
	if ints == nil {
		return nil
	}
	b := make([]byte, len(ints))
	for i, v := range ints {
		b[i] = byte(v)
	}
	return b
}

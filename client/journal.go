package client

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
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
	byCompletion := map[int64]int{}
	for _, r := range rows {
		kind, _ := r["entry_type"].(string)
		name, _ := r["name"].(string)
		index, _ := r["index"].(float64)
		at, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(r["appended_at"]))
		var raw journalJSON
		_ = json.Unmarshal([]byte(fmt.Sprint(r["entry_json"])), &raw)
		if strings.HasPrefix(kind, "Notification:") {
			for _, n := range raw.Notification.Completion {
				if i, ok := byCompletion[n.CompletionID]; ok && n.CompletionID != 0 {
					entries[i].Done = at
					entries[i].Result, entries[i].Failure = n.Result.value()
				}
			}
			continue
		}
		if !strings.HasPrefix(kind, "Command:") {
			continue
		}
		e := Entry{Index: int(index), Type: kind, Name: name, At: at}
		for _, c := range raw.Command {
			if id := cmp.Or(c.ResultCompletionID, c.CompletionID); id != 0 {
				byCompletion[id] = len(entries)
			}
			if c.Payload != nil {
				e.Input = bytesOf(c.Payload)
			}
		}
		entries = append(entries, e)
	}
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].Index < entries[j].Index })
	return entries, nil
}

// journalJSON is the part of sys_journal.entry_json read here: payloads
// are arrays of bytes.
type journalJSON struct {
	Command      map[string]journalCommand `json:"Command"`
	Notification struct {
		Completion map[string]journalCompletion `json:"Completion"`
	} `json:"Notification"`
}

// journalCommand is what a command may carry: the id its completion
// comes under (a call's is its result's), an input's payload.
type journalCommand struct {
	CompletionID       int64 `json:"completion_id"`
	ResultCompletionID int64 `json:"result_completion_id"`
	Payload            []int `json:"payload"`
}

type journalCompletion struct {
	CompletionID int64         `json:"completion_id"`
	Result       journalResult `json:"result"`
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

// InFlight counts the workflow runs not finished, by workflow and by the
// deployment they are pinned to ("" before their first attempt).
type InFlight struct {
	Workflow   string
	Deployment string
	Count      int
}

// InFlight returns the counts of runs not finished.
func (c *Client) InFlight(ctx context.Context) ([]InFlight, error) {
	rows, err := c.Query(ctx, fmt.Sprintf(`SELECT target_service_name, pinned_deployment_id, count(*) AS n FROM sys_invocation
WHERE target_handler_name = %s AND status != 'completed' GROUP BY target_service_name, pinned_deployment_id`, quote("run")))
	if err != nil {
		return nil, err
	}
	out := make([]InFlight, 0, len(rows))
	for _, r := range rows {
		wf, _ := r["target_service_name"].(string)
		dep, _ := r["pinned_deployment_id"].(string)
		n, _ := r["n"].(float64)
		out = append(out, InFlight{Workflow: wf, Deployment: dep, Count: int(n)})
	}
	return out, nil
}

package llm

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ultramcp/durable/fault"
)

type flaky struct {
	errs  []error
	calls int
}

func (f *flaky) Name() string { return "flaky" }
func (f *flaky) Complete(ctx context.Context, req Request) (Response, error) {
	f.calls++
	if f.calls <= len(f.errs) {
		return Response{}, f.errs[f.calls-1]
	}
	return Response{Text: "ok"}, nil
}

var fast = RetryPolicy{MaxAttempts: 4, Initial: time.Millisecond, Max: 5 * time.Millisecond, CallTimeout: time.Second, TotalTimeout: 5 * time.Second}

func TestRetryingRetriesTransientFaults(t *testing.T) {
	f := &flaky{errs: []error{ClassifyStatus("p", 500, ""), ClassifyStatus("p", 429, "")}}
	resp, err := Retrying(f, fast).Complete(context.Background(), Request{})
	if err != nil || resp.Text != "ok" || f.calls != 3 {
		t.Fatalf("resp %v err %v calls %d", resp, err, f.calls)
	}
}

func TestRetryingStopsOnPermanentFaults(t *testing.T) {
	for _, status := range []int{400, 401, 403} {
		f := &flaky{errs: []error{ClassifyStatus("p", status, "")}}
		_, err := Retrying(f, fast).Complete(context.Background(), Request{})
		if f.calls != 1 || fault.IsRetryable(err) {
			t.Errorf("status %d: calls %d, err %v", status, f.calls, err)
		}
	}
}

func TestRetryingGivesUpAfterBudget(t *testing.T) {
	f := &flaky{errs: []error{ClassifyStatus("p", 503, ""), ClassifyStatus("p", 503, ""), ClassifyStatus("p", 503, ""), ClassifyStatus("p", 503, ""), ClassifyStatus("p", 503, "")}}
	_, err := Retrying(f, fast).Complete(context.Background(), Request{})
	if f.calls != 4 || err == nil || fault.KindOf(err) != fault.Unavailable {
		t.Fatalf("calls %d err %v", f.calls, err)
	}
}

func TestParseRef(t *testing.T) {
	cases := map[string]Ref{
		"":                   {Provider: "offline"},
		"openai":             {Provider: "openai"},
		"openai:gpt-4o-mini": {Provider: "openai", Model: "gpt-4o-mini"},
		"llama3.2":           {Provider: "offline", Model: "llama3.2"},
		"anthropic:claude-x": {Provider: "anthropic", Model: "claude-x"},
	}
	for in, want := range cases {
		got, err := ParseRef(in, "offline")
		if err != nil || got != want {
			t.Errorf("ParseRef(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	if _, err := ParseRef("bogus:x", "offline"); err == nil {
		t.Error("unknown provider accepted")
	}
}

func TestEstimateCost(t *testing.T) {
	cost, ok := EstimateCost("openai:gpt-4o-mini-2024-07-18", 1_000_000, 1_000_000)
	if !ok || cost != 0.75 {
		t.Errorf("gpt-4o-mini cost = %v, %v", cost, ok)
	}
	if _, ok := EstimateCost("openai:my-local-llama", 10, 10); ok {
		t.Error("an unknown model has a price")
	}
}

func TestRedact(t *testing.T) {
	if got := Redact("bad key sk-123 given", "sk-123", ""); got != "bad key [REDACTED] given" {
		t.Errorf("got %q", got)
	}
}

// A transport error names no endpoint: its URL is an internal address, and
// the error reaches clients through the workflow's failure.
func TestTransportErrorsNameNoURL(t *testing.T) {
	err := &url.Error{Op: "Post", URL: "http://10.1.2.3:8000/v1/chat/completions?key=sk-SECRET", Err: errors.New("connection refused")}
	got := ClassifyTransport("openai", err, "sk-SECRET").Error()
	if strings.Contains(got, "10.1.2.3") || strings.Contains(got, "sk-SECRET") || !strings.Contains(got, "connection refused") {
		t.Errorf("%q", got)
	}
}

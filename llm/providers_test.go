package llm_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/internal/llmtest"
	"github.com/ultramcp/durable/live"
	"github.com/ultramcp/durable/llm"
	"github.com/ultramcp/durable/llm/anthropic"
	"github.com/ultramcp/durable/llm/offline"
	"github.com/ultramcp/durable/llm/openai"
)

const key = "sk-secret-key-123"

func providers(fake *llmtest.Server) map[string]llm.Model {
	return map[string]llm.Model{
		"openai":    openai.New(openai.Config{BaseURL: fake.OpenAIBaseURL(), APIKey: key}),
		"anthropic": anthropic.New(anthropic.Config{BaseURL: fake.URL, APIKey: key}),
	}
}

func TestProvidersAgainstFakeEndpoint(t *testing.T) {
	fake := llmtest.New(llmtest.Behavior{})
	defer fake.Close()
	for name, m := range providers(fake) {
		t.Run(name, func(t *testing.T) {
			label := "t/" + name + "/round-1/alice"
			resp, err := m.Complete(context.Background(), llm.Request{
				System: "sys", Messages: []llm.Message{{Role: "user", Content: "hi"}}, JSON: true, Label: label,
			})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(resp.Text, `"position"`) || resp.TokensIn == 0 || resp.TokensOut == 0 || !strings.HasPrefix(resp.Model, name+":") {
				t.Errorf("resp = %+v", resp)
			}
			if fake.Calls(label)[label] != 1 {
				t.Errorf("the step label did not reach the endpoint")
			}
		})
	}
}

// A call with a reader streams: the pieces, in order, are the whole
// answer the call returns, and the usage still comes.
func TestProvidersStream(t *testing.T) {
	fake := llmtest.New(llmtest.Behavior{})
	defer fake.Close()
	for name, m := range providers(fake) {
		t.Run(name, func(t *testing.T) {
			var pieces []string
			resp, err := m.Complete(context.Background(), llm.Request{
				System: "sys", Messages: []llm.Message{{Role: "user", Content: "hi"}}, Label: "s/" + name + "/round-1/bob",
				OnDelta: func(delta string, restart bool) { pieces = append(pieces, delta) },
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(pieces) < 3 || strings.Join(pieces, "") != resp.Text || resp.TokensIn == 0 || resp.TokensOut == 0 || !strings.HasPrefix(resp.Model, name+":") {
				t.Errorf("%d pieces %q, resp %+v", len(pieces), pieces, resp)
			}
		})
	}
}

func TestProvidersClassifyFaults(t *testing.T) {
	fake := llmtest.New(llmtest.Behavior{})
	defer fake.Close()
	cases := []struct {
		status int
		kind   fault.Kind
	}{{401, fault.Permanent}, {403, fault.Permanent}, {400, fault.Permanent}, {429, fault.Unavailable}, {500, fault.Unavailable}, {503, fault.Unavailable}}
	for name, m := range providers(fake) {
		for _, tc := range cases {
			prefix := fmt.Sprintf("%s/status-%d", name, tc.status)
			fake.Set(prefix, llmtest.Behavior{Status: tc.status})
			_, err := m.Complete(context.Background(), llm.Request{Messages: []llm.Message{{Role: "user", Content: "x"}}, Label: prefix})
			if fault.KindOf(err) != tc.kind {
				t.Errorf("%s %d: kind %v, want %v (%v)", name, tc.status, fault.KindOf(err), tc.kind, err)
			}
			if err != nil && (!strings.Contains(err.Error(), name) || strings.Contains(err.Error(), key)) {
				t.Errorf("%s %d: error %q must name the provider and never the key", name, tc.status, err)
			}
		}
	}
}

func TestCallTimeoutIsTransient(t *testing.T) {
	fake := llmtest.New(llmtest.Behavior{Latency: 300 * time.Millisecond})
	defer fake.Close()
	m := llm.Retrying(openai.New(openai.Config{BaseURL: fake.OpenAIBaseURL()}), llm.RetryPolicy{MaxAttempts: 2, Initial: time.Millisecond, Max: time.Millisecond, CallTimeout: 50 * time.Millisecond, TotalTimeout: time.Second})
	_, err := m.Complete(context.Background(), llm.Request{Messages: []llm.Message{{Role: "user", Content: "x"}}, Label: "slow"})
	if err == nil || fault.KindOf(err) != fault.Unavailable {
		t.Fatalf("err = %v (%v)", err, fault.KindOf(err))
	}
	if n := fake.Attempts("slow")["slow"]; n != 2 {
		t.Errorf("attempts = %d, want 2", n)
	}
}

func TestOfflineIsDeterministicAndLabelled(t *testing.T) {
	m := &offline.Provider{}
	req := llm.Request{System: "s", Messages: []llm.Message{{Role: "user", Content: "Topic: x"}}}
	a, _ := m.Complete(context.Background(), req)
	b, _ := m.Complete(context.Background(), req)
	if a.Text != b.Text || !a.Simulated || !strings.Contains(a.Text, offline.Label) {
		t.Errorf("offline answers: %q / %q", a.Text, b.Text)
	}
}

// BenchmarkStreaming is a call to the fake OpenAI endpoint answered whole,
// the same call streamed to a hub nobody reads (what every call does in
// the service), and to one a reader drains: side by side, for
// docs/benchmarks.md. The fake (in this process) flushes a frame a word,
// so most of the difference is its own.
func BenchmarkStreaming(b *testing.B) {
	fake := llmtest.New(llmtest.Behavior{})
	defer fake.Close()
	m := llm.Retrying(openai.New(openai.Config{BaseURL: fake.OpenAIBaseURL(), APIKey: key}), llm.RetryPolicy{MaxAttempts: 1})
	req := llm.Request{System: "sys", Messages: []llm.Message{{Role: "user", Content: "hi"}}, JSON: true, Label: "bench/round-1/alice"}
	read := live.NewHub()
	tokens, stop := read.Subscribe("bench")
	defer stop()
	go func() {
		for range tokens {
		}
	}()
	for _, c := range []struct {
		name string
		r    *llm.Router
	}{
		{"whole", llm.NewRouter(llm.Ref{Provider: "openai"}, m)},
		{"streamed, no reader", llm.NewRouter(llm.Ref{Provider: "openai"}, m).Streaming(live.NewHub())},
		{"streamed to a reader", llm.NewRouter(llm.Ref{Provider: "openai"}, m).Streaming(read)},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := c.r.Complete(context.Background(), llm.Ref{Provider: "openai"}, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

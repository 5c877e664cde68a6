// Package llmtest is a fake LLM endpoint for tests and benchmarks: a real
// local HTTP server that speaks the OpenAI chat-completions and Anthropic
// messages wire protocols, so the real provider clients run against it. It
// can add latency, inject faults (500, 429, 401) per call, and counts every
// call by its step label (the X-UltraMCP-Step header), which is how tests
// prove that no completed step ran twice.
package llmtest

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/ultramcp/durable/llm"
)

// Behavior is how the server answers calls whose label starts with a prefix.
type Behavior struct {
	Latency time.Duration
	// Hold, if set, keeps each call waiting until it is closed: a test
	// holds a workflow where it is, for as long as it needs, without
	// guessing how long that is.
	Hold <-chan struct{}
	// FaultRate is the share of calls answered with a transient fault,
	// alternating 500 and 429.
	FaultRate float64
	// Status, if set, answers every call with this status (e.g. 401).
	Status int
	// Reasoning pads each participant's reasoning to this many bytes, as a
	// verbose model would.
	Reasoning int
	// Text, if set, is the whole answer (a hostile model's, say).
	Text string
	// ChunkEvery paces a streamed answer (a request with "stream": true):
	// a piece of it this often, after Latency.
	ChunkEvery time.Duration
}

// Limits are a real provider's hard limits, enforced on every call (the
// default behavior's and every label's alike): above them a call is
// answered 429 with Retry-After: 1 at once.
type Limits struct {
	Concurrency int // calls at once
	RPM         int // calls admitted in any minute
}

// Enforce makes the server enforce l from now on.
func (s *Server) Enforce(l Limits) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limits = l
}

// Throttled is how many calls the limits refused with 429.
func (s *Server) Throttled() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.throttled
}

// overLimits says whether a call now would pass the limits, counting it
// in when it does not; s.mu is held.
func (s *Server) overLimits(now time.Time) bool {
	l := s.limits
	cut := 0
	for cut < len(s.admitted) && now.Sub(s.admitted[cut]) >= time.Minute {
		cut++
	}
	s.admitted = s.admitted[cut:]
	if (l.Concurrency > 0 && s.inFlight >= l.Concurrency) || (l.RPM > 0 && len(s.admitted) >= l.RPM) {
		s.throttled++
		return true
	}
	if l.RPM > 0 {
		s.admitted = append(s.admitted, now)
	}
	return false
}

// Server is the fake endpoint.
type Server struct {
	*httptest.Server

	mu        sync.Mutex
	def       Behavior
	behaviors map[string]Behavior
	calls     map[string]int // label → calls answered 200
	attempts  map[string]int // label → every call, faults included
	inFlight  int
	maxFlight int
	faultSeq  int
	limits    Limits
	admitted  []time.Time // the calls the last minute admitted (RPM)
	firstAt   time.Time   // the first call admitted
	lastAt    time.Time   // the last call answered
	fullAt    time.Time   // when the calls at once first reached the enforced concurrency
	doneFull  int         // calls answered by then
	throttled int
	answered  int

	// closing ends the calls still waiting out their latency, so that
	// Close does not wait for them.
	closing   chan struct{}
	closeOnce sync.Once
}

// New starts a server with a default behavior.
func New(def Behavior) *Server {
	s := &Server{def: def, behaviors: map[string]Behavior{}, calls: map[string]int{}, attempts: map[string]int{}, closing: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", s.handle("openai"))
	mux.HandleFunc("POST /v1/messages", s.handle("anthropic"))
	s.Server = httptest.NewServer(mux)
	return s
}

// Close ends the calls in flight (they answer 499) and stops the server.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closing) })
	s.Server.Close()
}

// OpenAIBaseURL is the base URL for the OpenAI client.
func (s *Server) OpenAIBaseURL() string { return s.URL + "/v1" }

// Set makes calls whose label starts with prefix behave as b.
func (s *Server) Set(prefix string, b Behavior) {
	s.mu.Lock()
	s.behaviors[prefix] = b
	s.mu.Unlock()
}

// Calls returns successful calls per label, for labels with prefix.
func (s *Server) Calls(prefix string) map[string]int { return s.count(s.calls, prefix) }

// Attempts returns every call per label, faults included, for labels with prefix.
func (s *Server) Attempts(prefix string) map[string]int { return s.count(s.attempts, prefix) }

func (s *Server) count(m map[string]int, prefix string) map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k, v := range m {
		if strings.HasPrefix(k, prefix) {
			out[k] = v
		}
	}
	return out
}

// MaxInFlight is the most calls the server held at once.
func (s *Server) MaxInFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxFlight
}

// InFlight is how many calls the server holds now.
func (s *Server) InFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inFlight
}

// Busy is from the first call admitted to the last answered: the time the
// server was kept at work.
func (s *Server) Busy() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastAt.Sub(s.firstAt)
}

// Full is from when the calls at once first reached the enforced
// concurrency to the last answer, and the calls answered in that time:
// the server's steady throughput, once its callers had filled it.
func (s *Server) Full() (time.Duration, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fullAt.IsZero() {
		return 0, 0
	}
	return s.lastAt.Sub(s.fullAt), s.answered - s.doneFull
}

func (s *Server) behavior(label string) Behavior {
	best, bestLen := s.def, -1
	for p, b := range s.behaviors {
		if strings.HasPrefix(label, p) && len(p) > bestLen {
			best, bestLen = b, len(p)
		}
	}
	return best
}

// admit applies the behavior: latency, then maybe a fault status.
func (s *Server) admit(r *http.Request) (label string, status int, b Behavior) {
	label = r.Header.Get(llm.StepHeader)
	s.mu.Lock()
	b = s.behavior(label)
	s.attempts[label]++
	if s.overLimits(time.Now()) {
		s.mu.Unlock()
		return label, http.StatusTooManyRequests, b
	}
	s.inFlight++
	s.maxFlight = max(s.maxFlight, s.inFlight)
	if s.firstAt.IsZero() {
		s.firstAt = time.Now()
	}
	if s.fullAt.IsZero() && s.limits.Concurrency > 0 && s.inFlight >= s.limits.Concurrency {
		s.fullAt, s.doneFull = time.Now(), s.answered
	}
	// Spread faults evenly: exactly FaultRate of the calls fail, so a test
	// does not depend on luck.
	s.faultSeq++
	n := float64(s.faultSeq)
	fault := b.FaultRate > 0 && int(n*b.FaultRate) > int((n-1)*b.FaultRate)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}()
	if b.Hold != nil {
		select {
		case <-b.Hold:
		case <-r.Context().Done():
			return label, 499, b
		case <-s.closing:
			return label, 499, b
		}
	}
	if b.Latency > 0 {
		select {
		case <-time.After(b.Latency):
		case <-r.Context().Done():
			return label, 499, b
		case <-s.closing:
			return label, 499, b
		}
	}
	switch {
	case b.Status != 0:
		return label, b.Status, b
	case fault && s.faultSeq%2 == 0:
		return label, http.StatusInternalServerError, b
	case fault:
		return label, http.StatusTooManyRequests, b
	}
	return label, http.StatusOK, b
}

func (s *Server) done(label string) {
	s.mu.Lock()
	s.calls[label]++
	s.answered++
	s.lastAt = time.Now()
	s.mu.Unlock()
}

type chatRequest struct {
	Model    string `json:"model"`
	Stream   bool   `json:"stream"`
	Messages []struct {
		Role    string `json:"role"`
		Content any    `json:"content"`
	} `json:"messages"`
	System any `json:"system"`
}

func (c chatRequest) text() string {
	var b strings.Builder
	for _, m := range c.Messages {
		if s, ok := m.Content.(string); ok {
			b.WriteString(s)
		} else {
			raw, _ := json.Marshal(m.Content)
			b.Write(raw)
		}
	}
	return b.String()
}

func writeError(w http.ResponseWriter, status int, shape string) {
	w.Header().Set("content-type", "application/json")
	if status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	w.WriteHeader(status)
	msg := map[int]string{401: "Incorrect API key provided", 429: "Rate limit reached", 500: "The server had an error"}[status]
	if shape == "anthropic" {
		fmt.Fprintf(w, `{"type":"error","error":{"type":"api_error","message":%q}}`, msg)
		return
	}
	fmt.Fprintf(w, `{"error":{"message":%q,"type":"api_error","code":null,"param":null}}`, msg)
}

// handle serves one wire protocol: shape is "openai" or "anthropic".
func (s *Server) handle(shape string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req chatRequest
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &req); err != nil {
			writeError(w, 400, shape)
			return
		}
		label, status, b := s.admit(r)
		if status != http.StatusOK {
			if status != 499 {
				writeError(w, status, shape)
			}
			return
		}
		content := answer(label, req.text(), b.Reasoning)
		if b.Text != "" {
			content = b.Text
		}
		tokensIn, tokensOut := len(body)/4, len(content)/4
		if req.Stream {
			if s.stream(w, r, shape, req.Model, content, tokensIn, tokensOut, b.ChunkEvery) {
				s.done(label)
			}
			return
		}
		var resp map[string]any
		if shape == "anthropic" {
			resp = map[string]any{
				"id": "msg_fake", "type": "message", "role": "assistant", "model": req.Model,
				"content":     []any{map[string]any{"type": "text", "text": content}},
				"stop_reason": "end_turn",
				"usage":       map[string]any{"input_tokens": tokensIn, "output_tokens": tokensOut},
			}
		} else {
			resp = map[string]any{
				"id": "chatcmpl-fake", "object": "chat.completion", "created": time.Now().Unix(), "model": req.Model,
				"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
					"message": map[string]any{"role": "assistant", "content": content}}},
				"usage": map[string]any{"prompt_tokens": tokensIn, "completion_tokens": tokensOut, "total_tokens": tokensIn + tokensOut},
			}
		}
		w.Header().Set("content-type", "application/json")
		json.NewEncoder(w).Encode(resp)
		s.done(label)
	}
}

// stream answers as the provider's streaming API does (shape "openai" or
// "anthropic"): server-sent events, a few words each, every pace, then the
// usage. It says whether the whole answer went out.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, shape, model, content string, tokensIn, tokensOut int, pace time.Duration) bool {
	w.Header().Set("content-type", "text/event-stream")
	flusher, _ := w.(http.Flusher)
	send := func(event string, v any) bool {
		b, _ := json.Marshal(v)
		if raw, ok := v.(string); ok {
			b = []byte(raw) // [DONE]
		}
		frame := fmt.Sprintf("data: %s\n\n", b)
		if event != "" {
			frame = "event: " + event + "\n" + frame
		}
		if _, err := fmt.Fprint(w, frame); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	head, piece, tail := openAIFrames(send, model, tokensIn, tokensOut)
	if shape == "anthropic" {
		head, piece, tail = anthropicFrames(send, model, tokensIn, tokensOut)
	}
	if !head() {
		return false
	}
	for i, text := range strings.SplitAfter(content, " ") {
		if i > 0 && pace > 0 {
			select {
			case <-time.After(pace):
			case <-r.Context().Done():
				return false
			case <-s.closing:
				return false
			}
		}
		if !piece(text) {
			return false
		}
	}
	return tail()
}

type sender func(event string, v any) bool

// openAIFrames are chat.completion.chunk events, then one with the usage
// and [DONE].
func openAIFrames(send sender, model string, in, out int) (head func() bool, piece func(string) bool, tail func() bool) {
	chunk := func(choices []any, usage any) map[string]any {
		return map[string]any{"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": time.Now().Unix(), "model": model, "choices": choices, "usage": usage}
	}
	head = func() bool { return true }
	piece = func(text string) bool {
		return send("", chunk([]any{map[string]any{"index": 0, "delta": map[string]any{"role": "assistant", "content": text}}}, nil))
	}
	tail = func() bool {
		return send("", chunk([]any{map[string]any{"index": 0, "delta": map[string]any{}, "finish_reason": "stop"}}, nil)) &&
			send("", chunk([]any{}, map[string]any{"prompt_tokens": in, "completion_tokens": out, "total_tokens": in + out})) &&
			send("", "[DONE]")
	}
	return head, piece, tail
}

// anthropicFrames are the Messages API's events: message_start, a text
// block's deltas, message_delta with the usage, message_stop.
func anthropicFrames(send sender, model string, in, out int) (head func() bool, piece func(string) bool, tail func() bool) {
	head = func() bool {
		return send("message_start", map[string]any{"type": "message_start", "message": map[string]any{"id": "msg_fake", "type": "message", "role": "assistant", "model": model,
			"content": []any{}, "usage": map[string]any{"input_tokens": in, "output_tokens": 0}}}) &&
			send("content_block_start", map[string]any{"type": "content_block_start", "index": 0, "content_block": map[string]any{"type": "text", "text": ""}})
	}
	piece = func(text string) bool {
		return send("content_block_delta", map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]any{"type": "text_delta", "text": text}})
	}
	tail = func() bool {
		return send("content_block_stop", map[string]any{"type": "content_block_stop", "index": 0}) &&
			send("message_delta", map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": "end_turn"}, "usage": map[string]any{"output_tokens": out}}) &&
			send("message_stop", map[string]any{"type": "message_stop"})
	}
	return head, piece, tail
}

// answer is the fake model's reply: a moderator synthesis when the prompt
// asks for one, else a participant position wrapped in a Markdown fence (as
// real models often do), chosen by the participant (the label's last part)
// so that a participant keeps its position from round to round.
func answer(label, prompt string, pad int) string {
	if strings.Contains(prompt, `recommendation`) {
		return `{"consensus":"ship it in stages","disagreements":["timeline"],"recommendation":"pilot first","agreement":0.8}`
	}
	h := fnv.New32a()
	h.Write([]byte(label[strings.LastIndexByte(label, '/')+1:]))
	positions := []string{"yes, in stages", "no, not now", "only after a pilot"}
	pos := positions[h.Sum32()%uint32(len(positions))]
	reasoning := "fake model"
	if pad > len(reasoning) {
		reasoning += strings.Repeat(" and more", (pad-len(reasoning))/9)
	}
	return fmt.Sprintf("Here is my answer:\n```json\n{\"position\": %q, \"reasoning\": %q, \"confidence\": 0.%d}\n```", pos, reasoning, 5+h.Sum32()%5)
}

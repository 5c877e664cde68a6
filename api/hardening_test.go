package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ultramcp/durable/config"
	"github.com/ultramcp/durable/internal/stacktest"
)

// Each test here is one finding of the security review of the API, MCP
// and engine ports, numbered as the review numbers them, and fails
// without its fix.

// #7: a client cannot get past the limit by varying its Authorization
// header, requests refused for a wrong token are limited too, and so is
// /health.
func TestRateLimitKeyedOnIdentity(t *testing.T) {
	t.Run("no token: per address, whatever the header", func(t *testing.T) {
		h := testServer(t, func(c *config.Config) { c.APIRate = 1 })
		codes := map[int]int{}
		for i := range 20 {
			codes[call{"GET", "/openapi.json", "", map[string]string{"Authorization": fmt.Sprintf("Bearer x%d", i)}}.do(h).Code]++
		}
		if codes[429] == 0 {
			t.Errorf("answers %v: varying the header got past the limit", codes)
		}
	})
	t.Run("wrong tokens are limited", func(t *testing.T) {
		h := testServer(t, func(c *config.Config) { c.APIRate, c.APIToken = 1, "right-token" })
		codes := map[int]int{}
		for i := range 20 {
			codes[call{"GET", "/workflows", "", map[string]string{"Authorization": fmt.Sprintf("Bearer guess%d", i)}}.do(h).Code]++
		}
		if codes[401] == 0 || codes[429] == 0 {
			t.Errorf("answers %v: want 401s, then 429", codes)
		}
	})
	t.Run("health is limited", func(t *testing.T) {
		h := testServer(t, func(c *config.Config) { c.APIRate, c.APIToken = 1, "right-token" })
		codes := map[int]int{}
		for i := range 20 {
			codes[call{"GET", "/openapi.json", "", map[string]string{"Authorization": fmt.Sprintf("Bearer v%d", i)}}.do(h).Code]++
		}
		if codes[429] == 0 {
			t.Errorf("answers %v", codes)
		}
	})
}

// #15: the scheme of Authorization is case-insensitive (RFC 7235 §2.1);
// the token is not.
func TestBearerSchemeAnyCase(t *testing.T) {
	h := testServer(t, func(c *config.Config) { c.APIToken = "Tok-1" })
	for _, tc := range []struct {
		header string
		code   int
	}{{"bearer Tok-1", 200}, {"BEARER Tok-1", 200}, {"Bearer tok-1", 401}, {"Basic Tok-1", 401}, {"Bearer  Tok-1", 401}} {
		if w := (call{"GET", "/openapi.json", "", map[string]string{"Authorization": tc.header}}).do(h); w.Code != tc.code {
			t.Errorf("%q: %d, want %d", tc.header, w.Code, tc.code)
		}
	}
}

// #10, #11, #12, #19: what cannot run is refused at submit, naming the
// field, and nothing is started.
func TestSubmitRefusesBadInput(t *testing.T) {
	h := testServer(t, nil)
	for _, tc := range []struct {
		name, body, key, field string
	}{
		{"NUL in a name", `{"topic":"t","participants":["a\u0000","b"]}`, "", "participants[0].name"},
		{"ESC in a name", `{"topic":"t","participants":["a","\u001b[2Jevil"]}`, "", "participants[1].name"},
		{"a bidi override in a name", `{"topic":"t","participants":["a","\u202egnp.exe"]}`, "", "participants[1].name"},
		{"NUL in the topic", `{"topic":"t\u0000","participants":["a","b"]}`, "", "topic"},
		{"unknown provider", `{"topic":"t","participants":[{"name":"a","model":"evil:x"},"b"]}`, "", "participants[0].model"},
		{"provider not configured", `{"topic":"t","participants":["a","b"],"moderator":"anthropic:claude"}`, "", "moderator"},
		{"a model too long", `{"topic":"t","participants":[{"name":"a","model":"openai:` + strings.Repeat("m", 300) + `"},"b"]}`, "", "participants[0].model"},
		{"id .", `{"topic":"t","participants":["a","b"]}`, ".", "Idempotency-Key"},
		{"id ..", `{"topic":"t","participants":["a","b"]}`, "..", "Idempotency-Key"},
		{"id .hidden", `{"topic":"t","participants":["a","b"]}`, ".hidden", "Idempotency-Key"},
		{"invalid UTF-8", "{\"topic\":\"\xff\xfe\",\"participants\":[\"a\",\"b\"]}", "", "body"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tc.key != "" {
				hdr["Idempotency-Key"] = tc.key
			}
			w := call{"POST", "/chain-of-debate", tc.body, hdr}.do(h)
			if w.Code != 400 || errorOf(t, w).Field != tc.field {
				t.Errorf("%d %s, want 400 naming %s", w.Code, w.Body, tc.field)
			}
		})
	}
}

// #13: a body that trickles in is cut off; an event stream that outlives
// the body deadline is not.
func TestSlowBodyIsCutOff(t *testing.T) {
	old := BodyTimeout
	BodyTimeout = 300 * time.Millisecond
	t.Cleanup(func() { BodyTimeout = old })
	cfg := config.Default()
	cfg.Home = t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg.APIAddr = addr
	h := testServer(t, func(c *config.Config) { c.APIAddr = addr })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = Serve(ctx, addr, h, nil) }()
	var conn net.Conn
	for range 100 {
		if conn, err = net.Dial("tcp", addr); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /chain-of-debate HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{", addr)
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		// A byte now and then, far slower than the body needs.
		for range 50 {
			time.Sleep(100 * time.Millisecond)
			if _, err := conn.Write([]byte(" ")); err != nil {
				return
			}
		}
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the slow body held the connection for %s", took)
	}
	conn.Close()
	<-done
}

// #18: /health gives Restate and the store a budget each: an admin API
// that hangs leaves the store's answer alone.
func TestHealthProbesApart(t *testing.T) {
	old := HealthTimeout
	HealthTimeout = 300 * time.Millisecond
	t.Cleanup(func() { HealthTimeout = old })
	var cfgSeen config.Config
	h := testServer(t, func(c *config.Config) { cfgSeen = *c })
	// An admin socket that accepts and never answers.
	sock := (&cfgSeen).AdminSocket()
	if err := os.MkdirAll(filepath.Dir(sock), 0o700); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	start := time.Now()
	w := call{"GET", "/health", "", nil}.do(h)
	var body struct{ Status, Restate, Store string }
	_ = json.Unmarshal(w.Body.Bytes(), &body)
	if body.Restate != "unreachable" || body.Store != "ok" {
		t.Errorf("health %s", w.Body)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("health took %s", took)
	}
}

// The Restate UI runs in a browser, which sends no bearer token: /login
// takes the token once and sets a cookie (not the token itself) that opens
// the console; without it the console is 401 like everything else.
func TestConsoleLogin(t *testing.T) {
	const token = "tok-console-9"
	h := testServer(t, func(c *config.Config) { c.APIToken = token })
	if w := (call{"GET", "/ui/", "", nil}).do(h); w.Code != 401 {
		t.Errorf("the console without a token: %d", w.Code)
	}
	if w := (call{"GET", "/runs/x?y=1", "", nil}).do(h); w.Code != 303 || w.Header().Get("Location") != "/login?next=%2Fruns%2Fx%3Fy%3D1" {
		t.Errorf("a dashboard page without a token: %d %v, want the login", w.Code, w.Header())
	}
	if w := (call{"GET", "/login", "", nil}).do(h); w.Code != 200 || !strings.Contains(w.Body.String(), `name="token"`) {
		t.Errorf("login page: %d", w.Code)
	}
	form := map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Sec-Fetch-Site": "same-origin"}
	w := call{"POST", "/login", "token=wrong&next=/ui/", form}.do(h)
	if w.Code != 303 || !strings.Contains(w.Header().Get("Location"), "failed") || len(w.Result().Cookies()) != 0 {
		t.Errorf("a wrong token: %d %v", w.Code, w.Header())
	}
	w = call{"POST", "/login", "token=" + token + "&next=//evil.example/", form}.do(h)
	cookies := w.Result().Cookies()
	if w.Code != 303 || w.Header().Get("Location") != "/" || len(cookies) != 1 {
		t.Fatalf("the right token: %d %v", w.Code, w.Header())
	}
	c := cookies[0]
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || strings.Contains(c.Value, token) {
		t.Errorf("cookie %+v", c)
	}
	// With the cookie the console is let through to the admin socket
	// (nothing listens here: 502, not 401).
	w = call{"GET", "/ui/", "", map[string]string{"Cookie": c.Name + "=" + c.Value}}.do(h)
	if w.Code != 502 {
		t.Errorf("the console with the cookie: %d %s", w.Code, w.Body)
	}
	if w := (call{"GET", "/ui/", "", map[string]string{"Cookie": c.Name + "=" + c.Value + "x"}}).do(h); w.Code != 401 {
		t.Errorf("a forged cookie: %d", w.Code)
	}
	// A cross-site form cannot log a browser in.
	if w := (call{"POST", "/login", "token=" + token, map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Sec-Fetch-Site": "cross-site"}}).do(h); w.Code != 403 {
		t.Errorf("a cross-site login: %d", w.Code)
	}
}

// #8: a client holds at most MaxMCPInFlight MCP requests at once (each
// wait_for_result is one, for up to ten minutes); another client is not
// held back by it.
func TestMCPRequestsInFlightCapped(t *testing.T) {
	old := MaxMCPInFlight
	MaxMCPInFlight = 2
	t.Cleanup(func() { MaxMCPInFlight = old })
	cfg := config.Default()
	cfg.Home = stacktest.Home(t)
	cfg.APIAddr = "127.0.0.1:18999"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	entered := make(chan struct{}, 10)
	blocking := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { entered <- struct{}{}; <-release })
	h := New(context.Background(), forStack(cfg), cfg, blocking, nil).Handler()
	send := func(addr string) chan int {
		code := make(chan int, 1)
		go func() {
			r := httptest.NewRequest("POST", "http://127.0.0.1:18999/mcp", strings.NewReader(`{}`))
			r.RemoteAddr = addr
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			code <- w.Code
		}()
		return code
	}
	a1, a2 := send("127.0.0.5:1"), send("127.0.0.5:2")
	<-entered
	<-entered
	if c := <-send("127.0.0.5:3"); c != 429 {
		t.Errorf("a third request of one client: %d, want 429", c)
	}
	other := send("127.0.0.6:1")
	<-entered // another client gets in
	close(release)
	for _, c := range []chan int{a1, a2, other} {
		if code := <-c; code != 200 {
			t.Errorf("a request let in answered %d", code)
		}
	}
}

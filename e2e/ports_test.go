package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ultramcp/durable/internal/llmtest"
	"github.com/ultramcp/durable/internal/stacktest"
	"github.com/ultramcp/durable/store"
	"github.com/ultramcp/durable/workflow"
)

// listeningPorts lists the TCP ports process pid listens on, from its
// sockets: the inodes of its file descriptors, looked up among the
// listening sockets of /proc/net/tcp and tcp6.
func listeningPorts(t *testing.T, pid int) []int {
	t.Helper()
	inodes := map[string]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join(fmt.Sprintf("/proc/%d/fd", pid), fd.Name()))
		if inode, ok := strings.CutPrefix(link, "socket:["); err == nil && ok {
			inodes[strings.TrimSuffix(inode, "]")] = true
		}
	}
	var ports []int
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			// local_address is f[1] (hex ip:port), st is f[3] (0A is
			// LISTEN), inode is f[9].
			if len(f) < 10 || f[3] != "0A" || !inodes[f[9]] {
				continue
			}
			_, hexPort, _ := strings.Cut(f[1], ":")
			port, _ := strconv.ParseInt(hexPort, 16, 32)
			ports = append(ports, int(port))
		}
	}
	return ports
}

// What a web page in the operator's browser (or a DNS-rebound one) can do
// to any TCP port the stack opens, with a token set: nothing. The test
// finds the ports from the processes' own sockets, so a port added later
// is covered without changing it.
func TestNoPortAnswersABrowser(t *testing.T) {
	t.Parallel()
	const token = "tok-browser-test-77"
	env := stacktest.Start(t, stacktest.Options{ServiceEnv: []string{"ULTRAMCP_API_TOKEN=" + token}})
	rs, err := env.Stack.Restate()
	if err != nil {
		t.Fatal(err)
	}
	rsPID, ok := rs.PID()
	if !ok {
		t.Fatal("no restate-server pid")
	}
	if ports := listeningPorts(t, rsPID); len(ports) != 0 {
		t.Errorf("restate-server listens on TCP ports %v: its ingress and admin API have no auth", ports)
	}
	svcPID, ok := env.Stack.Service().PID()
	if !ok {
		t.Fatal("no service pid")
	}
	ports := listeningPorts(t, svcPID)
	if len(ports) != 2 {
		t.Errorf("the service listens on %v, want its own port and the API's", ports)
	}
	const evil = "https://evil.example"
	startPaths := []string{"/chain-of-debate", "/chain-of-debate/web-1/run/send", "/chain-of-debate/web-1/run", "/restate/invoke/chain-of-debate/web-1/run"}
	adminPaths := []string{"/query", "/deployments", "/services", "/invocations/inv_x/kill", "/ui/"}
	for _, port := range ports {
		base := fmt.Sprintf("http://127.0.0.1:%d", port)
		t.Run(strconv.Itoa(port), func(t *testing.T) {
			for _, path := range append(startPaths, adminPaths...) {
				for _, origin := range []string{evil, "null"} {
					req, _ := http.NewRequest(http.MethodOptions, base+path, nil)
					req.Header.Set("Origin", origin)
					req.Header.Set("Access-Control-Request-Method", "POST")
					req.Header.Set("Access-Control-Request-Headers", "content-type")
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
					if got := resp.Header.Get("Access-Control-Allow-Origin"); got == origin || got == "*" {
						t.Errorf("OPTIONS %s from %s: allow-origin %q", path, origin, got)
					}
				}
			}
			body := `{"topic":"from a web page","participants":["a","b"],"rounds":1}`
			for _, path := range startPaths {
				req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Origin", evil)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode < 400 {
					t.Errorf("POST %s without the token: %d", path, resp.StatusCode)
				}
			}
			for _, path := range adminPaths {
				for _, withToken := range []bool{false, true} {
					req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(`{"query":"SELECT id FROM sys_invocation"}`))
					if strings.HasSuffix(path, "/") || path == "/services" {
						req.Method = http.MethodGet
					}
					req.Host = fmt.Sprintf("rebind.attacker.example:%d", port)
					req.Header.Set("Content-Type", "application/json")
					if withToken {
						req.Header.Set("Authorization", "Bearer "+token)
					}
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
					if resp.StatusCode < 400 {
						t.Errorf("%s %s with a foreign Host (token %v): %d", req.Method, path, withToken, resp.StatusCode)
					}
				}
			}
		})
	}
	// Nothing started: neither Restate nor the store knows web-1.
	rows, err := env.Client.Query(context.Background(), `SELECT id FROM sys_invocation WHERE target_service_key = 'web-1'`)
	if err != nil || len(rows) != 0 {
		t.Errorf("Restate knows web-1: %v %v", rows, err)
	}
	st, err := store.Open(context.Background(), "", env.Cfg.SQLitePath())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if ws, _ := st.List(context.Background(), store.Filter{Workflow: workflow.ChainOfDebate}); len(ws) != 0 {
		t.Errorf("the store recorded %d debates", len(ws))
	}
	// The same requests with the token, from the API's own origin, work:
	// the guards let the operator through.
	req, _ := http.NewRequest(http.MethodPost, "http://"+env.Cfg.APIAddr+"/query", strings.NewReader(`{"query":"SELECT 1 AS one"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("the Restate UI's query through the API with the token: %d", resp.StatusCode)
	}
}

// 200 submissions at once with ULTRAMCP_API_MAX_OPEN=5 leave at most 5
// open: the limit is counted and recorded in one transaction.
func TestMaxOpenHoldsUnderConcurrency(t *testing.T) {
	t.Parallel()
	fake := llmtest.New(llmtest.Behavior{Latency: 30 * time.Second})
	defer fake.Close()
	env := stacktest.Start(t, stacktest.Options{
		LLM:        "openai",
		ServiceEnv: []string{"OPENAI_BASE_URL=" + fake.OpenAIBaseURL(), "OPENAI_API_KEY=" + fakeKey, "ULTRAMCP_API_MAX_OPEN=5", "ULTRAMCP_API_RATE=100000"},
	})
	const n = 200
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, "http://"+env.Cfg.APIAddr+"/chain-of-debate", strings.NewReader(`{"topic":"crowd","participants":["a","b"],"rounds":1}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Idempotency-Key", fmt.Sprintf("crowd-%d", i))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			codes[i] = resp.StatusCode
		})
	}
	wg.Wait()
	count := map[int]int{}
	for _, c := range codes {
		count[c]++
	}
	st, err := store.Open(context.Background(), "", env.Cfg.SQLitePath())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	open, err := st.CountOpen(context.Background())
	t.Logf("answers %v, %d open", count, open)
	if err != nil || open > 5 || count[202] > 5 || count[202]+count[429] != n {
		t.Errorf("answers %v, %d open (%v): want at most 5 started, the rest 429", count, open, err)
	}
}

// A workflow started on the ingress socket, past the application service,
// meets the same id rules: it fails at once, and the store never sees it.
func TestIngressSocketHeldToTheIDRules(t *testing.T) {
	t.Parallel()
	env := stacktest.Start(t, stacktest.Options{})
	started := 0
	for _, key := range []string{"a\x00b", "../../x", ".hidden"} {
		// Restate itself may refuse such a key: that is fine too.
		if _, err := env.Client.Start(context.Background(), workflow.ChainOfDebate, key, []byte(`{"topic":"t","participants":["a","b"],"rounds":1}`)); err == nil {
			started++
		}
	}
	if started == 0 {
		t.Fatal("Restate refused every key: nothing tested")
	}
	st, err := store.Open(context.Background(), "", env.Cfg.SQLitePath())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	waitFor(t, 30*time.Second, func() bool {
		rows, err := env.Client.Query(context.Background(), `SELECT target_service_key, status, completion_failure FROM sys_invocation WHERE target_handler_name = 'run'`)
		if err != nil {
			return false
		}
		for _, r := range rows {
			if r["status"] != "completed" {
				return false
			}
			if f, _ := r["completion_failure"].(string); !strings.Contains(f, "id:") {
				t.Errorf("%v ran: %v", r["target_service_key"], r)
			}
		}
		return true
	})
	if ws, err := st.List(context.Background(), store.Filter{}); err != nil || len(ws) != 0 {
		t.Errorf("the store recorded %d workflows (%v)", len(ws), err)
	}
}

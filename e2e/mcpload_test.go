package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ultramcp/durable/config"
	"github.com/ultramcp/durable/internal/llmtest"
	"github.com/ultramcp/durable/internal/stacktest"
	"github.com/ultramcp/durable/workflow"
)

// rssKB is a process's resident memory.
func rssKB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// cpuTicks is a process's user and system time, in clock ticks.
func cpuTicks(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name (which may hold spaces) in parens.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.Atoi(f[11])
	s, _ := strconv.Atoi(f[12])
	return u + s
}

// mcpPost sends one JSON-RPC message to /mcp and reads the answer whole.
func mcpPost(ctx context.Context, url, body string) (int, string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

const initializeMsg = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"load","version":"1"}}}`

// MCP over HTTP keeps nothing between requests: thousands of initialize
// calls leave the service's memory where it was, and 1,000 clients
// waiting on one workflow share its one watch, as SSE readers do.
func TestMCPOverHTTPIsBounded(t *testing.T) {
	t.Parallel()
	fake := llmtest.New(llmtest.Behavior{})
	defer fake.Close()
	env := stacktest.Start(t, stacktest.Options{
		LLM:        "openai",
		ServiceEnv: []string{"OPENAI_BASE_URL=" + fake.OpenAIBaseURL(), "OPENAI_API_KEY=" + fakeKey, "ULTRAMCP_API_RATE=100000"},
	})
	pid, ok := env.Stack.Service().PID()
	if !ok {
		t.Fatal("no service pid")
	}
	rs, _ := env.Stack.Restate()
	rsPID, _ := rs.PID()
	mcpURL := config.URL(env.Cfg.APIAddr) + "/mcp"
	ctx := context.Background()

	t.Run("initialize keeps no session", func(t *testing.T) {
		for range 50 { // warm up: the first requests build what stays
			if code, body, err := mcpPost(ctx, mcpURL, initializeMsg); err != nil || code != 200 {
				t.Fatalf("initialize: %d %s %v", code, body, err)
			}
		}
		before := rssKB(t, pid)
		const n, conns = 5000, 8
		var wg sync.WaitGroup
		var failed sync.Map
		for w := range conns {
			wg.Go(func() {
				for i := w; i < n; i += conns {
					if code, body, err := mcpPost(ctx, mcpURL, initializeMsg); err != nil || code != 200 || strings.Contains(body, "Mcp-Session-Id") {
						failed.Store(i, fmt.Sprintf("%d %v", code, err))
					}
				}
			})
		}
		wg.Wait()
		failed.Range(func(k, v any) bool { t.Errorf("initialize %v: %v", k, v); return false })
		peak := rssKB(t, pid)
		// Idle: what the burst allocated is garbage; the runtime gives it
		// back to the system within a few minutes at most.
		deadline := time.Now().Add(3 * time.Minute)
		after := peak
		for time.Now().Before(deadline) && after-before > 40<<10 {
			time.Sleep(time.Second)
			after = rssKB(t, pid)
		}
		t.Logf("service RSS: %d KiB before %d initialize calls, %d KiB at the end of them, %d KiB idle after", before, n, peak, after)
		if after-before > 40<<10 {
			t.Errorf("memory grew by %d KiB and stayed", after-before)
		}
	})

	t.Run("1,000 waits cost what one event stream costs", func(t *testing.T) {
		id := "mcp-waited"
		postDebate(t, env, id, `{"topic":"Waited on","participants":["a","b"],"rounds":1,"consensusThreshold":0.99,"escalate":true}`)
		waitFor(t, time.Minute, func() bool {
			p, _ := env.Client.Progress(ctx, workflow.ChainOfDebate, id)
			return strings.Contains(string(p), `"phase":"awaiting-decision"`)
		})
		const window = 10 * time.Second
		measure := func(readers func(ctx context.Context)) (svc, restate int) {
			rctx, cancel := context.WithCancel(ctx)
			defer cancel()
			readers(rctx)
			time.Sleep(2 * time.Second) // all connected
			s0, r0 := cpuTicks(t, pid), cpuTicks(t, rsPID)
			time.Sleep(window)
			return cpuTicks(t, pid) - s0, cpuTicks(t, rsPID) - r0
		}
		sseSvc, sseRestate := measure(func(rctx context.Context) {
			req, _ := http.NewRequestWithContext(rctx, http.MethodGet, config.URL(env.Cfg.APIAddr)+"/workflows/"+id+"/events", nil)
			go func() {
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, bufio.NewReader(resp.Body))
					resp.Body.Close()
				}
			}()
		})
		const waiters = 1000
		var answered sync.WaitGroup
		codes := make([]int, waiters)
		waitSvc, waitRestate := measure(func(rctx context.Context) {
			msg := fmt.Sprintf(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"wait_for_result","arguments":{"id":%q,"timeoutSeconds":%d}}}`, id, int((window + 20*time.Second).Seconds()))
			for i := range waiters {
				answered.Go(func() { codes[i], _, _ = mcpPost(rctx, mcpURL, msg) })
			}
		})
		answered.Wait()
		t.Logf("CPU over %s (clock ticks, 100 a second): one SSE reader: service %d, restate-server %d; %d MCP waits: service %d, restate-server %d",
			window, sseSvc, sseRestate, waiters, waitSvc, waitRestate)
		for i, c := range codes {
			if c != 200 && c != 0 { // 0: cancelled by the test once measured
				t.Errorf("wait %d answered %d", i, c)
				break
			}
		}
		// One watch either way: Restate does the same work; the service
		// holds 1,000 idle requests.
		if waitRestate > 3*sseRestate+20 || waitSvc > 3*sseSvc+100 {
			t.Errorf("1,000 waits cost more than one reader: restate %d vs %d, service %d vs %d ticks", waitRestate, sseRestate, waitSvc, sseSvc)
		}
	})
}

package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ultramcp/durable/internal/stacktest"
	"github.com/ultramcp/durable/store"
)

// chromium is Debian's headless browser; CI installs it (.ci/run). A
// machine without it skips the browser tests, saying so, except in CI.
func chromium(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is not installed (apt-get install chromium): CI must run the browser tests")
		}
		t.Skip("chromium is not installed (apt-get install chromium); skipping the browser test")
	}
	return bin
}

// A page of another origin, open in a real browser on the operator's
// machine, tries every TCP port the stack opens: it cannot start a
// workflow, read an answer, or reach the admin API. The page reports what
// each fetch got into its DOM, which the browser prints.
func TestAWebPageCannotDriveTheStack(t *testing.T) {
	t.Parallel()
	browser := chromium(t)
	env := stacktest.Start(t, stacktest.Options{ServiceEnv: []string{"ULTRAMCP_API_TOKEN=tok-page-test"}})
	svcPID, _ := env.Stack.Service().PID()
	ports := listeningPorts(t, svcPID)
	var targets []string
	for _, p := range ports {
		base := fmt.Sprintf("http://127.0.0.1:%d", p)
		for _, path := range []string{"/chain-of-debate/page-1/run/send", "/chain-of-debate", "/query", "/deployments"} {
			targets = append(targets, base+path)
		}
	}
	// A control: a port that answers CORS as restate-server's ingress does
	// (any origin, with credentials). The page must read it, or its
	// BLOCKED answers prove nothing.
	control, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	permissive := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", r.Header.Get("Origin"))
		w.Header().Set("Access-Control-Allow-Credentials", "true")
		w.Header().Set("Access-Control-Allow-Methods", "POST")
		w.Header().Set("Access-Control-Allow-Headers", "content-type")
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusAccepted)
			fmt.Fprint(w, `{"invocationId":"inv_control","status":"Accepted"}`)
		}
	})}
	go permissive.Serve(control)
	defer permissive.Close()
	controlURL := "http://" + control.Addr().String() + "/chain-of-debate/page-1/run/send"
	targets = append(targets, controlURL)
	// The evil page, served from an origin of its own.
	page := `<!doctype html><html><body><pre id="out"></pre><script>
const targets = ` + jsList(targets) + `;
const out = document.getElementById("out");
(async () => {
  for (const url of targets) {
    let got;
    try {
      const r = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json"},
        body: JSON.stringify({topic: "from a web page", participants: ["a", "b"], rounds: 1, query: "SELECT id FROM sys_invocation"})});
      got = "READ " + r.status + " " + (await r.text()).slice(0, 80);
    } catch (e) {
      got = "BLOCKED";
    }
    out.textContent += url + " " + got + "\n";
  }
  out.textContent += "DONE\n";
})();
</script></body></html>`
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, page)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir="+t.TempDir(),
		"--virtual-time-budget=20000", "--dump-dom", "http://"+ln.Addr().String()+"/").Output()
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	dom := string(out)
	if !strings.Contains(dom, "DONE") {
		t.Fatalf("the page did not finish:\n%s", dom)
	}
	for _, line := range strings.Split(dom, "\n") {
		read := strings.Contains(line, " READ ")
		switch {
		case strings.HasPrefix(line, controlURL) && !strings.Contains(line, "READ 202"):
			t.Errorf("the page could not read the permissive control port, so the test proves nothing: %s", line)
		case read && !strings.HasPrefix(line, controlURL):
			t.Errorf("the page read an answer: %s", line)
		}
	}
	t.Logf("what the page got:\n%s", dom)
	st, err := store.Open(context.Background(), "", env.Cfg.SQLitePath())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if ws, _ := st.List(context.Background(), store.Filter{}); len(ws) != 0 {
		t.Errorf("the page got %d workflows recorded", len(ws))
	}
	if rows, _ := env.Client.Query(context.Background(), `SELECT id FROM sys_invocation WHERE target_handler_name = 'run'`); len(rows) != 0 {
		t.Errorf("the page started %d workflows", len(rows))
	}
}

func jsList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, ",") + "]"
}

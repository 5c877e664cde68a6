package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ultramcp/durable/analysis"
	"github.com/ultramcp/durable/client"
	"github.com/ultramcp/durable/internal/llmtest"
	"github.com/ultramcp/durable/internal/repotest"
	"github.com/ultramcp/durable/internal/stacktest"
	"github.com/ultramcp/durable/workflow"
)

// cliFor runs the ultramcp binary against env's stack.
func cliFor(t *testing.T, env *stacktest.Env) cli {
	c := env.Cfg
	return cli{t: t, bin: stacktest.Binary(t), env: []string{
		"ULTRAMCP_HOME=" + c.Home, "ULTRAMCP_SERVICE_ADDR=" + c.ServiceAddr, "ULTRAMCP_API_ADDR=" + c.APIAddr,
		"ULTRAMCP_RESTATE_SERVER=" + c.RestateServerBin, "ULTRAMCP_REPO_HOSTS=" + strings.Join(c.RepoHosts, ","),
		fmt.Sprintf("ULTRAMCP_MAX_REPO_MB=%d", c.MaxRepoMB),
	}}
}

// controlChars lists the control characters in s: C0 but newline and tab,
// DEL, C1.
func controlChars(s string) []rune {
	var bad []rune
	for _, r := range s {
		if (r < 0x20 && r != '\n' && r != '\t') || r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == utf8.RuneError {
			bad = append(bad, r)
		}
	}
	return bad
}

// An analysis is started by whoever chooses the repository. Hostile ones,
// served over git:// as any git server would: links to the host's files,
// to /dev/zero and a FIFO; names that are terminal escapes and HTML; packs
// that expand past the limit; a model that answers with escapes; an
// operator whose own git configuration would rewrite URLs and run a
// credential helper. None of it may read the host, crash the service,
// leak, or reach a terminal.
func TestHostileRepositories(t *testing.T) {
	t.Parallel()
	const marker = "HOST-MARKER-c0ffee5e1f"
	hostDir := t.TempDir()
	hostFile := filepath.Join(hostDir, "secret.txt")
	if err := os.WriteFile(hostFile, []byte(marker+"\nline two "+marker+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(hostDir, "pipe")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	addr := repotest.Daemon(t, base)
	url := func(name string) string { return "git://" + addr + "/" + name }

	// The operator's own git configuration: it must not apply.
	operatorHome := t.TempDir()
	helperRan := filepath.Join(hostDir, "HELPER-RAN")
	os.WriteFile(filepath.Join(operatorHome, ".gitconfig"), []byte(`[url "`+url("evil")+`"]
	insteadOf = `+url("good")+`
[credential]
	helper = "!touch `+helperRan+`"
`), 0o644)

	const hostileText = "\x1b]0;pwned\x07\x1b[2J<script>alert(1)</script>\u009b31m done"
	fake := llmtest.New(llmtest.Behavior{Text: hostileText})
	defer fake.Close()
	env := stacktest.Start(t, stacktest.Options{LLM: "openai", MaxRepoMB: 8, RepoHosts: []string{"127.0.0.1"},
		ServiceEnv: []string{"OPENAI_BASE_URL=" + fake.OpenAIBaseURL(), "OPENAI_API_KEY=" + fakeKey, "HOME=" + operatorHome}})
	keyPEM, err := os.ReadFile(env.Cfg.Path("keys", "private.pem"))
	if err != nil {
		t.Fatal(err)
	}
	keyBody := strings.Split(strings.TrimSpace(string(keyPEM)), "\n")[1]

	// links: a repository of symbolic links out of the checkout.
	links := filepath.Join(base, "links")
	repotest.Init(t, links)
	for path, target := range map[string]string{
		"go.mod": hostFile, "package.json": env.Cfg.Path("keys", "private.pem"), "main.go": hostFile,
		"config/app.env": "../../../../../../../../" + strings.TrimPrefix(hostFile, "/"),
		"cmd/key.go":     env.Cfg.Path("keys", "private.pem"), "zero.txt": "/dev/zero", "zero.go": "/dev/zero", "pipe.go": fifo,
	} {
		repotest.Symlink(t, links, path, target)
	}
	repotest.Commit(t, links, "links", map[string]string{"lib/lib.go": "package lib\n\n// F is real code.\nfunc F() int { return 1 }\n"})

	// names: file and branch names that are escapes and markup.
	names := filepath.Join(base, "names")
	repotest.Init(t, names)
	repotest.Git(t, names, "checkout", "-q", "-b", "x<b>bold</b>")
	evilName := "\x1b]0;pwned\x07\x1b[31m<img src=x onerror=alert(1)>|*x*.env"
	repotest.Commit(t, names, "names", map[string]string{
		evilName:                 "aws_access_key_id = " + repotest.TreeAWSKey + "\n",
		"src/\x1b[2Jclear<i>.go": "package src\n\n// G is code.\nfunc G() int { return 2 }\n",
	})

	// good and evil: the operator's insteadOf would swap them.
	for _, name := range []string{"good", "evil"} {
		dir := filepath.Join(base, name)
		repotest.Init(t, dir)
		repotest.Commit(t, dir, name, map[string]string{name + ".txt": name + "\n"})
	}

	// bomb: 30 MB of zeros in a pack of some kilobytes; history: a 40 MB
	// file a later commit deleted.
	bomb := filepath.Join(base, "bomb")
	repotest.Init(t, bomb)
	repotest.Commit(t, bomb, "bomb", map[string]string{"zeros.txt": strings.Repeat("0", 30<<20)})
	history := filepath.Join(base, "history")
	repotest.Init(t, history)
	repotest.Commit(t, history, "big", map[string]string{"big.log": strings.Repeat("log line\n", 40<<20/9)})
	repotest.Commit(t, history, "gone", map[string]string{"big.log": "", "README": "small\n"})

	var shown []string // everything a requester got back
	for _, tc := range []struct{ svc, id, repo string }{
		{workflow.CodeAnalysis, "links-ca", url("links")},
		{workflow.SecurityScan, "links-ss", url("links")},
		{workflow.CodeAnalysis, "names-ca", url("names")},
		{workflow.SecurityScan, "names-ss", url("names")},
	} {
		in := map[string]string{"repository": tc.repo}
		if tc.svc == workflow.SecurityScan {
			in = map[string]string{"target": tc.repo}
		}
		rep, err := runAnalysis(t, env, tc.svc, tc.id, in, 3*time.Minute)
		if err != nil {
			t.Fatalf("%s: %v", tc.id, err)
		}
		raw, _ := json.Marshal(rep)
		shown = append(shown, string(raw))
		for _, s := range rep.Scanners {
			if s.Status == analysis.ScannerFailed && s.Name != "gosec" && s.Name != "govulncheck" {
				t.Errorf("%s: scanner %s failed: %s", tc.id, s.Name, s.Error)
			}
		}
		if strings.HasPrefix(tc.id, "links") {
			if s := scanner(rep, "gosec"); s.Status != analysis.ScannerFailed || !strings.Contains(s.Error, "go.mod could not be parsed") {
				t.Errorf("%s: gosec %+v, want a failure saying go.mod could not be parsed", tc.id, s)
			}
		}
		out := cliFor(t, env).must("result", tc.id)
		shown = append(shown, out)
		if bad := controlChars(out); len(bad) > 0 {
			t.Errorf("ultramcp result %s prints control characters %q", tc.id, bad)
		}
		if bad := controlChars(string(raw)); len(bad) > 0 {
			t.Errorf("the %s result holds control characters %q", tc.id, bad)
		}
		if strings.Contains(out, "<script") || strings.Contains(out, "<img") || strings.Contains(out, "<b>") || strings.Contains(out, "<i>") {
			t.Errorf("the Markdown of %s holds raw HTML:\n%s", tc.id, out)
		}
	}
	// The names repository's secret is found, under its cleaned name.
	if !strings.Contains(shown[4], "aws-access-token") || !strings.Contains(shown[5], `&lt;img src=x onerror=alert(1)&gt;\|\*x\*.env`) {
		t.Errorf("names: the secret or its escaped file name is missing:\n%s", shown[5])
	}
	if !strings.Contains(shown[5], "x&lt;b&gt;bold&lt;/b&gt;") {
		t.Errorf("names: branch not shown escaped:\n%.600s", shown[5])
	}

	t.Run("the operator's git configuration is not used", func(t *testing.T) {
		rep, err := runAnalysis(t, env, workflow.SecurityScan, "good", map[string]string{"target": url("good")}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if want := repotest.Git(t, filepath.Join(base, "good"), "rev-parse", "HEAD"); rep.Commit != want {
			t.Errorf("analysed %s, want good's %s: the operator's insteadOf applied", rep.Commit, want)
		}
		if _, err := os.Stat(helperRan); err == nil {
			t.Error("the operator's credential helper ran")
		}
	})

	t.Run("packs that expand past the limit are refused before checkout", func(t *testing.T) {
		for name, want := range map[string]string{"bomb": "the files of commit", "history": "its history holds"} {
			_, err := runAnalysis(t, env, workflow.SecurityScan, name, map[string]string{"target": url(name)}, time.Minute)
			if err == nil || !strings.Contains(err.Error(), "repository too large") || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), " MB") {
				t.Errorf("%s: %v, want a size refusal with %q", name, err, want)
			}
			sha := repotest.Git(t, filepath.Join(base, name), "rev-parse", "HEAD")
			if left, _ := filepath.Glob(env.Cfg.Path("checkouts", "*"+sha+"*", "tree", "*")); len(left) > 0 {
				t.Errorf("%s: files were written: %v", name, left)
			}
		}
	})

	t.Run("credentials and internal hosts are refused", func(t *testing.T) {
		const cliToken, apiToken = "CLITOKENab12cd34", "APITOKENef56gh78"
		out, err := cliFor(t, env).run("run", "code-analysis", "--repository", "https://u:"+cliToken+"@example.com/r.git")
		if err == nil || !strings.Contains(out, "repository:") || strings.Contains(out, cliToken) {
			t.Errorf("CLI with a token URL: %v\n%s", err, out)
		}
		shown = append(shown, out)
		for _, target := range []string{"https://u:" + apiToken + "@example.com/r.git", "https://127.0.0.2:9/r.git", "https://2130706433/r.git", "https://169.254.169.254/latest", "git://localhost:" + strings.Split(addr, ":")[1] + "/links"} {
			_, err := runAnalysis(t, env, workflow.CodeAnalysis, "refused-"+fmt.Sprint(len(shown)), map[string]string{"repository": target}, 30*time.Second)
			shown = append(shown, fmt.Sprint(err))
			var rerr *client.Error
			if !errors.As(err, &rerr) || rerr.Code != 400 || !strings.Contains(rerr.Message, "repository:") || strings.Contains(rerr.Message, apiToken) {
				t.Errorf("%s: %v, want 400 naming repository", strings.ReplaceAll(target, apiToken, "TOKEN"), err)
			}
		}
		// The CLI refused before anything started: its token is nowhere. The
		// API's request reached Restate, which keeps its input as sent; the
		// store and the logs still do not have it.
		assertNotLeaked(t, env, cliToken)
		st := openStoreDB(t, env, "")
		var n int
		if err := st.QueryRow(`SELECT count(*) FROM workflow_metadata WHERE input LIKE '%` + apiToken + `%' OR error LIKE '%` + apiToken + `%'`).Scan(&n); err != nil || n != 0 {
			t.Errorf("the API token is in %d store rows (%v)", n, err)
		}
	})

	// Nothing of the host's files reached anyone.
	all := strings.Join(shown, "\n")
	for what, s := range map[string]string{"the host file's marker": marker, "the identity private key": keyBody} {
		if strings.Contains(all, s) {
			t.Errorf("%s appears in what the requester got", what)
		}
	}
	assertNotLeaked(t, env, marker, keyBody)

	// The service read neither /dev/zero nor the FIFO: it is alive and small.
	pid, ok := env.Stack.Service().PID()
	if !ok {
		t.Fatal("the service died")
	}
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(line, "VmHWM:"), "kB")), &kb)
			t.Logf("service peak memory: %d MB", kb>>10)
			if kb > 1<<20 {
				t.Errorf("service peak memory %d MB", kb>>10)
			}
		}
	}
}

// A step that kills the service on every attempt (as an out-of-memory kill
// would) must not crash-loop forever: after the limit it fails with the
// reason, the workflow ends failed in Restate and in the store, and the
// service stays up for the next one.
func TestCrashLoopingStepEndsFailed(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	addr := repotest.Daemon(t, base)
	repotest.Init(t, filepath.Join(base, "app"))
	repotest.Commit(t, filepath.Join(base, "app"), "app", map[string]string{"main.go": "package main\n\nfunc main() {}\n"})
	env := stacktest.Start(t, stacktest.Options{RepoHosts: []string{"127.0.0.1"},
		ServiceEnv: []string{"ULTRAMCP_CHAOS_CRASH_AT_STEP=checkout"}})
	body, _ := json.Marshal(map[string]string{"target": "git://" + addr + "/app"})
	if _, err := env.Client.Start(context.Background(), workflow.SecurityScan, "crashy", body); err != nil {
		t.Fatal(err)
	}
	// Be the supervisor that restarts a dead service, a bounded number of
	// times.
	restarts := 0
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		out, err := env.Client.Output(ctx, workflow.SecurityScan, "crashy")
		cancel()
		if err == nil {
			t.Fatalf("the crashing scan completed: %.200s", out)
		}
		var rerr *client.Error
		if errors.As(err, &rerr) && rerr.Code != 470 {
			if !strings.Contains(rerr.Message, "step checkout was interrupted 3 times") {
				t.Fatalf("failure %q, want the interrupted step named", rerr.Message)
			}
			break
		}
		if _, alive := env.Stack.Service().PID(); !alive {
			if restarts++; restarts > 6 {
				t.Fatalf("still crash-looping after %d restarts", restarts)
			}
			// The service may die again before up sees it healthy: Restate
			// hands it the crashing invocation as soon as it listens.
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			if err := env.Stack.Up(ctx); err != nil && !strings.Contains(err.Error(), "exited during start") {
				t.Fatalf("up: %v", err)
			}
			cancel()
		}
		if time.Now().After(deadline) {
			t.Fatalf("no end after %d restarts: %v", restarts, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if restarts != 3 {
		t.Errorf("the service was restarted %d times, want 3 (one per interrupted attempt)", restarts)
	}
	st := openStoreDB(t, env, "")
	var status, reason string
	if err := st.QueryRow(`SELECT status, error FROM workflow_metadata WHERE id = 'crashy'`).Scan(&status, &reason); err != nil {
		t.Fatal(err)
	}
	if status != workflow.StatusFailed || !strings.Contains(reason, "interrupted") {
		t.Errorf("store: %s %q, want failed with the reason", status, reason)
	}
	if _, alive := env.Stack.Service().PID(); !alive {
		t.Error("the service is down after the step failed for good")
	}
}

// Starting never destroys: with Restate down, `run` of an id that already
// completed leaves its stored result alone, and a new id is recorded as
// not started.
func TestStartWithRestateDownKeepsResults(t *testing.T) {
	t.Parallel()
	env := stacktest.Start(t, stacktest.Options{})
	c := cliFor(t, env)
	c.must("run", "chain-of-debate", "--id", "kept", "--topic", "t", "--rounds", "1", "--delay", "0s", "--follow")
	st := openStoreDB(t, env, "")
	var before string
	if err := st.QueryRow(`SELECT output FROM workflow_metadata WHERE id = 'kept' AND status = 'completed'`).Scan(&before); err != nil || before == "" {
		t.Fatalf("the first run is not stored: %v", err)
	}
	env.Kill(t, "restate-server")
	for _, id := range []string{"kept", "new-one"} {
		if out, err := c.run("run", "chain-of-debate", "--id", id, "--topic", "t", "--rounds", "1"); err == nil {
			t.Fatalf("run %s with Restate down succeeded:\n%s", id, out)
		}
	}
	var status, after string
	if err := st.QueryRow(`SELECT status, output FROM workflow_metadata WHERE id = 'kept'`).Scan(&status, &after); err != nil || status != workflow.StatusCompleted || after != before {
		t.Errorf("the completed workflow became %s (%v); output kept: %v", status, err, after == before)
	}
	if err := st.QueryRow(`SELECT status FROM workflow_metadata WHERE id = 'new-one'`).Scan(&status); err != nil || status != workflow.StatusNotStarted {
		t.Errorf("new-one: %s %v, want not-started", status, err)
	}
}

// stop lets the running steps finish: calls in flight when it is asked are
// answered, journaled, and not made again after up.
func TestStopLetsRunningCallsFinish(t *testing.T) {
	t.Parallel()
	fake := llmtest.New(llmtest.Behavior{Latency: 800 * time.Millisecond})
	defer fake.Close()
	env := fakeStack(t, fake)
	id := "graceful"
	startDebate(t, env, id, `{"topic":"t","participants":[{"name":"x"},{"name":"y"},{"name":"c"}],"rounds":2,"delayBetweenRounds":"0s"}`)
	waitFor(t, 30*time.Second, func() bool { return len(fake.Attempts(id+"/round-1/")) == 3 })
	if len(fake.Calls(id+"/round-1/")) != 0 {
		t.Fatal("the calls finished before stop: the test proves nothing")
	}
	if err := env.Stack.Stop(); err != nil {
		t.Fatal(err)
	}
	if got := fake.Calls(id + "/round-1/"); len(got) != 3 {
		t.Fatalf("stop cut the running calls: answered %v", got)
	}
	env.Up(t)
	if _, err := attach(t, env, id, time.Minute); err != nil {
		t.Fatal(err)
	}
	for label, n := range fake.Attempts(id + "/") {
		if n != 1 {
			t.Errorf("%s was called %d times: a call in flight at stop was paid again", label, n)
		}
	}
}

// processesOf lists the pids of restate-server and `ultramcp serve`
// processes that belong to the state dir home.
func processesOf(t *testing.T, home string) (restate, service []int) {
	t.Helper()
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		var pid int
		fmt.Sscan(filepath.Base(d), &pid)
		cmdline, _ := os.ReadFile(d + "/cmdline")
		args := strings.Split(string(cmdline), "\x00")
		switch {
		case strings.Contains(string(cmdline), home+"/restate") && strings.HasSuffix(args[0], "restate-server"):
			restate = append(restate, pid)
		case len(args) > 1 && args[1] == "serve":
			if environ, _ := os.ReadFile(d + "/environ"); strings.Contains(string(environ), "ULTRAMCP_HOME="+home+"\x00") {
				service = append(service, pid)
			}
		}
	}
	return restate, service
}

// Supervision holds wherever it is run from: two ups at once leave one
// stack, and stop from another directory, where no restate-server binary
// can be found, stops all of it.
func TestSupervisionFromAnywhere(t *testing.T) {
	t.Parallel()
	env := stacktest.Start(t, stacktest.Options{RestateOnly: true})
	if err := env.Stack.Stop(); err != nil { // a clean state dir with keys, nothing running
		t.Fatal(err)
	}
	c := cliFor(t, env)
	home := env.Cfg.Home
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			out, err := c.run("--model", "some-model", "up")
			if err != nil {
				err = fmt.Errorf("%v: %s", err, out)
			}
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("up: %v", err)
		}
	}
	restate, service := processesOf(t, home)
	if len(restate) != 1 || len(service) != 1 {
		t.Fatalf("two ups left %d restate-server and %d service processes, want 1 and 1", len(restate), len(service))
	}
	// Restate's SQL is ready when up returns: a lookup right after it
	// answers "not found", not "expecting a partition store".
	if out, _ := c.run("result", "no-such-id"); strings.Contains(out, "Datafusion") || strings.Contains(out, "partition store") {
		t.Errorf("right after up: %s", out)
	}
	// A flag given to up reaches the service it starts.
	if b, _ := os.ReadFile(env.Stack.Service().LogFile()); !strings.Contains(string(b), "default=offline:some-model") {
		t.Errorf("the service did not get --model:\n%s", b)
	}
	elsewhere := exec.Command(c.bin, "stop")
	elsewhere.Dir = t.TempDir()
	for _, kv := range c.env {
		if !strings.HasPrefix(kv, "ULTRAMCP_RESTATE_SERVER=") {
			elsewhere.Env = append(elsewhere.Env, kv)
		}
	}
	elsewhere.Env = append(elsewhere.Env, "PATH="+os.Getenv("PATH"), "HOME="+os.Getenv("HOME"))
	if out, err := elsewhere.CombinedOutput(); err != nil || !strings.Contains(string(out), "stopped restate-server") || !strings.Contains(string(out), "stopped service") {
		t.Fatalf("stop from another directory: %v\n%s", err, out)
	}
	if restate, service := processesOf(t, home); len(restate)+len(service) != 0 {
		t.Errorf("left running after stop: restate-server %v, service %v", restate, service)
	}
}

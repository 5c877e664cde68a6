package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ultramcp/durable/internal/stacktest"
	"github.com/ultramcp/durable/stack"
)

// cli runs the ultramcp binary with the stack's environment.
type cli struct {
	t   *testing.T
	bin string
	env []string
}

func (c cli) run(args ...string) (string, error) {
	c.t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Env = append(os.Environ(), c.env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (c cli) must(args ...string) string {
	c.t.Helper()
	out, err := c.run(args...)
	if err != nil {
		c.t.Fatalf("ultramcp %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func TestCLIEndToEnd(t *testing.T) {
	t.Parallel()
	cfg, err := stack.EphemeralConfig(stacktest.Home(t))
	if err != nil {
		t.Fatal(err)
	}
	c := cli{t: t, bin: stacktest.Binary(t), env: []string{
		"ULTRAMCP_HOME=" + cfg.Home,
		"ULTRAMCP_SERVICE_ADDR=" + cfg.ServiceAddr,
		"ULTRAMCP_API_ADDR=" + cfg.APIAddr,
		"ULTRAMCP_RESTATE_SERVER=" + stacktest.RestateServer(t),
	}}
	cfg.RestateServerBin = stacktest.RestateServer(t)
	s := stack.New(cfg, c.bin, nil)
	t.Cleanup(func() { _ = s.Stop() })

	out := c.must("up")
	for _, want := range []string{"started restate-server", "started workflow service", "registered", "/ui/"} {
		if !strings.Contains(out, want) {
			t.Errorf("up output lacks %q:\n%s", want, out)
		}
	}
	out = c.must("health")
	if strings.Count(out, "healthy") != 4 {
		t.Errorf("health:\n%s", out)
	}

	t.Run("up is idempotent and brings back a crashed service", func(t *testing.T) {
		rs, _ := s.Restate()
		restatePID, _ := rs.PID()
		out := c.must("up")
		if !strings.Contains(out, "restate-server already running") || !strings.Contains(out, "already running") || strings.Contains(out, "started workflow service") {
			t.Errorf("second up:\n%s", out)
		}
		svcPID, _ := s.Service().PID()
		if err := syscall.Kill(svcPID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		if _, err := c.run("health"); err == nil {
			t.Error("health reports healthy with the service dead")
		}
		out = c.must("up")
		if !strings.Contains(out, "started workflow service") {
			t.Errorf("up after a crash did not restart the service:\n%s", out)
		}
		if pid, _ := rs.PID(); pid != restatePID {
			t.Errorf("up restarted a healthy restate-server (pid %d → %d)", restatePID, pid)
		}
	})

	t.Run("run, follow, status, result, list", func(t *testing.T) {
		out := c.must("run", "chain-of-debate", "--id", "cli-1", "--topic", "Tabs or spaces?", "--participants", "alice,bob,carol", "--rounds", "2", "--delay", "100ms", "--follow")
		for _, want := range []string{"round 1 of 2", "alice:", "SIMULATED", "synthesis", "totals:", "moderator:"} {
			if !strings.Contains(out, want) {
				t.Errorf("run --follow output lacks %q:\n%s", want, out)
			}
		}
		if out := c.must("status", "cli-1"); !strings.Contains(out, "status:     completed") || !strings.Contains(out, "agent calls: 7") {
			t.Errorf("status:\n%s", out)
		}
		if out := c.must("result", "cli-1", "--json"); !strings.Contains(out, `"topic":"Tabs or spaces?"`) {
			t.Errorf("result --json:\n%s", out)
		}
		if out := c.must("list", "--workflow", "chain-of-debate"); !strings.Contains(out, "cli-1") {
			t.Errorf("list:\n%s", out)
		}
		if out := c.must("services"); !strings.Contains(out, "chain-of-debate") {
			t.Errorf("services:\n%s", out)
		}
	})

	t.Run("bad input is refused before anything starts", func(t *testing.T) {
		out, err := c.run("run", "chain-of-debate", "--id", "cli-bad", "--topic", "x", "--participants", "solo")
		if err == nil || !strings.Contains(out, "participants:") {
			t.Errorf("want a participants error, got %v:\n%s", err, out)
		}
		if out, err := c.run("status", "cli-bad"); err == nil {
			t.Errorf("a refused debate exists:\n%s", out)
		}
	})

	t.Run("cancel and watch", func(t *testing.T) {
		c.must("run", "chain-of-debate", "--id", "cli-cancel", "--topic", "Long one", "--participants", "alice,carol", "--rounds", "3", "--delay", "30s")
		waitFor(t, 20*time.Second, func() bool {
			out, _ := c.run("status", "cli-cancel")
			return strings.Contains(out, "1 of 3 rounds done")
		})
		c.must("cancel", "cli-cancel")
		out, err := c.run("watch", "cli-cancel")
		if err == nil || !strings.Contains(strings.ToLower(out), "cancel") {
			t.Errorf("watch of a cancelled debate: %v\n%s", err, out)
		}
		if out := c.must("status", "cli-cancel"); !strings.Contains(out, "cancelled") {
			t.Errorf("status:\n%s", out)
		}
	})

	t.Run("purge", func(t *testing.T) {
		if out, err := c.run("purge", "--older-than", "soon"); err == nil || !strings.Contains(out, "older-than") {
			t.Errorf("a bad age was accepted: %v\n%s", err, out)
		}
		out := c.must("purge", "--older-than", "30d")
		if !strings.Contains(out, "purged 0 workflow(s)") {
			t.Errorf("purge of recent workflows deleted something:\n%s", out)
		}
		if out := c.must("list"); !strings.Contains(out, "cli-1") {
			t.Errorf("cli-1 is gone after purge:\n%s", out)
		}
	})

	t.Run("stop leaves nothing running", func(t *testing.T) {
		rs, _ := s.Restate()
		rpid, _ := rs.PID()
		spid, _ := s.Service().PID()
		c.must("stop")
		for _, pid := range []int{rpid, spid} {
			if pid == 0 {
				t.Fatal("a pid was missing before stop")
			}
			if syscall.Kill(pid, 0) == nil {
				if b, _ := os.ReadFile("/proc/" + itoa(pid) + "/stat"); !bytes.Contains(b, []byte(") Z")) {
					t.Errorf("pid %d still running after stop", pid)
				}
			}
		}
		if _, err := c.run("health"); err == nil {
			t.Error("health is fine after stop")
		}
	})
}

func itoa(i int) string { return strconv.Itoa(i) }

// Package stack supervises the local processes of an UltraMCP stack — the
// Restate server and the workflow service — the way upspin's upbox does:
// start in dependency order, wait until each is healthy before the next,
// unwind a partial start, stop in reverse. Each process runs in its own
// session (so it outlives the CLI that started it and can be stopped as a
// group), writes its log to the state dir, and is known by its pid file:
// stop ends exactly what up started, never anything found by name.
package stack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ultramcp/durable/retry"
)

// Process is one supervised child.
type Process struct {
	Name string   // "restate-server", "service"
	Bin  string   // executable
	Args []string // arguments
	Env  []string // extra environment
	Dir  string   // state dir holding pids/ and logs/
	// Isolated starts it with Env and a minimal base (PATH, HOME, locale)
	// instead of the whole environment: restate-server needs none of the
	// API keys or database URLs the CLI may hold.
	Isolated bool
}

// baseEnv is the environment an isolated process starts from.
func baseEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

func (p Process) pidFile() string { return filepath.Join(p.Dir, "pids", p.Name+".pid") }

// LogFile is where the process writes.
func (p Process) LogFile() string { return filepath.Join(p.Dir, "logs", p.Name+".log") }

// Start runs the process detached, in a new session, and records its pid.
func (p Process) Start() (int, error) {
	for _, d := range []string{filepath.Dir(p.pidFile()), filepath.Dir(p.LogFile())} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return 0, err
		}
	}
	logf, err := os.OpenFile(p.LogFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "--- %s starting %s %s\n", time.Now().Format(time.RFC3339), p.Bin, strings.Join(p.Args, " "))
	cmd := exec.Command(p.Bin, p.Args...)
	if p.Isolated {
		cmd.Env = append(baseEnv(), p.Env...)
	} else {
		cmd.Env = append(os.Environ(), p.Env...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", p.Name, err)
	}
	pid := cmd.Process.Pid
	// The start time identifies the process with the pid: a pid reused by
	// another process has another start time.
	// The executable is recorded too, so that stop recognises the process
	// whichever build or directory stop is run from.
	started, _ := startTime(pid)
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if exe == "" {
		exe, _ = filepath.Abs(p.Bin)
	}
	if err := os.WriteFile(p.pidFile(), []byte(strconv.Itoa(pid)+" "+started+" "+exe+"\n"), 0o600); err != nil {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		return 0, err
	}
	// Reap it if it dies while we still run, so it does not linger as a
	// zombie that looks alive to Running.
	go func() { _ = cmd.Wait() }()
	return pid, nil
}

// PID returns the recorded pid if that process is still ours and alive.
func (p Process) PID() (int, bool) {
	b, err := os.ReadFile(p.pidFile())
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, false
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil || pid <= 0 {
		return 0, false
	}
	started, bin := "", p.Bin
	if len(f) > 1 {
		started = f[1]
	}
	if len(f) > 2 {
		bin = strings.Join(f[2:], " ")
	}
	return pid, alive(pid, started, bin)
}

// startTime is the process's start time in clock ticks since boot, field
// 22 of /proc/PID/stat, and whether it is a zombie.
func startTime(pid int) (string, bool) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", false
	}
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return "", false
	}
	f := strings.Fields(string(stat[i+1:])) // state is field 3, start time 22
	if len(f) < 20 {
		return "", false
	}
	return f[19], f[0] == "Z"
}

// alive checks the pid exists, is not a zombie, started when the pid file
// says, and still runs bin: a recycled pid is another process. What cannot
// be checked counts as not ours, so stop never signals a stranger.
func alive(pid int, started, bin string) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	now, zombie := startTime(pid)
	if zombie || now == "" || (started != "" && now != started) {
		return false
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return started != "" // the start time matched: it is ours
	}
	want, _ := filepath.EvalSymlinks(bin)
	if want == "" {
		want = bin // the recorded executable may have been replaced since
	}
	return want == "" || strings.TrimSuffix(exe, " (deleted)") == want
}

// Stop ends the process with SIGTERM, then its group with SIGKILL after grace, and
// removes the pid file. It reports whether anything was running.
func (p Process) Stop(grace time.Duration) (bool, error) {
	pid, ok := p.PID()
	defer os.Remove(p.pidFile())
	if !ok {
		return false, nil
	}
	// SIGTERM to the process alone: it stops its children itself once its
	// running work is done (the service's git and go processes must not
	// die mid-step); the group gets SIGKILL if it is still there after grace.
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return true, fmt.Errorf("stop %s (pid %d): %w", p.Name, pid, err)
	}
	_, _ = retry.Poll(50*time.Millisecond, grace).Do(context.Background(), func(context.Context) error {
		if p.running(pid) {
			return retry.Again("%s still running", p.Name)
		}
		return nil
	})
	if p.running(pid) {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
	// Wait until it is gone from the process table, not only dead: a
	// zombie waiting for its parent to reap it still shows in ps; 2 s is
	// long for a reap.
	_, _ = retry.Poll(20*time.Millisecond, 2*time.Second).Do(context.Background(), func(context.Context) error {
		if syscall.Kill(pid, 0) == nil {
			return retry.Again("%s not reaped", p.Name)
		}
		return nil
	})
	return true, nil
}

// running reports whether pid is still the process of the pid file.
func (p Process) running(pid int) bool {
	now, ok := p.PID()
	return ok && now == pid
}

// Kill sends SIGKILL to the process alone (a crash, for durability tests).
func (p Process) Kill() error {
	pid, ok := p.PID()
	if !ok {
		return fmt.Errorf("%s is not running", p.Name)
	}
	return syscall.Kill(pid, syscall.SIGKILL)
}

// Tail returns the last n lines of the process's log.
func (p Process) Tail(n int) string {
	b, err := os.ReadFile(p.LogFile())
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// hasPID reports whether the process of the pid file runs.
func (p Process) hasPID() bool {
	_, ok := p.PID()
	return ok
}

package restate

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// CrashAtStepEnv names a step at whose start the service kills itself, as
// the kernel's OOM killer would: chaos tests use it to check that a step
// which crashes the service on every attempt ends failed, not in a loop.
const CrashAtStepEnv = "ULTRAMCP_CHAOS_CRASH_AT_STEP"

// DefaultStepCrashLimit is how many times a step may be interrupted (the
// process died while it ran) before it fails for good.
const DefaultStepCrashLimit = 3

// attempts counts, per invocation and step, the attempts that started and
// never returned because the process died. Each process appends to a log
// of its own in dir — "b KEY" when a step's closure starts, "e KEY" when it
// returns, one small write each, no file made or removed per step — and a
// process starting reads the logs the dead ones left: a begin with no end
// is an interrupted attempt. Their counts are kept in dir/interrupted, and
// the old logs removed. Replays and an unreachable service never run the
// closure, so neither counts.
type attempts struct {
	dir   string
	limit int
}

// attemptLog is this process's log in one dir, with the counts the dead
// processes left.
type attemptLog struct {
	f           *os.File
	interrupted map[string]int
}

// logs are this process's attempt logs, by dir, opened on first use (nil
// when the dir cannot be used).
var (
	logsMu sync.Mutex
	logs   = map[string]*attemptLog{}
)

func attemptKey(invocation, step string) string {
	h := sha256.Sum256([]byte(invocation + "\x00" + step))
	return hex.EncodeToString(h[:12])
}

// begin records an attempt of step and returns how many earlier attempts
// were interrupted, and the function that marks this one returned.
func (a attempts) begin(invocation, step string) (interrupted int, done func()) {
	if a.dir == "" {
		return 0, func() {}
	}
	l := openLog(a.dir)
	if l == nil {
		return 0, func() {}
	}
	key := attemptKey(invocation, step)
	_, _ = l.f.WriteString("b " + key + "\n")
	return l.interrupted[key], func() { _, _ = l.f.WriteString("e " + key + "\n") }
}

// openLog returns this process's log in dir, opening it the first time,
// after folding the logs of dead processes into dir/interrupted.
func openLog(dir string) *attemptLog {
	logsMu.Lock()
	defer logsMu.Unlock()
	l, ok := logs[dir]
	if !ok {
		l = foldLogs(dir)
		logs[dir] = l
	}
	return l
}

func foldLogs(dir string) *attemptLog {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil
	}
	counts := map[string]int{}
	summary := filepath.Join(dir, "interrupted")
	if b, err := os.ReadFile(summary); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if key, n, ok := strings.Cut(line, " "); ok {
				counts[key], _ = strconv.Atoi(n)
			}
		}
	}
	old, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, path := range old {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		open := map[string]int{}
		for _, line := range strings.Split(string(b), "\n") {
			switch kind, key, _ := strings.Cut(line, " "); kind {
			case "b":
				open[key]++
			case "e":
				open[key]--
			}
		}
		for key, n := range open {
			if n > 0 {
				counts[key] += n
			}
		}
	}
	var out strings.Builder
	for key, n := range counts {
		out.WriteString(key + " " + strconv.Itoa(n) + "\n")
	}
	tmp := summary + ".tmp"
	if err := os.WriteFile(tmp, []byte(out.String()), 0o600); err != nil || os.Rename(tmp, summary) != nil {
		return nil
	}
	for _, path := range old {
		_ = os.Remove(path)
	}
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(os.Getpid())+"-"+strconv.FormatInt(time.Now().UnixNano(), 36)+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil
	}
	return &attemptLog{f: f, interrupted: counts}
}

// crash ends the process at once, without cleanup, like a SIGKILL from
// outside.
func crash() { _ = syscall.Kill(os.Getpid(), syscall.SIGKILL) }

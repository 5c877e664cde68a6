package restate

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// CrashAtStepEnv names a step at whose start the service kills itself, as
// the kernel's OOM killer would: chaos tests use it to check that a step
// which crashes the service on every attempt ends failed, not in a loop.
const CrashAtStepEnv = "ULTRAMCP_CHAOS_CRASH_AT_STEP"

// DefaultStepCrashLimit is how many times a step may be interrupted (the
// process died while it ran) before it fails for good.
const DefaultStepCrashLimit = 3

// attempts counts, per invocation and step, the attempts that started and
// never returned: a file is written when a step's closure starts and
// removed when it returns, so one still there at the next start means the
// process died inside the step. Replays and an unreachable service never
// run the closure, so neither counts.
type attempts struct {
	dir   string
	limit int
}

func (a attempts) file(invocation, step string) string {
	h := sha256.Sum256([]byte(invocation + "\x00" + step))
	return filepath.Join(a.dir, hex.EncodeToString(h[:12]))
}

// begin records an attempt of step and returns how many earlier attempts
// were interrupted, and the function that marks this one returned.
func (a attempts) begin(invocation, step string) (interrupted int, done func()) {
	if a.dir == "" {
		return 0, func() {}
	}
	path := a.file(invocation, step)
	if b, err := os.ReadFile(path); err == nil {
		interrupted, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if _, made := madeDirs.Load(a.dir); !made {
		if os.MkdirAll(a.dir, 0o700) == nil {
			madeDirs.Store(a.dir, true)
		}
	}
	count := []byte(strconv.Itoa(interrupted+1) + "\n")
	if err := os.WriteFile(path, count, 0o600); errors.Is(err, fs.ErrNotExist) && os.MkdirAll(a.dir, 0o700) == nil {
		_ = os.WriteFile(path, count, 0o600) // the dir went away under us
	}
	return interrupted, func() { _ = os.Remove(path) }
}

// madeDirs are the attempt dirs created already: every step start writes
// a file there, and a mkdir per step would be a syscall of waste.
var madeDirs sync.Map

// crash ends the process at once, without cleanup, like a SIGKILL from
// outside.
func crash() { _ = syscall.Kill(os.Getpid(), syscall.SIGKILL) }

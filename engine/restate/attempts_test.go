package restate

import (
	"os"
	"path/filepath"
	"testing"
)

// newProcess forgets this process's log of dir, as a restarted service
// would not have it.
func newProcess(dir string) {
	logsMu.Lock()
	defer logsMu.Unlock()
	if l := logs[dir]; l != nil {
		l.f.Close()
	}
	delete(logs, dir)
}

// An attempt that began and never returned counts as interrupted in the
// next process, once per death; attempts that returned do not; the counts
// outlive the logs they came from.
func TestAttemptsCountInterruptedOnly(t *testing.T) {
	dir := t.TempDir()
	a := attempts{dir: dir, limit: DefaultStepCrashLimit}
	if n, done := a.begin("inv-1", "fine"); n != 0 {
		t.Fatalf("first attempt: %d interrupted", n)
	} else {
		done()
	}
	for death := 1; death <= 3; death++ {
		n, _ := a.begin("inv-1", "crashy") // the process dies inside
		if n != death-1 {
			t.Fatalf("attempt %d sees %d interrupted, want %d", death, n, death-1)
		}
		newProcess(dir)
	}
	if n, _ := a.begin("inv-1", "crashy"); n != 3 {
		t.Errorf("after three deaths: %d interrupted, want 3", n)
	}
	if n, _ := a.begin("inv-1", "fine"); n != 0 {
		t.Errorf("a step that returned: %d interrupted", n)
	}
	if n, _ := a.begin("inv-2", "crashy"); n != 0 {
		t.Errorf("another invocation's step: %d interrupted", n)
	}
	logsLeft, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	if len(logsLeft) != 1 {
		t.Errorf("%d logs in the dir, want this process's only", len(logsLeft))
	}
	if _, err := os.Stat(filepath.Join(dir, "interrupted")); err != nil {
		t.Errorf("no counts file: %v", err)
	}
	newProcess(dir)
}

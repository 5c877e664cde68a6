package version

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Two builds of the same tree with different code are different versions;
// the same file is the same version every time.
func TestVersionsTellBuildsApart(t *testing.T) {
	dir := t.TempDir()
	write := func(msg string) string {
		src := filepath.Join(dir, "src")
		os.MkdirAll(src, 0o755)
		os.WriteFile(filepath.Join(src, "go.mod"), []byte("module example.com/v\n\ngo 1.22\n"), 0o644)
		os.WriteFile(filepath.Join(src, "main.go"), []byte("package main\n\nfunc main() { println(\""+msg+"\") }\n"), 0o644)
		out := filepath.Join(dir, msg)
		cmd := exec.Command("go", "build", "-o", out, ".")
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build: %v\n%s", err, b)
		}
		return out
	}
	a, b := write("one"), write("two")
	va, err := OfFile(a)
	if err != nil {
		t.Fatal(err)
	}
	vb, _ := OfFile(b)
	again, _ := OfFile(a)
	if va == vb || va != again || !strings.HasPrefix(va, "exe-") {
		t.Errorf("versions %q %q %q", va, vb, again)
	}
	if _, err := OfFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing file has a version")
	}
	if Current() == "" {
		t.Error("no current version")
	}
}

package analysis_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ultramcp/durable/analysis"
	"github.com/ultramcp/durable/analysis/metrics"
	"github.com/ultramcp/durable/analysis/patterns"
	"github.com/ultramcp/durable/analysis/sast"
	"github.com/ultramcp/durable/analysis/secrets"
)

// hostileTree is a tree as a repository could only make it by a bug in
// the checkout: links to a host file holding marker and to /dev/zero, a
// link to a host directory, a FIFO. The scanners must never open them.
func hostileTree(t *testing.T) (dir, marker string) {
	t.Helper()
	marker = "HOST-SECRET-7f3a9c"
	host := filepath.Join(t.TempDir(), "host-file")
	if err := os.WriteFile(host, []byte(marker+"\naws_access_key_id = AKIAZ4QWERTYUI2357AB\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	for name, target := range map[string]string{
		"go.mod": host, "package.json": host, "main.go": host, "config/creds.env": host,
		"zero.txt": "/dev/zero", "zero.go": "/dev/zero", "hostdir": filepath.Dir(host),
	} {
		full := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.Symlink(target, full); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "pipe.go"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "lib", "lib.go"), nil, 0o644)
	os.MkdirAll(filepath.Join(dir, "lib"), 0o755)
	os.WriteFile(filepath.Join(dir, "lib", "lib.go"), []byte("package lib\n\n// F is real code.\nfunc F() int { return 1 }\n"), 0o644)
	return dir, marker
}

func TestScannersNeverOpenLinksOrSpecialFiles(t *testing.T) {
	dir, marker := hostileTree(t)
	ctx := context.Background()
	var outputs []any
	m, err := metrics.Measure(ctx, dir)
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	p, err := patterns.Detect(ctx, dir, nil)
	if err != nil {
		t.Fatalf("patterns: %v", err)
	}
	found, err := secrets.Scan(ctx, dir, nil)
	if err != nil {
		t.Fatalf("secrets: %v", err)
	}
	_, gosecErr := sast.Scan(ctx, dir, nil)
	if gosecErr == nil || !strings.Contains(gosecErr.Error(), "is not a regular file") {
		t.Errorf("gosec on a module with links: %v, want a refusal naming the file", gosecErr)
	}
	outputs = append(outputs, m, p, found, gosecErr.Error())
	raw, _ := json.Marshal(outputs)
	if strings.Contains(string(raw), marker) || strings.Contains(string(raw), "2357AB") {
		t.Errorf("a linked host file was read: %s", raw)
	}
	if len(found) != 0 {
		t.Errorf("secrets read through links: %+v", found)
	}
	var langs int
	for _, l := range m.Languages {
		langs += int(l.Files)
	}
	if langs != 1 {
		t.Errorf("metrics counted %d files, want only lib/lib.go", langs)
	}
	if _, err := analysis.ReadFile(filepath.Join(dir, "zero.txt"), 1<<20); err == nil {
		t.Error("ReadFile followed a link to /dev/zero")
	}
	if _, err := analysis.ReadFile(filepath.Join(dir, "pipe.go"), 1<<20); err == nil {
		t.Error("ReadFile opened a FIFO")
	}
}

// What the go command says about a broken module quotes the module's
// files; the reason a requester sees never does.
func TestGosecReasonsAreClassified(t *testing.T) {
	cases := []struct {
		gomod, main, want string
	}{
		{"MARKER-LINE-ONE secret\nMARKER-LINE-TWO\n", "package main\n", "go.mod could not be parsed"},
		{"module example.com/x\n\ngo 1.22\n\nrequire github.com/gin-gonic/gin v1.6.3\n", "package main\n\nimport _ \"github.com/gin-gonic/gin\"\n\nfunc main() {}\n", "module dependencies not resolvable: github.com/gin-gonic/gin"},
		{"module example.com/x\n\ngo 1.22\n", "package main\n\nfunc main() { MARKER LINE ONE }\n", "do not parse"},
	}
	for _, tc := range cases {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "go.mod"), []byte(tc.gomod), 0o644)
		os.WriteFile(filepath.Join(dir, "main.go"), []byte(tc.main), 0o644)
		_, err := sast.Scan(context.Background(), dir, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err = %v, want %q", err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "MARKER") {
			t.Errorf("the reason quotes the repository: %v", err)
		}
	}
}

func TestRedactKeepsOnlyPublicPrefixAndLength(t *testing.T) {
	for in, want := range map[string]string{
		"AKIAZ4QWERTYUI2357AB":                     "AKIA**** (20 chars)",
		"ghp_R7mK2xVq9LpT4nWc8ZbY3sHd6JfG1aQe5Uio": "ghp_**** (40 chars)",
		"hunter2hunter2":                           "**** (14 chars)",
		"Sup3rS3cret!":                             "**** (12 chars)",
	} {
		if got := secrets.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
	line := `client := s3.New("AKIAZ4QWERTYUI2357AB", "aws_secret=wJalrXUtnFEMI/K7MDENG/bPxRfiCYzQ9Kx2lMnB")`
	got := secrets.RedactText(line)
	if strings.Contains(got, "QWERTYUI2357AB") {
		t.Errorf("RedactText left the key: %s", got)
	}
}

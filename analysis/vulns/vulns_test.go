package vulns

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ultramcp/durable/fault"
)

// With the vulnerability database out of reach, the failure names the
// database and the two ways to a local copy, not a symptom of loading.
func TestUnreachableDatabaseIsNamed(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/tiny\n\ngo 1.22\n")
	write("main.go", "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hi\") }\n")
	// A port nothing listens on: connection refused, as offline is.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	// A name that never resolves (RFC 2606), as vuln.go.dev offline.
	for _, db := range []string{closed, "https://vuln.invalid"} {
		unreachableIsNamed(t, dir, db)
	}
}

func unreachableIsNamed(t *testing.T, dir, db string) {
	var log strings.Builder
	_, err := Scan(context.Background(), dir, db, slog.New(slog.NewTextHandler(&log, nil)))
	if err == nil {
		t.Fatal("scan against an unreachable database succeeded")
	}
	msg := err.Error()
	for _, want := range []string{"vulnerability database " + db, "ultramcp vulndb update", "ULTRAMCP_VULNDB"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, "type errors") || fault.KindOf(err) != fault.Permanent {
		t.Errorf("error %q (%v) reads as a loading failure", msg, fault.KindOf(err))
	}
	if !strings.Contains(log.String(), "could not read its database") {
		t.Errorf("the log does not keep govulncheck's own words: %s", log.String())
	}
}

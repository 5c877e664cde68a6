// Package pgtest runs a private PostgreSQL server for tests: initdb in a
// temporary directory, a free loopback port, and the server stopped and
// removed when the test ends. Tests that must take PostgreSQL away and bring
// it back (outages) use it; the conformance suite can also use the server
// that .ci/run starts, through ULTRAMCP_TEST_POSTGRES_URL.
package pgtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"testing"

	"github.com/ultramcp/durable/stack"
)

// Server is one private PostgreSQL server.
type Server struct {
	dir, bin, port string
	runAs          string // "postgres" when we are root: the server refuses root
}

// URL is the server's connection URL.
func (s *Server) URL() string {
	return fmt.Sprintf("postgres://ultramcp@127.0.0.1:%s/postgres?sslmode=disable", s.port)
}

// binDir finds the newest installed PostgreSQL's bin directory.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Strings(dirs)
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i], nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", fmt.Errorf("PostgreSQL server binaries not found (apt-get install postgresql)")
}

// Start initializes and starts a server, stopped and removed at cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := binDir()
	if err != nil {
		t.Skipf("needs a PostgreSQL server: %v", err)
	}
	dir, err := os.MkdirTemp("", "ultramcp-pg-")
	if err != nil {
		t.Fatal(err)
	}
	addr, err := stack.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(addr)
	s := &Server{dir: dir, bin: bin, port: port}
	if os.Geteuid() == 0 {
		s.runAs = "postgres"
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skipf("running as root needs the postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_ = s.run("pg_ctl", "-D", s.data(), "-m", "immediate", "-w", "stop")
		os.RemoveAll(dir)
	})
	if err := s.run("initdb", "-D", s.data(), "-U", "ultramcp", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		t.Fatalf("initdb: %v", err)
	}
	s.StartAgain(t)
	return s
}

func (s *Server) data() string { return filepath.Join(s.dir, "data") }

func (s *Server) run(tool string, args ...string) error {
	path := filepath.Join(s.bin, tool)
	var cmd *exec.Cmd
	if s.runAs != "" {
		cmd = exec.Command("runuser", append([]string{"-u", s.runAs, "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = s.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %v: %w\n%s", tool, args, err, out)
	}
	return nil
}

// StartAgain starts the (stopped) server on its port and data.
func (s *Server) StartAgain(t testing.TB) {
	t.Helper()
	opts := fmt.Sprintf("-p %s -k %s -c listen_addresses=127.0.0.1 -c fsync=off", s.port, s.dir)
	if err := s.run("pg_ctl", "-D", s.data(), "-o", opts, "-l", filepath.Join(s.dir, "server.log"), "-w", "start"); err != nil {
		t.Fatalf("start PostgreSQL: %v", err)
	}
}

// Stop stops the server at once, as a crash or an outage would.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if err := s.run("pg_ctl", "-D", s.data(), "-m", "immediate", "-w", "stop"); err != nil {
		t.Fatalf("stop PostgreSQL: %v", err)
	}
}

package repo_test

import (
	"context"
	"crypto/rand"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ultramcp/durable/analysis/repo"
	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/internal/repotest"
)

// served builds the standard repository under a fresh base dir and serves
// it over git://; the policy allows exactly the daemon's address.
func served(t *testing.T) (base, addr string, p repo.Policy) {
	t.Helper()
	base = t.TempDir()
	repotest.Build(t, base)
	addr = repotest.Daemon(t, base)
	return base, addr, repo.Policy{Hosts: []string{"127.0.0.1"}, MaxBytes: 50 << 20, CloneTimeout: time.Minute, HistoryDepth: 50}
}

func TestCredentialsAndInternalHostsRefusedAsWritten(t *testing.T) {
	const token = "s3cr3tT0kenValue"
	open := repo.Policy{}
	for _, target := range []string{
		"https://u:" + token + "@example.com/r.git",
		"https://" + token + "@example.com/r.git",
		"git://u:" + token + "@example.com/r.git",
		"ssh://git:" + token + "@example.com/r.git",
		"ssh://-oProxyCommand=touch%20x@example.com/x",
		"https://127.0.0.1:8080/r.git",
		"https://127.0.0.2/r.git",
		"https://2130706433/r.git",
		"https://0x7f000001/r.git",
		"https://127.1/r.git",
		"https://169.254.169.254/latest/meta-data",
		"https://10.1.2.3/r.git",
		"https://192.168.1.1/r.git",
		"https://[::1]/r.git",
		"https://[fd00::1]/r.git",
		"https://[::ffff:127.0.0.1]/r.git",
		"git://0.0.0.0/r.git",
		"git@127.0.0.1:org/r.git",
		"https://example.com:99999/r.git",
	} {
		_, err := open.Validate(target)
		if fault.KindOf(err) != fault.Invalid || fault.FieldOf(err) != "repository" {
			t.Errorf("Validate(%q) = %v, want invalid repository", target, err)
		}
		if err != nil && strings.Contains(err.Error(), token) {
			t.Errorf("Validate(%q) repeats the credential: %v", target, err)
		}
	}
	for _, ok := range []string{"https://github.com/org/repo.git", "ssh://git@example.com/repo", "git@github.com:org/repo.git", "git://example.com/repo", "https://93.184.215.14/r.git"} {
		if _, err := open.Validate(ok); err != nil {
			t.Errorf("Validate(%q) = %v", ok, err)
		}
	}
	listed := repo.Policy{Hosts: []string{"127.0.0.2", "git.internal.example"}}
	for target, want := range map[string]bool{
		"git://127.0.0.2:9418/r.git":         true,
		"https://git.internal.example/r":     true,
		"https://127.0.0.1/r.git":            false,
		"https://93.184.215.14/r.git":        false, // public, but not listed
		"https://[::ffff:127.0.0.2]/r.git":   true,
		"https://169.254.169.254/latest/x":   false,
		"git@git.internal.example:org/r.git": true,
	} {
		_, err := listed.Validate(target)
		if (err == nil) != want {
			t.Errorf("with ULTRAMCP_REPO_HOSTS, Validate(%q) = %v, want allowed %v", target, err, want)
		}
	}
}

// A name is checked on what it resolves to, before git connects: the
// answer is the same whether anything listens on the port or not.
func TestNameResolvingToLoopbackRefusedBeforeConnecting(t *testing.T) {
	_, addr, _ := served(t)
	_, openPort, _ := net.SplitHostPort(addr)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	_, closedPort, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	p := repo.Policy{CloneTimeout: 20 * time.Second}
	var msgs []string
	for _, port := range []string{openPort, closedPort} {
		url := "git://localhost:" + port + "/app"
		if _, err := p.Validate(url); err != nil {
			t.Fatalf("a name passes Validate (it is checked once resolved): %v", err)
		}
		_, _, err := p.Resolve(context.Background(), url, "")
		if fault.KindOf(err) != fault.Invalid || !strings.Contains(err.Error(), "loopback") {
			t.Fatalf("port %s: %v, want a refusal naming the loopback address", port, err)
		}
		msgs = append(msgs, strings.ReplaceAll(err.Error(), port, "PORT"))
	}
	if msgs[0] != msgs[1] {
		t.Errorf("the refusal depends on the port's state:\n%s\n%s", msgs[0], msgs[1])
	}
	for _, lit := range []string{"https://127.0.0.1:" + openPort + "/app", "https://2130706433/app", "https://169.254.169.254/app"} {
		if _, _, err := p.Resolve(context.Background(), lit, ""); fault.KindOf(err) != fault.Invalid {
			t.Errorf("Resolve(%q) = %v, want refused", lit, err)
		}
	}
	allowed := repo.Policy{Hosts: []string{"localhost"}, CloneTimeout: 20 * time.Second}
	if _, _, err := allowed.Resolve(context.Background(), "git://localhost:"+openPort+"/app", ""); err != nil {
		t.Errorf("listed name refused: %v", err)
	}
}

func TestFetchOverGitDaemon(t *testing.T) {
	base, addr, p := served(t)
	url := "git://" + addr + "/app"
	if _, err := p.Validate(url); err != nil {
		t.Fatal(err)
	}
	sha, branch, err := p.Resolve(context.Background(), url, "")
	if err != nil {
		t.Fatal(err)
	}
	if branch != "main" || sha != repotest.Git(t, filepath.Join(base, "app"), "rev-parse", "HEAD") {
		t.Fatalf("resolved %s@%s", branch, sha)
	}
	c := &repo.Cache{Dir: filepath.Join(t.TempDir(), "cache"), Policy: p}
	tree, err := c.Ensure(context.Background(), url, sha)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(tree, "main.go")); err != nil {
		t.Fatal(err)
	}
	// A git server's words never reach the requester: a missing repository
	// reads as our own message.
	_, _, err = p.Resolve(context.Background(), "git://"+addr+"/nope", "")
	if fault.KindOf(err) != fault.NotFound || err.Error() != "repository not found" {
		t.Errorf("missing repository: %v", err)
	}
}

// The operator's own git configuration — a URL rewrite, a credential
// helper — must not apply to a requester's fetch.
func TestOperatorGitConfigIgnored(t *testing.T) {
	base, addr, p := served(t)
	evil := filepath.Join(base, "evil")
	repotest.Init(t, evil)
	repotest.Commit(t, evil, "evil", map[string]string{"evil.txt": "not the requested repository\n"})
	marker := filepath.Join(t.TempDir(), "HELPER-RAN")
	asked := make(chan struct{}, 10)
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked <- struct{}{}
		w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer tlsSrv.Close()
	home := t.TempDir()
	gitconfig := `[url "git://` + addr + `/evil"]
	insteadOf = git://` + addr + `/app
[url "` + tlsSrv.URL + `/"]
	insteadOf = git://` + addr + `/private/
[http]
	sslVerify = false
[credential]
	helper = "!touch ` + marker + `"
`
	for _, f := range []string{filepath.Join(home, ".gitconfig"), filepath.Join(home, ".config", "git", "config")} {
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte(gitconfig), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))

	sha, _, err := p.Resolve(context.Background(), "git://"+addr+"/app", "")
	if err != nil {
		t.Fatal(err)
	}
	if want := repotest.Git(t, filepath.Join(base, "app"), "rev-parse", "HEAD"); sha != want {
		t.Errorf("resolved %s: the operator's insteadOf rewrite applied (want %s)", sha, want)
	}
	_, _, _ = p.Resolve(context.Background(), "git://"+addr+"/private/r.git", "")
	if _, err := os.Stat(marker); err == nil {
		t.Error("the operator's credential helper ran")
	}
	if len(asked) > 0 {
		t.Error("git followed the operator's rewrite to another host")
	}
}

func TestSizeBoundedBeforeCheckout(t *testing.T) {
	base := t.TempDir()
	addr := repotest.Daemon(t, base)
	mk := func(name string, commits ...map[string]string) string {
		dir := filepath.Join(base, name)
		repotest.Init(t, dir)
		for _, files := range commits {
			repotest.Commit(t, dir, "c", files)
		}
		return "git://" + addr + "/" + name
	}
	random := make([]byte, 12<<20)
	_, _ = rand.Read(random)
	cases := []struct {
		name, url, want string
	}{
		{"expands", mk("expands", map[string]string{"zeros.txt": strings.Repeat("0", 30<<20)}), "the files of commit"},
		{"history", mk("history", map[string]string{"big.log": strings.Repeat("log line\n", 40<<20/9)}, map[string]string{"big.log": "", "README": "small\n"}), "its history holds"},
		{"download", mk("download", map[string]string{"noise.bin": string(random)}), "the download passed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := repo.Policy{Hosts: []string{"127.0.0.1"}, MaxBytes: 5 << 20, CloneTimeout: time.Minute, HistoryDepth: 10}
			sha, _, err := p.Resolve(context.Background(), tc.url, "")
			if err != nil {
				t.Fatal(err)
			}
			c := &repo.Cache{Dir: filepath.Join(t.TempDir(), "cache"), Policy: p}
			_, err = c.Ensure(context.Background(), tc.url, sha)
			if fault.KindOf(err) != fault.Invalid || !strings.Contains(err.Error(), "repository too large") || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), " MB") {
				t.Fatalf("err = %v, want a size refusal with %q", err, tc.want)
			}
			t.Log(err)
			var files int
			_ = filepath.WalkDir(c.Dir, func(path string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() && !strings.HasSuffix(path, ".lock") {
					files++
				}
				return nil
			})
			if files != 0 {
				t.Errorf("%d files left in the cache after the refusal", files)
			}
		})
	}
}

func TestSymlinksCheckedOutAsPlainFiles(t *testing.T) {
	base := t.TempDir()
	addr := repotest.Daemon(t, base)
	dir := filepath.Join(base, "links")
	repotest.Init(t, dir)
	repotest.Symlink(t, dir, "go.mod", "/etc/passwd")
	repotest.Symlink(t, dir, "zero.txt", "/dev/zero")
	repotest.Commit(t, dir, "links", map[string]string{"README": "x\n"})
	p := repo.Policy{Hosts: []string{"127.0.0.1"}, MaxBytes: 5 << 20, CloneTimeout: time.Minute}
	url := "git://" + addr + "/links"
	sha, _, err := p.Resolve(context.Background(), url, "")
	if err != nil {
		t.Fatal(err)
	}
	c := &repo.Cache{Dir: filepath.Join(t.TempDir(), "cache"), Policy: p}
	tree, err := c.Ensure(context.Background(), url, sha)
	if err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"go.mod": "/etc/passwd", "zero.txt": "/dev/zero"} {
		info, err := os.Lstat(filepath.Join(tree, name))
		if err != nil || !info.Mode().IsRegular() {
			t.Fatalf("%s: %v %v, want a regular file", name, info.Mode(), err)
		}
		if b, _ := os.ReadFile(filepath.Join(tree, name)); string(b) != target {
			t.Errorf("%s holds %q, want the link text %q", name, b, target)
		}
	}
}

func TestCacheKeyedByRepositoryAndHeldWhileInUse(t *testing.T) {
	base, addr, p := served(t)
	repotest.Git(t, base, "clone", "-q", filepath.Join(base, "app"), filepath.Join(base, "copy"))
	c := &repo.Cache{Dir: filepath.Join(t.TempDir(), "cache"), Policy: p}
	a, b := "git://"+addr+"/app", "git://"+addr+"/copy"
	sha, _, err := p.Resolve(context.Background(), a, "")
	if err != nil {
		t.Fatal(err)
	}
	if other, _, _ := p.Resolve(context.Background(), b, ""); other != sha {
		t.Fatalf("the copy advertises %s, not %s", other, sha)
	}
	coA, err := c.Acquire(context.Background(), a, sha)
	if err != nil {
		t.Fatal(err)
	}
	treeB, err := c.Ensure(context.Background(), b, sha)
	if err != nil {
		t.Fatal(err)
	}
	if coA.Dir == treeB {
		t.Fatalf("two repositories advertising commit %s share the checkout %s", sha[:12], treeB)
	}
	// purge of everything: the tree in use stays, the other goes.
	n, err := c.Prune(time.Now().Add(time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("prune removed %d (%v), want 1: the unused one", n, err)
	}
	if _, err := os.Stat(filepath.Join(coA.Dir, "main.go")); err != nil {
		t.Fatalf("prune removed a checkout in use: %v", err)
	}
	coA.Release()
	if n, _ := c.Prune(time.Now().Add(time.Hour)); n != 1 {
		t.Errorf("after release prune removed %d, want 1", n)
	}
}

func TestCacheCapEvictsLeastRecentlyUsed(t *testing.T) {
	base, addr, p := served(t)
	repotest.Git(t, base, "clone", "-q", filepath.Join(base, "app"), filepath.Join(base, "copy"))
	c := &repo.Cache{Dir: filepath.Join(t.TempDir(), "cache"), Policy: p, MaxBytes: 1}
	sha, _, err := p.Resolve(context.Background(), "git://"+addr+"/app", "")
	if err != nil {
		t.Fatal(err)
	}
	first, err := c.Ensure(context.Background(), "git://"+addr+"/app", sha)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Ensure(context.Background(), "git://"+addr+"/copy", sha); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(first); !os.IsNotExist(err) {
		t.Errorf("the least recently used checkout was kept over the cap: %v", err)
	}
}

// git reaches a host at the address checked here, never by a lookup of
// its own: a name that resolves nowhere but in the policy's resolver still
// reaches the server (https through curl's resolve list, git:// by
// address), so DNS cannot answer git differently than it answered us.
func TestGitConnectsToThePinnedAddress(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p := repo.Policy{Hosts: []string{"pinned.invalid"}, CloneTimeout: 20 * time.Second,
		Lookup: func(context.Context, string) ([]netip.Addr, error) {
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		}}
	_, _, err := p.Resolve(context.Background(), "https://pinned.invalid:"+port+"/r.git", "")
	if err == nil || !strings.Contains(err.Error(), "TLS") {
		t.Fatalf("err = %v, want the self-signed certificate refused", err)
	}
	if conns.Load() == 0 {
		t.Error("git never reached the https server at the pinned address")
	}
	_, addr, _ := served(t)
	_, daemonPort, _ := net.SplitHostPort(addr)
	if _, _, err := p.Resolve(context.Background(), "git://pinned.invalid:"+daemonPort+"/app", ""); err != nil {
		t.Errorf("git:// at the pinned address: %v", err)
	}
}

// Package repotest builds real git repositories for tests: planted fake
// secrets (in the tree, and in a commit that a later commit removed),
// vulnerable Go code, files in several languages, and traps — build
// scripts and hooks that would create a marker file if anything ran them.
package repotest

import (
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"
)

// Planted fake secrets. Gitleaks allowlists keys ending in EXAMPLE, so these
// do not.
const (
	TreeAWSKey    = "AKIAZ4QWERTYUI2357AB"
	TreeGitHubPAT = "ghp_R7mK2xVq9LpT4nWc8ZbY3sHd6JfG1aQe5Uio"
	HistoryAWSKey = "AKIAQ7RSTUVWXY234567"
)

// Repo is a built repository.
type Repo struct {
	Dir    string // the working tree (a non-bare repository)
	Marker string // the file the traps would create
}

// Git runs git in dir and returns its trimmed output.
func Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.com", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// Commit writes files (path → content; "" deletes) and commits them.
func Commit(t testing.TB, dir, msg string, files map[string]string) string {
	t.Helper()
	for path, content := range files {
		full := filepath.Join(dir, path)
		if content == "" {
			Git(t, dir, "rm", "-q", "--", path)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(path, ".sh") {
			mode = 0o755
		}
		if err := os.WriteFile(full, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		Git(t, dir, "add", "--", path)
	}
	Git(t, dir, "commit", "-q", "-m", msg)
	return Git(t, dir, "rev-parse", "HEAD")
}

// Init creates an empty repository on branch main.
func Init(t testing.TB, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	Git(t, dir, "init", "-q", "-b", "main")
}

// Build makes the standard test repository under parent.
func Build(t testing.TB, parent string) Repo {
	t.Helper()
	dir := filepath.Join(parent, "app")
	marker := filepath.Join(parent, "PWNED")
	Init(t, dir)
	// A hook in the source repository: clones never copy hooks, but make
	// sure nothing we do runs one.
	hook := "#!/bin/sh\ntouch " + marker + "\n"
	for _, h := range []string{"post-checkout", "post-merge", "pre-commit", "post-commit"} {
		if err := os.WriteFile(filepath.Join(dir, ".git", "hooks", h), []byte(hook), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	Git(t, dir, "config", "core.hooksPath", ".git/no-hooks-while-building") // our own commits must not fire them
	Commit(t, dir, "add a secret by mistake", map[string]string{
		"old/deploy.env": "AWS_ACCESS_KEY_ID=" + HistoryAWSKey + "\n",
		"README.md":      "# app\n\nA test application.\n",
	})
	Commit(t, dir, "remove the secret", map[string]string{"old/deploy.env": ""})
	Commit(t, dir, "the application", map[string]string{
		"go.mod":            "module example.com/app\n\ngo 1.22\n",
		"main.go":           vulnerableGo(marker),
		"internal/db/db.go": "package db\n\n// Name is the driver.\nconst Name = \"sqlite\"\n",
		"config/creds.env":  "aws_access_key_id = " + TreeAWSKey + "\ngithub_token = " + TreeGitHubPAT + "\n",
		"scripts/tool.py":   "import os\n\n\ndef main():\n    # print the environment\n    for k in os.environ:\n        print(k)\n\n\nif __name__ == \"__main__\":\n    main()\n",
		"web/app.js":        "// entry point\nfunction greet(name) {\n  return 'hello ' + name;\n}\n\nmodule.exports = { greet };\n",
		"web/app.test.js":   "const { greet } = require('./app');\ntest('greets', () => {\n  expect(greet('a')).toBe('hello a');\n});\n",
		"build.sh":          "#!/bin/sh\n# a build script nobody should run\ntouch " + marker + "\n",
		"Makefile":          "all:\n\ttouch " + marker + "\n",
		"package.json":      `{"name":"app","scripts":{"preinstall":"touch ` + marker + `","postinstall":"touch ` + marker + `"},"dependencies":{"express":"4.0.0"}}` + "\n",
		".gitattributes":    "*.go filter=pwn\n",
	})
	return Repo{Dir: dir, Marker: marker}
}

func vulnerableGo(marker string) string {
	return `package main

//go:generate touch ` + marker + `

import (
	"crypto/md5"
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"os/exec"
)

func init() {
	// Would prove that analysis ran our code.
	os.WriteFile("` + marker + `", nil, 0o644)
}

func lookup(db *sql.DB, r *http.Request) {
	name := r.URL.Query().Get("name")
	rows, _ := db.Query("SELECT * FROM users WHERE name = '" + name + "'")
	_ = rows
}

func run(r *http.Request) {
	cmd := exec.Command("sh", "-c", r.URL.Query().Get("cmd"))
	_ = cmd.Run()
}

func hashPassword(password string) string {
	return fmt.Sprintf("%x", md5.Sum([]byte(password)))
}

func main() {
	http.HandleFunc("/u", func(w http.ResponseWriter, r *http.Request) { lookup(nil, r); run(r) })
	fmt.Println(hashPassword("x"))
}
`
}

// Daemon serves every repository under base over git:// on a free loopback
// port, as `git daemon`, until the test ends; it returns "127.0.0.1:port".
func Daemon(t testing.TB, base string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	ln.Close()
	cmd := exec.Command("git", "daemon", "--reuseaddr", "--export-all", "--base-path="+base, "--listen=127.0.0.1", "--port="+port, base)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1")
	if err := cmd.Start(); err != nil {
		t.Fatalf("git daemon: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("git daemon on %s did not start: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Symlink commits a symbolic link at path pointing at target.
func Symlink(t testing.TB, dir, path, target string) {
	t.Helper()
	full := filepath.Join(dir, path)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, full); err != nil {
		t.Fatal(err)
	}
	Git(t, dir, "add", "--", path)
}

// GoProxy lays out modules (path@version → file name → content) as a Go
// module proxy serves them, in a directory, and returns its file:// URL for
// GOPROXY: the go command downloads from it as from proxy.golang.org.
func GoProxy(t testing.TB, modules map[string]map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	versions := map[string][]string{}
	for pv, files := range modules {
		path, version, _ := strings.Cut(pv, "@")
		esc, err := module.EscapePath(path)
		if err != nil {
			t.Fatal(err)
		}
		at := filepath.Join(dir, esc, "@v")
		if err := os.MkdirAll(at, 0o755); err != nil {
			t.Fatal(err)
		}
		versions[at] = append(versions[at], version)
		os.WriteFile(filepath.Join(at, version+".info"), []byte(`{"Version":"`+version+`","Time":"2024-01-01T00:00:00Z"}`), 0o644)
		os.WriteFile(filepath.Join(at, version+".mod"), []byte(files["go.mod"]), 0o644)
		var zfiles []modzip.File
		for name, content := range files {
			zfiles = append(zfiles, memFile{name: name, content: content})
		}
		f, err := os.Create(filepath.Join(at, version+".zip"))
		if err != nil {
			t.Fatal(err)
		}
		if err := modzip.Create(f, module.Version{Path: path, Version: version}, zfiles); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	for at, vs := range versions {
		os.WriteFile(filepath.Join(at, "list"), []byte(strings.Join(vs, "\n")+"\n"), 0o644)
	}
	return "file://" + dir
}

// memFile is a file of a module zip.
type memFile struct{ name, content string }

func (f memFile) Path() string { return f.name }
func (f memFile) Lstat() (os.FileInfo, error) {
	return fileInfo{f}, nil
}
func (f memFile) Open() (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader(f.content)), nil
}

type fileInfo struct{ f memFile }

func (i fileInfo) Name() string       { return filepath.Base(i.f.name) }
func (i fileInfo) Size() int64        { return int64(len(i.f.content)) }
func (i fileInfo) Mode() os.FileMode  { return 0o644 }
func (i fileInfo) ModTime() time.Time { return time.Time{} }
func (i fileInfo) IsDir() bool        { return false }
func (i fileInfo) Sys() any           { return nil }

// Package repo resolves a git repository to a commit and keeps checkouts
// of commits in a cache that any replica can re-create from the commit id.
// It drives the git CLI with every guard the analysis needs: an allowlist
// of protocols, "--" before user input, no prompts, no hooks, shallow
// fetches, and limits on time and size. Nothing from the repository runs.
package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/ultramcp/durable/fault"
)

// Policy bounds what may be fetched.
type Policy struct {
	AllowLocal   bool          // local paths and file:// URLs (off by default)
	MaxBytes     int64         // size of a checkout, .git included
	CloneTimeout time.Duration // one fetch
	// HistoryDepth is how many commits a checkout holds, for the history
	// scan of secrets; the fetch stays shallow.
	HistoryDepth int
}

// DefaultPolicy is the service's default.
var DefaultPolicy = Policy{MaxBytes: 500 << 20, CloneTimeout: 5 * time.Minute, HistoryDepth: 200}

// scpLike is ssh's user@host:path; the host must not start with '-', or ssh
// would read it as an option.
var scpLike = regexp.MustCompile(`^[A-Za-z0-9._-]+@[A-Za-z0-9][A-Za-z0-9.-]*:[A-Za-z0-9._~/][A-Za-z0-9._~/-]*$`)

// Validate checks a repository reference before git ever sees it, and
// returns it in the form to pass to git. It refuses option injection
// ("-…"), transport helpers ("ext::", "fd::"), and protocols not allowed.
func (p Policy) Validate(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	switch {
	case s == "":
		return "", fault.Invalidf("repository", "required")
	case strings.HasPrefix(s, "-"):
		return "", fault.Invalidf("repository", "must not start with '-'")
	case strings.ContainsAny(s, "\x00\n\r\t "):
		return "", fault.Invalidf("repository", "must not contain whitespace or control characters")
	case strings.Contains(s, "::"):
		return "", fault.Invalidf("repository", "transport helpers such as ext:: are not allowed")
	}
	if scpLike.MatchString(s) { // git@host:owner/repo
		return s, nil
	}
	if u, err := url.Parse(s); err == nil && u.Scheme != "" && len(u.Scheme) > 1 {
		switch u.Scheme {
		case "https", "ssh", "git":
			if u.Host == "" || strings.HasPrefix(u.Host, "-") {
				return "", fault.Invalidf("repository", "%s URL needs a host", u.Scheme)
			}
			return s, nil
		case "file":
			if !p.AllowLocal {
				return "", fault.Invalidf("repository", "local repositories are not allowed (set ULTRAMCP_ALLOW_LOCAL_REPOS=true)")
			}
			return s, nil
		default:
			return "", fault.Invalidf("repository", "protocol %q is not allowed (use https, ssh or git)", u.Scheme)
		}
	}
	if !p.AllowLocal {
		return "", fault.Invalidf("repository", "local repositories are not allowed (set ULTRAMCP_ALLOW_LOCAL_REPOS=true); use an https, ssh or git URL")
	}
	abs, err := filepath.Abs(s)
	if err != nil {
		return "", fault.Invalidf("repository", "%v", err)
	}
	return abs, nil
}

// ValidateBranch checks a branch or tag name.
func ValidateBranch(b string) error {
	if b == "" {
		return nil
	}
	if strings.HasPrefix(b, "-") || strings.ContainsAny(b, " \t\n\x00~^:?*[\\") || strings.Contains(b, "..") {
		return fault.Invalidf("branch", "not a valid branch name")
	}
	return nil
}

// git runs the git CLI with the guards on. Protocols are allowlisted per
// call, prompts and hooks are off, and system/global config that could add
// helpers is ignored.
func (p Policy) git(ctx context.Context, dir string, args ...string) ([]byte, error) {
	allow := []string{
		"-c", "protocol.allow=never",
		"-c", "protocol.https.allow=always",
		"-c", "protocol.ssh.allow=always",
		"-c", "protocol.git.allow=always",
		"-c", "core.hooksPath=/dev/null",
		"-c", "core.fsmonitor=false",
		"-c", "submodule.recurse=false",
		"-c", "advice.detachedHead=false",
	}
	if p.AllowLocal {
		allow = append(allow, "-c", "protocol.file.allow=always")
	}
	cmd := exec.CommandContext(ctx, "git", append(allow, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_TERMINAL_PROMPT=0",
		"GIT_ASKPASS=/bin/false",
		"SSH_ASKPASS=/bin/false",
		"GIT_SSH_COMMAND=ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_LFS_SKIP_SMUDGE=1",
		"GIT_PROTOCOL_FROM_USER=0",
	)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if ctx.Err() != nil {
			return nil, fault.Wrap(fault.Unavailable, ctx.Err(), "git %s timed out", args[0])
		}
		return nil, classify(args[0], strings.TrimSpace(stderr.String()), err)
	}
	return out, nil
}

func classify(op, stderr string, err error) error {
	low := strings.ToLower(stderr)
	switch {
	case strings.Contains(low, "not found") || strings.Contains(low, "does not appear to be a git repository") ||
		strings.Contains(low, "does not exist") || strings.Contains(low, "no such file") || strings.Contains(low, "not a git repository"):
		return fault.New(fault.NotFound, "repository not found: %s", firstLine(stderr))
	case strings.Contains(low, "authentication failed") || strings.Contains(low, "permission denied") ||
		strings.Contains(low, "could not read username") || strings.Contains(low, "terminal prompts disabled"):
		return fault.New(fault.Permanent, "repository access denied: %s", firstLine(stderr))
	case strings.Contains(low, "couldn't find remote ref") || strings.Contains(low, "unknown revision"):
		return fault.New(fault.NotFound, "branch or commit not found: %s", firstLine(stderr))
	case strings.Contains(low, "not allowed") || strings.Contains(low, "transport"):
		return fault.New(fault.Invalid, "repository: %s", firstLine(stderr))
	}
	return fault.Wrap(fault.Unavailable, err, "git %s: %s", op, firstLine(stderr))
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return strings.TrimPrefix(s, "fatal: ")
}

var shaRe = regexp.MustCompile(`^[0-9a-f]{40}$`)

// Resolve returns the commit that branch (or the default branch, if empty)
// points at, and the branch's name.
func (p Policy) Resolve(ctx context.Context, repository, branch string) (sha, resolvedBranch string, err error) {
	if err := ValidateBranch(branch); err != nil {
		return "", "", err
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout())
	defer cancel()
	ref := "HEAD"
	if branch != "" {
		ref = branch
	}
	out, err := p.git(ctx, "", "ls-remote", "--symref", "--", repository, ref)
	if err != nil {
		return "", "", err
	}
	resolvedBranch = branch
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 3 && f[0] == "ref:" && branch == "":
			resolvedBranch = strings.TrimPrefix(f[1], "refs/heads/")
		case len(f) == 2 && shaRe.MatchString(f[0]) && sha == "":
			if branch == "" || f[1] == "refs/heads/"+branch || f[1] == "refs/tags/"+branch || f[1] == branch {
				sha = f[0]
			}
		}
	}
	if sha == "" {
		if branch != "" {
			return "", "", fault.New(fault.NotFound, "branch %q not found in the repository", branch)
		}
		return "", "", fault.New(fault.NotFound, "repository has no commits")
	}
	return sha, resolvedBranch, nil
}

func (p Policy) timeout() time.Duration {
	if p.CloneTimeout <= 0 {
		return DefaultPolicy.CloneTimeout
	}
	return p.CloneTimeout
}

// Cache holds checkouts under Dir/<sha>.
type Cache struct {
	Dir    string
	Policy Policy
}

// complete marks a finished checkout; a directory without it is a crashed
// fetch and is fetched again.
const complete = ".ultramcp-complete"

// Ensure returns the checkout of sha from repository, fetching it if this
// host lacks it. Any step may call it: the commit id is all it needs.
func (c *Cache) Ensure(ctx context.Context, repository, sha string) (string, error) {
	if !shaRe.MatchString(sha) {
		return "", fault.New(fault.Invalid, "commit %q is not a full sha", sha)
	}
	dir := filepath.Join(c.Dir, sha)
	if _, err := os.Stat(filepath.Join(dir, complete)); err == nil {
		return filepath.Join(dir, "tree"), nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	tmp := dir + ".tmp-" + fmt.Sprint(time.Now().UnixNano())
	defer os.RemoveAll(tmp)
	tree := filepath.Join(tmp, "tree")
	if err := os.MkdirAll(tree, 0o755); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, c.Policy.timeout())
	defer cancel()
	depth := c.Policy.HistoryDepth
	if depth <= 0 {
		depth = 1
	}
	steps := [][]string{
		{"init", "--quiet", "--template=", "."},
		{"fetch", "--quiet", "--no-tags", "--no-recurse-submodules", fmt.Sprintf("--depth=%d", depth), "--", repository, sha},
		{"checkout", "--quiet", "--detach", sha},
	}
	for _, args := range steps {
		if _, err := c.Policy.git(ctx, tree, args...); err != nil {
			return "", err
		}
		if size, err := dirSize(tmp); err == nil && c.Policy.MaxBytes > 0 && size > c.Policy.MaxBytes {
			return "", fault.New(fault.Invalid, "repository too large: %d MB, the limit is %d MB", size>>20, c.Policy.MaxBytes>>20)
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, complete), []byte(repository+"\n"), 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, statErr := os.Stat(filepath.Join(dir, complete)); statErr == nil {
			return filepath.Join(dir, "tree"), nil // another step won the race
		}
		return "", err
	}
	return filepath.Join(dir, "tree"), nil
}

// Remove deletes the checkout of sha (a saga's compensation, or cleanup).
func (c *Cache) Remove(sha string) error {
	if !shaRe.MatchString(sha) {
		return errors.New("not a sha")
	}
	return os.RemoveAll(filepath.Join(c.Dir, sha))
}

// Prune removes checkouts last fetched before cutoff and returns how many.
func (c *Cache) Prune(cutoff time.Time) (int, error) {
	entries, err := os.ReadDir(c.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !e.IsDir() || info.ModTime().After(cutoff) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(c.Dir, e.Name())); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func dirSize(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	return total, err
}

// Package repo resolves a git repository to a commit and keeps checkouts
// of commits in a cache that any replica can re-create from the commit id.
// A repository is untrusted input, so git runs with every guard on: an
// allowlist of protocols, "--" before user input, no prompts, hooks,
// credential helpers, redirects, proxies or inherited configuration and
// identity; hosts checked against a policy on the addresses git will
// connect to; sizes bounded before a checkout is written; symbolic links
// checked out as plain files. Nothing from the repository runs.
package repo

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/sanitize"
)

// Policy bounds what may be fetched, and from where.
type Policy struct {
	AllowLocal bool // local paths and file:// URLs (off by default)
	// Hosts are the host names and addresses allowed although internal
	// (ULTRAMCP_REPO_HOSTS); when set, no other host is allowed.
	Hosts []string
	// MaxBytes bounds a checkout: the files of the commit, and every file
	// version of the history fetched with it, counted before the checkout
	// is written.
	MaxBytes     int64
	CloneTimeout time.Duration // one fetch
	// HistoryDepth is how many commits a checkout holds, for the history
	// scan of secrets; the fetch stays shallow.
	HistoryDepth int
	// Lookup resolves a host name; nil is the system resolver. git gets
	// the addresses it returns, never the name to look up again.
	Lookup func(ctx context.Context, host string) ([]netip.Addr, error)
	// Log receives git's own messages, bounded and cleaned; requesters see
	// only a classified reason. Nil is slog.Default().
	Log *slog.Logger
}

// DefaultPolicy is the service's default.
var DefaultPolicy = Policy{MaxBytes: 500 << 20, CloneTimeout: 5 * time.Minute, HistoryDepth: 200}

// MaxHistoryBlob is the largest file version that git shows as text in the
// history the secrets scan reads; larger ones read as binary, so a large
// file in history costs no memory there.
const MaxHistoryBlob = 2 << 20

// scpLike is ssh's user@host:path; neither user nor host may start with
// '-', or ssh would read it as an option.
var scpLike = regexp.MustCompile(`^([A-Za-z0-9._][A-Za-z0-9._-]*)@([A-Za-z0-9][A-Za-z0-9.-]*|\[[0-9A-Fa-f:.]+\]):([A-Za-z0-9._~/][A-Za-z0-9._~/-]*)$`)

// transportHelper is git's "<transport>::<address>" form, which runs a
// helper program.
var transportHelper = regexp.MustCompile(`^[A-Za-z0-9+.-]*::`)

// sshUser is what an ssh user name may be.
var sshUser = regexp.MustCompile(`^[A-Za-z0-9._][A-Za-z0-9._-]*$`)

// Validate checks a repository reference before git ever sees it, and
// returns it in the form to pass to git. It refuses option injection
// ("-…"), transport helpers ("ext::", "fd::"), protocols not allowed,
// credentials in the URL, and hosts the policy refuses as written; a host
// name is checked again on its addresses when git connects. Errors never
// repeat the reference, which may hold a credential.
func (p Policy) Validate(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	if err := CheckSyntax("repository", s); err != nil {
		return "", err
	}
	if m := scpLike.FindStringSubmatch(s); m != nil { // git@host:owner/repo
		if _, err := p.hostAllowed(m[2]); err != nil {
			return "", err
		}
		return s, nil
	}
	if u, err := url.Parse(s); err == nil && u.Scheme != "" && len(u.Scheme) > 1 {
		switch u.Scheme {
		case "https", "ssh", "git":
			if err := p.validateRemote(u); err != nil {
				return "", err
			}
			return s, nil
		case "file":
			if !p.AllowLocal {
				return "", fault.Invalidf("repository", "local repositories are not allowed (set ULTRAMCP_ALLOW_LOCAL_REPOS=true)")
			}
			return s, nil
		default:
			return "", fault.Invalidf("repository", "protocol %q is not allowed (use https, ssh or git)", sanitize.Line(u.Scheme))
		}
	} else if err != nil && strings.Contains(s, "://") {
		return "", fault.Invalidf("repository", "not a valid URL")
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

// CheckSyntax checks what any policy refuses in a repository reference, for
// the input field named field: it needs no configuration, so a workflow can
// check it before its first step.
func CheckSyntax(field, raw string) error {
	s := strings.TrimSpace(raw)
	switch {
	case s == "":
		return fault.Invalidf(field, "required")
	case strings.HasPrefix(s, "-"):
		return fault.Invalidf(field, "must not start with '-'")
	case strings.ContainsAny(s, "\x00\n\r\t "):
		return fault.Invalidf(field, "must not contain whitespace or control characters")
	case transportHelper.MatchString(s):
		return fault.Invalidf(field, "transport helpers such as ext:: are not allowed")
	}
	return nil
}

func (p Policy) validateRemote(u *url.URL) error {
	host := u.Hostname()
	if host == "" || strings.HasPrefix(host, "-") {
		return fault.Invalidf("repository", "%s URL needs a host", u.Scheme)
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fault.Invalidf("repository", "port must be a number from 1 to 65535")
		}
	}
	if u.User != nil {
		_, hasPassword := u.User.Password()
		if u.Scheme != "ssh" || hasPassword {
			return fault.Invalidf("repository", "must not hold credentials (user:token@): the service fetches without them; use a public URL or an allowed internal host")
		}
		if !sshUser.MatchString(u.User.Username()) {
			return fault.Invalidf("repository", "ssh user name must be letters, digits, '.', '_' or '-', not starting with '-'")
		}
	}
	_, err := p.hostAllowed(host)
	return err
}

// ValidateBranch checks a branch or tag name.
func ValidateBranch(b string) error {
	if b == "" {
		return nil
	}
	if strings.HasPrefix(b, "-") || strings.ContainsAny(b, " \t\n\x00~^:?*[\\") || strings.Contains(b, "..") || sanitize.Line(b) != b {
		return fault.Invalidf("branch", "not a valid branch name")
	}
	return nil
}

// remote is a repository reference made ready for git: a URL whose host
// git connects to at checked addresses only.
type remote struct {
	url  string
	args []string // -c options
	ssh  string   // extra ssh options
}

// prepare checks the host of repository on its resolved addresses and pins
// git to them: https through curl's resolve list, git:// by connecting to
// the address itself, ssh through its HostName option.
func (p Policy) prepare(ctx context.Context, repository string) (remote, error) {
	r := remote{url: repository}
	if m := scpLike.FindStringSubmatch(repository); m != nil {
		addrs, err := p.pin(ctx, m[2])
		if err != nil {
			return r, err
		}
		r.ssh = "-o HostName=" + addrs[0].String()
		return r, nil
	}
	u, err := url.Parse(repository)
	if err != nil || u.Scheme == "" || len(u.Scheme) == 1 || u.Scheme == "file" {
		return r, nil // a local repository, allowed by Validate
	}
	if err := p.validateRemote(u); err != nil {
		return r, err
	}
	addrs, err := p.pin(ctx, u.Hostname())
	if err != nil {
		return r, err
	}
	switch u.Scheme {
	case "https":
		port := u.Port()
		if port == "" {
			port = "443"
		}
		list := make([]string, len(addrs))
		for i, a := range addrs {
			list[i] = bracket(a)
		}
		r.args = []string{"-c", "http.curloptResolve=" + u.Hostname() + ":" + port + ":" + strings.Join(list, ",")}
	case "git":
		pinned := *u
		pinned.Host = bracket(addrs[0])
		if u.Port() != "" {
			pinned.Host = net.JoinHostPort(addrs[0].String(), u.Port())
		}
		r.url = pinned.String()
	case "ssh":
		r.ssh = "-o HostName=" + addrs[0].String()
	}
	return r, nil
}

func bracket(a netip.Addr) string {
	if a.Is6() {
		return "[" + a.String() + "]"
	}
	return a.String()
}

// git runs the git CLI with the guards on, in an environment of its own:
// no inherited configuration (system, global, XDG), no credential helper,
// no ssh keys, agent or ssh config, no proxy, and none of the service's
// secrets. home is an empty directory for this call.
func (p Policy) git(ctx context.Context, dir string, r *remote, args ...string) ([]byte, error) {
	home, err := os.MkdirTemp("", "ultramcp-git-home-")
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err, "git home")
	}
	defer os.RemoveAll(home)
	guards := []string{
		"-c", "protocol.allow=never",
		"-c", "protocol.https.allow=always",
		"-c", "protocol.ssh.allow=always",
		"-c", "protocol.git.allow=always",
		"-c", "core.hooksPath=/dev/null",
		"-c", "core.fsmonitor=false",
		"-c", "core.symlinks=false",
		"-c", "core.bigFileThreshold=" + strconv.Itoa(MaxHistoryBlob),
		"-c", "transfer.fsckObjects=true",
		"-c", "submodule.recurse=false",
		"-c", "credential.helper=",
		"-c", "http.followRedirects=false",
		"-c", "http.proxy=",
		"-c", "advice.detachedHead=false",
	}
	if p.AllowLocal {
		guards = append(guards, "-c", "protocol.file.allow=always")
	}
	sshCmd := "ssh -F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes -o IdentityFile=/dev/null -o IdentityAgent=none" +
		" -o PasswordAuthentication=no -o KbdInteractiveAuthentication=no -o StrictHostKeyChecking=accept-new" +
		" -o GlobalKnownHostsFile=/dev/null -o UserKnownHostsFile=" + home + "/known_hosts -o ProxyCommand=none"
	if r != nil {
		guards = append(guards, r.args...)
		if r.ssh != "" {
			sshCmd += " " + r.ssh
		}
	}
	cmd := exec.CommandContext(ctx, "git", append(guards, args...)...)
	cmd.Dir = dir
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"XDG_CONFIG_HOME=" + home,
		"LANG=C", "LC_ALL=C",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=" + os.DevNull,
		"GIT_TERMINAL_PROMPT=0",
		"GIT_ASKPASS=/bin/false",
		"SSH_ASKPASS=/bin/false",
		"GIT_SSH_COMMAND=" + sshCmd,
		"GIT_LFS_SKIP_SMUDGE=1",
		"GIT_PROTOCOL_FROM_USER=0",
	}
	var stderr bytes.Buffer
	cmd.Stderr = &limitedBuffer{buf: &stderr, max: 16 << 10}
	out, err := cmd.Output()
	if err != nil {
		if ctx.Err() != nil {
			return nil, fault.Wrap(fault.Unavailable, ctx.Err(), "git %s timed out", args[0])
		}
		detail := sanitize.URLCredentials(sanitize.Line(strings.TrimSpace(stderr.String())))
		p.logger().Warn("git failed", "op", args[0], "err", err, "stderr", detail[:min(len(detail), 2048)])
		return nil, classify(args[0], stderr.String())
	}
	return out, nil
}

func (p Policy) logger() *slog.Logger {
	if p.Log != nil {
		return p.Log
	}
	return slog.Default()
}

// limitedBuffer keeps the first max bytes written and drops the rest, so a
// server cannot fill memory through git's stderr.
type limitedBuffer struct {
	buf *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(b []byte) (int, error) {
	if room := l.max - l.buf.Len(); room > 0 {
		l.buf.Write(b[:min(len(b), room)])
	}
	return len(b), nil
}

// classify turns git's stderr into a short reason of our own words: what
// the git server wrote ("remote: …") and which ports answered never reach
// the requester.
func classify(op, stderr string) error {
	low := strings.ToLower(stderr)
	has := func(subs ...string) bool {
		for _, s := range subs {
			if strings.Contains(low, s) {
				return true
			}
		}
		return false
	}
	switch {
	case has("could not resolve host", "name or service not known", "temporary failure in name resolution"):
		return fault.New(fault.NotFound, "repository host not found")
	case has("couldn't find remote ref", "unknown revision", "not our ref", "no such remote ref"):
		return fault.New(fault.NotFound, "branch or commit not found in the repository")
	case has("fsck", "error in object", "is corrupt", "bad object", "invalid object", "malformed"):
		return fault.New(fault.Permanent, "repository rejected: its objects fail git's integrity checks")
	case has("redirect"):
		return fault.New(fault.Permanent, "repository host answered with a redirect, which is not followed; use the final URL")
	case has("authentication failed", "permission denied", "could not read username", "terminal prompts disabled",
		"could not read password", "returned error: 401", "returned error: 403", "host key verification failed"):
		return fault.New(fault.Permanent, "repository access denied: the service fetches without credentials")
	case has("ssl", "certificate", "tls"):
		return fault.New(fault.Permanent, "repository host: TLS connection failed")
	case has("not found", "does not appear to be a git repository", "does not exist", "no such file", "not a git repository",
		"returned error: 404", "repository not exported"):
		return fault.New(fault.NotFound, "repository not found")
	case has("connection refused", "could not connect", "failed to connect", "unable to connect", "timed out",
		"no route to host", "network is unreachable", "connection reset", "could not read from remote repository", "unable to access"):
		return fault.New(fault.Unavailable, "could not fetch from the repository host")
	case has("not allowed", "unsupported protocol"):
		return fault.New(fault.Invalid, "repository: protocol not allowed")
	}
	return fault.New(fault.Unavailable, "git %s failed", op)
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
	r, err := p.prepare(ctx, repository)
	if err != nil {
		return "", "", err
	}
	ref := "HEAD"
	if branch != "" {
		ref = branch
	}
	out, err := p.git(ctx, "", &r, "ls-remote", "--symref", "--", r.url, ref)
	if err != nil {
		return "", "", err
	}
	resolvedBranch = branch
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 3 && f[0] == "ref:" && branch == "":
			// The server names its default branch: untrusted text.
			resolvedBranch = sanitize.Line(strings.TrimPrefix(f[1], "refs/heads/"))
			resolvedBranch = resolvedBranch[:min(len(resolvedBranch), 200)]
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

// Package secrets finds credentials in a checkout with gitleaks (as a
// library, its default rules): in the files of the tree and in the
// history the checkout holds, so a key that a later commit removed is still
// found. A secret never leaves this package in full: findings carry a
// redacted excerpt and gitleaks' fingerprint.
package secrets

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/rs/zerolog"
	"github.com/zricethezav/gitleaks/v8/config"
	"github.com/zricethezav/gitleaks/v8/detect"
	"github.com/zricethezav/gitleaks/v8/logging"
	"github.com/zricethezav/gitleaks/v8/report"
	"github.com/zricethezav/gitleaks/v8/sources"

	"github.com/ultramcp/durable/analysis"
	"github.com/ultramcp/durable/fault"
	"github.com/ultramcp/durable/sanitize"
)

func init() {
	// gitleaks logs through a global logger to stderr, findings included.
	logging.Logger = zerolog.Nop()
}

// MaxFileSize skips files larger than this (bytes).
const MaxFileSize = 10 << 20

// Scan scans the tree at dir and its git history. A failure is reported
// in a few words; its cause, which can quote git's messages about the
// repository, goes to log only.
func Scan(ctx context.Context, dir string, log *slog.Logger) ([]analysis.Finding, error) {
	if log == nil {
		log = slog.Default()
	}
	tree, err := scanTree(ctx, dir)
	if err != nil {
		return nil, opaque(log, "the tree", err)
	}
	history, err := scanHistory(ctx, dir)
	if err != nil {
		return nil, opaque(log, "the history", err)
	}
	return merge(append(tree, history...)), nil
}

// merge makes one finding of each secret: the tree's place first, the
// commits it was also seen in as further locations.
func merge(found []analysis.Finding) []analysis.Finding {
	var out []analysis.Finding
	at := map[string]int{}
	for _, f := range found {
		i, seen := at[f.Fingerprint]
		if !seen {
			at[f.Fingerprint] = len(out)
			out = append(out, f)
			continue
		}
		if len(out[i].Also) < 20 {
			out[i].Also = append(out[i].Also, analysis.Location{File: f.File, Line: f.Line, Commit: f.Commit})
		}
	}
	return out
}

func opaque(log *slog.Logger, what string, err error) error {
	if kind := fault.KindOf(err); kind == fault.Unavailable || kind == fault.Cancelled {
		return err
	}
	detail := sanitize.Line(err.Error())
	log.Warn("secrets scan failed", "scope", what, "detail", RedactText(detail[:min(len(detail), 4096)]))
	return fault.New(fault.KindOf(err), "gitleaks could not scan %s", what)
}

func scanTree(ctx context.Context, dir string) ([]analysis.Finding, error) {
	d, err := detect.NewDetectorDefaultConfig() // a Detector accumulates: one per scan
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err, "gitleaks config")
	}
	found, err := d.DetectSource(ctx, &sources.Files{Config: &d.Config, Path: dir, Sema: d.Sema, MaxFileSize: MaxFileSize})
	if err != nil {
		return nil, fault.Wrap(fault.Permanent, err, "gitleaks tree scan")
	}
	out := make([]analysis.Finding, 0, len(found))
	for _, f := range found {
		if strings.HasPrefix(f.File, ".git/") || strings.Contains(f.File, "/.git/") {
			continue // the history scan reports these
		}
		out = append(out, convert(f, dir, ""))
	}
	return out, nil
}

func scanHistory(ctx context.Context, dir string) ([]analysis.Finding, error) {
	d, err := detect.NewDetectorDefaultConfig()
	if err != nil {
		return nil, fault.Wrap(fault.Internal, err, "gitleaks config")
	}
	cmd, err := sources.NewGitLogCmdContext(ctx, dir, "")
	if err != nil {
		return nil, fault.Wrap(fault.Permanent, err, "git log")
	}
	found, err := d.DetectSource(ctx, &sources.Git{Cmd: cmd, Config: &d.Config, Remote: &sources.RemoteInfo{}, Sema: d.Sema})
	if err != nil {
		return nil, fault.Wrap(fault.Permanent, err, "gitleaks history scan")
	}
	out := make([]analysis.Finding, 0, len(found))
	for _, f := range found {
		out = append(out, convert(f, dir, f.Commit))
	}
	return out, nil
}

func convert(f report.Finding, dir, commit string) analysis.Finding {
	file := strings.TrimPrefix(strings.TrimPrefix(f.File, dir), "/")
	return analysis.Finding{
		Tool:        "gitleaks",
		RuleID:      f.RuleID,
		Title:       f.Description,
		Severity:    analysis.SeverityHigh,
		CWE:         "CWE-798",
		File:        file,
		Line:        f.StartLine,
		Commit:      commit,
		Excerpt:     Redact(f.Secret),
		Fingerprint: fingerprint(file, f.RuleID, f.Secret),
	}
}

// fingerprint identifies a secret by rule and a short digest of it (32
// bits: enough to tell secrets apart, far too little to recover one), so
// the same secret in the tree and in history, or moved to another line, is
// one finding.
func fingerprint(file, rule, secret string) string {
	h := sha256.Sum256([]byte("ultramcp-secret-v1:" + secret))
	return file + ":" + rule + ":" + hex.EncodeToString(h[:4])
}

// publicPrefixes are the documented, non-secret prefixes of well-known
// credential formats: they say what kind of secret it is and nothing of it.
var publicPrefixes = []string{
	"github_pat_", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "glpat-", "xoxb-", "xoxp-", "xoxa-", "xapp-",
	"sk-ant-", "sk-proj-", "sk_live_", "sk_test_", "rk_live_", "pk_live_", "AKIA", "ASIA", "AIza", "npm_", "pypi-", "SG.",
}

// Redact keeps of a secret only what is public about it: a well-known
// prefix, if it has one, and its length.
func Redact(secret string) string {
	n := utf8.RuneCountInString(secret)
	for _, p := range publicPrefixes {
		if strings.HasPrefix(secret, p) && n > len(p)+8 {
			return fmt.Sprintf("%s**** (%d chars)", p, n)
		}
	}
	return fmt.Sprintf("**** (%d chars)", n)
}

var (
	configOnce sync.Once
	rules      config.Config
	configErr  error
)

// RedactText replaces every secret gitleaks' rules find in text (a line of
// code shown as an excerpt, a tool's message) by its redacted form.
func RedactText(text string) string {
	configOnce.Do(func() {
		d, err := detect.NewDetectorDefaultConfig()
		if err != nil {
			configErr = err
			return
		}
		rules = d.Config
	})
	if configErr != nil || text == "" {
		return text
	}
	d := detect.NewDetector(rules)
	for _, f := range d.DetectString(text) {
		if f.Secret != "" {
			text = strings.ReplaceAll(text, f.Secret, Redact(f.Secret))
		}
	}
	return text
}

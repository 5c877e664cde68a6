// Package sanitize makes text from untrusted sources — a repository's file
// and branch names, a git server's messages, a model's answer — safe to
// show: no C0/C1 control characters (so no ANSI/OSC escape reaches a
// terminal), no bidirectional overrides (so text reads as it is stored),
// and, for reports, Markdown and HTML escaped. It imports nothing of ours,
// so every layer can use it.
package sanitize

import (
	"regexp"
	"strings"
	"unicode/utf8"
)

// dropped reports whether r never belongs in displayed text: C0 and C1
// controls, DEL, and the Unicode bidirectional overrides and isolates
// ("Trojan Source").
func dropped(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
		return true
	}
	return false
}

// Text keeps newlines and tabs and removes every other control character
// and invalid UTF-8. Carriage returns go too: "\r" can overwrite a line.
func Text(s string) string { return filter(s, true) }

// Line is Text on one line: newlines and tabs become spaces.
func Line(s string) string { return filter(s, false) }

func filter(s string, multiline bool) string {
	if clean(s, multiline) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range strings.ToValidUTF8(s, "") {
		switch {
		case (r == '\n' || r == '\t') && multiline:
			b.WriteRune(r)
		case r == '\n' || r == '\t':
			b.WriteByte(' ')
		case !dropped(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

func clean(s string, multiline bool) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if multiline && (r == '\n' || r == '\t') {
			continue
		}
		if dropped(r) {
			return false
		}
	}
	return true
}

// html escapes the characters that start HTML markup or entities.
var html = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// markdownInline also escapes what Markdown reads as emphasis, links,
// code, headings, table cells and raw HTML.
var markdownInline = strings.NewReplacer(
	"&", "&amp;", "<", "&lt;", ">", "&gt;",
	"\\", "\\\\", "`", "\\`", "*", "\\*", "_", "\\_", "[", "\\[", "]", "\\]",
	"|", "\\|", "#", "\\#", "!", "\\!", "~", "\\~",
)

// MarkdownCell is s as literal text on one line of Markdown (a table cell,
// a list item, a heading): controls removed, markup escaped.
func MarkdownCell(s string) string { return markdownInline.Replace(Line(s)) }

// MarkdownText is a paragraph of prose from a model: controls removed and
// HTML escaped, Markdown emphasis kept.
func MarkdownText(s string) string { return html.Replace(Text(s)) }

// CodeSpan renders s as inline code on one line: a run of backticks longer
// than any inside s delimits it, so nothing in s is lost or read as markup;
// "|" is escaped, as GitHub tables require even inside code.
func CodeSpan(s string) string {
	s = Line(s)
	longest, run := 0, 0
	for _, r := range s {
		if r == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	fence := strings.Repeat("`", longest+1)
	pad := ""
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		pad = " "
	}
	return fence + pad + strings.ReplaceAll(s, "|", "\\|") + pad + fence
}

// urlCredentials is the user information of a URL: "://user:token@".
var urlCredentials = regexp.MustCompile(`://[^/@\s"]+@`)

// URLCredentials replaces the user information of every URL in s by "***",
// so a credential in a URL reaches no log or record.
func URLCredentials(s string) string { return urlCredentials.ReplaceAllString(s, "://***@") }

// FirstLine is s's first line, cut to at most n bytes on a rune boundary,
// "…" marking a cut: a failure's gist for a status line or a table cell.
func FirstLine(s string, n int) string {
	s, _, _ = strings.Cut(s, "\n")
	return Cut(s, n)
}

// Cut is s cut to at most n bytes, at a rune's start, with "…" when it was
// longer.
func Cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

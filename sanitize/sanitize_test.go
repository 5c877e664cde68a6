package sanitize

import (
	"strings"
	"testing"
)

func TestLineAndText(t *testing.T) {
	cases := []struct{ in, line, text string }{
		{"plain", "plain", "plain"},
		{"\x1b[31mred\x1b[0m", "[31mred[0m", "[31mred[0m"},
		{"title\x1b]0;pwned\x07", "title]0;pwned", "title]0;pwned"},
		{"a\r\nb\tc", "a b c", "a\nb\tc"},
		{"csi\u009b31m", "csi31m", "csi31m"},
		{"bidi\u202eevil", "bidievil", "bidievil"},
		{"bad\xffutf8", "badutf8", "badutf8"},
	}
	for _, tc := range cases {
		if got := Line(tc.in); got != tc.line {
			t.Errorf("Line(%q) = %q, want %q", tc.in, got, tc.line)
		}
		if got := Text(tc.in); got != tc.text {
			t.Errorf("Text(%q) = %q, want %q", tc.in, got, tc.text)
		}
	}
}

func TestMarkdown(t *testing.T) {
	got := MarkdownCell("<img src=x onerror=alert(1)>|**b**\x1b[2J")
	if strings.ContainsAny(got, "<>\x1b") || strings.Contains(got, "|**") {
		t.Errorf("MarkdownCell left markup: %q", got)
	}
	if got := MarkdownText("see <script>x</script> and **this**\n"); got != "see &lt;script&gt;x&lt;/script&gt; and **this**\n" {
		t.Errorf("MarkdownText = %q", got)
	}
	for in, want := range map[string]string{
		"a := `x`":  "`` a := `x` ``",
		"`edge`":    "`` `edge` ``",
		"a|b":       "`a\\|b`",
		"k=\"v\"\n": "`k=\"v\" `",
	} {
		if got := CodeSpan(in); got != want {
			t.Errorf("CodeSpan(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWriterAcrossWrites(t *testing.T) {
	var b strings.Builder
	w := NewWriter(&b)
	in := "ok \x1b]0;x\x07é\u009b2J\r\n{\"a\":\"b\"}\n"
	raw := []byte(in)
	for i := range raw { // one byte at a time: runes split across writes
		if _, err := w.Write(raw[i : i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := b.String(), "ok ]0;xé2J\n{\"a\":\"b\"}\n"; got != want {
		t.Errorf("wrote %q, want %q", got, want)
	}
}

func TestURLCredentials(t *testing.T) {
	in := `{"repository":"https://u:TOKEN@host/r.git"} fatal: unable to access 'https://tok@x.example/a'`
	got := URLCredentials(in)
	if strings.Contains(got, "TOKEN") || strings.Contains(got, "tok@") || !strings.Contains(got, "https://***@host/r.git") {
		t.Errorf("URLCredentials = %q", got)
	}
}

func TestCutAtARune(t *testing.T) {
	if got := Cut("ééé", 3); got != "é…" {
		t.Errorf("%q", got)
	}
	if got := FirstLine("boom\nAuthorization: Bearer x", 300); got != "boom" {
		t.Errorf("%q", got)
	}
}

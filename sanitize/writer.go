package sanitize

import (
	"io"
	"unicode/utf8"
)

// Writer passes text through to a terminal (or a file, or a pipe) without
// the characters Text removes. It keeps a rune split across two writes
// until its last byte arrives. The CLI writes all its output through one,
// so nothing a repository, a git server or a model wrote can move the
// cursor, retitle the window or hide a line, whichever path it took.
type Writer struct {
	w       io.Writer
	pending []byte
}

// NewWriter returns a Writer to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

func (s *Writer) Write(p []byte) (int, error) {
	buf := append(s.pending, p...)
	s.pending = nil
	// An incomplete rune at the end waits for the next write.
	for i := len(buf) - 1; i >= 0 && i >= len(buf)-utf8.UTFMax; i-- {
		if utf8.RuneStart(buf[i]) {
			if !utf8.FullRune(buf[i:]) {
				s.pending = append([]byte(nil), buf[i:]...)
				buf = buf[:i]
			}
			break
		}
	}
	out := make([]byte, 0, len(buf))
	for len(buf) > 0 {
		r, size := utf8.DecodeRune(buf)
		if r == utf8.RuneError && size <= 1 {
			buf = buf[1:]
			continue
		}
		if r == '\n' || r == '\t' || !dropped(r) {
			out = append(out, buf[:size]...)
		}
		buf = buf[size:]
	}
	if _, err := s.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Package logline keeps cgrun's own stderr (the journal's lines) readable and bounded: what
// comes from the user's side — a dump file's name — is escaped, and no line runs past MaxLine.
package logline

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxLine is the longest line Writer passes on, in bytes, the newline not counted.
const MaxLine = 4096

// Escape writes the control characters in s (C0 with newline and tab, DEL, C1, and invalid
// UTF-8) as Go escapes: a name with "\n" or ESC in it prints as \n or \x1b, never as a second
// line or a terminal command.
func Escape(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
			fmt.Fprintf(&b, "\\x%02x", s[i])
		case r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Writer passes cgrun's messages on to W line by line: the control characters in a line other
// than tab are escaped (Escape), and a line longer than MaxLine is cut with a note of how much
// was left out. Newlines stay: each call to Write is one or more whole lines of cgrun's own, so
// a name must be escaped where it is put into a message (Escape) — Writer is the net below.
type Writer struct {
	W io.Writer
}

func (w Writer) Write(p []byte) (int, error) {
	var out strings.Builder
	rest := string(p)
	for rest != "" {
		line, tail, nl := strings.Cut(rest, "\n")
		rest = tail
		if len(line) > MaxLine {
			cut := MaxLine
			for cut > 0 && !utf8.RuneStart(line[cut]) {
				cut--
			}
			line = fmt.Sprintf("%s… (%d more bytes)", line[:cut], len(line)-cut)
		}
		parts := strings.Split(line, "\t")
		for i := range parts {
			parts[i] = Escape(parts[i])
		}
		out.WriteString(strings.Join(parts, "\t"))
		if nl {
			out.WriteByte('\n')
		}
	}
	if _, err := io.WriteString(w.W, out.String()); err != nil {
		return 0, err
	}
	return len(p), nil
}

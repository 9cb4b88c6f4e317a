package logline

import (
	"strings"
	"testing"
)

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"plain/dump-1.heapsnapshot":              "plain/dump-1.heapsnapshot",
		"a\nb":                                   `a\nb`,
		"\x1b]0;pwned\a":                         `\x1b]0;pwned\a`,
		"csi\u009b2J":                            `csi\u009b2J`,
		"bad\xffutf8":                            `bad\xffutf8`,
		"é ok":                                   "é ok",
		"x\ncgrun: app killed by the OOM killer": `x\ncgrun: app killed by the OOM killer`,
	} {
		if have := Escape(in); have != want {
			t.Errorf("Escape(%q) = %q, want %q", in, have, want)
		}
	}
}

func TestWriterBoundsAndEscapesEachLine(t *testing.T) {
	var b strings.Builder
	w := Writer{W: &b}
	long := strings.Repeat("é", MaxLine) // 2 bytes each: cut on a rune boundary
	msg := "cgrun: one\tline \x1b[2J\n" + long + "\nlast"
	if n, err := w.Write([]byte(msg)); err != nil || n != len(msg) {
		t.Fatalf("Write: %d, %v", n, err)
	}
	lines := strings.Split(b.String(), "\n")
	if len(lines) != 3 || lines[0] != `cgrun: one	line \x1b[2J` || lines[2] != "last" {
		t.Errorf("lines %q", lines)
	}
	if l := lines[1]; len(l) > MaxLine+40 || !strings.HasSuffix(l, "… (4096 more bytes)") || !strings.HasPrefix(l, "éé") {
		t.Errorf("long line: %d bytes, ends %q", len(l), l[len(l)-30:])
	}
}

package launch

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestShortCommandIsValidUTF8(t *testing.T) {
	long := strings.Repeat("é", 150) // 300 bytes: the cut at 199 falls inside a character
	for _, tc := range []struct {
		name string
		argv []string
		want string // "" checks validity and length only
	}{
		{"plain", []string{"node", "worker.js"}, "node worker.js"},
		{"invalid bytes", []string{"php", "\xff\xfe", "a\xc3"}, "php \uFFFD a\uFFFD"},
		{"cut inside a character", []string{long}, ""},
		{"invalid tail at the cut", []string{strings.Repeat("x", 197) + "\xe2\x82"}, strings.Repeat("x", 197) + "\uFFFD"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			have := shortCommand(tc.argv)
			if !utf8.ValidString(have) {
				t.Errorf("shortCommand(%q) = %q: not valid UTF-8", tc.argv, have)
			}
			if len(have) > 203 {
				t.Errorf("shortCommand(%q) is %d bytes long", tc.argv, len(have))
			}
			if tc.want != "" && have != tc.want {
				t.Errorf("shortCommand(%q) = %q, want %q", tc.argv, have, tc.want)
			}
		})
	}
}

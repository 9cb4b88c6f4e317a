package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/pflag"
)

// A misspelt flag is refused, but a misspelt variable would be ignored: CGRUN_MEMORY_MAXX in a
// unit leaves the command without its limit, and nothing says so. cgrun names the flag or the
// variable a misspelt one is closest to, and warns of a CGRUN_ variable close to one of its own.

// otherVars are the CGRUN_ variables of cgrun's that no flag has: a knob of the start path,
// advise's trace, and the two a --diagnose-cmd is given.
func otherVars() []string {
	return []string{"CGRUN_NO_CLONE3", "CGRUN_ADVISE_TRACE", "CGRUN_CHILD_PID", "CGRUN_DUMP_DIR"}
}

// misspeltVars warns of each CGRUN_ variable in env that sets nothing and is within a typo of
// one that would: one line for each, naming it. A CGRUN_ variable far from all of cgrun's is
// someone else's (a script's, a test harness's) and is left alone.
func misspeltVars(fs *pflag.FlagSet, env []string) []string {
	var known []string // less CGRUN_
	for _, v := range otherVars() {
		known = append(known, v[len("CGRUN_"):])
	}
	fs.VisitAll(func(fl *pflag.Flag) {
		if fl.Name != "help" {
			known = append(known, envName(fl.Name)[len("CGRUN_"):])
		}
	})
	var lines []string
	seen := map[string]bool{}
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, "CGRUN_") || seen[k] || slices.Contains(known, k[len("CGRUN_"):]) {
			continue
		}
		seen[k] = true
		if near := nearest(k[len("CGRUN_"):], known); near != "" {
			lines = append(lines, fmt.Sprintf("%s sets nothing; did you mean CGRUN_%s?", k, near))
		}
	}
	return lines
}

// unknownFlag adds the flag meant to pflag's "unknown flag: --NAME", when one is close.
func unknownFlag(fs *pflag.FlagSet, err error) error {
	name, ok := strings.CutPrefix(err.Error(), "unknown flag: --")
	if !ok {
		return err
	}
	var flags []string
	fs.VisitAll(func(fl *pflag.Flag) { flags = append(flags, fl.Name) })
	if near := nearest(name, flags); near != "" {
		return fmt.Errorf("%w (did you mean --%s?)", err, near)
	}
	return err
}

// nearest is the candidate word most likely meant, "" when none is likely: written in the same
// case and with the same separator ("_" or "-"), with "limit" read as "max" (systemd's
// MemoryLimit= is MemoryMax= now). Likely, in this order, and only when one candidate is: each
// part of word begins the candidate's part (MEM_MAX for MEMORY_MAX), word is the candidate's end
// (SWAP_MAX for MEMORY_SWAP_MAX), or a typo away (an edit distance of 1 for up to 5 letters, 2 up
// to 9, 3 beyond).
func nearest(word string, candidates []string) string {
	w := strings.NewReplacer("LIMIT", "MAX", "limit", "max").Replace(word)
	sep := "_"
	if strings.Contains(w, "-") {
		sep = "-"
	}
	abbrev := func(c string) bool {
		wp, cp := strings.Split(w, sep), strings.Split(c, sep)
		if len(wp) != len(cp) {
			return false
		}
		for i := range wp {
			if wp[i] == "" || !strings.HasPrefix(cp[i], wp[i]) {
				return false
			}
		}
		return true
	}
	ending := func(c string) bool { return strings.HasSuffix(c, sep+w) }
	typo := func(c string) bool {
		return editDistance(w, c) <= min(3, 1+max(0, len(w)-2)/4)
	}
	for _, likely := range []func(string) bool{abbrev, ending, typo} {
		var found []string
		for _, c := range candidates {
			if c != word && likely(c) {
				found = append(found, c)
			}
		}
		if len(found) == 1 {
			return found[0]
		}
		if len(found) > 1 {
			return ""
		}
	}
	return ""
}

// editDistance is the Levenshtein distance of a and b: the fewest insertions, deletions and
// substitutions of a byte that turn one into the other.
func editDistance(a, b string) int {
	row := make([]int, len(b)+1)
	for j := range row {
		row[j] = j
	}
	for i := 1; i <= len(a); i++ {
		diag := row[0]
		row[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			diag, row[j] = row[j], min(row[j]+1, row[j-1]+1, diag+cost)
		}
	}
	return row[len(b)]
}

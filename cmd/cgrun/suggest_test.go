package main

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestMisspeltVars: a CGRUN_ variable a typo away from one of cgrun's is named with the one
// meant; one far from all of them (a script's, a test harness's) draws no line.
func TestMisspeltVars(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want []string
	}{
		{[]string{"CGRUN_MEMORY_MAX=1G", "CGRUN_NO_CLONE3=1", "CGRUN_DUMP_DIR=/d", "MEMORY_MAX=1G"}, nil},
		{[]string{"CGRUN_MEM_MAX=1G"}, []string{"CGRUN_MEM_MAX sets nothing; did you mean CGRUN_MEMORY_MAX?"}},
		{[]string{"CGRUN_MEMORY_LIMIT=1G"}, []string{"CGRUN_MEMORY_LIMIT sets nothing; did you mean CGRUN_MEMORY_MAX?"}},
		{[]string{"CGRUN_MEMORYMAX=1G"}, []string{"CGRUN_MEMORYMAX sets nothing; did you mean CGRUN_MEMORY_MAX?"}},
		{[]string{"CGRUN_MEMORY_MAXX=1G"}, []string{"CGRUN_MEMORY_MAXX sets nothing; did you mean CGRUN_MEMORY_MAX?"}},
		{[]string{"CGRUN_PID_MAX=64"}, []string{"CGRUN_PID_MAX sets nothing; did you mean CGRUN_PIDS_MAX?"}},
		{[]string{"CGRUN_SWAP_MAX=0"}, []string{"CGRUN_SWAP_MAX sets nothing; did you mean CGRUN_MEMORY_SWAP_MAX?"}},
		{[]string{"CGRUN_USR=www", "CGRUN_USR=www"}, []string{"CGRUN_USR sets nothing; did you mean CGRUN_USER?"}},
		// Someone else's: far from every name of cgrun's, or as near to two of them.
		{[]string{"CGRUN_BIN=/x", "CGRUN_HOME=/x", "CGRUN_VERSION=1", "CGRUN_HELP=1", "CGRUN_MEMORY=1G", "CGRUN_MAX_MEMORY=1G", "CGRUNTEST_BIN=/x"}, nil},
	} {
		var f runFlags
		if have := misspeltVars(newRunFlagSet(&f), tc.env); !slices.Equal(have, tc.want) {
			t.Errorf("misspeltVars(%q) = %q, want %q", tc.env, have, tc.want)
		}
	}
}

// TestUnknownFlagNamesTheOneMeant: pflag's "unknown flag" line gains the flag a typo away, and
// only one that exists.
func TestUnknownFlagNamesTheOneMeant(t *testing.T) {
	for flag, want := range map[string]string{
		"memroy-max":    "unknown flag: --memroy-max (did you mean --memory-max?)",
		"mem-max":       "unknown flag: --mem-max (did you mean --memory-max?)",
		"memory-limit":  "unknown flag: --memory-limit (did you mean --memory-max?)",
		"pids-limit":    "unknown flag: --pids-limit (did you mean --pids-max?)",
		"restart-dealy": "unknown flag: --restart-dealy (did you mean --restart-delay?)",
		"nope":          "unknown flag: --nope",
		"memory":        "unknown flag: --memory", // memory-max, memory-high, memory-swap-max alike
	} {
		var f runFlags
		if have := unknownFlag(newRunFlagSet(&f), fmt.Errorf("unknown flag: --%s", flag)).Error(); have != want {
			t.Errorf("--%s: %q, want %q", flag, have, want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"", "abc", 3}, {"abc", "abc", 0}, {"memroy", "memory", 2}, {"MEMORYMAX", "MEMORY_MAX", 1}, {"kitten", "sitting", 3},
	} {
		if have := editDistance(tc.a, tc.b); have != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, have, tc.want)
		}
	}
}

// TestRunWarnsOfAMisspeltVariable: cgrun run and cgrun advise say it on stderr, before anything
// else they say (here, a refusal that ends the start on any host).
func TestRunWarnsOfAMisspeltVariable(t *testing.T) {
	for _, args := range [][]string{
		{"run", "--report", "/proc/r.json", "--", "true"},
		{"advise", "--report", "/proc/r.json", "--", "true"},
	} {
		var out, errb bytes.Buffer
		code := cgrun(args, []string{"PATH=/usr/bin:/bin", "CGRUN_PIDS_MAXX=64"}, &out, &errb)
		want := "cgrun: warning: CGRUN_PIDS_MAXX sets nothing; did you mean CGRUN_PIDS_MAX?\ncgrun: --report: /proc/r.json"
		if code != 125 || !strings.HasPrefix(errb.String(), want) {
			t.Errorf("cgrun %q = %d, stderr %q; want 125 and %q first", args, code, errb.String(), want)
		}
	}
}

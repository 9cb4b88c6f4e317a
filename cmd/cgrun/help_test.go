package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

// TestRunHelpNamesWhatFlagsTake: --help shows SIZE, N, DUR and the like, never Go's type names,
// and lists every size unit ParseSize reads.
func TestRunHelpNamesWhatFlagsTake(t *testing.T) {
	var out bytes.Buffer
	if code := cgrun([]string{"run", "--help"}, nil, &out, &out); code != 0 {
		t.Fatalf("exit %d", code)
	}
	help := out.String()
	for _, want := range []string{"--memory-max SIZE", "--pids-max N", "--stop-timeout DUR", "--max-restarts N", "--pressure TRIGGER",
		"--events TARGET", "K, M, G, T, P or E", "KiB", "at least 1M", "--verbose --name tests"} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q", want)
		}
	}
	if goType := regexp.MustCompile(`(?m)^\s+(-\w, )?--[a-z-]+ (string|int|duration|stringArray|float)\b`).FindString(help); goType != "" {
		t.Errorf("help shows a Go type: %q", goType)
	}
}

// TestRunTooSmallMemory: a limit too small to start anything is one line that names the flag
// and the smallest value that works, before anything is made.
func TestRunTooSmallMemory(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		want string // "" for accepted
	}{
		{"max 100", []string{"--memory-max", "100"}, nil, "--memory-max 100 is too small to start anything"},
		{"max 0", []string{"--memory-max", "0"}, nil, "--memory-max 0 is too small"},
		{"max from env", nil, []string{"CGRUN_MEMORY_MAX=512K"}, "--memory-max 512K is too small"},
		{"high 0", []string{"--memory-high", "0"}, nil, "--memory-high 0 is too small"},
		{"max 1M", []string{"--memory-max", "1M"}, nil, ""},
		{"max max", []string{"--memory-max", "max", "--memory-high", "max"}, nil, ""},
		{"swap 0 is fine", []string{"--memory-swap-max", "0"}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f runFlags
			fs := newRunFlagSet(&f)
			if err := fs.Parse(append(tc.args, "--", "true")); err != nil {
				t.Fatal(err)
			}
			if _, err := applyEnv(fs, tc.env); err != nil {
				t.Fatal(err)
			}
			_, err := f.limitsOver(func(fl string) string { return "--" + fl }, fs.Changed)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "the smallest value that works is 1M")):
				t.Errorf("err %v, want one containing %q and the smallest value", err, tc.want)
			}
		})
	}
	var out, errb bytes.Buffer
	if code := cgrun([]string{"run", "--memory-max", "100", "--", "true"}, nil, &out, &errb); code != 125 || strings.Count(errb.String(), "\n") != 1 {
		t.Errorf("cgrun run --memory-max 100: exit %d, stderr %q; want 125 and one line", code, errb.String())
	}
}

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

// TestAdviseHelp: `cgrun advise --help` and `cgrun help advise` show advise's own flags first,
// then run's (without run's --advise, which advise implies), the exit codes and the docs.
func TestAdviseHelp(t *testing.T) {
	for _, args := range [][]string{{"advise", "--help"}, {"help", "advise"}} {
		var out bytes.Buffer
		if code := cgrun(args, nil, &out, &out); code != 0 {
			t.Fatalf("cgrun %v: exit %d", args, code)
		}
		help := out.String()
		own, run := strings.Index(help, "Advise's flags:"), strings.Index(help, "Run's flags")
		if own < 0 || run < own {
			t.Fatalf("cgrun %v: no \"Advise's flags:\" before \"Run's flags\":\n%s", args, help)
		}
		ownPart, runPart := help[own:run], help[run:]
		if !strings.Contains(ownPart, "--for DUR") || !strings.Contains(ownPart, "--json") || strings.Contains(ownPart, "--memory-max") || !strings.Contains(runPart, "--memory-max SIZE") {
			t.Errorf("cgrun %v: want advise's flags (--for, --json), then run's (--memory-max):\n%s", args, help)
		}
		for _, want := range []string{"Usage: cgrun advise", "125", "docs/advise.md", "advice: --memory-max"} {
			if !strings.Contains(help, want) {
				t.Errorf("cgrun %v: help lacks %q", args, want)
			}
		}
		if regexp.MustCompile(`(?m)^\s+--advise\b`).MatchString(help) {
			t.Errorf("cgrun %v: help lists run's --advise, which advise implies", args)
		}
	}
}

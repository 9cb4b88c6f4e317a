package main

import (
	"bytes"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
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
	if code := cgrun([]string{"run", "--memory-max", "100", "--", "true"}, nil, &out, &errb); code != 125 || strings.Count(errb.String(), "\n") != 1 ||
		!strings.HasSuffix(errb.String(), "the smallest value that works is 1M; a number without a unit is bytes: did you mean 100M?\n") {
		t.Errorf("cgrun run --memory-max 100: exit %d, stderr %q; want 125 and one line that suggests 100M", code, errb.String())
	}
	errb.Reset()
	if cgrun([]string{"run", "--memory-max", "512K", "--", "true"}, nil, &out, &errb); strings.Contains(errb.String(), "did you mean") {
		t.Errorf("cgrun run --memory-max 512K: %q; a size with a unit needs no guess", errb.String())
	}
}

// TestRunFlagsAllHaveAGroup: every flag of cgrun run is under one of the headings, once, so a
// flag added later shows in --help and the man page where a user looks for it.
func TestRunFlagsAllHaveAGroup(t *testing.T) {
	fs := newRunFlagSet(&runFlags{})
	groups := map[string]string{}
	for _, g := range runFlagGroups() {
		if !slices.Contains(runGroups(), g.group) {
			t.Errorf("--%s is in group %q, which is not a heading of runGroups", g.flag, g.group)
		}
		if prev, dup := groups[g.flag]; dup {
			t.Errorf("--%s is in runFlagGroups twice (%s, %s)", g.flag, prev, g.group)
		}
		groups[g.flag] = g.group
		if fs.Lookup(g.flag) == nil {
			t.Errorf("runFlagGroups names --%s, which cgrun run does not have", g.flag)
		}
	}
	fs.VisitAll(func(f *pflag.Flag) {
		if _, ok := groups[f.Name]; !ok {
			t.Errorf("--%s has no group: add a line to runFlagGroups (cmd/cgrun/runhelp.go)", f.Name)
		}
	})
	var out bytes.Buffer
	if code := cgrun([]string{"run", "--help"}, nil, &out, &out); code != 0 {
		t.Fatalf("exit %d", code)
	}
	help, last := out.String(), -1
	for _, g := range runGroups() {
		i := strings.Index(help, "\n"+g+":\n")
		if i < 0 || i < last {
			t.Errorf("--help lacks the heading %q, or has it out of order", g)
		}
		last = i
	}
	if strings.Contains(help, "\nOther:\n") {
		t.Error("--help has flags without a group")
	}
	// Each flag is under its own heading: the next heading after it is the next group's.
	for name, g := range groups {
		loc := regexp.MustCompile(`--` + name + `[ \[]`).FindStringIndex(help)
		if loc == nil {
			t.Errorf("--help lacks --%s", name)
			continue
		}
		i := loc[0]
		if j := strings.LastIndex(help[:i], ":\n"); !strings.HasSuffix(help[:max(j, 0)], "\n"+g) {
			t.Errorf("--%s is not under %q in --help", name, g)
		}
	}
}

// TestSubcommandHelp: ps, status, stop, recycle and check print their usage and flags on
// stdout with --help, -h and `cgrun help COMMAND`, and exit 0; stop's names --timeout.
func TestSubcommandHelp(t *testing.T) {
	for _, tc := range []struct {
		cmd  string
		want []string
	}{
		{"ps", []string{"Usage: cgrun ps [--json]", "--json"}},
		{"status", []string{"Usage: cgrun status NAME|PID [--json]", "--json"}},
		{"stop", []string{"Usage: cgrun stop NAME|PID [--timeout DUR]", "--timeout DUR", "(default: 30s, or its"}},
		{"recycle", []string{"Usage: cgrun recycle NAME|PID", "--help"}},
		{"check", []string{"Usage: cgrun check", "--json", "--parent"}},
		{"run", []string{"Usage: cgrun run", "Limits:", "--memory-max SIZE"}},
	} {
		t.Run(tc.cmd, func(t *testing.T) {
			var helps []string
			for _, args := range [][]string{{tc.cmd, "--help"}, {tc.cmd, "-h"}, {"help", tc.cmd}} {
				var out, errb bytes.Buffer
				if code := cgrun(args, nil, &out, &errb); code != 0 || errb.Len() > 0 {
					t.Errorf("cgrun %s: exit %d, stderr %q; want 0 and nothing", strings.Join(args, " "), code, errb.String())
				}
				for _, w := range tc.want {
					if !strings.Contains(out.String(), w) {
						t.Errorf("cgrun %s: no %q in\n%s", strings.Join(args, " "), w, out.String())
					}
				}
				helps = append(helps, out.String())
			}
			if helps[0] != helps[2] {
				t.Errorf("cgrun help %s differs from cgrun %s --help", tc.cmd, tc.cmd)
			}
		})
	}
	var out, errb bytes.Buffer
	if code := cgrun([]string{"help", "nosuch"}, nil, &out, &errb); code != 125 || !strings.Contains(errb.String(), "no such command") {
		t.Errorf("cgrun help nosuch: exit %d, stderr %q", code, errb.String())
	}
	for _, args := range [][]string{{"stop"}, {"recycle", "a", "b"}, {"ps", "x"}, {"status", "--bogus", "x"}} {
		var out, errb bytes.Buffer
		if code := cgrun(args, nil, &out, &errb); code != 125 || strings.Count(errb.String(), "\n") != 1 || !strings.Contains(errb.String(), "usage: cgrun "+args[0]) {
			t.Errorf("cgrun %s: exit %d, stderr %q; want 125 and one usage line", strings.Join(args, " "), code, errb.String())
		}
	}
}

// TestFlagsAfterCommand: an argument after the command that is one of run's own long flags is
// named in a warning with the fix; other arguments, a nested cgrun and what follows the
// command's own "--" are not.
func TestFlagsAfterCommand(t *testing.T) {
	fs := newRunFlagSet(&runFlags{})
	for _, tc := range []struct {
		cmd  []string
		want string // "" for no warning
	}{
		{[]string{"node", "app.js", "--memory-max", "128M"}, "--memory-max after the command node is passed to node, not used by cgrun (flags stop at the command); put it before node: cgrun run --memory-max 128M -- node ..."},
		{[]string{"/usr/bin/node", "app.js", "--memory-max=128M", "--recycle-on-stall", "--port", "80"}, "--memory-max, --recycle-on-stall after the command node are passed to node, not used by cgrun (flags stop at the command); put them before node: cgrun run --memory-max=128M --recycle-on-stall -- node ..."},
		{[]string{"node", "app.js", "--port", "3000"}, ""},
		{[]string{"node", "--help"}, ""},
		{[]string{"node"}, ""},
		{[]string{"node", "-v"}, ""},
		{[]string{"sh", "-c", "x", "--", "--memory-max", "1G"}, ""},
		{[]string{"cgrun", "run", "--memory-max", "1G", "--", "true"}, ""},
		{[]string{"/usr/bin/cgrun", "run", "--name", "inner", "--", "true"}, ""},
	} {
		got := flagsAfterCommand(fs, tc.cmd)
		if tc.want == "" && got != "" || tc.want != "" && !strings.HasPrefix(got, tc.want) {
			t.Errorf("%q:\n got %q\nwant %q", tc.cmd, got, tc.want)
		}
	}
	// cgrun run says it on stderr before anything else; here --memory-max 100 then ends the
	// run before any group is made (the host has no cgroup v2 to make one in).
	var out, errb bytes.Buffer
	cgrun([]string{"run", "--memory-max", "100", "--", "node", "app.js", "--memory-max", "128M"}, nil, &out, &errb)
	if first, _, _ := strings.Cut(errb.String(), "\n"); !strings.HasPrefix(first, "cgrun: warning: --memory-max after the command node") {
		t.Errorf("stderr %q: want the warning first", errb.String())
	}
}

// TestManGroupsRunFlags: the man page shows run's flags under the headings of --help.
func TestManGroupsRunFlags(t *testing.T) {
	var man bytes.Buffer
	cgrun([]string{"__man"}, nil, &man, &man)
	last := -1
	for _, g := range runGroups() {
		i := strings.Index(man.String(), ".I "+roff(g)+"\n")
		if i < last {
			t.Errorf("man page lacks the heading %q of run's flags, or has it out of order", g)
		}
		last = i
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

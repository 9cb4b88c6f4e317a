package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestRunHelpExamplesDoWhatTheySay runs every example of `cgrun run --help` with the test helper
// as the command: each exits 0, and the one that asks what a run peaks at prints the peak.
func TestRunHelpExamplesDoWhatTheySay(t *testing.T) {
	h := requireCgroup2(t)
	var out bytes.Buffer
	cgrun([]string{"run", "--help"}, nil, &out, &out)
	_, examples, _ := strings.Cut(out.String(), "\nExamples:\n")
	var comment string
	n := 0
	for _, line := range strings.Split(examples, "\n") {
		line = strings.TrimSpace(line)
		if c, ok := strings.CutPrefix(line, "# "); ok {
			comment += " " + c
			continue
		}
		if line == "" {
			continue
		}
		n++
		fields := strings.Fields(line)
		var env []string
		for len(fields) > 0 && strings.Contains(fields[0], "=") {
			env, fields = append(env, fields[0]), fields[1:]
		}
		dash := strings.Index(line, " -- ")
		if len(fields) < 3 || fields[0] != "cgrun" || fields[1] != "run" || dash < 0 {
			t.Fatalf("example %q: want [VAR=VALUE...] cgrun run FLAGS -- COMMAND", line)
		}
		flags := fields[2:slices.Index(fields, "--")]
		for i, f := range flags {
			if f == "--user" {
				// The example's account (www) need not exist in the guest; root does.
				flags[i+1] = "root"
			}
			if f == "--parent" {
				// The example's group, made and readied as its comment says.
				dir := filepath.Join(h.Mount, strings.TrimPrefix(flags[i+1], "/sys/fs/cgroup"))
				if err := os.Mkdir(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.Remove(dir) })
			}
		}
		r := runCgrun(t, env, flags, "exit", "0")
		if r.code != 0 {
			t.Errorf("example %q: exit %d, stderr %q", line, r.code, r.stderr)
		}
		if strings.Contains(comment, "peak") && !strings.Contains(r.stderr, "peak memory") {
			t.Errorf("example %q says it tells the peak, but prints %q", line, r.stderr)
		}
		comment = ""
	}
	if n < 4 {
		t.Errorf("found %d examples in the help", n)
	}
}

// TestRunWarnsOfFlagsAfterCommand: `cgrun run -- CMD ... --memory-max 128M` runs CMD with the
// flag as CMD's own argument, as always, and says so in one warning that names the fix.
func TestRunWarnsOfFlagsAfterCommand(t *testing.T) {
	h := requireCgroup2(t)
	before := groupsUnder(t, h.SelfDir())
	r := runCgrunArgs(t, []string{"--name", "after", "--", "/bin/sh", "-c", `echo "$@"`, "sh", "--memory-max", "128M"})
	if r.code != 0 || r.stdout != "--memory-max 128M\n" {
		t.Errorf("exit %d, stdout %q; want 0 and the command's own --memory-max 128M", r.code, r.stdout)
	}
	want := "cgrun: warning: --memory-max after the command sh is passed to sh, not used by cgrun (flags stop at the command); put it before sh: cgrun run --memory-max 128M -- sh ..."
	if !strings.HasPrefix(r.stderr, want) || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("stderr %q; want one line starting %q", r.stderr, want)
	}
	assertNothingLeft(t, h, before)
}

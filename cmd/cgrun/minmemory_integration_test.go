package main

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cgrun/cgrun/cgroup"
)

// TestRunAtMinimumMemory: the smallest --memory-max and --memory-high that cgrun accepts
// (cgroup.MinMemory, 1M) start a small command and end at once, on the real kernel (scripts/test
// runs it in the 6.1 and the 5.10 guest), through clone3 and through the re-exec stub, and leave
// no group behind. One below it is refused before anything is made.
func TestRunAtMinimumMemory(t *testing.T) {
	h := requireCgroup2(t)
	minimum := cgroup.FormatSize(cgroup.MinMemory)
	for _, tc := range []struct {
		name string
		env  []string
		args []string
	}{
		{"memory-max clone3", nil, []string{"--memory-max", minimum}},
		{"memory-high clone3", nil, []string{"--memory-high", minimum}},
		{"memory-max re-exec stub", []string{"CGRUN_NO_CLONE3=1"}, []string{"--memory-max", minimum}},
		{"memory-high re-exec stub", []string{"CGRUN_NO_CLONE3=1"}, []string{"--memory-high", minimum}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := groupsUnder(t, h.Mount)
			args := append([]string{"run", "--name", "tiny"}, tc.args...)
			cmd := exec.Command(cgrunBin(t), append(args, "--", "true")...)
			cmd.Env = append(os.Environ(), tc.env...)
			start := time.Now()
			out, errs, code := runToEnd(t, cmd)
			took := time.Since(start)
			if code != 0 {
				t.Fatalf("cgrun %v -- true: exit %d, want 0:\n%s%s", tc.args, code, out, errs)
			}
			if took > 5*time.Second {
				t.Errorf("cgrun %v -- true took %v, want a few seconds at most (throttled at memory.high?)", tc.args, took)
			}
			t.Logf("cgrun %v -- true: %v", tc.args, took.Round(time.Millisecond))
			for _, g := range groupsUnder(t, h.Mount) {
				if !slices.Contains(before, g) {
					t.Errorf("left behind: %s", g)
				}
			}
		})
	}
	below := fmt.Sprint(cgroup.MinMemory - 1)
	for _, flag := range []string{"--memory-max", "--memory-high"} {
		out, errs, code := cgrunCmd(t, nil, "run", flag, below, "--", "true")
		if code != 125 || strings.Count(errs, "\n") != 1 || !strings.HasPrefix(errs, "cgrun: "+flag+" ") ||
			!strings.Contains(errs, " is too small to start anything ") || !strings.HasSuffix(errs, "; the smallest value that works is "+minimum+"\n") {
			t.Errorf("%s %s: exit %d, stderr %q, stdout %q; want 125 and the too-small line", flag, below, code, errs, out)
		}
	}
}

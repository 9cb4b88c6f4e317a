package launch

import (
	"errors"
	"fmt"
	"testing"

	"github.com/cgrun/cgrun/cgroup"
	"golang.org/x/sys/unix"
)

// TestTooSmall: the kernel's ENOMEM (enabling controllers, moving into the group) or E2BIG (exec
// copying the arguments) under a set --memory-max becomes one line naming the flag, the value and
// a value to try; every other error, and any error without a numeric --memory-max, stays as it is.
// (A real ENOMEM is not reachable in the guests: cgrun refuses limits below cgroup.MinMemory, and
// 1M starts a command there, TestRunAtMinimumMemory.)
func TestTooSmall(t *testing.T) {
	enomem := fmt.Errorf(`write "+memory +pids" to /sys/fs/cgroup/x/cgroup.subtree_control: %w`, unix.ENOMEM)
	e2big := fmt.Errorf("exec /usr/bin/node: %w", unix.E2BIG)
	for _, tc := range []struct {
		name   string
		limits cgroup.Limits
		err    error
		want   string // "" for the error unchanged
	}{
		{"ENOMEM under --memory-max", cgroup.Limits{MemoryMax: cgroup.Bytes(1 << 20)}, enomem,
			`--memory-max 1M is too small to start anything on this machine (write "+memory +pids" to /sys/fs/cgroup/x/cgroup.subtree_control: cannot allocate memory); give it more, e.g. 4M`},
		{"E2BIG under --memory-max", cgroup.Limits{MemoryMax: cgroup.Bytes(2 << 20)}, e2big,
			"--memory-max 2M is too small to start anything on this machine (exec /usr/bin/node: argument list too long); give it more, e.g. 8M"},
		{"ENOMEM without --memory-max", cgroup.Limits{MemoryHigh: cgroup.Bytes(1 << 20)}, enomem, ""},
		{"ENOMEM under --memory-max max", cgroup.Limits{MemoryMax: cgroup.Unlimited}, enomem, ""},
		{"another error", cgroup.Limits{MemoryMax: cgroup.Bytes(1 << 20)}, unix.EACCES, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tooSmall(tc.limits, tc.err)
			if tc.want == "" {
				if got != tc.err {
					t.Errorf("got %v, want the error unchanged: %v", got, tc.err)
				}
				return
			}
			if got.Error() != tc.want {
				t.Errorf("got  %q\nwant %q", got.Error(), tc.want)
			}
			if !errors.Is(got, tc.err) {
				t.Errorf("%v does not wrap %v", got, tc.err)
			}
		})
	}
}

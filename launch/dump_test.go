package launch

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestPastGenerationReason(t *testing.T) {
	exited := func(code int) unix.WaitStatus { return unix.WaitStatus(code << 8) }
	for _, tc := range []struct {
		name string
		out  outcome
		want string
	}{
		{"OOM kill wins", outcome{oomKill: 1, recycled: "memory_above", status: unix.WaitStatus(unix.SIGKILL)}, "oom_kill"},
		{"recycle", outcome{recycled: "memory_above", status: unix.WaitStatus(unix.SIGTERM)}, "memory_above"},
		{"signal", outcome{status: unix.WaitStatus(unix.SIGSEGV)}, "signal SIGSEGV"},
		{"exit", outcome{status: exited(3)}, "exit 3"},
	} {
		tc.out.uptime, tc.out.peak = 90*time.Second, 1<<20
		p := pastGeneration(4, tc.out)
		if p.Reason != tc.want || p.Generation != 4 || p.Seconds != 90 || p.Peak != 1<<20 {
			t.Errorf("%s: %+v, want reason %q", tc.name, p, tc.want)
		}
	}
}

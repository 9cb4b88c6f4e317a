package proc

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestCloseOnExecFrom: an fd opened without O_CLOEXEC (as one a shell hands on) is marked, by
// close_range and by the fallback alike; the fds below first are left as they were.
func TestCloseOnExecFrom(t *testing.T) {
	for _, tc := range []struct {
		name string
		mark func(first int) error
	}{
		{"close_range or fallback", CloseOnExecFrom},
		{"fallback", markEach},
	} {
		t.Run(tc.name, func(t *testing.T) {
			low, err := unix.Open("/dev/null", unix.O_RDONLY, 0) // no O_CLOEXEC
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(low)
			high, err := unix.FcntlInt(uintptr(low), unix.F_DUPFD, 200) // F_DUPFD: no close-on-exec
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(high)
			if err := tc.mark(high); err != nil {
				t.Fatal(err)
			}
			for fd, want := range map[int]int{high: unix.FD_CLOEXEC, low: 0} {
				if have, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil || have&unix.FD_CLOEXEC != want {
					t.Errorf("fd %d: flags %d (%v), want FD_CLOEXEC %d", fd, have, err, want)
				}
			}
		})
	}
}

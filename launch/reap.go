package launch

import (
	"errors"

	"golang.org/x/sys/unix"
)

// reap collects every child that has exited, without blocking. cgrun is a subreaper, so
// orphans of the command (a daemon that double-forked) are its children too and end up here.
// It reports the wait status of pid once that one has exited.
//
// reap is the only caller of wait4 in cgrun; it runs on the supervisor's goroutine.
func reap(pid int) (ws unix.WaitStatus, exited bool) {
	for {
		var s unix.WaitStatus
		got, err := unix.Wait4(-1, &s, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || got <= 0 { // ECHILD: none left; 0: none has exited
			return ws, exited
		}
		if got == pid {
			ws, exited = s, true
		}
	}
}

// setSubreaper makes cgrun the parent of every orphan of the command (prctl PR_SET_CHILD_SUBREAPER,
// Linux 3.4), so that it can reap them and none escapes to PID 1 unwatched.
func setSubreaper() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

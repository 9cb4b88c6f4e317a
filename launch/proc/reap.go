package proc

import (
	"errors"

	"golang.org/x/sys/unix"
)

// Exited is one child that wait4 collected.
type Exited struct {
	Pid    int
	Status unix.WaitStatus
}

// ReapAll collects every child that has exited, without blocking: the command, a health probe,
// or an orphan of the command (cgrun is a subreaper, so a daemon that double-forked comes back
// to it). ReapAll is the only caller of wait4 in cgrun; it runs on the supervisor's goroutine.
func ReapAll() []Exited {
	var out []Exited
	for {
		var s unix.WaitStatus
		pid, err := unix.Wait4(-1, &s, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || pid <= 0 { // ECHILD: none left; 0: none has exited
			return out
		}
		out = append(out, Exited{pid, s})
	}
}

// SetSubreaper makes cgrun the parent of every orphan of the command (prctl PR_SET_CHILD_SUBREAPER,
// Linux 3.4), so that it can reap them and none escapes to PID 1 unwatched.
func SetSubreaper() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

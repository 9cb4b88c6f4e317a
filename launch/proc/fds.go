package proc

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// CloseOnExecFrom marks every open fd numbered from first up close-on-exec, so that no program
// this process execs — the command, a health probe, --diagnose-cmd, the re-exec stub — inherits
// it, on whichever path it starts (clone3, the stub, --listen). Only the fds a fork is told to
// pass (its Files: stdio, the --listen sockets, the stub's group) survive the exec, as Go's
// ForkExec dup2s them without the flag.
//
// Marking, not closing: the fds stay usable in this process, and the Go runtime's own (its
// epoll fd, its wake-up pipe) are close-on-exec already. Go's ForkExec gives no hook between the
// fork and the exec, so the child cannot close them itself on the clone3 path; marking them
// before any fork has the same effect at the exec. close_range(2) with CLOSE_RANGE_CLOEXEC
// (Linux 5.11); before it (5.10: EINVAL for the flag; ENOSYS before 5.9, or a seccomp filter)
// each fd in /proc/self/fd is marked with fcntl.
func CloseOnExecFrom(first int) error {
	err := unix.CloseRange(uint(first), ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	if err == nil || !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EPERM) {
		return err
	}
	return markEach(first)
}

// markEach is CloseOnExecFrom without close_range: each fd in /proc/self/fd from first up.
func markEach(first int) error {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("mark inherited fds close-on-exec: %w", err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("mark inherited fds close-on-exec: read /proc/self/fd: %w", err)
	}
	for _, name := range names {
		fd, err := strconv.Atoi(name)
		if err != nil || fd < first || fd == int(d.Fd()) {
			continue
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil && !errors.Is(err, unix.EBADF) {
			return fmt.Errorf("mark fd %d close-on-exec: %w", fd, err)
		}
	}
	return nil
}

package cgroup

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Populated reports whether the group dir or any group below it holds a live process
// (cgroup.events "populated"; zombies do not count).
func Populated(dir string) (bool, error) {
	ev, err := ReadKeyed(dir, "cgroup.events")
	if err != nil {
		return false, err
	}
	return ev["populated"] == 1, nil
}

// WaitEmpty blocks until no live process is left in the group dir or below it, or ctx ends.
// It sleeps in poll(2) on an inotify watch of cgroup.events, which the kernel touches when
// "populated" changes, so it costs nothing while it waits.
func WaitEmpty(ctx context.Context, dir string) error {
	path := filepath.Join(dir, "cgroup.events")
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return fmt.Errorf("inotify_init1: %w", err)
	}
	defer unix.Close(fd)
	if _, err := unix.InotifyAddWatch(fd, path, unix.IN_MODIFY); err != nil {
		return fmt.Errorf("inotify_add_watch %s: %w", path, err)
	}
	buf := make([]byte, 4096)
	for {
		// Read after the watch is armed, so that no change between the two is missed.
		busy, err := Populated(dir)
		if err != nil || !busy {
			return err
		}
		timeout := 100 // ms; bounds how late a ctx cancellation is seen
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("wait for %s to empty: %w", dir, err)
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, timeout); err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("poll inotify for %s: %w", path, err)
		}
		for {
			if _, err := unix.Read(fd, buf); err != nil {
				break // EAGAIN: drained
			}
		}
	}
}

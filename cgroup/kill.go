package cgroup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Kill sends SIGKILL to every process in the group dir and below, and waits until it is empty.
// It uses cgroup.kill (Linux 5.14), which cannot race with forks. Where that file is missing it
// freezes the group (cgroup.freeze, Linux 5.2) so nothing can fork, kills every listed process,
// thaws it so the kills are delivered, and repeats until the group is empty.
func Kill(ctx context.Context, dir string) error {
	err := writeFile(dir, "cgroup.kill", "1")
	switch {
	case err == nil:
		return WaitEmpty(ctx, dir)
	case errors.Is(err, os.ErrNotExist):
		if _, serr := os.Stat(dir); serr != nil {
			return nil // the group itself is gone
		}
		return killFrozen(ctx, dir)
	}
	return err
}

// KillNow is Kill for a caller that must not block, such as a supervisor that hears its child
// die through wait4: it sends the kills and returns without waiting for the processes to go.
// Where cgroup.kill is missing (before Linux 5.14) it makes one pass of the fallback — freeze,
// kill every listed process, thaw — which kills everything that was in the group when it
// looked; a process forked in that instant may survive it, so follow it with Kill.
func KillNow(dir string) error {
	err := writeFile(dir, "cgroup.kill", "1")
	if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if _, serr := os.Stat(dir); serr != nil {
		return nil // the group itself is gone
	}
	return freezeAndKill(dir)
}

func killFrozen(ctx context.Context, dir string) error {
	for {
		busy, err := Populated(dir)
		if err != nil || !busy {
			return err
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("kill %s: %w", dir, err)
		}
		if err := freezeAndKill(dir); err != nil {
			return err
		}
		wctx, cancel := context.WithTimeout(ctx, 100e6)
		err = WaitEmpty(wctx, dir)
		cancel()
		if err == nil {
			return nil
		}
	}
}

// freezeAndKill is one pass of the fallback for kernels without cgroup.kill.
func freezeAndKill(dir string) error {
	_ = writeFile(dir, "cgroup.freeze", "1") // best effort: without it, kill what we see
	err := killListed(dir)
	_ = writeFile(dir, "cgroup.freeze", "0")
	return err
}

func killListed(dir string) error {
	return filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		pids, err := Procs(p)
		if err != nil {
			return nil
		}
		for _, pid := range pids {
			_ = unix.Kill(pid, unix.SIGKILL) // ESRCH: it already went
		}
		return nil
	})
}

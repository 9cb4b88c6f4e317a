package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Create makes the group dir. Its parent must exist. The errors a user can act on (no
// permission, read-only filesystem, no such parent) come back as a *HostError.
func Create(dir string) error {
	err := os.Mkdir(dir, 0o755)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return permissionError(filepath.Dir(dir), unwrapPath(err))
	case errors.Is(err, unix.EROFS):
		return readOnlyError(filepath.Dir(dir))
	case errors.Is(err, unix.ENOENT):
		return &HostError{Err: ErrNoSuchParent, Path: filepath.Dir(dir),
			What: fmt.Sprintf("group %s does not exist", filepath.Dir(dir)),
			Fix:  "create it first (mkdir " + filepath.Dir(dir) + ") or choose another --parent"}
	}
	return fmt.Errorf("create group: %w", err)
}

// Remove removes the empty group dir. A group that is still draining its last exiting task answers
// EBUSY for a short while; Remove retries that (and only that) for up to about a second.
func Remove(dir string) error {
	var err error
	for i := 0; i < 100; i++ {
		err = unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("remove group %s: %w", dir, err)
}

// RemoveEmpty removes the group dir if it is empty, at once: no wait for a group that is
// emptying (Remove's), and nothing removed that holds a process or a group.
func RemoveEmpty(dir string) error {
	if err := unix.Rmdir(dir); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove group %s: %w", dir, err)
	}
	return nil
}

// RemoveTree removes the empty group dir and every group below it, deepest first: the groups
// that a nested cgrun, killed with everything else, could not remove itself.
func RemoveTree(dir string) error {
	kids, err := Children(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	for _, k := range kids {
		if err := RemoveTree(filepath.Join(dir, k)); err != nil {
			return err
		}
	}
	return Remove(dir)
}

// Move puts process pid (0: the caller) into the group dir.
func Move(dir string, pid int) error {
	err := writeFile(dir, "cgroup.procs", strconv.Itoa(pid))
	switch {
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return permissionError(dir, err)
	case errors.Is(err, unix.EROFS):
		return readOnlyError(dir)
	}
	return err
}

// Procs lists the processes in the group dir (not in its children).
func Procs(dir string) ([]int, error) {
	s, err := ReadFile(dir, "cgroup.procs")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(s) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			return nil, &ParseError{Path: filepath.Join(dir, "cgroup.procs"), Line: f, Err: err}
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// Children lists the names of the child groups of dir.
func Children(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// Holds reports whether process pid is in the group dir or in one of its descendants.
func Holds(dir string, pid int) (bool, error) {
	pids, err := Procs(dir)
	if err != nil {
		return false, err
	}
	if slices.Contains(pids, pid) {
		return true, nil
	}
	kids, err := Children(dir)
	if err != nil {
		return false, err
	}
	for _, k := range kids {
		if ok, err := Holds(filepath.Join(dir, k), pid); ok || err != nil {
			return ok, err
		}
	}
	return false, nil
}

package cgroup

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Controllers lists the controllers the group dir can use (cgroup.controllers).
func Controllers(dir string) ([]string, error) {
	s, err := ReadFile(dir, "cgroup.controllers")
	if err != nil {
		return nil, err
	}
	return strings.Fields(s), nil
}

// SubtreeControl lists the controllers enabled for the children of dir (cgroup.subtree_control).
func SubtreeControl(dir string) ([]string, error) {
	s, err := ReadFile(dir, "cgroup.subtree_control")
	if err != nil {
		return nil, err
	}
	return strings.Fields(s), nil
}

// EnableControllers enables want for the children of dir in one write, and returns the ones it
// had to enable (so that they can be disabled again). A controller that dir cannot use is a
// *HostError wrapping ErrNoController for memory; a group that still has processes of its
// own answers EBUSY (the kernel's "no internal processes" rule) and wraps ErrGroupBusy.
func EnableControllers(dir string, want ...string) (enabled []string, err error) {
	have, err := Controllers(dir)
	if err != nil {
		return nil, err
	}
	for _, c := range want {
		if !slices.Contains(have, c) {
			return nil, &HostError{Err: ErrNoController, Path: dir,
				What: fmt.Sprintf("the %s controller is not available in %s (cgroup.controllers: %q)", c, dir, strings.Join(have, " ")),
				Fix:  "its parent must delegate it: run in a systemd unit with Delegate=yes, under `systemd-run --scope -p Delegate=yes`, or pick a group that has it with --parent"}
		}
	}
	on, err := SubtreeControl(dir)
	if err != nil {
		return nil, err
	}
	var ops []string
	for _, c := range want {
		if !slices.Contains(on, c) {
			enabled = append(enabled, c)
			ops = append(ops, "+"+c)
		}
	}
	if len(ops) == 0 {
		return nil, nil
	}
	err = writeFile(dir, "cgroup.subtree_control", strings.Join(ops, " "))
	switch {
	case err == nil:
		return enabled, nil
	case errors.Is(err, unix.EBUSY):
		return nil, &HostError{Err: ErrGroupBusy, Path: dir,
			What: fmt.Sprintf("cannot enable %s for the children of %s: the group still holds other processes (cgroup v2 lets only leaf groups hold processes)", strings.Join(ops, " "), dir),
			Fix:  "start cgrun as the only process of its group (a systemd unit with Delegate=yes, or `systemd-run --scope -p Delegate=yes`), or give it an empty group with --parent"}
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return nil, permissionError(filepath.Dir(dir), err)
	case errors.Is(err, unix.EROFS):
		return nil, readOnlyError(dir)
	}
	return nil, err
}

// DisableControllers turns off controllers for the children of dir, in one write.
func DisableControllers(dir string, ctrls ...string) error {
	if len(ctrls) == 0 {
		return nil
	}
	ops := make([]string, len(ctrls))
	for i, c := range ctrls {
		ops[i] = "-" + c
	}
	return writeFile(dir, "cgroup.subtree_control", strings.Join(ops, " "))
}

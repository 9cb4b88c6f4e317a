package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Site is a place in the hierarchy where cgrun may create payload groups: a group with the
// memory and pids controllers enabled for its children. A Site is made by one of the placements
// below and undone with Release.
//
// The placements differ only in how the site's group is found and readied:
//   - Nest: the process's own group, where nothing else can be asked (no systemd: a container,
//     a plain host, the test VM): cgrun moves itself into a leaf of its own and enables the
//     controllers on the group it left.
//   - Under: a group the user names with --parent.
//
// A systemd unit with Delegate=yes, and a transient scope asked for over D-Bus, are the own group
// again once systemd has made it; they end in Nest.
type Site struct {
	Dir     string // the group under which payload groups are created
	release []func() error
}

// Adopt readies dir, the parent of the caller's own group, as the site: for a unit with
// Delegate=yes and DelegateSubgroup= (systemd 254), where systemd already started the caller in
// a leaf of the delegated unit group. Nothing is moved; the controllers are enabled on dir.
func Adopt(dir string, ctrls ...string) (*Site, error) {
	if _, err := EnableControllers(dir, ctrls...); err != nil {
		return nil, err
	}
	return &Site{Dir: dir}, nil
}

// Release undoes what made the site, last step first, and reports every step that failed.
func (s *Site) Release() error {
	var errs []error
	for i := len(s.release) - 1; i >= 0; i-- {
		errs = append(errs, s.release[i]())
	}
	s.release = nil
	return errors.Join(errs...)
}

func (s *Site) undo(f func() error) { s.release = append(s.release, f) }

// Nest readies the process's own group: it creates the leaf <own>/<leaf>, moves the calling
// process (all its threads) into it, and enables ctrls (memory and pids, maybe cpu) for the
// children of <own> in one write. On failure it puts everything back.
func Nest(h Hierarchy, leaf string, ctrls ...string) (*Site, error) {
	own := h.SelfDir()
	s := &Site{Dir: own}
	leafDir := filepath.Join(own, leaf)
	if err := Create(leafDir); err != nil {
		return nil, err
	}
	s.undo(func() error { return Remove(leafDir) })
	if err := Move(leafDir, 0); err != nil {
		_ = s.Release()
		return nil, err
	}
	var enabled []string
	s.undo(func() error {
		// A group with controllers on for its children takes no processes, except the root;
		// then turn off what cgrun turned on, if no other group relies on it, and try again.
		err := Move(own, 0)
		if errors.Is(err, unix.EBUSY) && len(enabled) > 0 {
			if derr := disableIfOnly(own, leaf, enabled); derr != nil {
				return errors.Join(err, derr)
			}
			err = Move(own, 0)
		}
		return err
	})
	enabled, err := EnableControllers(own, ctrls...)
	if errors.Is(err, ErrGroupBusy) && os.Getpid() == 1 {
		// cgrun is a container's init: the other processes at the namespace's root are its
		// own (started by the runtime, or by docker exec); they move into its leaf with it.
		if err = moveAll(own, leafDir); err == nil {
			s.release = nil // the container ends with cgrun; its runtime removes the groups
			enabled, err = EnableControllers(own, ctrls...)
		}
	}
	if err != nil {
		_ = s.Release()
		return nil, err
	}
	return s, nil
}

// moveAll moves every process in the group from into the group to.
func moveAll(from, to string) error {
	pids, err := Procs(from)
	if err != nil {
		return err
	}
	for _, pid := range pids {
		if err := Move(to, pid); err != nil && !errors.Is(err, unix.ESRCH) {
			return err
		}
	}
	return nil
}

// Under readies the group parent (a path in the hierarchy, or a directory under its mount), which
// must exist and hold no processes of its own. The controllers it enables there stay on: the
// group is the user's, and other groups under it may rely on them.
func Under(h Hierarchy, parent string, ctrls ...string) (*Site, error) {
	dir, err := ParentDir(h, parent)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return nil, &HostError{Err: ErrNoSuchParent, Path: dir,
			What: fmt.Sprintf("--parent %s: %s is a file, not a group", parent, dir),
			Fix:  "name a group (a directory of the cgroup hierarchy, as /proc/self/cgroup shows it) or leave --parent out"}
	}
	if _, err := os.Stat(filepath.Join(dir, "cgroup.procs")); err != nil {
		return nil, &HostError{Err: ErrNoSuchParent, Path: dir,
			What: fmt.Sprintf("--parent %s: no such group (%s)", parent, dir),
			Fix:  "create it first (mkdir " + dir + ") or leave --parent out"}
	}
	if _, err := EnableControllers(dir, ctrls...); err != nil {
		return nil, err
	}
	return &Site{Dir: dir}, nil
}

// ParentDir turns the --parent argument into a directory: "/sys/fs/cgroup/x", "/x" and "x" all
// name the group x when cgroup2 is mounted on /sys/fs/cgroup.
func ParentDir(h Hierarchy, parent string) (string, error) {
	p := parent
	if rest, ok := strings.CutPrefix(p, h.Mount); ok && (rest == "" || rest[0] == '/') {
		p = rest
	}
	if err := ParentName(parent); err != nil {
		return "", err
	}
	return h.Dir(p), nil
}

// ParentName checks a --parent argument for what no group's path holds: "..".
func ParentName(parent string) error {
	if slices.Contains(strings.Split(parent, "/"), "..") {
		return fmt.Errorf("--parent %q: must not contain \"..\"", parent)
	}
	return nil
}

// disableIfOnly turns off the controllers cgrun enabled on dir, unless another group (one not
// named keep) still sits under dir and may rely on them.
func disableIfOnly(dir, keep string, enabled []string) error {
	if len(enabled) == 0 {
		return nil
	}
	kids, err := Children(dir)
	if err != nil {
		return err
	}
	if slices.ContainsFunc(kids, func(k string) bool { return k != keep }) {
		return nil
	}
	return DisableControllers(dir, enabled...)
}

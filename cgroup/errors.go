package cgroup

import (
	"errors"
	"fmt"
)

// Sentinel errors for the ways a host cannot give cgrun a group. Callers match them with
// errors.Is; the errors that wrap them carry the path and say how to fix it.
var (
	ErrNoCgroup2    = errors.New("no cgroup v2 hierarchy")
	ErrMemoryOnV1   = errors.New("memory controller bound to cgroup v1")
	ErrNoController = errors.New("controller not available")
	ErrPermission   = errors.New("no permission to manage cgroups")
	ErrReadOnly     = errors.New("cgroup filesystem is read-only")
	ErrGroupBusy    = errors.New("group has processes of its own")
	ErrNoSuchParent = errors.New("no such group")
	ErrUnsupported  = errors.New("not supported by this kernel")
)

// HostError is a reason this host cannot give cgrun a group, with the way out.
type HostError struct {
	Err  error  // one of the sentinels above
	Path string // the file or group concerned
	What string // what went wrong, for a person
	Fix  string // how to fix it, for a person
}

func (e *HostError) Error() string {
	s := e.What
	if e.Fix != "" {
		s += "; " + e.Fix
	}
	return s
}

func (e *HostError) Unwrap() error { return e.Err }

func permissionError(path string, err error) error {
	return &HostError{
		Err:  ErrPermission,
		Path: path,
		What: fmt.Sprintf("no permission to manage cgroups under %s (%v)", path, err),
		Fix:  "run as root, in a systemd unit with Delegate=yes, or under `systemd-run --user --scope -p Delegate=yes cgrun run ...`",
	}
}

func readOnlyError(path string) error {
	return &HostError{
		Err:  ErrReadOnly,
		Path: path,
		What: fmt.Sprintf("the cgroup filesystem at %s is read-only", path),
		Fix:  "mount it read-write (for Docker: run with --cgroupns=private and a writable cgroup mount, e.g. --privileged or -v /sys/fs/cgroup:/sys/fs/cgroup:rw)",
	}
}

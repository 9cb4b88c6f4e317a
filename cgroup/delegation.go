package cgroup

import (
	"os"

	"golang.org/x/sys/unix"
)

// Delegated reports whether systemd delegated the group at dir to its processes: systemd 251
// and later mark a unit's group that has Delegate=yes with the extended attribute
// trusted.delegate=1 (user.delegate=1 from a user manager). See systemd's
// docs/CGROUP_DELEGATION.md.
func Delegated(dir string) bool {
	for _, attr := range []string{"trusted.delegate", "user.delegate"} {
		buf := make([]byte, 8)
		n, err := unix.Getxattr(dir, attr, buf)
		if err == nil && n > 0 && buf[0] == '1' {
			return true
		}
	}
	return false
}

// SystemdRunning reports whether systemd is the init system (sd_booted(3): /run/systemd/system
// exists), and so owns the groups it made.
func SystemdRunning() bool {
	fi, err := os.Lstat("/run/systemd/system")
	return err == nil && fi.IsDir()
}

package account

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// CheckUser says, before anything is opened or created, whether cgrun can run its command as u:
// it must be allowed to switch users, and u's ids must exist in cgrun's user namespace (a
// rootless container maps only some).
func CheckUser(u *User) error {
	return u.check(canSetIDs(), os.Geteuid(), UIDMapFile, GIDMapFile)
}

// canSetIDs reports whether cgrun has CAP_SETUID and CAP_SETGID (root has them), which changing
// user and groups needs.
func canSetIDs() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	err := unix.Capget(&hdr, &data[0])
	has := func(c int) bool { return err == nil && data[c/32].Effective&(1<<(c%32)) != 0 }
	return has(unix.CAP_SETUID) && has(unix.CAP_SETGID)
}

// check is CheckUser for a cgrun that can set ids or not, running as euid, in a user namespace
// with the maps at uidMap and gidMap. Without the capabilities, cgrun must stay the group's
// owner itself, so a user cannot hand its own group to another.
func (u *User) check(setIDs bool, euid int, uidMap, gidMap string) error {
	if !setIDs {
		who := fmt.Sprintf("uid %d", euid)
		if euid == 0 {
			who = "root without CAP_SETUID and CAP_SETGID"
		}
		return fmt.Errorf("--user %s: cgrun runs as %s and cannot switch users; start cgrun as root (sudo, or a systemd unit or process manager without User=/user=) so that root owns the group and %s runs the command, or drop --user to run it as yourself",
			u.Spec, who, u.String())
	}
	if err := u.CheckMapped(uidMap, gidMap); err != nil {
		return fmt.Errorf("--user %s: %w", u.Spec, err)
	}
	return nil
}

// Credential is u as the kernel takes it in clone-and-exec; nil for nil (the command runs as
// cgrun's own user).
func (u *User) Credential() *syscall.Credential {
	if u == nil {
		return nil
	}
	return &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: u.Groups}
}

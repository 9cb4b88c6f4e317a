package launch

import (
	"fmt"
	"os"
	"syscall"

	"github.com/cgrun/cgrun/launch/account"
	"github.com/cgrun/cgrun/launch/listen"
	"github.com/cgrun/cgrun/launch/proc"
	"github.com/cgrun/cgrun/launch/state"
	"golang.org/x/sys/unix"
)

// CheckUser says, before anything is opened or created, whether cgrun can run its command as u:
// it must be allowed to switch users (canSwitchTo), and u's ids must exist in cgrun's user
// namespace (a rootless container maps only some).
func CheckUser(u *account.User) error {
	if err := canSwitchTo(u); err != nil {
		return err
	}
	if err := u.CheckMapped(account.UIDMapFile, account.GIDMapFile); err != nil {
		return fmt.Errorf("--user %s: %w", u.Spec, err)
	}
	return nil
}

// canSwitchTo checks, before any group is made, that cgrun may run its command as u: it needs
// CAP_SETUID and CAP_SETGID (root has them) to change user and groups, and it must stay the
// group's owner itself, so a user cannot hand its own group to another.
func canSwitchTo(u *account.User) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	err := unix.Capget(&hdr, &data[0])
	has := func(c int) bool { return err == nil && data[c/32].Effective&(1<<(c%32)) != 0 }
	if has(unix.CAP_SETUID) && has(unix.CAP_SETGID) {
		return nil
	}
	who := fmt.Sprintf("uid %d", os.Geteuid())
	if os.Geteuid() == 0 {
		who = "root without CAP_SETUID and CAP_SETGID"
	}
	return fmt.Errorf("--user %s: cgrun runs as %s and cannot switch users; start cgrun as root (sudo, or a systemd unit or process manager without User=/user=) so that root owns the group and %s runs the command, or drop --user to run it as yourself",
		u.Spec, who, u.String())
}

// credential is u as the kernel takes it in clone-and-exec.
func credential(u *account.User) *syscall.Credential {
	if u == nil {
		return nil
	}
	return &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: u.Groups}
}

// child is how every process of a generation starts — the command and its health probes:
// in dir, with the command's environment, as the --user.
func (r *runner) child(dir string) proc.Child {
	cfg := r.cfg
	return proc.Child{Env: cfg.Env, GroupDir: dir, NoClone3: cfg.NoClone3,
		Cred: credential(cfg.User), NoNewPrivs: cfg.User != nil && !cfg.AllowNewPrivs}
}

// stateUser is u as the state records it.
func stateUser(u *account.User) *state.User {
	if u == nil {
		return nil
	}
	return &state.User{Name: u.Name, UID: u.UID, GID: u.GID, Groups: u.Groups}
}

// bindListen binds the --listen sockets, a unix socket's file owned by the --user.
func bindListen(cfg Config) (*listen.Set, error) {
	if len(cfg.Listen) == 0 {
		return nil, nil
	}
	var owner *listen.Owner
	if u := cfg.User; u != nil {
		owner = &listen.Owner{UID: u.UID, GID: u.GID}
	}
	return listen.Bind(cfg.Listen, owner)
}

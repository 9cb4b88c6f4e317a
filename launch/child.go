package launch

import (
	"fmt"

	"github.com/cgrun/cgrun/launch/account"
	"github.com/cgrun/cgrun/launch/listen"
	"github.com/cgrun/cgrun/launch/proc"
	"github.com/cgrun/cgrun/launch/state"
)

// child is how every process of a generation starts — the command and its health probes:
// in dir, with the command's environment, as the --user.
func (r *runner) child(dir string) proc.Child {
	cfg := r.cfg
	return proc.Child{Env: cfg.Env, GroupDir: dir, NoClone3: cfg.NoClone3,
		Cred: cfg.User.Credential(), NoNewPrivs: cfg.User != nil && !cfg.AllowNewPrivs}
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

// shmRefused says, once per run, that a generation starts with the host's /dev/shm because the
// kernel refused its own (root in a container without CAP_SYS_ADMIN).
func (r *runner) shmRefused(err error) {
	r.shmOnce.Do(func() {
		fmt.Fprintf(r.cfg.Log, "cgrun: warning: %v; the command shares the host's %s, where what it leaves outlives the generation and its memory limit (--shared-shm: meant so)\n", err, proc.ShmDir)
	})
}

// privateShm is the /dev/shm each generation gets (proc.ShmFor): its tmpfs is capped at
// --memory-max, as nothing more could be written there anyway.
func privateShm(cfg Config) *proc.Shm {
	var size uint64
	if m := cfg.Limits.MemoryMax; m.Set && !m.Max {
		size = m.Value
	}
	return proc.ShmFor(cfg.SharedShm, size, cfg.Log)
}

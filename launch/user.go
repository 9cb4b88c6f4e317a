package launch

import (
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

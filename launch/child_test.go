package launch

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/launch/account"
	"github.com/cgrun/cgrun/launch/proc"
	"github.com/cgrun/cgrun/launch/state"
)

// Every process of a generation starts as the command does: in the group, with its environment,
// as the --user, with no_new_privs unless --allow-new-privs.
func TestChild(t *testing.T) {
	www := &account.User{Name: "www-data", UID: 33, GID: 33, Groups: []uint32{33}}
	for _, c := range []struct {
		name      string
		user      *account.User
		allow     bool
		cred, nnp bool
	}{
		{"as cgrun's user", nil, false, false, false},
		{"as the --user", www, false, true, true},
		{"as the --user, --allow-new-privs", www, true, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := &runner{cfg: &Config{Env: []string{"A=1"}, User: c.user, AllowNewPrivs: c.allow, NoClone3: true}}
			ch := r.child("/g/leaf")
			if ch.GroupDir != "/g/leaf" || !reflect.DeepEqual(ch.Env, []string{"A=1"}) || !ch.NoClone3 {
				t.Errorf("child %+v", ch)
			}
			if (ch.Cred != nil) != c.cred || ch.NoNewPrivs != c.nnp {
				t.Errorf("cred %+v, no_new_privs %v; want cred %v, no_new_privs %v", ch.Cred, ch.NoNewPrivs, c.cred, c.nnp)
			}
		})
	}
}

func TestStateUser(t *testing.T) {
	if u := stateUser(nil); u != nil {
		t.Errorf("stateUser(nil) = %+v", u)
	}
	have := stateUser(&account.User{Name: "www-data", UID: 33, GID: 34, Groups: []uint32{34, 5}})
	want := &state.User{Name: "www-data", UID: 33, GID: 34, Groups: []uint32{34, 5}}
	if !reflect.DeepEqual(have, want) {
		t.Errorf("have %+v; want %+v", have, want)
	}
}

func TestBindListenNone(t *testing.T) {
	if s, err := bindListen(Config{}); s != nil || err != nil {
		t.Errorf("bindListen without --listen = %v, %v; want nothing", s, err)
	}
}

// The private /dev/shm is capped at --memory-max; --shared-shm keeps the host's.
func TestPrivateShm(t *testing.T) {
	if s := privateShm(Config{SharedShm: true}); s != nil {
		t.Errorf("--shared-shm: %+v; want the host's", s)
	}
	cfg := Config{Log: &bytes.Buffer{}}
	cfg.Limits.MemoryMax = cgroup.Bytes(1 << 30)
	s := privateShm(cfg)
	if proc.ShmFor(false, 1<<30, &bytes.Buffer{}) == nil {
		if s != nil {
			t.Errorf("%+v; want the host's, as proc.ShmFor says", s)
		}
		return
	}
	if s == nil || s.Size != 1<<30 {
		t.Errorf("%+v; want one of 1 GiB", s)
	}
}

// A refused private /dev/shm is said once a run, however many generations start.
func TestShmRefusedSaidOnce(t *testing.T) {
	log := &bytes.Buffer{}
	r := &runner{cfg: &Config{Log: log}}
	r.shmRefused(errors.New("private /dev/shm: unshare the mount namespace: operation not permitted"))
	r.shmRefused(errors.New("again"))
	want := "cgrun: warning: private /dev/shm: unshare the mount namespace: operation not permitted; the command shares the host's /dev/shm"
	if !strings.HasPrefix(log.String(), want) || strings.Count(log.String(), "\n") != 1 {
		t.Errorf("log %q; want one line starting %q", log, want)
	}
}

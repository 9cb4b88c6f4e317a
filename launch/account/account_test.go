package account_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/cgrun/cgrun/launch/account"
)

const passwd = `root:x:0:0:root:/root:/bin/bash
# a comment
+nisuser::::::
www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin
www:x:1001:1001::/home/www:/bin/bash
bare:x:1002:1002:::
app:x:1003:1001:App:/srv/app:/bin/sh
broken:x:oops:1:::
`

const group = `root:x:0:
www-data:x:33:
www:x:1001:
bare:x:1002:
ssl-cert:x:103:www,postgres
docker:x:998:app,www
node:x:1500:www
`

func files(t *testing.T) (string, string) {
	t.Helper()
	dir := t.TempDir()
	p, g := filepath.Join(dir, "passwd"), filepath.Join(dir, "group")
	if err := os.WriteFile(p, []byte(passwd), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(g, []byte(group), 0o644); err != nil {
		t.Fatal(err)
	}
	return p, g
}

func TestLookupFiles(t *testing.T) {
	p, g := files(t)
	for _, tc := range []struct {
		spec string
		want account.User
	}{
		// Success: names, numbers, and a mix.
		{"www-data", account.User{Name: "www-data", UID: 33, GID: 33, Group: "www-data", Home: "/var/www", Shell: "/usr/sbin/nologin", Groups: []uint32{33}}},
		{"33", account.User{Name: "www-data", UID: 33, GID: 33, Group: "www-data", Home: "/var/www", Shell: "/usr/sbin/nologin", Groups: []uint32{33}}},
		{"www", account.User{Name: "www", UID: 1001, GID: 1001, Group: "www", Home: "/home/www", Shell: "/bin/bash", Groups: []uint32{1001, 103, 998, 1500}}},
		{"www:docker", account.User{Name: "www", UID: 1001, GID: 998, Group: "docker", Home: "/home/www", Shell: "/bin/bash", Groups: []uint32{998, 103, 1500}}},
		{"www:33", account.User{Name: "www", UID: 1001, GID: 33, Group: "www-data", Home: "/home/www", Shell: "/bin/bash", Groups: []uint32{33, 103, 998, 1500}}},
		{"app", account.User{Name: "app", UID: 1003, GID: 1001, Group: "www", Home: "/srv/app", Shell: "/bin/sh", Groups: []uint32{1001, 998}}},
		// An entry without home or shell gets / and /bin/sh, as su does.
		{"bare", account.User{Name: "bare", UID: 1002, GID: 1002, Group: "bare", Home: "/", Shell: "/bin/sh", Groups: []uint32{1002}}},
		// Numbers without entries, as in a container: no name, HOME=/.
		{"4242:4242", account.User{UID: 4242, GID: 4242, Home: "/", Groups: []uint32{4242}}},
		{"4242:www", account.User{UID: 4242, GID: 1001, Group: "www", Home: "/", Groups: []uint32{1001}}},
		{"0:0", account.User{Name: "root", UID: 0, GID: 0, Group: "root", Home: "/root", Shell: "/bin/bash", Groups: []uint32{0}}},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			u, err := account.LookupFiles(tc.spec, p, g)
			if err != nil {
				t.Fatal(err)
			}
			tc.want.Spec = tc.spec
			if !reflect.DeepEqual(*u, tc.want) {
				t.Errorf("have %+v\nwant %+v", *u, tc.want)
			}
		})
	}
}

func TestLookupFilesFailures(t *testing.T) {
	p, g := files(t)
	for _, tc := range []struct {
		spec    string
		unknown bool   // an *UnknownError
		want    string // the error, exactly
	}{
		{"nosuch", true, `no user "nosuch" in ` + p + `; create it (useradd --system --no-create-home nosuch) or give numbers (--user UID:GID)`},
		{"www:nosuch", true, `no group "nosuch" in ` + g + `; create it (groupadd --system nosuch) or give a number (--user www:GID)`},
		{"4242", true, `no user "4242" in ` + p + `; a uid without an entry has no group either: give one (--user 4242:4242)`},
		{"", false, account.ErrSyntax.Error()},
		{":33", false, account.ErrSyntax.Error()},
		{"www:", false, account.ErrSyntax.Error()},
		{"a:b:c", false, account.ErrSyntax.Error()},
		{"4294967295:1", false, `"4294967295" is not a valid user or group id (0 to 4294967294)`},
		{"1:99999999999", false, `"99999999999" is not a valid user or group id (0 to 4294967294)`},
		// A malformed uid must never read as 0 (root).
		{"broken", false, p + `: the entry of broken has a bad uid "oops" or gid "1"`},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			u, err := account.LookupFiles(tc.spec, p, g)
			if err == nil {
				t.Fatalf("have %+v, want an error", *u)
			}
			var ue *account.UnknownError
			if errors.As(err, &ue) != tc.unknown {
				t.Errorf("error %T: UnknownError %v, want %v", err, !tc.unknown, tc.unknown)
			}
			if err.Error() != tc.want {
				t.Errorf("have %q\nwant %q", err, tc.want)
			}
		})
	}
}

func TestEnv(t *testing.T) {
	p, g := files(t)
	in := []string{"PATH=/usr/bin", "HOME=/root", "USER=root", "LOGNAME=root", "SHELL=/bin/bash", "LANG=C",
		"XDG_RUNTIME_DIR=/run/user/0", "DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/0/bus",
		"NODE_CHANNEL_FD=3", "NODE_CHANNEL_SERIALIZATION_MODE=json"}
	for _, tc := range []struct {
		spec string
		want []string
	}{
		{"www", []string{"PATH=/usr/bin", "LANG=C", "HOME=/home/www", "USER=www", "LOGNAME=www", "SHELL=/bin/bash"}},
		{"4242:4242", []string{"PATH=/usr/bin", "LANG=C", "HOME=/"}},
	} {
		u, err := account.LookupFiles(tc.spec, p, g)
		if err != nil {
			t.Fatal(err)
		}
		if have := u.Env(in); !reflect.DeepEqual(have, tc.want) {
			t.Errorf("%s: have %q\nwant %q", tc.spec, have, tc.want)
		}
	}
}

func TestLookupMissingFile(t *testing.T) {
	_, err := account.LookupFiles("www", filepath.Join(t.TempDir(), "passwd"), "/nonexistent")
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("have %v, want ErrNotExist", err)
	}
}

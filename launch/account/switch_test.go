package account

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	full := filepath.Join(dir, "full")
	low := filepath.Join(dir, "low")
	for p, text := range map[string]string{full: "0 0 4294967295\n", low: "0 100000 10\n"} {
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	www := &User{Spec: "www-data", Name: "www-data", UID: 33, GID: 33, Groups: []uint32{33}}
	for _, c := range []struct {
		name   string
		setIDs bool
		euid   int
		uidMap string
		want   string // "" for nil
	}{
		{"root with the capabilities, ids mapped", true, 0, full, ""},
		{"a user with the capabilities (file caps), ids mapped", true, 1000, full, ""},
		{"a user without them", false, 1000, full, "--user www-data: cgrun runs as uid 1000 and cannot switch users; start cgrun as root"},
		{"root without them", false, 0, full, "--user www-data: cgrun runs as root without CAP_SETUID and CAP_SETGID and cannot switch users"},
		{"the uid outside the namespace's map", true, 0, low, "--user www-data: uid 33 is not mapped in cgrun's user namespace"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := www.check(c.setIDs, c.euid, c.uidMap, full)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("err %v; want nil", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("err %v; want one containing %q", err, c.want)
			}
		})
	}
}

// On this host, CheckUser agrees with check given what the process holds.
func TestCheckUserAsThisProcess(t *testing.T) {
	self := &User{Spec: "self", UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}
	err := CheckUser(self)
	want := self.check(canSetIDs(), os.Geteuid(), UIDMapFile, GIDMapFile)
	if (err == nil) != (want == nil) {
		t.Fatalf("CheckUser = %v; check = %v", err, want)
	}
}

func TestCredential(t *testing.T) {
	var none *User
	if c := none.Credential(); c != nil {
		t.Errorf("nil user's credential %+v; want nil", c)
	}
	u := &User{UID: 33, GID: 34, Groups: []uint32{34, 103}}
	want := &syscall.Credential{Uid: 33, Gid: 34, Groups: []uint32{34, 103}}
	if c := u.Credential(); !reflect.DeepEqual(c, want) {
		t.Errorf("credential %+v; want %+v", c, want)
	}
}

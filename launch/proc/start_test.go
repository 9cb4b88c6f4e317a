package proc

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/cgrun/cgrun/launch/exitcode"
	"golang.org/x/sys/unix"
)

// The stub learns the user to become from its command line: what Start writes, Enter reads.
func TestCredRoundTrip(t *testing.T) {
	for _, c := range []*syscall.Credential{
		{Uid: 33, Gid: 33, Groups: []uint32{33}},
		{Uid: 1001, Gid: 998, Groups: []uint32{998, 103, 1500}},
		{Uid: 4242, Gid: 4242, Groups: []uint32{}},
		{Uid: 4294967294, Gid: 0, Groups: []uint32{0}},
	} {
		s := formatCred(c)
		have, err := parseCred(s)
		if err != nil {
			t.Fatalf("parseCred(%q): %v", s, err)
		}
		if !reflect.DeepEqual(have, c) {
			t.Errorf("%q: have %+v, want %+v", s, have, c)
		}
	}
}

func TestEnterRefusesBadArguments(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--cred=33:33", "/bin/true", "--", "true"}, "want UID:GID:GROUPS"},
		{[]string{"--cred=33:x:33", "/bin/true", "--", "true"}, `"x" is not an id`},
		{[]string{"--cred=-1:33:33", "/bin/true", "--", "true"}, `"-1" is not an id`},
		{[]string{"--cred=33:33:33", "/bin/true", "true"}, "[--cred=UID:GID:GROUPS] PATH -- ARGV"},
		{nil, "want [--listen=N] [--keep=PATH...] [--cred=UID:GID:GROUPS] PATH -- ARGV"},
		{[]string{"--listen=0", "/bin/true", "--", "true"}, `"--listen=0" is not a number of sockets`},
		{[]string{"--listen=x", "/bin/true", "--", "true"}, `"--listen=x" is not a number of sockets`},
		{[]string{"--listen=1", "--keep=/a", "/bin/true"}, "[--keep=PATH...] [--cred=UID:GID:GROUPS] PATH -- ARGV"},
	} {
		err := Enter(tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Enter(%q) = %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}

// TestGroupRefused: clone3's EACCES for a command cgrun's user may execute is the group's refusal
// (125), for one it may not it is the command's (126); with a --user it is always the command's.
func TestGroupRefused(t *testing.T) {
	plain := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(plain, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		c    Child
		err  error
		want bool
	}{
		{"executable", Child{Path: "/bin/sh"}, unix.EACCES, true},
		{"not executable", Child{Path: plain}, unix.EACCES, false},
		{"another errno", Child{Path: "/bin/sh"}, unix.ENOEXEC, false},
		{"with --user", Child{Path: "/bin/sh", Cred: &syscall.Credential{Uid: 33}}, unix.EACCES, false},
	} {
		if have := groupRefused(tc.c, tc.err); have != tc.want {
			t.Errorf("%s: groupRefused = %v, want %v", tc.name, have, tc.want)
		}
	}
	if code := exitcode.Of(groupError("/sys/fs/cgroup/x", unix.EACCES)); code != exitcode.Failure {
		t.Errorf("groupError's code %d, want %d", code, exitcode.Failure)
	}
}

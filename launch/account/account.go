// Package account resolves the user a command runs as — `--user USER[:GROUP]`, names or
// numbers — from /etc/passwd and /etc/group, as runuser(1) and initgroups(3) would.
//
// cgrun is a static binary without cgo, so it reads the two files itself: users and groups that
// only NSS knows (LDAP, sssd, systemd's DynamicUser) are not found by name; give them as numbers.
package account

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// The files a spec is resolved from.
const (
	PasswdFile = "/etc/passwd"
	GroupFile  = "/etc/group"
)

// User is who the command runs as.
type User struct {
	Spec string // as given: "www", "www-data:www-data", "33:33"
	// Name is the user's name; "" for a uid without a passwd entry, which then has no HOME,
	// USER, LOGNAME or SHELL of its own.
	Name  string
	UID   uint32
	GID   uint32 // the primary group: GROUP when given, else the passwd entry's
	Group string // the primary group's name; "" when /etc/group has none
	Home  string // "/" where the entry has none, or there is no entry
	Shell string // "/bin/sh" where the entry has none; "" when there is no entry
	// Groups are the supplementary groups as initgroups(Name, GID) sets them: GID first, then
	// every group of /etc/group that lists Name as a member, in file order.
	Groups []uint32
}

// ErrSyntax is a spec that is not USER or USER:GROUP.
var ErrSyntax = errors.New("want USER or USER:GROUP, names or numbers (e.g. www-data, www:www, 33:33)")

// UnknownError is a name that the passwd or group file does not have, or a uid without an entry
// given without a group.
type UnknownError struct {
	What string // "user" or "group"
	Name string // the name looked up, or the uid
	File string // the file it is not in
	Fix  string // what to do about it
}

func (e *UnknownError) Error() string {
	return fmt.Sprintf("no %s %q in %s; %s", e.What, e.Name, e.File, e.Fix)
}

// Lookup resolves spec from /etc/passwd and /etc/group.
func Lookup(spec string) (*User, error) { return LookupFiles(spec, PasswdFile, GroupFile) }

// LookupFiles resolves spec from the given passwd and group files.
//
// USER is a name from the passwd file, or a number: a uid that has an entry takes its name,
// primary group and home; one without an entry (as in a container) needs a GROUP. GROUP is a
// name from the group file or a number, which needs no entry.
func LookupFiles(spec, passwd, group string) (*User, error) {
	uname, gname, hasGroup := strings.Cut(spec, ":")
	if uname == "" || hasGroup && (gname == "" || strings.Contains(gname, ":")) {
		return nil, ErrSyntax
	}
	users, err := readEntries(passwd, 7)
	if err != nil {
		return nil, err
	}
	u := &User{Spec: spec}
	uid, numeric, err := parseID(uname)
	if err != nil {
		return nil, err
	}
	var entry []string
	for _, e := range users {
		if id, ok, _ := parseID(e[2]); numeric && ok && id == uid || !numeric && e[0] == uname {
			entry = e
			break
		}
	}
	switch {
	case entry != nil:
		// A malformed id must not read as 0: that is root.
		id, okU, errU := parseID(entry[2])
		gid, okG, errG := parseID(entry[3])
		if !okU || !okG || errU != nil || errG != nil {
			return nil, fmt.Errorf("%s: the entry of %s has a bad uid %q or gid %q", passwd, entry[0], entry[2], entry[3])
		}
		u.Name, u.UID, u.GID, u.Home, u.Shell = entry[0], id, gid, entry[5], entry[6]
		if u.Home == "" {
			u.Home = "/"
		}
		if u.Shell == "" {
			u.Shell = "/bin/sh"
		}
	case !numeric:
		return nil, &UnknownError{What: "user", File: passwd, Name: uname, Fix: fmt.Sprintf(
			"create it (useradd --system --no-create-home %s) or give numbers (--user UID:GID)", uname)}
	case !hasGroup:
		return nil, &UnknownError{What: "user", File: passwd, Name: uname, Fix: fmt.Sprintf(
			"a uid without an entry has no group either: give one (--user %s:%s)", uname, uname)}
	default:
		u.UID, u.Home = uid, "/"
	}
	groups, err := readEntries(group, 4)
	if err != nil {
		return nil, err
	}
	if hasGroup {
		gid, numeric, err := parseID(gname)
		if err != nil {
			return nil, err
		}
		found := false
		for _, e := range groups {
			if id, ok, _ := parseID(e[2]); numeric && ok && id == gid || !numeric && e[0] == gname && ok {
				gid, found = id, true
				break
			}
		}
		if !found && !numeric {
			return nil, &UnknownError{What: "group", File: group, Name: gname, Fix: fmt.Sprintf(
				"create it (groupadd --system %s) or give a number (--user %s:GID)", gname, uname)}
		}
		u.GID = gid
	}
	u.Groups = []uint32{u.GID}
	for _, e := range groups {
		gid, _, err := parseID(e[2])
		if err != nil {
			continue
		}
		if gid == u.GID && u.Group == "" {
			u.Group = e[0]
		}
		if u.Name != "" && slices.Contains(strings.Split(e[3], ","), u.Name) && !slices.Contains(u.Groups, gid) {
			u.Groups = append(u.Groups, gid)
		}
	}
	return u, nil
}

// parseID reads a uid or gid: numeric reports whether s is a number at all; a number that is
// not a valid id (above 4294967294; -1 means "unchanged" to the kernel) is an error.
func parseID(s string) (id uint32, numeric bool, err error) {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, false, nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 1<<32-1 {
		return 0, true, fmt.Errorf("%q is not a valid user or group id (0 to 4294967294)", s)
	}
	return uint32(n), true, nil
}

// readEntries reads a passwd or group file: lines of at least n colon-separated fields. Blank
// lines, comments and NIS lines ("+", "-") are skipped, as glibc's files module does.
func readEntries(path string, n int) ([][]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out [][]string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20) // a group with many members makes a long line
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || line[0] == '+' || line[0] == '-' {
			continue
		}
		if fields := strings.Split(line, ":"); len(fields) >= n {
			out = append(out, fields)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return out, nil
}

// Env is env with HOME, USER, LOGNAME and SHELL set for u, as `runuser -u` and
// `setpriv --init-groups --reset-env` set them; a uid without a passwd entry gets HOME=/ and no
// USER, LOGNAME or SHELL (as Docker's `--user UID:GID`). XDG_RUNTIME_DIR and
// DBUS_SESSION_BUS_ADDRESS are removed: they can only name the session of whoever started cgrun
// (/run/user/0, root's bus), which u must not reach. NODE_CHANNEL_FD and
// NODE_CHANNEL_SERIALIZATION_MODE (a Node parent's IPC channel, PM2's fd 3) are removed too:
// with --user that fd is closed, and Node would take whatever else came to hold the number for
// its channel. Everything else passes unchanged.
func (u *User) Env(env []string) []string {
	set := map[string]string{"HOME": u.Home}
	if u.Name != "" {
		set["USER"], set["LOGNAME"], set["SHELL"] = u.Name, u.Name, u.Shell
	}
	out := make([]string, 0, len(env)+len(set))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "HOME", "USER", "LOGNAME", "SHELL", "XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS",
			"NODE_CHANNEL_FD", "NODE_CHANNEL_SERIALIZATION_MODE":
			continue
		}
		out = append(out, kv)
	}
	for _, k := range []string{"HOME", "USER", "LOGNAME", "SHELL"} {
		if v, ok := set[k]; ok {
			out = append(out, k+"="+v)
		}
	}
	return out
}

// String names the user as ps(1) would, with the ids: "www-data (uid 33, gid 33)".
func (u *User) String() string {
	name := u.Name
	if name == "" {
		name = strconv.FormatUint(uint64(u.UID), 10)
	}
	return fmt.Sprintf("%s (uid %d, gid %d)", name, u.UID, u.GID)
}

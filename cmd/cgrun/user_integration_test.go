package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// whoami is the payload of the --user tests: it prints who it runs as, makes a file, and tries
// what a sandboxed command must not do — raise its limits, leave its group, make groups of its
// own — printing one key=value line each.
const whoami = `
echo "uid=$(id -u)"
echo "gid=$(id -g)"
echo "groups=$(id -G)"
echo "home=$HOME"
echo "user=$USER"
echo "logname=$LOGNAME"
echo "shell=$SHELL"
echo "xdg=${XDG_RUNTIME_DIR-unset}"
echo "dbus=${DBUS_SESSION_BUS_ADDRESS-unset}"
echo "nnp=$(sed -n 's/^NoNewPrivs:[[:space:]]*//p' /proc/self/status)"
touch "$1/made" && echo "made=$(stat -c %u:%g "$1/made")"
leaf=/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup)
echo "leaf=$leaf"
try() { if (eval "$2") 2>/dev/null; then echo "$1=allowed"; else echo "$1=refused"; fi; }
try leaf_memory_max 'echo max >"$leaf/memory.max"'
try memory_max 'echo max >"${leaf%/main}/memory.max"'
try memory_high 'echo max >"${leaf%/main}/memory.high"'
try pids_max 'echo max >"${leaf%/main}/pids.max"'
try root_procs 'echo $$ >/sys/fs/cgroup/cgroup.procs'
try mkdir 'mkdir "$leaf/escape"'
`

// userFacts parses whoami's lines.
func userFacts(stdout string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(stdout, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m
}

// runWith runs `PREFIX... cgrun ARGS...` with env added, and waits up to a minute.
func runWith(t *testing.T, prefix, env []string, args ...string) result {
	t.Helper()
	argv := append(append(append([]string{}, prefix...), cgrunBin(t)), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var hung []byte
	timer := time.AfterFunc(time.Minute, func() {
		// Say where everything hangs before ending it.
		hung, _ = exec.Command("ps", "-eLo", "pid,lwp,ppid,uid,stat,wchan:32,args").CombinedOutput()
		cmd.Process.Kill()
	})
	defer timer.Stop()
	err := cmd.Wait()
	if hung != nil {
		t.Fatalf("%v did not finish in a minute; stdout %q, stderr %q; processes:\n%s", argv, out.String(), errb.String(), hung)
	}
	var ee *exec.ExitError
	code := 0
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%v: %v", argv, err)
	}
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// withAccounts returns a prefix that runs cgrun in a mount namespace of its own where
// /etc/passwd and /etc/group have the lines added: a user with supplementary groups that the
// host does not have, seen by nothing outside that namespace.
func withAccounts(t *testing.T, passwd, group string) []string {
	t.Helper()
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatalf("unshare (util-linux) is needed: %v", err)
	}
	dir := t.TempDir()
	var binds []string
	for file, extra := range map[string]string{"/etc/passwd": passwd, "/etc/group": group} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		fixture := filepath.Join(dir, filepath.Base(file))
		if err := os.WriteFile(fixture, append(b, extra...), 0o644); err != nil {
			t.Fatal(err)
		}
		binds = append(binds, fmt.Sprintf("mount --bind %s %s", fixture, file))
	}
	return []string{"unshare", "--mount", "--propagation", "private", "sh", "-c", strings.Join(binds, " && ") + ` && exec "$@"`, "sh"}
}

// sharedDir is a temporary directory that any user may write in (t.TempDir's parent is 0700).
func sharedDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "cgrun-user-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o1777); err != nil {
		t.Fatal(err)
	}
	return dir
}

// sameSet reports whether two space-separated id lists hold the same ids.
func sameSet(a, b string) bool {
	x, y := strings.Fields(a), strings.Fields(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(slices.Compact(x), slices.Compact(y))
}

// TestUserRunsCommandAsUser: with --user the command runs as that user, with its groups and
// environment, from its first instruction in its group, on the clone3 path and the stub path
// alike; it can neither raise its limits nor leave its group; root keeps the group.
func TestUserRunsCommandAsUser(t *testing.T) {
	h := requireCgroup2(t)
	wwwGroups, err := exec.Command("id", "-G", "www-data").Output()
	if err != nil {
		t.Fatalf("id -G www-data: %v (the test needs Debian's www-data user)", err)
	}
	fixture := withAccounts(t, "cgrunu:x:4242:4242:cgrun test:/home/cgrunu:/bin/bash\n",
		"cgrunu:x:4242:\ncgrunx:x:4300:cgrunu\ncgruny:x:4301:someone,cgrunu\n")
	for _, tc := range []struct {
		name      string
		prefix    []string
		spec      string
		flags     []string
		uid, gid  string
		groups    string
		home      string
		user      string // USER and LOGNAME
		shell     string
		nnp       string
		noClone3  bool
		wantGroup string // the file's owner uid:gid
	}{
		{"www-data", nil, "www-data", nil, "33", "33", string(wwwGroups), "/var/www", "www-data", "/usr/sbin/nologin", "1", false, "33:33"},
		{"www-data, stub", nil, "www-data", nil, "33", "33", string(wwwGroups), "/var/www", "www-data", "/usr/sbin/nologin", "1", true, "33:33"},
		{"numbers without an entry", nil, "4343:4343", nil, "4343", "4343", "4343", "/", "", "", "1", false, "4343:4343"},
		{"numbers without an entry, stub", nil, "4343:4343", nil, "4343", "4343", "4343", "/", "", "", "1", true, "4343:4343"},
		{"supplementary groups", fixture, "cgrunu", nil, "4242", "4242", "4242 4300 4301", "/home/cgrunu", "cgrunu", "/bin/bash", "1", false, "4242:4242"},
		{"supplementary groups, stub", fixture, "cgrunu", nil, "4242", "4242", "4242 4300 4301", "/home/cgrunu", "cgrunu", "/bin/bash", "1", true, "4242:4242"},
		{"another primary group", fixture, "cgrunu:cgruny", nil, "4242", "4301", "4301 4300", "/home/cgrunu", "cgrunu", "/bin/bash", "1", false, "4242:4301"},
		{"allow new privs", nil, "www-data", []string{"--allow-new-privs"}, "33", "33", string(wwwGroups), "/var/www", "www-data", "/usr/sbin/nologin", "0", false, "33:33"},
		{"allow new privs, stub", nil, "www-data", []string{"--allow-new-privs"}, "33", "33", string(wwwGroups), "/var/www", "www-data", "/usr/sbin/nologin", "0", true, "33:33"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := sharedDir(t)
			var env []string
			if tc.noClone3 {
				env = []string{"CGRUN_NO_CLONE3=1"}
			}
			before := groupsUnder(t, h.SelfDir())
			args := append(append([]string{"run", "--name", "asuser", "--memory-max", "64M", "--user", tc.spec}, tc.flags...), "--", "/bin/sh", "-c", whoami, "sh", dir)
			r := runWith(t, tc.prefix, append(env, "HOME=/root", "USER=root", "LOGNAME=root", "SHELL=/bin/zsh",
				"XDG_RUNTIME_DIR=/run/user/0", "DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/0/bus"), args...)
			if r.code != 0 {
				t.Fatalf("exit %d, stderr %q, stdout %q", r.code, r.stderr, r.stdout)
			}
			f := userFacts(r.stdout)
			for _, c := range []struct{ key, want string }{
				{"uid", tc.uid}, {"gid", tc.gid}, {"home", tc.home}, {"user", tc.user}, {"logname", tc.user},
				{"shell", tc.shell}, {"nnp", tc.nnp}, {"made", tc.wantGroup}, {"xdg", "unset"}, {"dbus", "unset"},
				{"leaf_memory_max", "refused"}, {"memory_max", "refused"}, {"memory_high", "refused"},
				{"pids_max", "refused"}, {"root_procs", "refused"}, {"mkdir", "refused"},
			} {
				if f[c.key] != c.want {
					t.Errorf("%s = %q, want %q", c.key, f[c.key], c.want)
				}
			}
			if !sameSet(f["groups"], tc.groups) {
				t.Errorf("id -G = %q, want %q", f["groups"], strings.TrimSpace(tc.groups))
			}
			if !strings.HasPrefix(filepath.Base(filepath.Dir(f["leaf"])), "asuser-") || filepath.Base(f["leaf"]) != "main" {
				t.Errorf("ran in %q, want its generation's leaf asuser-PID.1/main", f["leaf"])
			}
			if r.stderr != "" {
				t.Errorf("stderr %q, want nothing", r.stderr)
			}
			assertNothingLeft(t, h, before)
		})
	}
}

// TestUserHealthProbeRunsAsUser: health-check commands run as the --user too, on both paths.
func TestUserHealthProbeRunsAsUser(t *testing.T) {
	requireCgroup2(t)
	for _, tc := range []struct {
		name string
		env  []string
	}{{"clone3", nil}, {"stub", []string{"CGRUN_NO_CLONE3=1"}}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := sharedDir(t)
			probe := filepath.Join(dir, "probe")
			r := runWith(t, nil, tc.env, "run", "--name", "probeuser", "--user", "www-data",
				"--health-cmd", fmt.Sprintf(`echo "$(id -u):$(id -g):$HOME" > %s`, probe), "--health-interval", "100ms",
				"--", "/bin/sleep", "1")
			if r.code != 0 {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			b, err := os.ReadFile(probe)
			if err != nil {
				t.Fatalf("the probe did not run: %v", err)
			}
			if got := strings.TrimSpace(string(b)); got != "33:33:/var/www" {
				t.Errorf("the probe ran as %q, want 33:33:/var/www", got)
			}
			if fi, err := os.Stat(probe); err == nil {
				if st := fi.Sys().(*syscall.Stat_t); st.Uid != 33 {
					t.Errorf("the probe's file is owned by uid %d, want 33", st.Uid)
				}
			}
		})
	}
}

// TestUserDiagnoseCmd: with --user, --diagnose-cmd runs as the user and writes its dump into a
// directory of that user's; cgrun, as root, waits for it and prunes the older dump
// (--diagnose-keep 1) in the directory it opened at start.
func TestUserDiagnoseCmd(t *testing.T) {
	requireCgroup2(t)
	dumps := filepath.Join(sharedDir(t), "dumps")
	if err := os.Mkdir(dumps, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dumps, 33, 33); err != nil {
		t.Fatal(err)
	}
	events := filepath.Join(t.TempDir(), "events.jsonl")
	// Each generation holds 40M in a shell variable: over --recycle-above, so it is recycled
	// for memory, with a dump first; --max-restarts 1 ends the run after the second.
	r := runWith(t, nil, nil, "run", "--name", "dumpuser", "--user", "www-data",
		"--recycle-above", "24M", "--recycle-after", "1s", "--restart-delay", "0",
		"--max-restarts", "1", "--restart-window", "600s", "--diagnose-keep", "1",
		"--diagnose-cmd", `id -u > "$CGRUN_DUMP_DIR/who-$CGRUN_CHILD_PID"`, "--diagnose-dir", dumps,
		"--diagnose-timeout", "5s", "--events", events,
		"--", "/bin/sh", "-c", `x=$(head -c 40000000 /dev/zero | tr '\0' a); sleep 60`)
	if r.code != 122 {
		t.Fatalf("exit %d, want 122 (two generations recycled); stderr %q", r.code, r.stderr)
	}
	ds := byEvent(readDiagnoseLines(t, events), "diagnose")
	if len(ds) != 2 {
		t.Fatalf("%d dumps, want 2; stderr %q", len(ds), r.stderr)
	}
	for i, d := range ds {
		if d.Diagnosis == nil || !d.Diagnosis.Complete || len(d.Diagnosis.Files) != 1 {
			t.Errorf("dump %d: %+v, want one complete file", i+1, d.Diagnosis)
		}
	}
	left, err := os.ReadDir(dumps)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || ds[1].Diagnosis == nil || len(ds[1].Diagnosis.Files) != 1 || filepath.Join(dumps, left[0].Name()) != ds[1].Diagnosis.Files[0].Path {
		t.Fatalf("%s holds %v; want only the second dump (--diagnose-keep 1)", dumps, left)
	}
	p := filepath.Join(dumps, left[0].Name())
	b, err := os.ReadFile(p)
	fi, serr := os.Stat(p)
	if err != nil || serr != nil || strings.TrimSpace(string(b)) != "33" || fi.Sys().(*syscall.Stat_t).Uid != 33 {
		t.Errorf("%s: %q (%v, %v); want the dump written by uid 33, as uid 33", p, b, err, serr)
	}
}

// TestUserBadInputCreatesNothing: an unknown user or group, or a cgrun that cannot switch
// users, is one line, exit 125, and no group.
func TestUserBadInputCreatesNothing(t *testing.T) {
	h := requireCgroup2(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Fatalf("setpriv (util-linux) is needed: %v", err)
	}
	nobody := []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"}
	noSetuid := []string{"setpriv", "--inh-caps=-setuid,-setgid", "--bounding-set=-setuid,-setgid", "--"}
	for _, tc := range []struct {
		name   string
		prefix []string
		args   []string
		env    []string
		want   string
	}{
		{"unknown user", nil, []string{"--user", "no-such-user"}, nil, `--user "no-such-user": no user "no-such-user" in /etc/passwd; create it (useradd --system --no-create-home no-such-user) or give numbers (--user UID:GID)`},
		{"unknown user in env", nil, nil, []string{"CGRUN_USER=no-such-user"}, `CGRUN_USER "no-such-user": no user "no-such-user" in /etc/passwd`},
		{"unknown group", nil, []string{"--user", "www-data:no-such-group"}, nil, `no group "no-such-group" in /etc/group`},
		{"uid without entry or group", nil, []string{"--user", "4343"}, nil, "give one (--user 4343:4343)"},
		{"bad syntax", nil, []string{"--user", "a:b:c"}, nil, "want USER or USER:GROUP"},
		{"not root", nobody, []string{"--user", "www-data"}, nil, "--user www-data: cgrun runs as uid 65534 and cannot switch users; start cgrun as root"},
		{"root without CAP_SETUID", noSetuid, []string{"--user", "www-data"}, nil, "--user www-data: cgrun runs as root without CAP_SETUID and CAP_SETGID and cannot switch users"},
		// An unset ${APP_USER} must not run the command as root.
		{"empty user", nil, []string{"--user", ""}, nil, "--user is empty: give USER[:GROUP] (e.g. www-data or 33:33), or leave it out"},
		{"empty user in env", nil, nil, []string{"CGRUN_USER="}, "CGRUN_USER is empty: give USER[:GROUP]"},
		{"allow-new-privs without user", nil, []string{"--allow-new-privs"}, nil, "--allow-new-privs without --user: the command runs as cgrun's own user"},
		// Root's 0755 directory: www-data's dump could never land there.
		{"dump dir the user cannot write", nil, []string{"--user", "www-data", "--diagnose-cmd", "true", "--diagnose-dir", "/"}, nil, "--diagnose-dir /: the command's user (uid 33) cannot write it (mode 0755, owner 0:0)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The report and events files sit where even uid 65534 could write them, so that
			// opening them before the user check would show.
			dir := t.TempDir()
			for _, d := range []string{filepath.Dir(dir), dir} {
				if err := os.Chmod(d, 0o777); err != nil {
					t.Fatal(err)
				}
			}
			rep, events := filepath.Join(dir, "report.json"), filepath.Join(dir, "events.jsonl")
			if err := os.WriteFile(rep, []byte("an earlier report\n"), 0o666); err != nil {
				t.Fatal(err)
			}
			before := groupsUnder(t, h.SelfDir())
			args := append(append([]string{"run", "--name", "baduser", "--report", rep, "--events", events}, tc.args...), "--", "/bin/true")
			r := runWith(t, tc.prefix, tc.env, args...)
			if b, err := os.ReadFile(rep); err != nil || string(b) != "an earlier report\n" {
				t.Errorf("--report %s is now %q (%v), want it untouched", rep, b, err)
			}
			if _, err := os.Stat(events); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("--events %s was created (%v), want nothing created", events, err)
			}
			if r.code != 125 {
				t.Errorf("exit %d, want 125", r.code)
			}
			if strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "cgrun: ") || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr %q: want one line starting with \"cgrun: \" containing %q", r.stderr, tc.want)
			}
			assertNothingLeft(t, h, before)
		})
	}
}

// TestUserSeesItsSandbox: `cgrun ps` and `status`, run as the --user, show the sandbox and who
// it runs as; that user may not stop or recycle root's cgrun, and is told how.
func TestUserSeesItsSandbox(t *testing.T) {
	requireCgroup2(t)
	cmd, rep := startSandbox(t, "ps-asuser", []string{"--user", "www-data", "--memory-max", "64M"}, "sleep", "30")
	defer func() { cmd.Process.Signal(syscall.SIGTERM); waitCode(t, cmd) }()
	www := &syscall.Credential{Uid: 33, Gid: 33, Groups: []uint32{33}}
	out, errs, code := cgrunCmd(t, www, "ps", "--json")
	if code != 0 {
		t.Fatalf("cgrun ps --json as www-data: exit %d, %s", code, errs)
	}
	var boxes []sandbox
	if err := json.Unmarshal([]byte(out), &boxes); err != nil {
		t.Fatalf("cgrun ps --json printed %q: %v", out, err)
	}
	b := find(boxes, "ps-asuser")
	switch {
	case b == nil:
		t.Fatalf("cgrun ps as www-data does not show ps-asuser: %s", out)
	case b.UID != 0 || b.User == nil || b.User.UID != 33 || b.User.GID != 33 || b.User.Name != "www-data" || b.ChildPid != rep.Pid:
		t.Errorf("ps-asuser: uid %d, user %+v, child %d; want uid 0 (root's cgrun), user www-data 33:33, child %d", b.UID, b.User, b.ChildPid, rep.Pid)
	}
	out, errs, code = cgrunCmd(t, www, "status", "ps-asuser")
	if code != 0 || !strings.Contains(out, "  user         www-data (uid 33, gid 33, groups 33)\n") {
		t.Errorf("cgrun status as www-data: exit %d, stdout %q, stderr %q; want a user line", code, out, errs)
	}
	for _, verb := range []string{"recycle", "stop"} {
		_, errs, code = cgrunCmd(t, www, verb, "ps-asuser")
		if code != 125 || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, "only root may "+verb+" it: use sudo cgrun "+verb+" ps-asuser") {
			t.Errorf("cgrun %s as www-data: exit %d, stderr %q; want 125 and one line saying only root may", verb, code, errs)
		}
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", rep.Pid)); err != nil {
		t.Errorf("the command is gone after www-data's refused stop: %v", err)
	}
}

// ttyProbe prints whether the command leads its own session and whether TIOCSTI on its stdin
// (pushing input into the terminal, as into root's shell) works.
const ttyProbe = `
import fcntl, os, termios
print("own_session=%s" % (os.getsid(0) == os.getpid()))
try:
    fcntl.ioctl(0, termios.TIOCSTI, b"#")
    print("\ntiocsti=allowed")  # the pushed "#" is echoed first: keep it off this line
except OSError as e:
    print("\ntiocsti=refused errno %d" % e.errno)
import signal, time
got = []
signal.signal(signal.SIGINT, lambda *a: got.append(1))
print("ready", flush=True)
end = time.time() + 20
while not got and time.time() < end:
    time.sleep(0.05)
time.sleep(0.5)
print("sigints=%d" % len(got))
`

// TestUserNoTerminalHijack: `cgrun run --user` in root's terminal gives the command a session of
// its own with no controlling terminal, on both start paths, so TIOCSTI on its stdin fails; a
// run without --user keeps the command in cgrun's session, as before.
func TestUserNoTerminalHijack(t *testing.T) {
	requireCgroup2(t)
	// Debian's, readable by www-data (a python3 first in root's PATH may not be).
	const python = "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		t.Fatalf("python3 is needed for the TIOCSTI probe: %v", err)
	}
	for _, tc := range []struct {
		name       string
		args, env  []string
		session    string
		tiocstiPfx string
	}{
		{"--user", []string{"--user", "www-data"}, nil, "True", "tiocsti=refused errno 1"},
		{"--user, stub", []string{"--user", "www-data"}, []string{"CGRUN_NO_CLONE3=1"}, "True", "tiocsti=refused errno 1"},
		{"no --user", nil, nil, "False", "tiocsti=allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			master, slave := openPty(t)
			args := append(append([]string{"run", "--name", "ttyuser"}, tc.args...), "--", python, "-c", ttyProbe)
			cmd := exec.Command(cgrunBin(t), args...)
			cmd.Env = append(os.Environ(), tc.env...)
			cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
			// cgrun as in root's terminal: a session leader with the pty as its terminal.
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			slave.Close()
			out, ready := make(chan string, 1), make(chan struct{})
			go func(said chan struct{}) {
				var b bytes.Buffer
				buf := make([]byte, 4096)
				for {
					n, err := master.Read(buf)
					b.Write(buf[:n])
					if said != nil && strings.Contains(b.String(), "ready") {
						close(said)
						said = nil
					}
					if err != nil { // EIO once every slave fd is closed
						out <- b.String()
						return
					}
				}
			}(ready)
			// ^C on the terminal reaches the command once: from the terminal without --user,
			// forwarded by cgrun with it.
			select {
			case <-ready:
				if _, err := master.Write([]byte{3}); err != nil {
					t.Errorf("type ^C: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("the probe never said ready")
			}
			timer := time.AfterFunc(time.Minute, func() { cmd.Process.Kill() })
			defer timer.Stop()
			err := cmd.Wait()
			master.SetReadDeadline(time.Now().Add(5 * time.Second))
			// The terminal echoes the ^C typed (ECHOCTL) wherever the output then stands, which
			// may be the start of the command's next line: it is not part of any line.
			text := strings.ReplaceAll(strings.ReplaceAll(<-out, "\r\n", "\n"), "^C", "")
			if err != nil {
				t.Fatalf("cgrun: %v; terminal output %q", err, text)
			}
			f := userFacts(text)
			if f["sigints"] != "1" {
				t.Errorf("sigints=%q, want ^C to reach the command once (terminal output %q)", f["sigints"], text)
			}
			if f["own_session"] != tc.session || !strings.HasPrefix(f["tiocsti"], strings.TrimPrefix(tc.tiocstiPfx, "tiocsti=")) {
				t.Errorf("own_session=%q tiocsti=%q; want own_session=%s and %s (terminal output %q)", f["own_session"], f["tiocsti"], tc.session, tc.tiocstiPfx, text)
			}
		})
	}
}

// openPty opens a new pseudo-terminal: its master, and its slave (not this process's terminal).
func openPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open the pty's slave: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

package guard

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestMain makes the test binary the guard when Start re-executes it (/proc/self/exe), as
// cgrun's main does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == Command {
		if err := Run(os.Args[2:]); err != nil {
			fmt.Fprintf(os.Stderr, "cgrun: %v\n", err)
			os.Exit(125)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fakeSite is a directory standing in for the site: two groups of this cgrun (prefix app-1.)
// and one of another, each with the files the guard writes and reads.
func fakeSite(t *testing.T) string {
	t.Helper()
	site := t.TempDir()
	for _, g := range []string{"app-1.1", "app-1.2", "other-2.1"} {
		dir := filepath.Join(site, g)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, body := range map[string]string{"cgroup.kill": "", "cgroup.events": "populated 0\nfrozen 0\n"} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return site
}

func killed(t *testing.T, site, group string) bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(site, group, "cgroup.kill"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b) == "1"
}

// wait reaps the guard and returns its exit status, failing after a few seconds.
func wait(t *testing.T, pid int) unix.WaitStatus {
	t.Helper()
	var ws unix.WaitStatus
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) || (err == nil && got == 0) {
			continue
		}
		if err != nil {
			t.Fatalf("wait4 %d: %v", pid, err)
		}
		return ws
	}
	t.Fatalf("the guard (pid %d) did not exit", pid)
	return ws
}

func gone(pid int) bool {
	var ws unix.WaitStatus
	_, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
	return errors.Is(err, unix.ECHILD)
}

// A cgrun that ends normally releases its guard: the guard is gone and reaped, and no group is
// touched.
func TestReleaseEndsTheGuard(t *testing.T) {
	for _, c := range []struct {
		name    string
		noPidfd bool // Linux < 5.3: the guard is told through the pipe
	}{{"pidfd", false}, {"pipe", true}} {
		t.Run(c.name, func(t *testing.T) {
			site := fakeSite(t)
			g, err := Start(site, "app-1.")
			if err != nil {
				t.Fatal(err)
			}
			if c.noPidfd && g.pidfd >= 0 {
				unix.Close(g.pidfd)
				g.pidfd = -1
			}
			g.Release()
			if !gone(g.pid) {
				t.Errorf("the guard (pid %d) is still a child after Release", g.pid)
			}
			for _, grp := range []string{"app-1.1", "app-1.2", "other-2.1"} {
				if killed(t, site, grp) {
					t.Errorf("%s was killed by a guard that was released", grp)
				}
			}
		})
	}
}

// When cgrun dies, the kernel closes the pipe's write end: the guard kills its cgrun's groups,
// and only those. The fake groups are directories with files, which rmdir cannot remove, so the
// guard says it could not clean up.
func TestDeathOfCgrunKillsItsGroups(t *testing.T) {
	site := fakeSite(t)
	g, err := Start(site, "app-1.")
	if err != nil {
		t.Fatal(err)
	}
	if g.pidfd >= 0 {
		defer unix.Close(g.pidfd)
	}
	g.pipe.Close() // what the kernel does when cgrun is SIGKILLed
	ws := wait(t, g.pid)
	if !ws.Exited() || ws.ExitStatus() != 125 {
		t.Errorf("guard's wait status %v; want exit 125 (the fake groups cannot be removed)", ws)
	}
	for grp, want := range map[string]bool{"app-1.1": true, "app-1.2": true, "other-2.1": false} {
		if have := killed(t, site, grp); have != want {
			t.Errorf("%s killed: %v; want %v", grp, have, want)
		}
	}
}

func TestRunFailures(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no arguments", nil, "want SITE PREFIX PID"},
		{"too many", []string{"a", "b", "c", "d"}, "want SITE PREFIX PID"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := Run(c.args)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Run(%q) = %v; want an error containing %q", c.args, err, c.want)
			}
		})
	}
}

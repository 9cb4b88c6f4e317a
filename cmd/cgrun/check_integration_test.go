package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"golang.org/x/sys/unix"
)

// These run `cgrun check` against the real kernel (scripts/test runs them in its guests: Debian's
// 6.1 UML kernel without PSI, and scripts/uml-kernel's with PSI, where CGRUN_REQUIRE_PSI=1).

// TestCheckRealKernel: as root on a cgroup v2 host, check says cgrun can work (exit 0), names
// the running kernel and the features it has (5.10 and 6.1 in CI), reads only (no group
// appears), and tells PSI as the kernel has it.
func TestCheckRealKernel(t *testing.T) { checkRealKernel(t) }

// TestCheckRealKernelPSI is the same in the guest whose kernel has PSI (CGRUN_REQUIRE_PSI=1).
func TestCheckRealKernelPSI(t *testing.T) { checkRealKernel(t) }

func checkRealKernel(t *testing.T) {
	h := requireCgroup2(t)
	before := groupsUnder(t, h.Mount)
	out, errs, code := cgrunCmd(t, nil, "check")
	if code != 0 || !strings.Contains(out, "\ncgrun run can work here: its groups nest in this process's group") {
		t.Fatalf("exit %d, want 0 and the nest verdict:\n%s%s", code, out, errs)
	}
	var u unix.Utsname
	unix.Uname(&u)
	if !strings.Contains(out, "ok    kernel      Linux "+unix.ByteSliceToString(u.Release[:])) {
		t.Errorf("no kernel line naming %s:\n%s", u.Release[:], out)
	}
	k, _ := parseKernelVersion(unix.ByteSliceToString(u.Release[:]))
	for _, f := range []struct {
		name         string
		major, minor int
	}{{"CLONE_INTO_CGROUP", 5, 7}, {"cgroup.kill", 5, 14}, {"oom_group_kill", 5, 17}, {"memory.peak", 5, 19}} {
		want := "warn  feature     no " + f.name + " ("
		if k.atLeast(f.major, f.minor) {
			want = "ok    feature     " + f.name + " ("
		}
		if !strings.Contains(out, want) {
			t.Errorf("on Linux %d.%d, want %q:\n%s", k.major, k.minor, want, out)
		}
	}
	_, psiErr := os.Stat("/proc/pressure/memory")
	if os.Getenv("CGRUN_REQUIRE_PSI") == "1" && psiErr != nil {
		t.Fatalf("PSI is required here (CGRUN_REQUIRE_PSI=1): %v", psiErr)
	}
	wantPSI := "warn  PSI         no /proc/pressure/memory"
	if psiErr == nil {
		wantPSI = "ok    PSI         pressure stall information"
	}
	if !strings.Contains(out, wantPSI) {
		t.Errorf("want %q:\n%s", wantPSI, out)
	}
	t.Logf("cgrun check:\n%s", out)
	for _, g := range groupsUnder(t, h.Mount) {
		if !slices.Contains(before, g) {
			t.Errorf("check made a group: %s", g)
		}
	}
}

// TestCheckInContainer: in a private cgroup namespace (as a container runtime sets one up with
// unshare) check nests at the namespace's root; with a read-only cgroupfs it says how to fix it.
func TestCheckInContainer(t *testing.T) {
	out, code := inContainer(t, "rw", `exec "$0" check`)
	if code != 0 || !strings.Contains(out, "this process is in /\n") || !strings.Contains(out, "cgrun run can work here: its groups nest in this process's group / (no systemd here)") {
		t.Errorf("rw: exit %d, want 0 and nesting at /:\n%s", code, out)
	}
	out, code = inContainer(t, "ro", `exec "$0" check`)
	if code != 1 || !strings.Contains(out, "FAIL  cgroup      the cgroup filesystem at /sys/fs/cgroup is read-only; fix: mount it read-write") {
		t.Errorf("ro: exit %d, want 1 and the read-only line:\n%s", code, out)
	}
}

// TestCheckAsNonRoot: a user who may not write the group gets exit 1 and the ways to get one.
func TestCheckAsNonRoot(t *testing.T) {
	requireCgroup2(t)
	out, errs, code := cgrunCmd(t, &syscall.Credential{Uid: 65534, Gid: 65534}, "check")
	if code != 1 || !strings.Contains(out, "FAIL  access      as uid 65534 (not root), no permission to make groups in") ||
		!strings.Contains(out, "systemd-run --user --scope -p Delegate=yes") {
		t.Errorf("as nobody: exit %d, want 1 and the permission line:\n%s%s", code, out, errs)
	}
	out, _, code = cgrunCmd(t, &syscall.Credential{Uid: 65534, Gid: 65534}, "check", "--json")
	if code != 1 || !strings.Contains(out, `"works": false`) || !strings.Contains(out, `"status": "fail"`) {
		t.Errorf("--json as nobody: exit %d:\n%s", code, out)
	}
}

// TestCheckBusyGroupAgreesWithRun: started from a group that holds another process (a shell's
// sleep), check's verdict and exit code say what `cgrun run` then does. With a limit on that
// group a sibling group would escape, run fails (125) and check says FAIL with exit 1; without
// one, run makes its groups beside it and check says so with exit 0.
func TestCheckBusyGroupAgreesWithRun(t *testing.T) {
	h := requireCgroup2(t)
	if _, err := cgroup.EnableControllers(h.Mount, "memory", "pids"); err != nil {
		t.Fatal(err)
	}
	busy := filepath.Join(h.Mount, fmt.Sprintf("cgrun-test-busy-%d", time.Now().UnixNano()))
	if err := cgroup.Create(busy); err != nil {
		t.Fatal(err)
	}
	sleeper := exec.Command("sleep", "600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sleeper.Process.Kill()
		sleeper.Wait()
		if err := cgroup.Remove(busy); err != nil {
			t.Errorf("remove %s: %v", busy, err)
		}
	})
	if err := cgroup.Move(busy, sleeper.Process.Pid); err != nil {
		t.Fatal(err)
	}
	// inBusy runs cgrun ARGS as a second process of the busy group.
	inBusy := func(args ...string) (string, string, int) {
		cmd := exec.Command("/bin/sh", append([]string{"-c", `echo $$ >"$1/cgroup.procs" && shift && exec "$@"`, "sh", busy, cgrunBin(t)}, args...)...)
		cmd.Env = append(os.Environ(), "CGRUNTEST_HELPER=1")
		return runToEnd(t, cmd)
	}
	for _, tc := range []struct {
		name      string
		memoryMax cgroup.Limit // of the busy group
		checkCode int
		checkLine string
		runCode   int
	}{
		{"limited group: run fails", cgroup.Bytes(256 << 20), 1, "FAIL  group       " + h.Rel(busy) + " holds 1 other processes (this shell?), and its parent", 125},
		{"unlimited group: run goes beside it", cgroup.Unlimited, 0, "info  group       " + h.Rel(busy) + " holds 1 other processes; cgrun makes its groups beside it", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := cgroup.SetMemoryMax(busy, tc.memoryMax); err != nil {
				t.Fatal(err)
			}
			out, errs, code := inBusy("check")
			if code != tc.checkCode || !strings.Contains(out, tc.checkLine) {
				t.Errorf("check: exit %d, want %d and %q:\n%s%s", code, tc.checkCode, tc.checkLine, out, errs)
			}
			before := groupsUnder(t, h.Mount)
			rout, rerrs, rcode := inBusy("run", "--memory-max", "64M", "--", "true")
			if rcode != tc.runCode {
				t.Errorf("run from the same group: exit %d, want %d (check said exit %d):\n%s%s", rcode, tc.runCode, code, rout, rerrs)
			}
			for _, g := range groupsUnder(t, h.Mount) {
				if !slices.Contains(before, g) {
					t.Errorf("left behind: %s", g)
				}
			}
		})
	}
}

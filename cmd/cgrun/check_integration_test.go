package main

import (
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"

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

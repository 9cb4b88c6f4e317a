package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cgrun/cgrun/cgroup"
)

// inContainer runs script with sh as PID 1 of new cgroup, pid and mount namespaces rooted at a
// fresh group, with cgroup2 mounted as a container runtime would (MOUNTOPTS), $0 the cgrun
// binary and $1 the helper — the way cgrun runs as a container's entrypoint.
func inContainer(t *testing.T, mountOpts, script string) (string, int) {
	t.Helper()
	return inContainerLimited(t, mountOpts, "", script)
}

// inContainerLimited is inContainer with the container's group limited to memoryMax, as
// `docker run --memory` does ("" for none).
func inContainerLimited(t *testing.T, mountOpts, memoryMax, script string) (string, int) {
	t.Helper()
	h := requireCgroup2(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatalf("unshare (util-linux) is needed: %v", err)
	}
	if _, err := cgroup.EnableControllers(h.Mount, "memory", "pids"); err != nil {
		t.Fatal(err)
	}
	ctr := filepath.Join(h.Mount, fmt.Sprintf("cgrun-test-ctr-%d", time.Now().UnixNano()))
	if err := cgroup.Create(ctr); err != nil {
		t.Fatal(err)
	}
	if memoryMax != "" {
		if err := os.WriteFile(filepath.Join(ctr, "memory.max"), []byte(memoryMax), 0); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		cgroup.Kill(context.Background(), ctr)
		kids, _ := cgroup.Children(ctr)
		for _, k := range kids {
			cgroup.Remove(filepath.Join(ctr, k))
		}
		if err := cgroup.Remove(ctr); err != nil {
			t.Error(err)
		}
	})
	// PID 1 of a new pid namespace moves itself into the container's group, then enters new
	// cgroup and mount namespaces (rooted at that group) and execs the script: nothing but the
	// container's own processes is in the group, as with a real runtime.
	inner := "mount -t proc proc /proc && umount -l /sys/fs/cgroup && mount -t cgroup2 -o " + mountOpts +
		" none /sys/fs/cgroup || exit 99; " + script
	outer := `echo 0 > "$CTR/cgroup.procs" && exec unshare --cgroup --mount /bin/sh -c "$INNER" "$0" "$1"`
	cmd := exec.Command("unshare", "--pid", "--fork", "/bin/sh", "-c", outer, cgrunBin(t), helperPath(t))
	cmd.Env = append(os.Environ(), "CGRUNTEST_HELPER=1", "CTR="+ctr, "INNER="+inner)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

func TestContainerPID1PlacesLimitsAndExits(t *testing.T) {
	// cgrun is PID 1 (sh execs it) in a private cgroup namespace: its own group is the
	// namespace's root, where the payload group must be made.
	out, code := inContainer(t, "rw", `exec "$0" run --memory-max 32M --name app -- "$1" report`)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	rep := parseReport(t, out)
	if rep.Group != "/app-1.1" || rep.Files["memory.max"] != "33554432" {
		t.Errorf("in the container the helper ran in %q with memory.max %q; want /app-1.1 and 32M", rep.Group, rep.Files["memory.max"])
	}
}

// TestContainerPercentOfItsLimit: in a container limited to 200M (memory.max of the namespace's
// root group), --memory-max 50% is 100M, not half of the machine.
func TestContainerPercentOfItsLimit(t *testing.T) {
	out, code := inContainerLimited(t, "rw", "200M", `exec "$0" run --memory-max 50% --name app -- "$1" report`)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	if rep := parseReport(t, out); rep.Files["memory.max"] != strconv.Itoa(100<<20) {
		t.Errorf("memory.max %q; want half of the container's 200M, %d", rep.Files["memory.max"], 100<<20)
	}
}

func TestContainerPID1ExitStatusAndOOM(t *testing.T) {
	out, code := inContainer(t, "rw", `exec "$0" run -- "$1" exit 7`)
	if code != 7 {
		t.Errorf("exit %d, want the child's 7: %s", code, out)
	}
	out, code = inContainer(t, "rw", `exec "$0" run --memory-max 24M --name hog -- "$1" alloc 100`)
	if code != 137 || !strings.Contains(out, "cgrun: hog killed by the OOM killer (memory.max 24M") {
		t.Errorf("exit %d, output %q; want 137 and the OOM line", code, out)
	}
}

func TestContainerPID1AdoptsOtherProcessesAndReaps(t *testing.T) {
	// A process already at the namespace root (as docker exec leaves one) would block
	// enabling controllers there; cgrun moves it into its leaf. The payload's double-forked
	// daemon comes back to PID 1 and is reaped.
	out, code := inContainer(t, "rw", `sleep 60 & exec "$0" run --name app -- "$1" daemon`)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	if rep := parseReport(t, out); rep.Group != "/app-1.1" {
		t.Errorf("helper ran in %q", rep.Group)
	}
}

func TestContainerReadOnlyCgroupfs(t *testing.T) {
	out, code := inContainer(t, "ro", `exec "$0" run -- "$1" exit 0`)
	if code != 125 || !strings.Contains(out, "read-only") || !strings.Contains(out, "--cgroupns=private") || strings.Count(out, "\n") != 1 {
		t.Errorf("exit %d, output %q; want 125 and one line that says how to fix it", code, out)
	}
}

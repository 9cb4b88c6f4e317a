package oomwatch_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/oomwatch"
)

// realGroup makes a fresh group with the memory and pids controllers, or skips the test —
// unless CGRUN_REQUIRE_CGROUP2=1 (as in the UML harness), in which case it fails.
func realGroup(t *testing.T) string {
	t.Helper()
	h, err := cgroup.Detect()
	if err == nil && os.Geteuid() != 0 {
		err = fmt.Errorf("not root")
	}
	if err == nil {
		var ctrls []string
		ctrls, err = cgroup.Controllers(h.Mount)
		if err == nil && !slices.Contains(ctrls, "memory") {
			err = fmt.Errorf("no memory controller")
		}
	}
	if err != nil {
		if os.Getenv("CGRUN_REQUIRE_CGROUP2") == "1" {
			t.Fatalf("cgroup v2 is required here (CGRUN_REQUIRE_CGROUP2=1): %v", err)
		}
		t.Skipf("needs root and cgroup v2 with the memory controller: %v", err)
	}
	if _, err := cgroup.EnableControllers(h.Mount, "memory", "pids"); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(h.Mount, fmt.Sprintf("oomwatch-test-%d-%s", os.Getpid(), filepath.Base(t.Name())))
	if err := cgroup.Create(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cgroup.Kill(context.Background(), dir)
		if err := cgroup.Remove(dir); err != nil {
			t.Error(err)
		}
	})
	return dir
}

func TestRealKernelWatcherLeaksNothing(t *testing.T) {
	leakCheck(t, realGroup(t))
}

// TestRealKernelEmptiedAndPidsMax starts processes in a real group, hits pids.max, and kills
// the group: the watcher reports the refused forks and one emptied event.
func TestRealKernelEmptiedAndPidsMax(t *testing.T) {
	dir := realGroup(t)
	if err := cgroup.WriteFile(dir, "pids.max", "2"); err != nil {
		t.Fatal(err)
	}
	w, err := oomwatch.New(dir, "/test", oomwatch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	evs := make(chan oomwatch.Event, 64)
	done := make(chan struct{})
	go func() { w.Run(ctx, func(ev oomwatch.Event) { evs <- ev }); close(done) }()

	gfd, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer gfd.Close()
	// A shell that tries to start 5 sleeps under pids.max 2: itself and one sleep fit.
	cmd := exec.Command("/bin/sh", "-c", "for i in 1 2 3 4 5; do sleep 30 & done; wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(gfd.Fd())}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor := func(k oomwatch.Kind) oomwatch.Event {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case ev := <-evs:
				if ev.Kind == k {
					return ev
				}
			case <-timeout:
				t.Fatalf("no %s event within 10 s", k)
			}
		}
	}
	if ev := waitFor(oomwatch.PidsMax); ev.Count == 0 || ev.Group != "/test" {
		t.Errorf("pids_max event %+v", ev)
	}
	if err := cgroup.WriteFile(dir, "cgroup.kill", "1"); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	waitFor(oomwatch.Emptied)
	cancel()
	<-done
}

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

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/oomwatch"
	"golang.org/x/sys/unix"
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

// startIn starts `sh -c script` in the group at dir (placed there as it is made); the test's
// end kills the group and reaps the shell.
func startIn(t *testing.T, dir, script string) *exec.Cmd {
	t.Helper()
	gfd, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer gfd.Close()
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(gfd.Fd())}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cgroup.Kill(context.Background(), dir); cmd.Wait() })
	return cmd
}

func TestRealKernelWatcherLeaksNothing(t *testing.T) {
	leakCheck(t, realGroup(t))
}

// TestRealKernelEmptiedAndPidsMax starts processes in a real group, hits pids.max, and kills
// the group: the watcher reports the refused forks and one emptied event.
func TestRealKernelEmptiedAndPidsMax(t *testing.T) {
	dir := realGroup(t)
	if err := cgroup.SetPidsMax(dir, cgroup.Bytes(2)); err != nil {
		t.Fatal(err)
	}
	evs, _ := watch(t, dir, oomwatch.Options{})
	// A shell that tries to start 5 sleeps under pids.max 2: itself and one sleep fit.
	cmd := startIn(t, dir, "for i in 1 2 3 4 5; do sleep 30 & done; wait")
	if ev := waitFor(t, evs, oomwatch.PidsMax); ev.Count == 0 || ev.Group != "/watched" {
		t.Errorf("pids_max event %+v", ev)
	}
	// KillNow, not cgroup.kill: the kill must work on kernels before 5.14 too.
	if err := cgroup.KillNow(dir); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	waitFor(t, evs, oomwatch.Emptied)
}

// TestRealKernelPressureTrigger throttles a process at memory.high in a real group (no swap:
// the kernel makes it sleep, which PSI counts as a memory stall) and waits for the trigger's
// POLLPRI to come out as a pressure event. It needs PSI in cgroups: scripts/test runs it in the
// guest booting scripts/uml-kernel's kernel with CGRUN_REQUIRE_PSI=1, where it must not skip.
func TestRealKernelPressureTrigger(t *testing.T) {
	dir := realGroup(t)
	if _, err := os.Stat(filepath.Join(dir, "memory.pressure")); err != nil {
		if os.Getenv("CGRUN_REQUIRE_PSI") == "1" {
			t.Fatalf("PSI is required here (CGRUN_REQUIRE_PSI=1): %v", err)
		}
		t.Skipf("needs PSI in cgroups: %v", err)
	}
	if err := cgroup.SetMemoryHigh(dir, cgroup.Bytes(8<<20)); err != nil {
		t.Fatal(err)
	}
	tr, err := oomwatch.ParseTrigger("some 100ms/1s")
	if err != nil {
		t.Fatal(err)
	}
	evs, _ := watch(t, dir, oomwatch.Options{Triggers: []oomwatch.Trigger{tr}})
	// tail keeps a pipe's last line in memory: with no newline in 64 MiB of zeros, all of it.
	startIn(t, dir, "head -c 64M /dev/zero | tail -n 1 >/dev/null")
	ev := waitFor(t, evs, oomwatch.Pressure)
	if ev.Pressure == nil || ev.Pressure.Trigger != "some 100ms/1s" || ev.Group != "/watched" || ev.MemoryCurrent == 0 || ev.Pressure.SomeTotalUS < 100_000 {
		t.Errorf("pressure event %+v (pressure %+v)", ev, ev.Pressure)
	}
}

// TestRealKernelKillIsNotifiedInTheLeaf checks what Options.Children rests on: memory.max events
// land on the group that has the limit, while an OOM kill is counted in the victim's own group
// too, whose memory.events the kernel notifies without the group file's hold-back. The watcher,
// listening to both, reports the one kill exactly once. (That a child's wake-up makes the
// watcher reread the group is tested on a fake group, TestWatcherHearsAChildAtOnce: here the
// group's own late notification or the final read would report the kill too.) The leaf has no
// limits of its own here on purpose: that is the premise, and still cgrun's layout where the
// limit hit is the group's alone (a nested cgrun's generation beside the outer leaf, or a probe's
// memory on top of the leaf's). Where the leaf carries the limits (cgroup.Limits.Mirror) its
// file is as busy as the group's, which the watcher's rereading at the limit covers
// (TestWatcherPollsForAKillAtTheLimit).
func TestRealKernelKillIsNotifiedInTheLeaf(t *testing.T) {
	dir := realGroup(t)
	if _, err := cgroup.EnableControllers(dir, "memory"); err != nil {
		t.Fatal(err)
	}
	leaf := filepath.Join(dir, "main")
	if err := cgroup.Create(leaf); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cgroup.Kill(context.Background(), leaf); cgroup.Remove(leaf) })
	if err := cgroup.SetMemoryMax(dir, cgroup.Bytes(16<<20)); err != nil {
		t.Fatal(err)
	}
	cgroup.SetMemorySwapMax(dir, cgroup.Bytes(0)) // where there is swap accounting
	ino, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(ino)
	if _, err := syscall.InotifyAddWatch(ino, filepath.Join(leaf, "memory.events"), syscall.IN_MODIFY); err != nil {
		t.Fatal(err)
	}
	evs, stop := watch(t, dir, oomwatch.Options{Children: []string{leaf}})
	if err := startIn(t, leaf, "exec tail -n 1 </dev/zero >/dev/null").Wait(); err == nil {
		t.Fatal("the allocator exited 0; want the OOM killer's SIGKILL")
	}
	stop()

	// kernfs delivers the notification from a work queue: give it a moment.
	if n, err := unix.Poll([]unix.PollFd{{Fd: int32(ino), Events: unix.POLLIN}}, 5000); n != 1 {
		t.Errorf("no inotify event on the leaf's memory.events within 5 s of the kill (%v)", err)
	}
	leafEv, err := cgroup.ReadKeyed(leaf, "memory.events")
	if err != nil {
		t.Fatal(err)
	}
	groupEv, err := cgroup.ReadKeyed(dir, "memory.events")
	if err != nil {
		t.Fatal(err)
	}
	if leafEv["oom_kill"] != 1 || leafEv["max"] != 0 || groupEv["oom_kill"] != 1 || groupEv["max"] == 0 {
		t.Errorf("leaf memory.events %v, group %v: want the kill in both and the max events only in the group", leafEv, groupEv)
	}
	kills := uint64(0)
	for ev := range evs {
		if ev.Kind == oomwatch.OOMKill {
			kills += ev.Delta
		}
	}
	if kills != 1 {
		t.Errorf("the watcher reported %d oom_kill, want 1", kills)
	}
}

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
	if err := cgroup.WriteFile(dir, "memory.high", "8M"); err != nil {
		t.Fatal(err)
	}
	tr, err := oomwatch.ParseTrigger("some 100ms/1s")
	if err != nil {
		t.Fatal(err)
	}
	w, err := oomwatch.New(dir, "/test", oomwatch.Options{Triggers: []oomwatch.Trigger{tr}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if n := w.Notice(); n != nil {
		t.Fatalf("notice %v on a kernel with PSI", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	evs := make(chan oomwatch.Event, 64)
	done := make(chan struct{})
	go func() { w.Run(ctx, func(ev oomwatch.Event) { evs <- ev }); close(done) }()
	defer func() { cancel(); <-done }()

	gfd, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer gfd.Close()
	// tail keeps a pipe's last line in memory: with no newline in 64 MiB of zeros, all of it.
	cmd := exec.Command("/bin/sh", "-c", "head -c 64M /dev/zero | tail -n 1 >/dev/null")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(gfd.Fd())}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cgroup.WriteFile(dir, "cgroup.kill", "1"); cmd.Wait() }()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case ev := <-evs:
			if ev.Kind != oomwatch.Pressure {
				continue
			}
			if ev.Pressure == nil || ev.Pressure.Trigger != "some 100ms/1s" || ev.Group != "/test" || ev.MemoryCurrent == 0 {
				t.Errorf("pressure event %+v (pressure %+v)", ev, ev.Pressure)
			}
			return
		case <-timeout:
			t.Fatal("no pressure event within 15 s of throttling at memory.high")
		}
	}
}

// TestRealKernelKillIsNotifiedInTheLeaf checks what Options.Children rests on: memory.max events
// land on the group that has the limit, while an OOM kill is counted in the victim's own group
// too, whose memory.events the kernel notifies without the group file's hold-back. The watcher,
// listening to both, reports the one kill exactly once.
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
	if err := cgroup.WriteFile(dir, "memory.max", "16M"); err != nil {
		t.Fatal(err)
	}
	cgroup.WriteFile(dir, "memory.swap.max", "0") // where there is swap accounting
	ino, err := syscall.InotifyInit1(syscall.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(ino)
	if _, err := syscall.InotifyAddWatch(ino, filepath.Join(leaf, "memory.events"), syscall.IN_MODIFY); err != nil {
		t.Fatal(err)
	}
	w, err := oomwatch.New(dir, "/test", oomwatch.Options{Children: []string{leaf}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var evs []oomwatch.Event
	done := make(chan struct{})
	go func() { w.Run(ctx, func(ev oomwatch.Event) { evs = append(evs, ev) }); close(done) }()

	lfd, err := os.Open(leaf)
	if err != nil {
		t.Fatal(err)
	}
	defer lfd.Close()
	// tail keeps a pipe's last line in memory: with no newline in 64 MiB of zeros, all of it.
	cmd := exec.Command("/bin/sh", "-c", "exec tail -n 1 </dev/zero >/dev/null")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(lfd.Fd())}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil {
		t.Fatal("the allocator exited 0; want the OOM killer's SIGKILL")
	}
	cancel()
	<-done

	buf := make([]byte, 4096)
	if err := syscall.SetNonblock(ino, true); err != nil {
		t.Fatal(err)
	}
	if n, err := syscall.Read(ino, buf); n <= 0 {
		t.Errorf("no inotify event on the leaf's memory.events after the kill: %v", err)
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
	kills := 0
	for _, ev := range evs {
		if ev.Kind == oomwatch.OOMKill {
			kills += int(ev.Delta)
		}
	}
	if kills != 1 {
		t.Errorf("the watcher reported %d oom_kill, want 1: %+v", kills, evs)
	}
}

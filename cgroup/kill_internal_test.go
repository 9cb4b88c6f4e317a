package cgroup

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// realTestGroup makes a fresh group at the top of the hierarchy, or skips the test — unless
// CGRUN_REQUIRE_CGROUP2=1, as in the UML harness, where it fails. Like every real-kernel test
// it insists on the memory controller in cgroup v2, so it never touches a hybrid host's tree.
func realTestGroup(t *testing.T) string {
	t.Helper()
	h, err := Detect()
	if err == nil {
		var ctrls []string
		if ctrls, err = Controllers(h.Mount); err == nil && !slices.Contains(ctrls, "memory") {
			err = fmt.Errorf("no memory controller in %s", h.Mount)
		}
	}
	if err == nil && os.Geteuid() != 0 {
		err = fmt.Errorf("not root")
	}
	if err != nil {
		if os.Getenv("CGRUN_REQUIRE_CGROUP2") == "1" {
			t.Fatalf("cgroup v2 is required here (CGRUN_REQUIRE_CGROUP2=1): %v", err)
		}
		t.Skipf("needs root and cgroup v2: %v", err)
	}
	dir := filepath.Join(h.Mount, fmt.Sprintf("cgroup-test-%d-%s", os.Getpid(), t.Name()))
	if err := Create(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = Kill(context.Background(), dir)
		if err := RemoveTree(dir); err != nil {
			t.Error(err)
		}
	})
	return dir
}

// TestRealKernelKillFrozen runs the fallback of Kill for kernels before 5.14 (no cgroup.kill)
// on a real one: a shell that forks as fast as it can, in a nested group, and a setsid daemon
// that left it. Freezing stops the forks, so the listed kills catch everything.
func TestRealKernelKillFrozen(t *testing.T) {
	dir := realTestGroup(t)
	if _, err := os.Stat(filepath.Join(dir, "cgroup.freeze")); err != nil {
		t.Fatalf("no cgroup.freeze (Linux 5.2): %v", err)
	}
	inner := filepath.Join(dir, "inner")
	if err := Create(inner); err != nil {
		t.Fatal(err)
	}
	fd, err := os.Open(inner)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	cmd := exec.Command("/bin/sh", "-c", "setsid sleep 600 & while :; do sleep 600 & done")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(fd.Fd())}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go cmd.Wait() // reap the shell; the sleeps are reparented to init
	for deadline := time.Now().Add(10 * time.Second); ; {
		if pids, _ := Procs(inner); len(pids) >= 50 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the forking shell did not get to 50 processes in 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := killFrozen(ctx, dir); err != nil {
		t.Fatalf("killFrozen: %v", err)
	}
	if busy, err := Populated(dir); err != nil || busy {
		t.Errorf("after killFrozen the group is populated=%v (%v)", busy, err)
	}
	if frozen, _ := ReadKeyed(inner, "cgroup.events"); frozen["frozen"] != 0 {
		t.Errorf("the inner group is left frozen: %v", frozen)
	}
}

// TestRealKernelKillNow: KillNow returns at once, and what it sent empties the group — through
// cgroup.kill where the kernel has it (5.14), and through one freeze + SIGKILL pass, the only
// way on older kernels, which runs on every kernel.
func TestRealKernelKillNow(t *testing.T) {
	parent := realTestGroup(t) // its cleanup removes the groups below it too
	for i, tc := range []struct {
		name string
		kill func(dir string) error
	}{
		{"KillNow", KillNow},
		{"freeze and kill", freezeAndKill},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(parent, fmt.Sprint(i))
			if err := Create(dir); err != nil {
				t.Fatal(err)
			}
			fd, err := os.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer fd.Close()
			// A shell that ignores SIGTERM, with a child that does too.
			cmd := exec.Command("/bin/sh", "-c", "trap '' TERM; sleep 600 & sleep 600")
			cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(fd.Fd())}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			for deadline := time.Now().Add(10 * time.Second); ; {
				if pids, _ := Procs(dir); len(pids) >= 3 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the shell did not get to 3 processes in 10 s")
				}
				time.Sleep(10 * time.Millisecond)
			}
			start := time.Now()
			if err := tc.kill(dir); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d > 500*time.Millisecond {
				t.Errorf("it took %v; it should not wait for the processes", d)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := WaitEmpty(ctx, dir); err != nil {
				t.Errorf("the group did not empty: %v", err)
			}
			if err := <-done; err == nil || !strings.Contains(err.Error(), "killed") {
				t.Errorf("the shell ended with %v, want killed", err)
			}
			if ev, _ := ReadKeyed(dir, "cgroup.events"); ev["frozen"] != 0 {
				t.Errorf("the group is left frozen: %v", ev)
			}
		})
	}
}

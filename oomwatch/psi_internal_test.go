package oomwatch

import (
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestPSITriggerOnARealKernel registers triggers the way the watcher does on the system-wide
// /proc/pressure/memory, which takes the same format as a group's memory.pressure: the kernel
// must accept what cgrun writes, and the fd must be pollable for POLLPRI. It needs a kernel with
// PSI: Debian's UML kernel has none (there it is skipped); the host's real kernel and the guest
// booting scripts/uml-kernel's PSI kernel (CGRUN_REQUIRE_PSI=1: it must not skip) run it.
func TestPSITriggerOnARealKernel(t *testing.T) {
	const path = "/proc/pressure/memory"
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CGRUN_REQUIRE_PSI") == "1" {
			t.Fatalf("PSI is required here (CGRUN_REQUIRE_PSI=1): %v", err)
		}
		t.Skipf("no PSI on this kernel (%v)", err)
	}
	for _, s := range []string{"some 150ms/1s", "full 100ms/2s", "some 500ms/10s"} {
		tr, err := ParseTrigger(s)
		if err != nil {
			t.Fatal(err)
		}
		fd, err := openTriggerFile(path, tr)
		if !capSysResource() && tr.Window%(2*time.Second) != 0 {
			// Without CAP_SYS_RESOURCE the kernel takes only whole 2 s windows: cgrun must say so.
			if err == nil || !strings.Contains(err.Error(), "multiples of 2s") {
				t.Errorf("trigger %q without CAP_SYS_RESOURCE: %v; want the 2s-window explanation", s, err)
			}
			if err == nil {
				unix.Close(fd)
			}
			continue
		}
		if err != nil {
			t.Fatalf("trigger %q refused by the kernel: %v", s, err)
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLPRI}}
		if _, err := unix.Poll(fds, 0); err != nil || fds[0].Revents&unix.POLLERR != 0 {
			t.Errorf("trigger %q: poll %v, revents %#x", s, err, fds[0].Revents)
		}
		unix.Close(fd)
	}
	p, err := readPressureFile(path)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	if p.SomeAvg10 < 0 || p.SomeAvg10 > 100 || p.FullAvg60 < 0 || p.FullAvg60 > 100 {
		t.Errorf("averages out of range: %+v", p)
	}
}

func TestParsePressure(t *testing.T) {
	p, err := parsePressure("memory.pressure", "some avg10=1.50 avg60=0.25 avg300=0.00 total=123\nfull avg10=0.75 avg60=0.10 avg300=0.00 total=45\n")
	want := PressureInfo{SomeAvg10: 1.5, SomeAvg60: 0.25, FullAvg10: 0.75, FullAvg60: 0.1, SomeTotalUS: 123, FullTotalUS: 45}
	if err != nil || p != want {
		t.Errorf("= %+v, %v; want %+v", p, err, want)
	}
	if got := (PressureInfo{SomeTotalUS: 1_432_499}).Stalled(); got != 1432*time.Millisecond {
		t.Errorf("Stalled() = %v, want 1.432s", got)
	}
	for _, bad := range []string{
		"some",
		"some avg10=x avg60=0 avg300=0 total=0",
		"some avg10=0 avg60=0 avg300=0 total=-1",
		"some avg10=0 avg60=0 avg300=0 total=1.5",
	} {
		if _, err := parsePressure("memory.pressure", bad); err == nil {
			t.Errorf("parsePressure(%q) accepted", bad)
		}
	}
}

// TestUnprivilegedSuggestion: the trigger cgrun suggests to a process without CAP_SYS_RESOURCE
// keeps the threshold, rounds the window up to whole 2 s, and is itself a valid trigger.
func TestUnprivilegedSuggestion(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"some 150ms/1s", "some 150ms/2s"},
		{"some 3s/5s", "some 3s/6s"},
		{"full 1s/9s", "full 1s/10s"},
		{"some 100ms/2s", "some 100ms/2s"},
		{"some 500ms/500ms", "some 500ms/2s"},
	} {
		tr, err := ParseTrigger(c.in)
		if err != nil {
			t.Fatal(err)
		}
		got := tr.unprivileged().String()
		if got != c.want {
			t.Errorf("%q: suggested %q, want %q", c.in, got, c.want)
		}
		if _, err := ParseTrigger(got); err != nil {
			t.Errorf("%q: the suggestion %q does not parse: %v", c.in, got, err)
		}
	}
}

package oomwatch

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"golang.org/x/sys/unix"
)

// Trigger is a PSI trigger on memory.pressure: fire when tasks were stalled on memory for at
// least Threshold within any Window ("some 150ms/1s"). See the kernel's Documentation/
// accounting/psi.rst; triggers need Linux 5.2 and CONFIG_PSI.
type Trigger struct {
	Full      bool // "full": all non-idle tasks stalled at once; else "some": at least one
	Threshold time.Duration
	Window    time.Duration
}

// ParseTrigger reads "some 150ms/1s" or "full 100ms/2s" (the kernel's own form, "some 150000
// 1000000" in microseconds, works too).
func ParseTrigger(s string) (Trigger, error) {
	bad := func(why string) (Trigger, error) {
		return Trigger{}, fmt.Errorf("pressure trigger %q: %s (want e.g. \"some 150ms/1s\" or \"full 100ms/2s\")", s, why)
	}
	f := strings.Fields(s)
	var t Trigger
	switch {
	case len(f) == 2:
		th, win, ok := strings.Cut(f[1], "/")
		if !ok {
			return bad("threshold and window must be separated by /")
		}
		var err1, err2 error
		t.Threshold, err1 = time.ParseDuration(th)
		t.Window, err2 = time.ParseDuration(win)
		if err1 != nil || err2 != nil {
			return bad("durations need a unit, as 150ms or 2s")
		}
	case len(f) == 3:
		th, err1 := strconv.ParseUint(f[1], 10, 32)
		win, err2 := strconv.ParseUint(f[2], 10, 32)
		if err1 != nil || err2 != nil {
			return bad("threshold and window in microseconds must be whole numbers")
		}
		t.Threshold, t.Window = time.Duration(th)*time.Microsecond, time.Duration(win)*time.Microsecond
	default:
		return bad("want KIND THRESHOLD/WINDOW")
	}
	switch f[0] {
	case "some":
	case "full":
		t.Full = true
	default:
		return bad("kind must be some or full")
	}
	// The kernel's limits (kernel/sched/psi.c): a window from 500ms to 10s, a threshold within it.
	switch {
	case t.Window < 500*time.Millisecond || t.Window > 10*time.Second:
		return bad("the window must be from 500ms to 10s")
	case t.Threshold <= 0 || t.Threshold > t.Window:
		return bad("the threshold must be above 0 and at most the window")
	case t.Window%time.Microsecond != 0 || t.Threshold%time.Microsecond != 0:
		return bad("durations must be whole microseconds")
	}
	return t, nil
}

// String is the trigger as ParseTrigger reads it.
func (t Trigger) String() string {
	kind := "some"
	if t.Full {
		kind = "full"
	}
	return fmt.Sprintf("%s %v/%v", kind, t.Threshold, t.Window)
}

// unprivileged is t with its window rounded up to a whole multiple of 2 s (at most 10 s), the
// only windows the kernel takes from a process without CAP_SYS_RESOURCE.
func (t Trigger) unprivileged() Trigger {
	const step = 2 * time.Second
	t.Window = min((t.Window+step-1)/step*step, 10*time.Second)
	return t
}

// kernel is the trigger as memory.pressure takes it.
func (t Trigger) kernel() string {
	kind := "some"
	if t.Full {
		kind = "full"
	}
	return fmt.Sprintf("%s %d %d", kind, t.Threshold.Microseconds(), t.Window.Microseconds())
}

// ErrNoPSI means the kernel has no pressure stall information for cgroups: no memory.pressure
// (before 4.20, CONFIG_PSI off, or booted with psi=0).
var ErrNoPSI = errors.New("memory pressure (PSI) is not available on this kernel")

// openTrigger registers t on the group's memory.pressure and returns the fd to wait on for
// POLLPRI. The kernel allows one trigger per open file.
func openTrigger(dir string, t Trigger) (int, error) {
	return openTriggerFile(filepath.Join(dir, "memory.pressure"), t)
}

// openTriggerFile registers t on a pressure file: a group's memory.pressure, or the system's
// /proc/pressure/memory, which takes the same triggers.
func openTriggerFile(path string, t Trigger) (int, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return -1, ErrNoPSI
	}
	if errors.Is(err, unix.EPERM) && !capSysResource() {
		// Before Linux 6.5 (and where the change was not backported) opening a pressure file
		// for writing needs CAP_SYS_RESOURCE, whatever the trigger.
		return -1, fmt.Errorf("pressure trigger %q: this kernel takes PSI triggers only from a process with CAP_SYS_RESOURCE (Linux 6.5 also takes 2s windows without it): open %s: %w", t, path, err)
	}
	if err != nil {
		return -1, fmt.Errorf("open %s: %w", path, err)
	}
	if _, err := unix.Write(fd, append([]byte(t.kernel()), 0)); err != nil {
		unix.Close(fd)
		switch {
		case errors.Is(err, unix.EOPNOTSUPP):
			// psi=0 on the command line leaves the file but refuses triggers.
			return -1, ErrNoPSI
		case (errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EPERM)) && t.Window%(2*time.Second) != 0 && !capSysResource():
			// Linux 6.5 lets a process without CAP_SYS_RESOURCE make triggers, but only with
			// windows that are multiples of 2 s; others get EINVAL.
			return -1, fmt.Errorf("pressure trigger %q: without CAP_SYS_RESOURCE the kernel takes only windows that are whole multiples of 2s (run it with CAP_SYS_RESOURCE for others), e.g. %q: %w",
				t, t.unprivileged().String(), err)
		}
		return -1, &cgroup.WriteError{Path: path, Value: t.kernel(), Err: err}
	}
	return fd, nil
}

// ReadPressure reads the averages in the group's memory.pressure.
func ReadPressure(dir string) (PressureInfo, error) {
	return readPressureFile(filepath.Join(dir, "memory.pressure"))
}

func readPressureFile(path string) (PressureInfo, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return PressureInfo{}, err
	}
	return parsePressure(path, string(b))
}

func parsePressure(path, s string) (PressureInfo, error) {
	var p PressureInfo
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			return p, &cgroup.ParseError{Path: path, Line: line, Err: errors.New("too few fields")}
		}
		var avg10, avg60 float64
		var total uint64
		for _, kv := range f[1:] {
			k, v, _ := strings.Cut(kv, "=")
			var err error
			switch k {
			case "total":
				total, err = strconv.ParseUint(v, 10, 64)
			case "avg10":
				avg10, err = strconv.ParseFloat(v, 64)
			case "avg60":
				avg60, err = strconv.ParseFloat(v, 64)
			default:
				_, err = strconv.ParseFloat(v, 64)
			}
			if err != nil {
				return p, &cgroup.ParseError{Path: path, Line: line, Err: err}
			}
		}
		switch f[0] {
		case "some":
			p.SomeAvg10, p.SomeAvg60, p.SomeTotalUS = avg10, avg60, total
		case "full":
			p.FullAvg10, p.FullAvg60, p.FullTotalUS = avg10, avg60, total
		}
	}
	return p, nil
}

// capSysResource reports whether this process has CAP_SYS_RESOURCE in its effective set, which
// privileged PSI triggers (any window) need.
func capSysResource() bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<unix.CAP_SYS_RESOURCE) != 0
		}
	}
	return false
}

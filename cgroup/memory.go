package cgroup

import (
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
)

// MemoryPeak reads memory.peak (Linux 5.19). On older kernels it returns ErrUnsupported.
func MemoryPeak(dir string) (uint64, error) {
	n, _, err := ReadUint(dir, "memory.peak")
	if errors.Is(err, os.ErrNotExist) {
		return 0, ErrUnsupported
	}
	return n, err
}

// MemoryCurrent reads memory.current.
func MemoryCurrent(dir string) (uint64, error) {
	n, _, err := ReadUint(dir, "memory.current")
	return n, err
}

// MemoryMax reads memory.max.
func MemoryMax(dir string) (Limit, error) { return readLimit(dir, "memory.max") }

// SetMemoryMax writes memory.max; v must be Set.
func SetMemoryMax(dir string, v Limit) error { return writeFile(dir, "memory.max", v.String()) }

// MemoryHigh reads memory.high.
func MemoryHigh(dir string) (Limit, error) { return readLimit(dir, "memory.high") }

// SetMemoryHigh writes memory.high; v must be Set.
func SetMemoryHigh(dir string, v Limit) error { return writeFile(dir, "memory.high", v.String()) }

// SetMemoryLow writes memory.low; v must be Set.
func SetMemoryLow(dir string, v Limit) error { return writeFile(dir, "memory.low", v.String()) }

// SetMemorySwapMax writes memory.swap.max; v must be Set.
func SetMemorySwapMax(dir string, v Limit) error {
	return writeFile(dir, "memory.swap.max", v.String())
}

// SetMemoryOOMGroup writes memory.oom.group: on, the OOM killer takes the whole group, not one
// process.
func SetMemoryOOMGroup(dir string, on bool) error {
	v := "0"
	if on {
		v = "1"
	}
	return writeFile(dir, "memory.oom.group", v)
}

// readLimit reads a file holding a number or "max".
func readLimit(dir, name string) (Limit, error) {
	n, ok, err := ReadUint(dir, name)
	if err != nil {
		return Limit{}, err
	}
	if !ok {
		return Unlimited, nil
	}
	return Bytes(n), nil
}

// PeakSource says how a memory peak was measured. Reports, events and states carry it beside
// the figure.
type PeakSource string

const (
	// PeakKernel is the kernel's own high-water mark, memory.peak (Linux 5.19).
	PeakKernel PeakSource = "memory.peak"
	// PeakSampled is, before 5.19, the highest memory.current read while the group ran, or its
	// memory.max once the kernel reported that the group reached it (to within one charge). A
	// spike between two reads can be missed: the figure is a floor.
	PeakSampled PeakSource = "sampled"
)

// PeakMeter is a group's memory peak on every kernel: memory.peak where the kernel has it
// (5.19), else what Sample and Observe were shown, raised to memory.max of the group or of a
// group below it once that group's own memory.events.local counts a "max" event (the kernel
// counts one only when a charge would take the group past memory.max, so its usage was at
// memory.max, less the one charge). It is safe for concurrent use.
type PeakMeter struct {
	dir     string
	limited []string // dir and groups below it whose memory.max counts
	kernel  bool     // the kernel has memory.peak
	seen    atomic.Uint64
	reached []atomic.Bool // per limited group: its memory.max was reached, and seen holds it
}

// NewPeakMeter measures the peak of the group dir. limited are groups below it that hold
// limits of their own (dir's are always considered).
func NewPeakMeter(dir string, limited ...string) *PeakMeter {
	_, err := os.Stat(filepath.Join(dir, "memory.peak"))
	limited = append([]string{dir}, limited...)
	return &PeakMeter{dir: dir, limited: limited, reached: make([]atomic.Bool, len(limited)), kernel: err == nil}
}

// Kernel reports whether the kernel keeps the peak itself (memory.peak): then Sample is not
// needed.
func (m *PeakMeter) Kernel() bool { return m.kernel }

// Sample reads memory.current and keeps it when it is the highest yet. It returns what it read
// and whether that was a new high.
func (m *PeakMeter) Sample() (cur uint64, higher bool, err error) {
	cur, err = MemoryCurrent(m.dir)
	if err == nil {
		higher = m.Observe(cur)
	}
	return cur, higher, err
}

// Observe keeps a memory.current read elsewhere when it is the highest yet, and says whether it
// was.
func (m *PeakMeter) Observe(cur uint64) bool {
	for {
		old := m.seen.Load()
		if cur <= old {
			return false
		}
		if m.seen.CompareAndSwap(old, cur) {
			return true
		}
	}
}

// Peak is the group's peak so far and how it was measured. It does not sample: call Sample first
// for the latest. It is 0 with no source only when nothing was measured.
func (m *PeakMeter) Peak() (uint64, PeakSource) {
	if m.kernel {
		if n, err := MemoryPeak(m.dir); err == nil {
			return n, PeakKernel
		}
		return 0, ""
	}
	for i, d := range m.limited {
		if m.reached[i].Load() {
			continue
		}
		if ev, err := ReadKeyed(d, "memory.events.local"); err != nil || ev["max"] == 0 {
			continue
		}
		if l, err := MemoryMax(d); err == nil && !l.Max {
			m.Observe(l.Value)
			m.reached[i].Store(true)
		}
	}
	if n := m.seen.Load(); n > 0 {
		return n, PeakSampled
	}
	return 0, ""
}

// OOMKills counts the OOM killer's kills in memory.events counters: the group kills when the
// group was killed as a whole (memory.oom.group; oom_group_kill, Linux 5.17), else the processes
// killed (oom_kill). With memory.oom.group the kernel counts the victim in oom_kill once when it
// picks it and again when it kills the group, so oom_kill alone would say 2 for one kill of a
// one-process group. Before 5.17 there is no oom_group_kill: there each kill, of a process or of
// a whole group, follows one invocation of the OOM killer (oom), and the smaller of oom and
// oom_kill counts them — oom_kill where kills were of single processes (oom may also count
// invocations that found a victim still exiting and killed nothing), oom where groups were
// killed.
func OOMKills(events map[string]uint64) uint64 {
	n, ok := events["oom_group_kill"]
	switch {
	case !ok:
		return min(events["oom"], events["oom_kill"])
	case n > 0:
		return n
	}
	return events["oom_kill"]
}

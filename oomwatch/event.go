// Package oomwatch reports a group's memory events and memory pressure as the kernel announces
// them: inotify on the cgroup's event files and PSI triggers, one epoll loop, no polling.
package oomwatch

import (
	"time"

	"github.com/cgrun/cgrun/cgroup"
)

// Kind names an event. The names are part of cgrun's stable JSON Lines format.
type Kind string

// Kinds from the kernel's counters (memory.events, memory.swap.events, pids.events,
// cgroup.events) and PSI.
const (
	Low          Kind = "low"            // usage fell below memory.low protection and was reclaimed
	High         Kind = "high"           // usage went over memory.high: throttled and reclaimed
	Max          Kind = "max"            // usage hit memory.max: direct reclaim, OOM may follow
	OOM          Kind = "oom"            // the OOM killer was invoked for the group
	OOMKill      Kind = "oom_kill"       // a process in the group was OOM-killed
	OOMGroupKill Kind = "oom_group_kill" // the whole group was OOM-killed (memory.oom.group)
	SwapHigh     Kind = "swap_high"      // swap use went over memory.swap.high
	SwapMax      Kind = "swap_max"       // swap use hit memory.swap.max
	SwapFail     Kind = "swap_fail"      // a swap-out failed: swap is full or at its limit
	PidsMax      Kind = "pids_max"       // a fork was refused at pids.max
	Emptied      Kind = "emptied"        // the last process in the group exited
	Pressure     Kind = "pressure"       // a PSI trigger fired
)

// Event is one thing that happened to a group. Counter events carry Delta (how many since the
// last event of this kind) and Count (the kernel's running total); Memory* are read at the time
// of the event.
type Event struct {
	Time  time.Time `json:"time"`
	Kind  Kind      `json:"event"`
	Group string    `json:"group,omitempty"` // the group's path in the hierarchy
	Delta uint64    `json:"delta,omitempty"`
	Count uint64    `json:"count,omitempty"`
	// CountLocal is the count for the group itself, without groups below it
	// (memory.events.local, Linux 5.2).
	CountLocal    *uint64 `json:"count_local,omitempty"`
	MemoryCurrent uint64  `json:"memory_current"`
	MemoryPeak    uint64  `json:"memory_peak,omitempty"` // memory.peak, Linux 5.19
	// MemoryPeakSource says how MemoryPeak was measured: "memory.peak" as the watcher reads it;
	// "sampled" where cgrun fills it in on kernels before 5.19 (cgroup.PeakSource).
	MemoryPeakSource cgroup.PeakSource `json:"memory_peak_source,omitempty"`
	// Pressure is set for Pressure events.
	Pressure *PressureInfo `json:"pressure,omitempty"`
}

// PressureInfo is what memory.pressure said when a PSI trigger fired: the kernel's averages
// (percent of wall time, updated every 2 s, so the first firing may still read 0) and its total
// stall time since the group was made, which is exact at once.
type PressureInfo struct {
	Trigger     string  `json:"trigger,omitempty"` // the trigger that fired, in pressure events
	SomeAvg10   float64 `json:"some_avg10"`
	SomeAvg60   float64 `json:"some_avg60"`
	FullAvg10   float64 `json:"full_avg10"`
	FullAvg60   float64 `json:"full_avg60"`
	SomeTotalUS uint64  `json:"some_total_us"` // microseconds some task was stalled on memory
	FullTotalUS uint64  `json:"full_total_us"` // microseconds all non-idle tasks were
}

// Stalled is how long some task of the group has been stalled on memory, to the millisecond.
func (p PressureInfo) Stalled() time.Duration {
	return (time.Duration(p.SomeTotalUS) * time.Microsecond).Round(time.Millisecond)
}

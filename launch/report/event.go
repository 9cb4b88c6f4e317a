package report

import (
	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/launch/diagnose"
	"github.com/cgrun/cgrun/launch/policy"
	"github.com/cgrun/cgrun/oomwatch"
)

// Kinds of records cgrun adds to the kernel's events in the JSON Lines stream.
const (
	KindStart    oomwatch.Kind = "start"    // a generation's child was started
	KindExit     oomwatch.Kind = "exit"     // a generation's child exited
	KindRecycle  oomwatch.Kind = "recycle"  // cgrun replaced a generation with a new one
	KindDiagnose oomwatch.Kind = "diagnose" // a diagnostic dump that cgrun asked for
	KindThrash   oomwatch.Kind = "thrash"   // cgrun found the generation thrashing at memory.max; a recycle follows
)

// TimeFormat is RFC 3339 with nanoseconds, always nine digits, so the lines sort as text.
const TimeFormat = "2006-01-02T15:04:05.000000000Z07:00"

// Event is one line of the --events stream: an oomwatch.Event plus who it concerns. Its field
// names are a stable format, documented in docs/events.md.
type Event struct {
	oomwatch.Event
	Time       string  `json:"time"` // shadows Event.Time with a fixed-width format
	Name       string  `json:"name"`
	Pid        int     `json:"pid"`
	Generation int     `json:"generation"`
	MemoryHigh *uint64 `json:"memory_high,omitempty"`
	MemoryMax  *uint64 `json:"memory_max,omitempty"`
	// start
	Command []string `json:"command,omitempty"`
	// exit
	ExitCode *int    `json:"exit_code,omitempty"`
	Signal   string  `json:"signal,omitempty"`
	Uptime   float64 `json:"uptime_seconds,omitempty"`
	OOMKills *uint64 `json:"oom_kills,omitempty"`
	// MemoryEvents is the group's memory.events as the child left it.
	MemoryEvents map[string]uint64 `json:"memory_events,omitempty"`
	// recycle
	Reason        policy.Reason     `json:"reason,omitempty"`
	OldPid        int               `json:"old_pid,omitempty"`
	NewPid        int               `json:"new_pid,omitempty"`
	OldPeak       uint64            `json:"old_memory_peak,omitempty"`
	OldPeakSource cgroup.PeakSource `json:"old_memory_peak_source,omitempty"`
	// recycle (the dump taken before it) and diagnose
	Diagnosis *diagnose.Dump `json:"diagnosis,omitempty"`
	// thrash
	Thrash *Thrash `json:"thrash,omitempty"`
	// high and max: how many notifications of the kernel this line stands for, when more than
	// one (lines of a kind come at most once a second per generation; Delta adds them up)
	Coalesced uint64 `json:"coalesced,omitempty"`
}

// Thrash is what a thrash record says: how cgrun told the stall (policy.ThrashVerdict).
type Thrash struct {
	Source            string `json:"source"` // "memory.pressure" (a PSI trigger) or "memory.stat" (its reclaim and refault counters)
	Why               string `json:"why"`
	RefaultsPerSecond uint64 `json:"refaults_per_second,omitempty"`
}

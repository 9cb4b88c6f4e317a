package advise

import (
	"fmt"
	"time"

	"github.com/cgrun/cgrun/cgroup"
)

// Advice is the limits the estimate recommends, in the form `cgrun advise --json` prints, the
// state file keeps and the --report holds (a stable format, documented in docs/advise.md).
type Advice struct {
	MemoryMax       uint64  `json:"memory_max"`  // bytes
	MemoryHigh      uint64  `json:"memory_high"` // bytes
	WorkingSet      uint64  `json:"working_set"` // bytes
	Peak            uint64  `json:"peak"`        // bytes
	ObservedSeconds float64 `json:"observed_seconds"`
	PressureSource  Source  `json:"pressure_source"`
	Settled         bool    `json:"settled"`  // false: the window ended before the squeeze reached the working set
	Contacts        int     `json:"contacts"` // how often the squeeze met pressure and backed off
}

// Headroom over the working set: memory.high throttles a little above it, memory.max ends it
// further up. A command whose need varies more than this over the window was not observed long
// enough.
const (
	highHeadroom = 0.15
	maxHeadroom  = 0.30
)

// Advise turns an estimate into limits: both rounded up to a whole MiB, memory.max at least
// cgroup.MinMemory and memory.high below it.
func Advise(e Estimate) Advice {
	ws := e.WorkingSet
	a := Advice{WorkingSet: ws, Peak: max(e.Peak, ws), ObservedSeconds: e.Observed.Round(time.Millisecond).Seconds(),
		PressureSource: e.Source, Settled: e.Settled, Contacts: e.Contacts}
	a.MemoryHigh = max(roundMiB(uint64(float64(ws)*(1+highHeadroom))), cgroup.MinMemory)
	a.MemoryMax = max(roundMiB(uint64(float64(ws)*(1+maxHeadroom))), a.MemoryHigh+1<<20)
	return a
}

// Merge is the advice over two windows (two generations of a run): the higher needs.
func Merge(a, b Estimate) Estimate {
	a.WorkingSet = max(a.WorkingSet, b.WorkingSet)
	a.Peak = max(a.Peak, b.Peak)
	a.Unreclaimable = max(a.Unreclaimable, b.Unreclaimable)
	a.Contacts += b.Contacts
	a.Settled = a.Settled || b.Settled
	a.Observed += b.Observed
	if b.Source != "" {
		a.Source = b.Source
	}
	return a
}

func roundMiB(v uint64) uint64 { return (v + 1<<20 - 1) &^ (1<<20 - 1) }

// Line is the one line to paste:
// advice: --memory-max 230M --memory-high 200M  (working set 176M, peak 412M of which 236M was page cache it did not need again; 25 s observed)
//
// --memory-high is in it only when swap is true (the host has swap): without swap a command
// whose anonymous memory grows past memory.high is throttled almost to a stop instead of being
// OOM-killed and restarted (docs/limits.md), while memory.max alone already reclaims the page
// cache above it. The figure stays in the JSON (memory_high) either way.
func (a Advice) Line(swap bool) string {
	peak := "peak " + cgroup.FormatSize(a.Peak)
	if a.Peak > a.WorkingSet+a.WorkingSet/20 {
		peak += fmt.Sprintf(" of which %s was page cache it did not need again", cgroup.FormatSize(a.Peak-a.WorkingSet))
	}
	more := ""
	if !a.Settled {
		more = "; the squeeze did not reach the working set: observe longer (--for) for a lower figure"
	}
	flags := "--memory-max " + mib(a.MemoryMax)
	if swap {
		flags += " --memory-high " + mib(a.MemoryHigh)
	}
	return fmt.Sprintf("advice: %s  (working set %s, %s; %s observed, pressure from %s%s)",
		flags, cgroup.FormatSize(a.WorkingSet), peak,
		time.Duration(a.ObservedSeconds*float64(time.Second)).Round(time.Second), a.PressureSource, more)
}

// mib writes a size as a whole number of MiB, rounded up, so that the pasted flag is never
// below the advice (FormatSize's "1.2G" would be).
func mib(v uint64) string { return fmt.Sprintf("%dM", roundMiB(v)>>20) }

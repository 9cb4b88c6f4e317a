// Package report is what a run leaves for people and programs, in the formats docs/events.md calls
// stable: the --report document, the --record-baseline file and its check, and the records of
// the --events stream.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/launch/advise"
	"github.com/cgrun/cgrun/launch/exitcode"
	"github.com/cgrun/cgrun/launch/policy"
	"golang.org/x/sys/unix"
)

// Report is the --report document: what a whole `cgrun run` did, all generations together.
// Its field names are a stable format, documented in docs/events.md.
type Report struct {
	Name             string            `json:"name"`
	Command          []string          `json:"command"`
	ExitCode         int               `json:"exit_code"`
	Signal           string            `json:"signal,omitempty"`
	Started          string            `json:"started"`
	Ended            string            `json:"ended"`
	WallSeconds      float64           `json:"wall_seconds"`
	CPUUserSeconds   float64           `json:"cpu_user_seconds"`
	CPUSystemSeconds float64           `json:"cpu_system_seconds"`
	MemoryPeak       *uint64           `json:"memory_peak"`             // bytes: the largest generation's peak; null if none was measured
	MemoryPeakSource cgroup.PeakSource `json:"memory_peak_source"`      // "memory.peak", or "sampled" before Linux 5.19; "" with a null peak
	MemorySteady     *uint64           `json:"memory_steady,omitempty"` // bytes: median of memory.current once a second (with --baseline / --record-baseline)
	SwapPeak         *uint64           `json:"swap_peak"`               // bytes: memory.swap.peak; null before Linux 6.5
	PidsPeak         *uint64           `json:"pids_peak"`               // pids.peak; null where the kernel has none
	OOMKills         uint64            `json:"oom_kills"`
	HighEvents       uint64            `json:"high_events"`
	MaxEvents        uint64            `json:"max_events"`
	Restarts         int               `json:"restarts"`
	Recycles         []Recycle         `json:"recycles"`
	Generations      []Generation      `json:"generations"`
	Limits           map[string]string `json:"limits"`
	Baseline         *BaselineCheck    `json:"baseline,omitempty"`
	Advice           *advise.Advice    `json:"advice,omitempty"` // --advise: the limits the memory probe found

	// Keep says whether to keep each generation and recycle for the document (only --report
	// needs them; a service that recycles for months must not pile them up otherwise).
	Keep bool `json:"-"`
}

// maxKept bounds the generations and recycles a report keeps: the latest ones.
const maxKept = 1000

// Add counts a generation that ended into the sums, and keeps it when the report is written.
func (rep *Report) Add(g Generation) {
	rep.Restarts = g.Generation - 1
	rep.CPUUserSeconds += g.CPUUserSeconds
	rep.CPUSystemSeconds += g.CPUSystemSeconds
	if g.MemoryPeak != nil && (rep.MemoryPeak == nil || *g.MemoryPeak > *rep.MemoryPeak) {
		rep.MemoryPeak, rep.MemoryPeakSource = g.MemoryPeak, g.MemoryPeakSource
	}
	rep.SwapPeak = maxPtr(rep.SwapPeak, g.SwapPeak)
	rep.PidsPeak = maxPtr(rep.PidsPeak, g.PidsPeak)
	rep.OOMKills += g.OOMKills
	rep.HighEvents += g.HighEvents
	rep.MaxEvents += g.MaxEvents
	if rep.Keep {
		rep.Generations = append(rep.Generations, g)
		if len(rep.Generations) > maxKept {
			rep.Generations = slices.Delete(rep.Generations, 0, 1)
		}
	}
}

// Recycled records the start of a generation that replaced another.
func (rep *Report) Recycled(r Recycle) {
	if rep.Keep {
		rep.Recycles = append(rep.Recycles, r)
		if len(rep.Recycles) > maxKept {
			rep.Recycles = slices.Delete(rep.Recycles, 0, 1)
		}
	}
}

// Recycle is one restart: which generation it started and why.
type Recycle struct {
	Generation int           `json:"generation"`
	Reason     policy.Reason `json:"reason"`
	Time       string        `json:"time"`
}

// Generation is one generation's share of the report.
type Generation struct {
	Generation       int               `json:"generation"`
	Pid              int               `json:"pid"`
	Group            string            `json:"group"`
	ExitCode         int               `json:"exit_code"`
	Signal           string            `json:"signal,omitempty"`
	Reason           policy.Reason     `json:"reason,omitempty"`
	UptimeSeconds    float64           `json:"uptime_seconds"`
	MemoryPeak       *uint64           `json:"memory_peak"`
	MemoryPeakSource cgroup.PeakSource `json:"memory_peak_source"`
	SwapPeak         *uint64           `json:"swap_peak"`
	PidsPeak         *uint64           `json:"pids_peak"`
	CPUUserSeconds   float64           `json:"cpu_user_seconds"`
	CPUSystemSeconds float64           `json:"cpu_system_seconds"`
	OOMKills         uint64            `json:"oom_kills"`
	HighEvents       uint64            `json:"high_events"`
	MaxEvents        uint64            `json:"max_events"`
}

// ReadGroup fills in what g's group dir says of it before the group is removed: CPU time, and
// the swap and pids peaks where the kernel keeps them.
func ReadGroup(dir string, g *Generation) {
	if st, err := cgroup.ReadCPUStat(dir); err == nil {
		g.CPUUserSeconds, g.CPUSystemSeconds = float64(st.UserUsec)/1e6, float64(st.SystemUsec)/1e6
	}
	g.SwapPeak = optionalUint(dir, "memory.swap.peak") // Linux 6.5
	g.PidsPeak = optionalUint(dir, "pids.peak")        // Linux 6.1
}

func optionalUint(dir, name string) *uint64 {
	n, ok, err := cgroup.ReadUint(dir, name)
	if err != nil || !ok {
		return nil
	}
	return &n
}

// Build sums the generations up into the report of the whole run.
func (rep *Report) Build(started time.Time, last unix.WaitStatus, limits cgroup.Limits, steady []uint64) {
	ended := time.Now()
	rep.Started, rep.Ended = started.Format(TimeFormat), ended.Format(TimeFormat)
	rep.WallSeconds = ended.Sub(started).Seconds()
	rep.ExitCode = exitcode.FromStatus(last)
	if last.Signaled() {
		rep.Signal = exitcode.SignalName(last.Signal())
	}
	if rep.Recycles == nil {
		rep.Recycles = []Recycle{}
	}
	if rep.Generations == nil {
		rep.Generations = []Generation{}
	}
	if len(steady) > 0 {
		s := slices.Clone(steady)
		slices.Sort(s)
		m := s[len(s)/2]
		rep.MemorySteady = &m
	}
	rep.Limits = limits.Files()
}

func maxPtr(a, b *uint64) *uint64 {
	if a == nil || b != nil && *b > *a {
		return b
	}
	return a
}

// Write puts the report on w as indented JSON.
func (rep *Report) Write(w io.Writer) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// Human is the --verbose summary of the report, a few lines for people.
func (rep *Report) Human() string {
	opt := func(p *uint64, f func(uint64) string) string {
		if p == nil {
			return "n/a"
		}
		return f(*p)
	}
	peak := "unknown"
	if rep.MemoryPeak != nil {
		peak = PeakText(*rep.MemoryPeak, rep.MemoryPeakSource)
	}
	s := fmt.Sprintf("cgrun: %s: wall %.3fs, cpu user %.3fs system %.3fs, memory peak %s, swap peak %s, pids peak %s",
		rep.Name, rep.WallSeconds, rep.CPUUserSeconds, rep.CPUSystemSeconds, peak,
		opt(rep.SwapPeak, cgroup.FormatSize), opt(rep.PidsPeak, func(n uint64) string { return fmt.Sprint(n) }))
	if rep.MemorySteady != nil {
		s += ", memory steady " + cgroup.FormatSize(*rep.MemorySteady)
	}
	return s
}

// PeakText is a peak for people: "40M", "40M sampled" where cgrun sampled it (before Linux
// 5.19), "unknown" where nothing was measured.
func PeakText(n uint64, src cgroup.PeakSource) string {
	switch src {
	case "":
		return "unknown"
	case cgroup.PeakSampled:
		return cgroup.FormatSize(n) + " sampled"
	}
	return cgroup.FormatSize(n)
}

package advise

import (
	"encoding/json"
	"os"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/oomwatch"
)

// Advisor is the probe on one generation's payload group: it reads the group's files into
// samples and writes the memory.high its Prober decides. Only the payload group's memory.high
// is squeezed: it bounds the leaf and every group below, and the leaf keeps the copy of the
// user's limits that runtimes read when they size themselves, unchanged.
type Advisor struct {
	dir     string
	orig    cgroup.Limit // the group's memory.high before the probe, written back by restore
	prober  *Prober
	peak    *cgroup.PeakMeter
	started time.Time
	written bool // memory.high is not orig
	halted  bool // the generation is being stopped: no more squeezing
	trace   *os.File
	warn    func(error)
}

// Start starts a probe on the group dir; peak hears every memory.current it reads, trace (""
// for none) gets every sample and decision as a JSON line, and warn hears a memory.high that
// could not be written. The pressure source is PSI where the group has a readable
// memory.pressure, memory.stat's refaults where it does not (no CONFIG_PSI, psi=0).
func Start(dir string, peak *cgroup.PeakMeter, trace string, warn func(error)) (*Advisor, error) {
	orig, err := cgroup.MemoryHigh(dir)
	if err != nil {
		return nil, err
	}
	src := Refaults
	if _, err := oomwatch.ReadPressure(dir); err == nil {
		src = PSI
	}
	var ceiling uint64
	if !orig.Max {
		ceiling = orig.Value
	}
	a := &Advisor{dir: dir, orig: orig, peak: peak, started: time.Now(), warn: warn,
		prober: New(DefaultConfig(src, uint64(os.Getpagesize()), ceiling))}
	if trace != "" {
		if a.trace, err = os.OpenFile(trace, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// Step reads one sample, writes what the prober decided, and returns the time to the next.
func (a *Advisor) Step(now time.Time) time.Duration {
	if a.halted {
		return time.Hour
	}
	s := Sample{At: now.Sub(a.started)}
	var err error
	if s.Current, err = cgroup.MemoryCurrent(a.dir); err != nil {
		return time.Second // the group is going: the supervisor hears why
	}
	st, err := cgroup.ReadMemoryStat(a.dir)
	if err != nil {
		return time.Second
	}
	s.Anon, s.Reclaimable, s.Refaults = st.Anon, st.Reclaimable, st.Refaults
	if p, err := oomwatch.ReadPressure(a.dir); err == nil {
		s.StallUS = p.SomeTotalUS
	}
	a.peak.Observe(s.Current)
	act := a.prober.Step(s)
	switch {
	case act.Restore:
		a.restore()
	case act.High != 0:
		if err := cgroup.SetMemoryHigh(a.dir, cgroup.Bytes(act.High)); err != nil {
			a.warn(err)
		} else {
			a.written = true
		}
	}
	if a.trace != nil {
		b, _ := json.Marshal(struct {
			Sample
			Action
		}{s, act})
		a.trace.Write(append(b, '\n'))
	}
	return act.Next
}

// restore writes the group's memory.high back as it was before the probe. It is idempotent.
func (a *Advisor) restore() {
	if a == nil || !a.written {
		return
	}
	if err := cgroup.SetMemoryHigh(a.dir, a.orig); err != nil {
		a.warn(err)
		return
	}
	a.written = false
}

// Halt restores memory.high for good: the generation is being stopped (its shutdown must not
// be throttled) or dumps. nil is fine.
func (a *Advisor) Halt() {
	if a == nil {
		return
	}
	a.halted = true
	a.restore()
}

// Estimate is what the probe found so far, over Observed since it started.
func (a *Advisor) Estimate(now time.Time) Estimate {
	e := a.prober.Estimate()
	e.Observed = now.Sub(a.started)
	return e
}

// Close restores memory.high and returns what the probe found.
func (a *Advisor) Close() Estimate {
	a.Halt()
	if a.trace != nil {
		a.trace.Close()
	}
	e := a.prober.Estimate()
	p, _ := a.peak.Peak()
	e.Peak = max(e.Peak, p)
	e.Observed = time.Since(a.started)
	return e
}

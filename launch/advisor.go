package launch

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/launch/advise"
	"github.com/cgrun/cgrun/launch/proc"
	"github.com/cgrun/cgrun/launch/state"
	"github.com/cgrun/cgrun/oomwatch"
	"golang.org/x/sys/unix"
)

// Advise is `cgrun advise`, or `cgrun run --advise`: a probe of the memory each generation needs
// (package advise decides; the advisor reads the group's files and writes its memory.high).
type Advise struct {
	// For ends the run after this long (cgrun advise --for); 0 lets it run until it exits.
	For time.Duration
	// Trace appends every sample and decision to this file as JSON lines (CGRUN_ADVISE_TRACE:
	// how the host tests' traces were recorded); "" for none.
	Trace string
	// Done receives the advice when the run ends, and whether For ended it.
	Done func(a advise.Advice, ended bool)
}

// advisor is the probe on one generation's payload group. Only the payload group's memory.high
// is squeezed: it bounds the leaf and every group below, and the leaf keeps the copy of the
// user's limits that runtimes read when they size themselves (Limits.Mirror), unchanged.
type advisor struct {
	dir     string
	orig    cgroup.Limit // the group's memory.high before the probe, written back by restore
	prober  *advise.Prober
	peak    *cgroup.PeakMeter
	started time.Time
	written bool // memory.high is not orig
	halted  bool // the generation is being stopped: no more squeezing
	saved   time.Time
	trace   *os.File
	warn    func(error)
}

// newAdvisor starts a probe on the group dir. The pressure source is PSI where the group has a
// readable memory.pressure, memory.stat's refaults where it does not (no CONFIG_PSI, psi=0).
func newAdvisor(dir string, peak *cgroup.PeakMeter, cfg *Advise, warn func(error)) (*advisor, error) {
	orig, err := cgroup.MemoryHigh(dir)
	if err != nil {
		return nil, err
	}
	src := advise.Refaults
	if _, err := oomwatch.ReadPressure(dir); err == nil {
		src = advise.PSI
	}
	var ceiling uint64
	if !orig.Max {
		ceiling = orig.Value
	}
	a := &advisor{dir: dir, orig: orig, peak: peak, started: time.Now(), warn: warn,
		prober: advise.New(advise.DefaultConfig(src, uint64(os.Getpagesize()), ceiling))}
	if cfg.Trace != "" {
		if a.trace, err = os.OpenFile(cfg.Trace, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// step reads one sample, writes what the prober decided, and returns the time to the next.
func (a *advisor) step(now time.Time) time.Duration {
	if a.halted {
		return time.Hour
	}
	s := advise.Sample{At: now.Sub(a.started)}
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
			advise.Sample
			advise.Action
		}{s, act})
		a.trace.Write(append(b, '\n'))
	}
	return act.Next
}

// restore writes the group's memory.high back as it was before the probe. It is idempotent.
func (a *advisor) restore() {
	if a == nil || !a.written {
		return
	}
	if err := cgroup.SetMemoryHigh(a.dir, a.orig); err != nil {
		a.warn(err)
		return
	}
	a.written = false
}

// halt restores memory.high for good: the generation is being stopped (its shutdown must not
// be throttled) or dumps.
func (a *advisor) halt() {
	if a == nil {
		return
	}
	a.halted = true
	a.restore()
}

// close restores memory.high and returns what the probe found.
func (a *advisor) close() advise.Estimate {
	a.halt()
	if a.trace != nil {
		a.trace.Close()
	}
	e := a.prober.Estimate()
	p, _ := a.peak.Peak()
	e.Peak = max(e.Peak, p)
	e.Observed = time.Since(a.started)
	return e
}

// startAdvisor starts the probe on the generation's group, and returns the timer of its
// samples; nil when it could not start (said once).
func (g *generation) startAdvisor() *time.Timer {
	warn := func(err error) { fmt.Fprintf(g.run.cfg.Log, "cgrun: warning: advise: %v\n", err) }
	a, err := newAdvisor(g.dir, g.peak, g.run.cfg.Advise, warn)
	if err != nil {
		warn(err)
		return nil
	}
	g.advisor = a
	return time.NewTimer(advise.DefaultConfig("", 0, 0).Interval)
}

// endAdvisor restores memory.high and adds what the probe found to the run's estimate.
func (g *generation) endAdvisor() {
	e := g.advisor.close()
	r := g.run
	r.adviceSeen = true
	r.advice = advise.Merge(r.advice, e)
	r.noteState(func(s *state.State) {
		a := advise.Advise(r.advice)
		s.Advice = &a
	})
}

// noteAdvice puts the estimate so far into the state (for status, ps and the metrics at
// once), and into the file every few seconds.
func (g *generation) noteAdvice(now time.Time) {
	e := advise.Merge(g.run.advice, g.advisor.prober.Estimate())
	e.Observed = g.run.advice.Observed + now.Sub(g.advisor.started)
	a := advise.Advise(e)
	if now.Sub(g.advisor.saved) < adviceSaveEvery {
		g.run.noteState(func(s *state.State) { s.Advice = &a })
		return
	}
	g.advisor.saved = now
	g.run.updateState(func(s *state.State) { s.Advice = &a })
}

const adviceSaveEvery = 2 * time.Second

// endWindow ends the run when cgrun advise --for is over: memory.high back, then the stop
// signal, and the group killed after the stop timeout, as a recycle's stop but with no restart.
func (g *generation) endWindow() {
	if g.stopAsked != 0 || g.windowEnded {
		return
	}
	g.windowEnded = true
	p := g.run.cfg.Policy
	fmt.Fprintf(g.run.cfg.Log, "cgrun: %s: observed for %v; sending %s (group killed after %v)\n",
		g.run.name, g.run.cfg.Advise.For, proc.SignalName(p.StopSignal), p.StopTimeout)
	g.abandonNext("the advise window ended")
	g.liftThrottle()
	_ = unix.Kill(g.pid, p.StopSignal)
	g.armStopTimer()
}

// checkAdvise refuses what the probe's squeeze of memory.high would set off: the recycle
// triggers that read memory.high events, memory pressure or the --recycle-above mark.
func checkAdvise(cfg *Config) error {
	if cfg.Advise == nil {
		return nil
	}
	p := cfg.Policy
	for _, c := range []struct {
		set  bool
		flag string
	}{{p.RecycleOnHigh > 0, "--recycle-on-high"}, {p.RecycleAbove.Set, "--recycle-above"}, {len(p.RecyclePressure) > 0, "--recycle-on-pressure"}, {p.RecycleStall, "--recycle-on-stall"}} {
		if c.set {
			return fmt.Errorf("%s cannot be combined with advise: the probe squeezes memory.high and would set it off; leave %s out while advising", c.flag, c.flag)
		}
	}
	if cfg.Advise.For < 0 {
		return fmt.Errorf("--for must not be negative")
	}
	return nil
}

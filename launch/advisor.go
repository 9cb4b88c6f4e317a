package launch

import (
	"fmt"
	"time"

	"github.com/cgrun/cgrun/launch/advise"
	"github.com/cgrun/cgrun/launch/state"
)

// Advise is `cgrun advise`, or `cgrun run --advise`: a probe of the memory each generation needs
// (package advise: its Prober decides, its Advisor reads the group's files and writes its
// memory.high).
type Advise struct {
	// For ends the run after this long (cgrun advise --for); 0 lets it run until it exits.
	For time.Duration
	// Trace appends every sample and decision to this file as JSON lines (CGRUN_ADVISE_TRACE:
	// how the host tests' traces were recorded); "" for none.
	Trace string
	// Done receives the advice when the run ends, and whether For ended it.
	Done func(a advise.Advice, ended bool)
}

// startAdvisor starts the probe on the generation's group, and returns the timer of its
// samples; nil when it could not start (said once).
func (g *generation) startAdvisor() *time.Timer {
	warn := func(err error) { fmt.Fprintf(g.run.cfg.Log, "cgrun: warning: advise: %v\n", err) }
	a, err := advise.Start(g.dir, g.peak, g.run.cfg.Advise.Trace, warn)
	if err != nil {
		warn(err)
		return nil
	}
	g.advisor = a
	return time.NewTimer(advise.DefaultConfig("", 0, 0).Interval)
}

// endAdvisor restores memory.high and adds what the probe found to the run's estimate.
func (g *generation) endAdvisor() {
	e := g.advisor.Close()
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
	e := advise.Merge(g.run.advice, g.advisor.Estimate(now))
	a := advise.Advise(e)
	if now.Sub(g.adviceSaved) < adviceSaveEvery {
		g.run.noteState(func(s *state.State) { s.Advice = &a })
		return
	}
	g.adviceSaved = now
	g.run.updateState(func(s *state.State) { s.Advice = &a })
}

const adviceSaveEvery = 2 * time.Second

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

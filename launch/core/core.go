// Package core is the supervisor's decisions apart from their effects: Step takes what happened
// (an event) and the state of the generation, and returns what to do (actions). It does no I/O —
// no signal, no cgroupfs, no clock, no log — so its tests replay a run's sequences on any host in
// microseconds (core_test.go). Package launch is its adapter: the runner and each generation turn
// signals, timers, the kernel's events and the child's exit into events, and the actions into
// syscalls and lines on stderr.
package core

import (
	"fmt"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/launch/diagnose"
	"github.com/cgrun/cgrun/launch/exitcode"
	"github.com/cgrun/cgrun/launch/policy"
	"github.com/cgrun/cgrun/oomwatch"
	"golang.org/x/sys/unix"
)

// Core is what the decisions of one run know across its generations: the policy, the limits,
// the restarts so far and the restart that waits.
type Core struct {
	name   string
	p      policy.Policy
	limits cgroup.Limits
	dump   bool // --diagnose-*: a recycle for memory takes a dump first
	// diagnose is --diagnose-*; aboveDumps allows one --diagnose-above dump per
	// --diagnose-interval, across generations.
	diagnose   diagnose.Config
	aboveDumps diagnose.Limiter
	// PeakAsked: the run's peak was asked for (a report, a baseline, --verbose), so a sampled
	// peak is sampled at the fastest rate throughout.
	PeakAsked bool
	restarts  *policy.Restarts
	// While the restart delay runs: the exit code of the generation that ended, and why the
	// next one starts.
	code int
	why  policy.Reason
}

// New is the core of the run name (its --name) under policy p, limits l and --diagnose-* d.
func New(name string, p policy.Policy, l cgroup.Limits, d diagnose.Config) *Core {
	return &Core{name: name, p: p, limits: l, dump: d.Enabled(), diagnose: d, aboveDumps: diagnose.Limiter{Interval: d.Interval},
		restarts: policy.NewRestarts(p)}
}

// Watch starts the recycle triggers and the health count of g, as its supervision begins.
func (c *Core) Watch(g *Gen) {
	g.Triggers = policy.NewTriggers(c.p, c.limits)
	g.healthCount = policy.NewHealthCount(c.p.Health)
}

// Gen is what the core knows of the generation it supervises; package launch's generation
// embeds it.
type Gen struct {
	Number    int
	Recycled  policy.Reason // why cgrun ended this generation, or ""
	StopAsked unix.Signal   // SIGTERM or SIGINT reached cgrun: no restart after this one
	// OverlapPhase is where the --overlap recycle is; overlapReason and overlapWhy are the
	// recycle that waits for the next generation.
	OverlapPhase   OverlapPhase
	overlapReason  policy.Reason
	overlapWhy     string
	thrashSampling bool               // the refault samples for the thrash detector run
	watchingAbove  bool               // the once-a-second look at memory at the --recycle-above mark runs
	Triggers       *policy.Triggers   // the recycle triggers on memory events
	healthCount    policy.HealthCount // the failed health probes in a row
	// stopAfterDump is why the generation recycles, for the stop that follows the dump before
	// it; "" when no stop waits for a dump.
	stopAfterDump string
	WindowEnded   bool          // cgrun advise --for ended the run
	PeakEvery     time.Duration // the current interval of the peak samples (no memory.peak)
}

// On kernels without memory.peak (before 5.19) cgrun samples memory.current for the peak: every
// PeakSampleEvery while memory rises, and while it does not, twice as long after each sample, up
// to peakSampleIdle — or to PeakSampleEvery when the run's peak was asked for (a report, a
// baseline, --verbose), so that a spike after a quiet spell is not missed.
const (
	PeakSampleEvery = 100 * time.Millisecond
	peakSampleIdle  = 2 * time.Second
)

// OverlapPhase is where an --overlap recycle is.
type OverlapPhase int

const (
	OverlapNone    OverlapPhase = iota // none began: a recycle for a reason that overlaps may start one
	OverlapWaiting                     // the next generation runs beside this one, not ready yet
	OverlapReady                       // it is ready: this one recycles
	OverlapGone                        // it was given up, or could not start: recycle as without --overlap
)

// The events: what happened.
type (
	// EvSignal: a signal reached cgrun (SIGCHLD is the adapter's: it reaps).
	EvSignal struct{ Sig unix.Signal }
	// EvRecycle: a trigger asks for a recycle of the generation.
	EvRecycle struct {
		Reason policy.Reason
		Why    string
	}
	// EvLifetime: the --max-lifetime timer fired after the generation ran for Uptime.
	EvLifetime struct{ Uptime time.Duration }
	// EvNoOverlap: the --overlap recycle could not start the next generation: recycle as
	// without it.
	EvNoOverlap struct{}
	// EvNextReady: the next generation said READY=1 or passed its probe, After it ran so long.
	EvNextReady struct {
		Number int
		After  time.Duration
	}
	// EvNextNotReady: --ready-timeout passed, and the next generation is not ready.
	EvNextNotReady struct{}
	// EvNextEnded: the next generation's command ended before it was ready.
	EvNextEnded struct{ Status unix.WaitStatus }
	// EvDumpEnded: the dump a recycle waited for ended, or none could be started.
	EvDumpEnded struct{}
	// EvMemory: the watcher reported an event of the group.
	EvMemory struct{ Event oomwatch.Event }
	// EvAboveTick: the once-a-second look at memory (Current) while it is at the
	// --recycle-above mark.
	EvAboveTick struct {
		Now     time.Time
		Current uint64
	}
	// EvThrash: the thrash detector's verdict on an event or a refault sample at now.
	EvThrash struct {
		Verdict policy.ThrashVerdict
		Now     time.Time
	}
	// EvProbed: a health probe ended, after the generation ran for uptime.
	EvProbed struct {
		Result policy.Probe
		Uptime time.Duration
	}
	// EvStopTimer: the stop timeout passed and the child still runs.
	EvStopTimer struct{}
	// EvExited: the generation ended (its supervisor returned).
	EvExited struct {
		Now        time.Time
		Number     int // the generation's number
		Last       int // the highest generation number begun
		Status     unix.WaitStatus
		Uptime     time.Duration
		OOMKills   uint64
		Recycled   policy.Reason // why cgrun ended it, or ""
		StopAsked  bool          // SIGTERM or SIGINT (or the advise window) ended the run
		StopSignal unix.Signal   // the signal that asked cgrun to stop; 0 for none
		Next       *NextStarted  // --overlap: the next generation, running and ready; nil for none
	}
	// EvDiagnoseAbove: the once-a-second look for --diagnose-above's mark read memory.current
	// (read: it could), while a dump was in progress or not.
	EvDiagnoseAbove struct {
		Now     time.Time
		Current uint64
		Read    bool
		Dumping bool
	}
	// EvDumpAtMax: the dump in progress sat at memory.max (Limit) for At so far; AboveOnly: it
	// is a --diagnose-above dump that no recycle waits for; OnTmpfs: --diagnose-dir is on tmpfs.
	EvDumpAtMax struct {
		At                 time.Duration
		Limit              uint64
		AboveOnly, OnTmpfs bool
	}
	// EvPeakSampled: a peak sample (no memory.peak) read memory.current, a new high or not.
	EvPeakSampled struct{ Higher bool }
	// EvWindowEnd: cgrun advise --for's window (of this long) is over.
	EvWindowEnd struct{ Window time.Duration }
	// EvDelayOver: the restart delay passed.
	EvDelayOver struct{}
)

// NextStarted is the --overlap generation that takes over.
type NextStarted struct{ Number, PID int }

// The actions: what to do.
type (
	ActLog            struct{ Line string }          // write Line (it ends in a newline) to cgrun's log
	ActSignal         struct{ Sig unix.Signal }      // signal the child
	ActKillGroup      struct{}                       // kill the generation's group now (cgroup.kill), without waiting
	ActLiftThrottle   struct{}                       // raise memory.high to max, for a stop
	ActArmStopTimer   struct{}                       // start the stop timeout, unless it runs
	ActNote           struct{ Kind, Text string }    // note in the state file
	ActOverlap        struct{ Why string }           // start the next generation beside this one (EvNoOverlap when it cannot)
	ActDump           struct{ Reason policy.Reason } // take a dump for the recycle (EvDumpEnded once it ended, or at once if none started)
	ActWatchAbove     struct{}                       // look at memory once a second (EvAboveTick)
	ActUnwatchAbove   struct{}                       // stop those looks
	ActSampleThrash   struct{ Now time.Time }        // read refaults for the thrash detector every policy.ThrashEvery, the first at Now (EvThrash)
	ActUnsampleThrash struct{}                       // stop those reads
	ActRecordThrash   struct {                       // the thrash record for --events
		Verdict policy.ThrashVerdict
		Now     time.Time
	}
	ActHealthy              struct{}                      // tell systemd (sd_notify) the generation passed a health probe
	ActSamplePeakIn         struct{ After time.Duration } // take the next peak sample After
	ActGiveUpDump           struct{ Why string }          // stop waiting for the dump in progress: it is stuck
	ActDumpAbove            struct{}                      // take the --diagnose-above dump (no recycle follows)
	ActUnwatchDiagnoseAbove struct{}                      // stop looking for --diagnose-above's mark
	ActAbandonNext          struct{ Why string }          // give up an --overlap generation not yet ready
	ActDropNext             struct{}                      // remove a ready --overlap generation that will not take over
	ActShowEnded            struct{}                      // save the state, showing the ended generation
	ActWait                 struct{ After time.Duration } // wait out the restart delay (EvDelayOver, or EvSignal)
	ActStart                struct{ Why policy.Reason }   // start the next generation, for Why
	ActExit                 struct {                      // end the run
		Code  int
		Raise unix.Signal // the signal to die of once cleaned up; 0 for none
		Err   error
	}
)

// Step decides what follows ev. g is the generation supervised; nil between generations.
func (c *Core) Step(g *Gen, ev any) []Action {
	switch ev := ev.(type) {
	case EvSignal:
		if g == nil {
			return c.signalWaiting(ev.Sig)
		}
		return c.signal(g, ev.Sig)
	case EvRecycle:
		return c.recycle(g, ev.Reason, ev.Why)
	case EvLifetime:
		return c.recycle(g, policy.Lifetime, fmt.Sprintf("lifetime of %v reached", ev.Uptime.Round(time.Second)))
	case EvNoOverlap:
		g.OverlapPhase = OverlapGone
		return c.recycle(g, g.overlapReason, g.overlapWhy)
	case EvNextReady:
		if g.OverlapPhase != OverlapWaiting {
			return nil
		}
		g.OverlapPhase = OverlapReady
		return append([]Action{ActLog{fmt.Sprintf("cgrun: %s: generation %d is ready after %v\n", c.name, ev.Number, ev.After.Round(time.Millisecond))}},
			c.recycle(g, g.overlapReason, g.overlapWhy)...)
	case EvNextNotReady:
		return c.fallBack(g, fmt.Sprintf("not ready after --ready-timeout %v", c.p.ReadyTimeout))
	case EvNextEnded:
		return c.fallBack(g, "it "+exitcode.Describe(ev.Status)+" before it was ready")
	case EvWindowEnd:
		return c.endWindow(g, ev.Window)
	case EvDiagnoseAbove:
		return c.diagnoseAbove(g, ev)
	case EvDumpAtMax:
		return c.dumpAtMax(g, ev)
	case EvPeakSampled:
		ceiling := peakSampleIdle
		if c.PeakAsked {
			ceiling = PeakSampleEvery
		}
		if ev.Higher {
			g.PeakEvery = PeakSampleEvery
		} else {
			g.PeakEvery = min(2*g.PeakEvery, ceiling)
		}
		return []Action{ActSamplePeakIn{g.PeakEvery}}
	case EvDumpEnded:
		why := g.stopAfterDump
		g.stopAfterDump = ""
		if why == "" {
			return nil
		}
		return c.stop(g, why)
	case EvMemory:
		reason, say, arm := g.Triggers.Observe(ev.Event)
		var acts []Action
		switch {
		case reason != "":
			acts = c.recycle(g, reason, say)
		case say != "":
			acts = []Action{ActLog{fmt.Sprintf("cgrun: %s: %s\n", c.name, say)}, ActNote{"stall", say}}
		}
		if arm && !g.watchingAbove {
			g.watchingAbove = true
			acts = append(acts, ActWatchAbove{})
		}
		return acts
	case EvAboveTick:
		var acts []Action
		recycle, keep := g.Triggers.CheckAbove(ev.Now, ev.Current)
		if !keep && g.watchingAbove {
			g.watchingAbove = false
			acts = append(acts, ActUnwatchAbove{})
		}
		if recycle {
			acts = append(acts, c.recycle(g, policy.MemoryAbove, fmt.Sprintf("memory at %s held at or above %s for %v",
				cgroup.FormatSize(ev.Current), c.p.RecycleAbove.Human(), c.p.RecycleAfter))...)
		}
		return acts
	case EvThrash:
		var acts []Action
		switch v := ev.Verdict; {
		case v.Thrash:
			if g.thrashSampling {
				acts = append(acts, ActUnsampleThrash{})
			}
			g.thrashSampling = false
			acts = append(acts, ActRecordThrash{v, ev.Now})
			return append(acts, c.recycle(g, policy.Thrashing, v.Why)...)
		case v.Sample && !g.thrashSampling:
			g.thrashSampling = true
			return []Action{ActSampleThrash{ev.Now}}
		case !v.Sample && g.thrashSampling:
			g.thrashSampling = false
			return []Action{ActUnsampleThrash{}}
		}
		return nil
	case EvProbed:
		var acts []Action
		if ev.Result.OK {
			acts = append(acts, ActHealthy{})
		}
		if g.healthCount.Record(ev.Result, ev.Uptime) {
			acts = append(acts, c.recycle(g, policy.Health, fmt.Sprintf("health check failed %d times in a row (last: %s)", g.healthCount.Fails(), ev.Result.Why))...)
		}
		return acts
	case EvStopTimer:
		return []Action{ActLog{fmt.Sprintf("cgrun: %s: still running %v after %s; killing its group\n", c.name, c.p.StopTimeout, exitcode.SignalName(c.p.StopSignal))}, ActKillGroup{}}
	case EvExited:
		return c.exited(ev)
	case EvDelayOver:
		return []Action{ActStart{c.why}}
	}
	panic(fmt.Sprintf("core: unknown event %T", ev))
}

// Action is one of the Act* types.
type Action any

// signal is a signal to cgrun while a generation runs.
func (c *Core) signal(g *Gen, sig unix.Signal) []Action {
	switch sig {
	case exitcode.RecycleSignal:
		return c.recycle(g, policy.Request, "recycle requested with "+exitcode.SignalName(exitcode.RecycleSignal))
	case unix.SIGTERM, unix.SIGINT:
		if g.StopAsked != 0 {
			return []Action{ActSignal{sig}} // forwarded; the stop stays the first signal's
		}
		g.StopAsked = sig
		if g.OverlapPhase != OverlapNone {
			g.OverlapPhase = OverlapGone
		}
		return []Action{ActAbandonNext{"cgrun is stopping"}, ActLiftThrottle{}, ActSignal{sig}, ActArmStopTimer{}}
	}
	return []Action{ActSignal{sig}} // ESRCH: it is exiting; SIGCHLD follows
}

// recycle ends the generation gracefully: the stop signal now, the group killed after the stop
// timeout; a thrashing one is killed at once, and one recycled for memory growing is dumped
// first when --diagnose-* asks for it; under --overlap, a recycle of one that still serves
// waits for the next generation to be ready.
func (c *Core) recycle(g *Gen, reason policy.Reason, why string) []Action {
	if reason == policy.Thrashing {
		return c.killThrashing(g, why)
	}
	switch {
	case g.Recycled != "" || g.StopAsked != 0:
		return nil
	case g.OverlapPhase == OverlapWaiting:
		return nil // one recycle at a time; once the next is ready, this one stops
	case c.p.Overlap && g.OverlapPhase == OverlapNone && reason.Overlap():
		g.OverlapPhase, g.overlapReason, g.overlapWhy = OverlapWaiting, reason, why
		return []Action{ActOverlap{why}}
	}
	g.Recycled = reason
	note := ActNote{"recycle", string(reason) + ": " + why}
	if reason.Memory() && c.dump {
		g.stopAfterDump = why
		return []Action{note, ActDump{reason}}
	}
	return append([]Action{note}, c.stop(g, why)...)
}

// killThrashing kills the group of a thrashing generation at once, whatever else is under way:
// a recycle that waits for the next generation or for a dump, a graceful stop. At memory.max its
// stop handler, and a dump, would wait for memory as the rest of it does, and the kernel's OOM
// killer would end it the same way, only seconds later. A next generation that is not ready is
// given up: the restart follows as after an OOM kill. A ready one takes over as it would have.
func (c *Core) killThrashing(g *Gen, why string) []Action {
	if g.Recycled == policy.Thrashing {
		return nil // killed already
	}
	var acts []Action
	if g.OverlapPhase == OverlapWaiting {
		g.OverlapPhase = OverlapGone
		acts = append(acts, ActAbandonNext{fmt.Sprintf("generation %d thrashes", g.Number)})
	}
	g.Recycled, g.stopAfterDump = policy.Thrashing, "" // no stop after the dump: the kill ends both
	if g.StopAsked != 0 {
		return append(acts, ActLog{fmt.Sprintf("cgrun: %s: generation %d thrashes as it stops: %s; killing its group (a thrashing worker cannot run its stop handler)\n",
			c.name, g.Number, why)}, ActKillGroup{})
	}
	// The kill before the note: the state file's write may take a while on a busy disk.
	return append(acts, ActLog{fmt.Sprintf("cgrun: %s: recycling generation %d: %s; killing its group (a thrashing worker cannot run its stop handler)\n",
		c.name, g.Number, why)}, ActKillGroup{}, ActNote{"recycle", string(policy.Thrashing) + ": " + why})
}

// fallBack gives up an --overlap generation that is not ready (why says how), and recycles
// as without --overlap.
func (c *Core) fallBack(g *Gen, why string) []Action {
	if g.OverlapPhase != OverlapWaiting {
		return nil
	}
	g.OverlapPhase = OverlapGone
	return append([]Action{ActAbandonNext{why}}, c.recycle(g, g.overlapReason, g.overlapWhy)...)
}

// stop sends the stop signal for a recycle, and arms the timer that kills the group.
func (c *Core) stop(g *Gen, why string) []Action {
	if g.StopAsked != 0 {
		return nil
	}
	return []Action{ActLog{fmt.Sprintf("cgrun: %s: recycling generation %d: %s; sending %s (group killed after %v)\n",
		c.name, g.Number, why, exitcode.SignalName(c.p.StopSignal), c.p.StopTimeout)},
		ActLiftThrottle{}, ActSignal{c.p.StopSignal}, ActArmStopTimer{}}
}

// exited decides what follows a generation that ended: the run's end, or the next generation
// after the restart delay (growing after short-lived ones), or giving up at the start limit.
func (c *Core) exited(ev EvExited) []Action {
	code := exitcode.FromStatus(ev.Status)
	why := c.restarts.Why(ev.Status, ev.OOMKills, ev.Recycled)
	var acts []Action
	if ev.Next != nil && (ev.StopAsked || why == "") {
		acts = append(acts, ActDropNext{}) // started by an --overlap recycle; not needed now
	}
	if ev.StopAsked {
		var raise unix.Signal
		if ev.Status.Signaled() && ev.Status.Signal() == ev.StopSignal {
			raise = ev.StopSignal
		}
		return append(acts, ActExit{Code: code, Raise: raise})
	}
	if why == "" {
		return append(acts, ActExit{Code: code})
	}
	var delay time.Duration
	ok := true
	if ev.Next != nil {
		c.restarts.Took(ev.Now, ev.Uptime) // counted, not held back: it already runs, and is ready
	} else {
		delay, ok = c.restarts.Next(ev.Now, ev.Uptime)
	}
	if !ok {
		p := c.p
		err := &exitcode.Error{Code: exitcode.StartLimit, Err: fmt.Errorf("%s: gave up: %d restarts within %v (--max-restarts %d, --restart-window %v); the last generation %s",
			c.name, p.MaxRestarts, p.RestartWindow, p.MaxRestarts, p.RestartWindow, exitcode.Describe(ev.Status))}
		return append(acts, ActExit{Code: exitcode.StartLimit, Err: err})
	}
	if ev.Next != nil {
		return append(acts, ActLog{fmt.Sprintf("cgrun: %s: generation %d (pid %d) took over (%s)\n", c.name, ev.Next.Number, ev.Next.PID, why)}, ActStart{why})
	}
	acts = append(acts, ActLog{fmt.Sprintf("cgrun: %s: restarting (%s) as generation %d in %v\n", c.name, why, max(ev.Number, ev.Last)+1, delay)})
	if delay > 0 {
		acts = append(acts, ActShowEnded{})
	}
	c.code, c.why = code, why
	return append(acts, ActWait{delay})
}

// signalWaiting is a signal to cgrun during the restart delay: SIGTERM or SIGINT ends the run
// (no generation runs: cgrun stops as the signal asks); the recycle signal cuts the delay short.
func (c *Core) signalWaiting(sig unix.Signal) []Action {
	switch sig {
	case unix.SIGTERM, unix.SIGINT:
		return []Action{ActExit{Code: c.code, Raise: sig}}
	case exitcode.RecycleSignal:
		return []Action{ActStart{c.why}}
	}
	return nil
}

// endWindow ends the run when cgrun advise --for is over: memory.high back, then the stop
// signal, and the group killed after the stop timeout, as a recycle's stop but with no restart.
func (c *Core) endWindow(g *Gen, window time.Duration) []Action {
	if g.StopAsked != 0 || g.WindowEnded {
		return nil
	}
	g.WindowEnded = true
	return []Action{ActLog{fmt.Sprintf("cgrun: %s: observed for %v; sending %s (group killed after %v)\n",
		c.name, window, exitcode.SignalName(c.p.StopSignal), c.p.StopTimeout)},
		ActAbandonNext{"the advise window ended"}, ActLiftThrottle{}, ActSignal{c.p.StopSignal}, ActArmStopTimer{}}
}

// diagnoseAbove takes the generation's one --diagnose-above dump when memory first crosses the
// mark, unless one was taken less than --diagnose-interval ago; it stops looking once it took or
// refused one, or once the generation is ending.
func (c *Core) diagnoseAbove(g *Gen, ev EvDiagnoseAbove) []Action {
	if ending := g.Recycled != "" || g.StopAsked != 0; !ev.Read || ev.Current < c.diagnose.Above || ev.Dumping || ending {
		if ending {
			return []Action{ActUnwatchDiagnoseAbove{}}
		}
		return nil
	}
	if !c.aboveDumps.Allow(ev.Now) {
		return []Action{ActLog{fmt.Sprintf("cgrun: %s: generation %d: memory at %s crossed --diagnose-above %s; no dump: the last was less than --diagnose-interval %v ago\n",
			c.name, g.Number, cgroup.FormatSize(ev.Current), cgroup.FormatSize(c.diagnose.Above), c.diagnose.Interval)}, ActUnwatchDiagnoseAbove{}}
	}
	return []Action{ActDumpAbove{}, ActUnwatchDiagnoseAbove{}}
}

// dumpAtMax gives up a dump that sat at memory.max for diagnose.StuckAfter: it needs more room
// than it has, so cgrun says so, and how to give it room, instead of waiting out
// --diagnose-timeout.
func (c *Core) dumpAtMax(g *Gen, ev EvDumpAtMax) []Action {
	if ev.At < diagnose.StuckAfter {
		return nil
	}
	fix := fmt.Sprintf("give it more --diagnose-headroom (now %s)", cgroup.FormatSize(c.diagnose.Headroom))
	switch {
	case ev.AboveOnly:
		fix = "set --diagnose-above lower, far enough below the limit for the dump to fit (that dump raises no limit)"
	case c.diagnose.Headroom == 0:
		fix = "give it --diagnose-headroom (about the dump's size; V8 may need as much again as its heap)"
	}
	if ev.OnTmpfs {
		fix += ", and put --diagnose-dir on a disk: on tmpfs the dump itself is charged to the group"
	}
	stuck := fmt.Sprintf("the dump sat at memory.max %s for %s, too little room to write it: %s", cgroup.FormatSize(ev.Limit), ev.At.Round(time.Second), fix)
	return []Action{ActLog{fmt.Sprintf("cgrun: %s: generation %d: %s; not waiting for it any longer\n", c.name, g.Number, stuck)}, ActGiveUpDump{stuck}}
}

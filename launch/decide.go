package launch

import (
	"fmt"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/launch/diagnose"
	"github.com/cgrun/cgrun/launch/policy"
	"github.com/cgrun/cgrun/launch/proc"
	"github.com/cgrun/cgrun/oomwatch"
	"golang.org/x/sys/unix"
)

// core is the supervisor's decisions, apart from their effects: step takes what happened (an
// event) and returns what to do (actions), and does no I/O — no signal, no cgroupfs, no clock,
// no log. The runner and the generation are its adapter: they turn signals, timers and the
// child's exit into events, and the actions into syscalls and lines on stderr. A host test
// replays a sequence through it in microseconds (decide_test.go).
type core struct {
	name   string
	p      policy.Policy
	limits cgroup.Limits
	dump   bool // --diagnose-*: a recycle for memory takes a dump first
	// diagnose is --diagnose-*; aboveDumps allows one --diagnose-above dump per
	// --diagnose-interval, across generations.
	diagnose   diagnose.Config
	aboveDumps diagnose.Limiter
	// peakAsked: the run's peak was asked for (a report, a baseline, --verbose), so a sampled
	// peak is sampled at the fastest rate throughout.
	peakAsked bool
	restarts  *policy.Restarts
	// While the restart delay runs: the exit code of the generation that ended, and why the
	// next one starts.
	code int
	why  policy.Reason
}

func newCore(name string, p policy.Policy, l cgroup.Limits, d diagnose.Config) *core {
	return &core{name: name, p: p, limits: l, dump: d.Enabled(), diagnose: d, aboveDumps: diagnose.Limiter{Interval: d.Interval},
		restarts: policy.NewRestarts(p)}
}

// watch starts the recycle triggers and the health count of g, as its supervision begins.
func (c *core) watch(g *genState) {
	g.triggers = policy.NewTriggers(c.p, c.limits)
	g.healthCount = policy.NewHealthCount(c.p.Health)
}

// genState is what the core knows of the generation it supervises; generation embeds it.
type genState struct {
	number    int
	recycled  policy.Reason // why cgrun ended this generation, or ""
	stopAsked unix.Signal   // SIGTERM or SIGINT reached cgrun: no restart after this one
	// overlapPhase is where the --overlap recycle is; overlapReason and overlapWhy are the
	// recycle that waits for the next generation.
	overlapPhase   overlapPhase
	overlapReason  policy.Reason
	overlapWhy     string
	thrashSampling bool               // the refault samples for the thrash detector run
	watchingAbove  bool               // the once-a-second look at memory at the --recycle-above mark runs
	triggers       *policy.Triggers   // the recycle triggers on memory events
	healthCount    policy.HealthCount // the failed health probes in a row
	// stopAfterDump is why the generation recycles, for the stop that follows the dump before
	// it; "" when no stop waits for a dump.
	stopAfterDump string
	windowEnded   bool          // cgrun advise --for ended the run
	peakEvery     time.Duration // the current interval of the peak samples (no memory.peak)
}

// On kernels without memory.peak (before 5.19) cgrun samples memory.current for the peak: every
// peakSampleEvery while memory rises, and while it does not, twice as long after each sample, up
// to peakSampleIdle — or to peakSampleEvery when the run's peak was asked for (a report, a
// baseline, --verbose), so that a spike after a quiet spell is not missed.
const (
	peakSampleEvery = 100 * time.Millisecond
	peakSampleIdle  = 2 * time.Second
)

// overlapPhase is where an --overlap recycle is.
type overlapPhase int

const (
	overlapNone    overlapPhase = iota // none began: a recycle for a reason that overlaps may start one
	overlapWaiting                     // the next generation runs beside this one, not ready yet
	overlapReady                       // it is ready: this one recycles
	overlapGone                        // it was given up, or could not start: recycle as without --overlap
)

// The events: what happened.
type (
	// evSignal: a signal reached cgrun (SIGCHLD is the adapter's: it reaps).
	evSignal struct{ sig unix.Signal }
	// evRecycle: a trigger asks for a recycle of the generation.
	evRecycle struct {
		reason policy.Reason
		why    string
	}
	// evLifetime: the --max-lifetime timer fired after the generation ran for uptime.
	evLifetime struct{ uptime time.Duration }
	// evNoOverlap: the --overlap recycle could not start the next generation: recycle as
	// without it.
	evNoOverlap struct{}
	// evNextReady: the next generation said READY=1 or passed its probe, after it ran for after.
	evNextReady struct {
		number int
		after  time.Duration
	}
	// evNextNotReady: --ready-timeout passed, and the next generation is not ready.
	evNextNotReady struct{}
	// evNextEnded: the next generation's command ended before it was ready.
	evNextEnded struct{ status unix.WaitStatus }
	// evDumpEnded: the dump a recycle waited for ended, or none could be started.
	evDumpEnded struct{}
	// evMemory: the watcher reported an event of the group.
	evMemory struct{ ev oomwatch.Event }
	// evAboveTick: the once-a-second look at memory (current) while it is at the
	// --recycle-above mark.
	evAboveTick struct {
		now     time.Time
		current uint64
	}
	// evThrash: the thrash detector's verdict on an event or a refault sample at now.
	evThrash struct {
		v   policy.ThrashVerdict
		now time.Time
	}
	// evProbed: a health probe ended, after the generation ran for uptime.
	evProbed struct {
		r      policy.Probe
		uptime time.Duration
	}
	// evStopTimer: the stop timeout passed and the child still runs.
	evStopTimer struct{}
	// evExited: the generation ended (its supervisor returned).
	evExited struct {
		now        time.Time
		number     int // the generation's number
		last       int // the highest generation number begun
		status     unix.WaitStatus
		uptime     time.Duration
		oomKills   uint64
		recycled   policy.Reason // why cgrun ended it, or ""
		stopAsked  bool          // SIGTERM or SIGINT (or the advise window) ended the run
		stopSignal unix.Signal   // the signal that asked cgrun to stop; 0 for none
		next       *nextStarted  // --overlap: the next generation, running and ready; nil for none
	}
	// evDiagnoseAbove: the once-a-second look for --diagnose-above's mark read memory.current
	// (read: it could), while a dump was in progress or not.
	evDiagnoseAbove struct {
		now     time.Time
		current uint64
		read    bool
		dumping bool
	}
	// evDumpAtMax: the dump in progress sat at memory.max (limit) for at so far; aboveOnly: it
	// is a --diagnose-above dump that no recycle waits for; onTmpfs: --diagnose-dir is on tmpfs.
	evDumpAtMax struct {
		at                 time.Duration
		limit              uint64
		aboveOnly, onTmpfs bool
	}
	// evPeakSampled: a peak sample (no memory.peak) read memory.current, a new high or not.
	evPeakSampled struct{ higher bool }
	// evWindowEnd: cgrun advise --for's window (of this long) is over.
	evWindowEnd struct{ window time.Duration }
	// evDelayOver: the restart delay passed.
	evDelayOver struct{}
)

// nextStarted is the --overlap generation that takes over.
type nextStarted struct{ number, pid int }

// The actions: what to do.
type (
	actLog            struct{ line string }          // write line (it ends in a newline) to cgrun's log
	actSignal         struct{ sig unix.Signal }      // signal the child
	actKillGroup      struct{}                       // kill the generation's group now (cgroup.kill), without waiting
	actLiftThrottle   struct{}                       // raise memory.high to max, for a stop
	actArmStopTimer   struct{}                       // start the stop timeout, unless it runs
	actNote           struct{ kind, text string }    // note in the state file
	actOverlap        struct{ why string }           // start the next generation beside this one (evNoOverlap when it cannot)
	actDump           struct{ reason policy.Reason } // take a dump for the recycle (evDumpEnded once it ended, or at once if none started)
	actWatchAbove     struct{}                       // look at memory once a second (evAboveTick)
	actUnwatchAbove   struct{}                       // stop those looks
	actSampleThrash   struct{ now time.Time }        // read refaults for the thrash detector every policy.ThrashEvery, the first now (evThrash)
	actUnsampleThrash struct{}                       // stop those reads
	actRecordThrash   struct {                       // the thrash record for --events
		v   policy.ThrashVerdict
		now time.Time
	}
	actHealthy              struct{}                    // tell systemd (sd_notify) the generation passed a health probe
	actSamplePeakIn         struct{ d time.Duration }   // take the next peak sample after d
	actGiveUpDump           struct{ why string }        // stop waiting for the dump in progress: it is stuck
	actDumpAbove            struct{}                    // take the --diagnose-above dump (no recycle follows)
	actUnwatchDiagnoseAbove struct{}                    // stop looking for --diagnose-above's mark
	actAbandonNext          struct{ why string }        // give up an --overlap generation not yet ready
	actDropNext             struct{}                    // remove a ready --overlap generation that will not take over
	actShowEnded            struct{}                    // save the state, showing the ended generation
	actWait                 struct{ d time.Duration }   // wait out the restart delay (evDelayOver, or evSignal)
	actStart                struct{ why policy.Reason } // start the next generation, for why
	actExit                 struct {                    // end the run
		code  int
		raise unix.Signal // the signal to die of once cleaned up; 0 for none
		err   error
	}
)

// step decides what follows ev. g is the generation supervised; nil between generations.
func (c *core) step(g *genState, ev any) []action {
	switch ev := ev.(type) {
	case evSignal:
		if g == nil {
			return c.signalWaiting(ev.sig)
		}
		return c.signal(g, ev.sig)
	case evRecycle:
		return c.recycle(g, ev.reason, ev.why)
	case evLifetime:
		return c.recycle(g, policy.Lifetime, fmt.Sprintf("lifetime of %v reached", ev.uptime.Round(time.Second)))
	case evNoOverlap:
		g.overlapPhase = overlapGone
		return c.recycle(g, g.overlapReason, g.overlapWhy)
	case evNextReady:
		if g.overlapPhase != overlapWaiting {
			return nil
		}
		g.overlapPhase = overlapReady
		return append([]action{actLog{fmt.Sprintf("cgrun: %s: generation %d is ready after %v\n", c.name, ev.number, ev.after.Round(time.Millisecond))}},
			c.recycle(g, g.overlapReason, g.overlapWhy)...)
	case evNextNotReady:
		return c.fallBack(g, fmt.Sprintf("not ready after --ready-timeout %v", c.p.ReadyTimeout))
	case evNextEnded:
		return c.fallBack(g, "it "+proc.Describe(ev.status)+" before it was ready")
	case evWindowEnd:
		return c.endWindow(g, ev.window)
	case evDiagnoseAbove:
		return c.diagnoseAbove(g, ev)
	case evDumpAtMax:
		return c.dumpAtMax(g, ev)
	case evPeakSampled:
		ceiling := peakSampleIdle
		if c.peakAsked {
			ceiling = peakSampleEvery
		}
		if ev.higher {
			g.peakEvery = peakSampleEvery
		} else {
			g.peakEvery = min(2*g.peakEvery, ceiling)
		}
		return []action{actSamplePeakIn{g.peakEvery}}
	case evDumpEnded:
		why := g.stopAfterDump
		g.stopAfterDump = ""
		if why == "" {
			return nil
		}
		return c.stop(g, why)
	case evMemory:
		reason, say, arm := g.triggers.Observe(ev.ev)
		var acts []action
		switch {
		case reason != "":
			acts = c.recycle(g, reason, say)
		case say != "":
			acts = []action{actLog{fmt.Sprintf("cgrun: %s: %s\n", c.name, say)}, actNote{"stall", say}}
		}
		if arm && !g.watchingAbove {
			g.watchingAbove = true
			acts = append(acts, actWatchAbove{})
		}
		return acts
	case evAboveTick:
		var acts []action
		recycle, keep := g.triggers.CheckAbove(ev.now, ev.current)
		if !keep && g.watchingAbove {
			g.watchingAbove = false
			acts = append(acts, actUnwatchAbove{})
		}
		if recycle {
			acts = append(acts, c.recycle(g, policy.MemoryAbove, fmt.Sprintf("memory at %s held at or above %s for %v",
				cgroup.FormatSize(ev.current), c.p.RecycleAbove.Human(), c.p.RecycleAfter))...)
		}
		return acts
	case evThrash:
		var acts []action
		switch v := ev.v; {
		case v.Thrash:
			if g.thrashSampling {
				acts = append(acts, actUnsampleThrash{})
			}
			g.thrashSampling = false
			acts = append(acts, actRecordThrash{v, ev.now})
			return append(acts, c.recycle(g, policy.Thrashing, v.Why)...)
		case v.Sample && !g.thrashSampling:
			g.thrashSampling = true
			return []action{actSampleThrash{ev.now}}
		case !v.Sample && g.thrashSampling:
			g.thrashSampling = false
			return []action{actUnsampleThrash{}}
		}
		return nil
	case evProbed:
		var acts []action
		if ev.r.OK {
			acts = append(acts, actHealthy{})
		}
		if g.healthCount.Record(ev.r, ev.uptime) {
			acts = append(acts, c.recycle(g, policy.Health, fmt.Sprintf("health check failed %d times in a row (last: %s)", g.healthCount.Fails(), ev.r.Why))...)
		}
		return acts
	case evStopTimer:
		return []action{actLog{fmt.Sprintf("cgrun: %s: still running %v after %s; killing its group\n", c.name, c.p.StopTimeout, proc.SignalName(c.p.StopSignal))}, actKillGroup{}}
	case evExited:
		return c.exited(ev)
	case evDelayOver:
		return []action{actStart{c.why}}
	}
	panic(fmt.Sprintf("core: unknown event %T", ev))
}

// action is one of the act* types.
type action any

// signal is a signal to cgrun while a generation runs.
func (c *core) signal(g *genState, sig unix.Signal) []action {
	switch sig {
	case proc.RecycleSignal:
		return c.recycle(g, policy.Request, "recycle requested with "+proc.SignalName(proc.RecycleSignal))
	case unix.SIGTERM, unix.SIGINT:
		g.stopAsked = sig
		if g.overlapPhase != overlapNone {
			g.overlapPhase = overlapGone
		}
		return []action{actAbandonNext{"cgrun is stopping"}, actLiftThrottle{}, actSignal{sig}, actArmStopTimer{}}
	}
	return []action{actSignal{sig}} // ESRCH: it is exiting; SIGCHLD follows
}

// recycle ends the generation gracefully: the stop signal now, the group killed after the stop
// timeout; a thrashing one is killed at once, and one recycled for memory growing is dumped
// first when --diagnose-* asks for it; under --overlap, a recycle of one that still serves
// waits for the next generation to be ready.
func (c *core) recycle(g *genState, reason policy.Reason, why string) []action {
	switch {
	case g.recycled != "" || g.stopAsked != 0:
		return nil
	case g.overlapPhase == overlapWaiting:
		return nil // one recycle at a time; once the next is ready, this one stops
	case c.p.Overlap && g.overlapPhase == overlapNone && reason.Overlap():
		g.overlapPhase, g.overlapReason, g.overlapWhy = overlapWaiting, reason, why
		return []action{actOverlap{why}}
	}
	g.recycled = reason
	note := actNote{"recycle", string(reason) + ": " + why}
	if reason == policy.Thrashing {
		// The kill first: the state file's write may take a while on a busy disk. At memory.max
		// its stop handler would wait for memory as the rest of it does, and the kernel's OOM
		// killer would end it the same way, only seconds later.
		return []action{actLog{fmt.Sprintf("cgrun: %s: recycling generation %d: %s; killing its group (a thrashing worker cannot run its stop handler)\n",
			c.name, g.number, why)}, actKillGroup{}, note}
	}
	if reason.Memory() && c.dump {
		g.stopAfterDump = why
		return []action{note, actDump{reason}}
	}
	return append([]action{note}, c.stop(g, why)...)
}

// fallBack gives up an --overlap generation that is not ready (why says how), and recycles
// as without --overlap.
func (c *core) fallBack(g *genState, why string) []action {
	if g.overlapPhase != overlapWaiting {
		return nil
	}
	g.overlapPhase = overlapGone
	return append([]action{actAbandonNext{why}}, c.recycle(g, g.overlapReason, g.overlapWhy)...)
}

// stop sends the stop signal for a recycle, and arms the timer that kills the group.
func (c *core) stop(g *genState, why string) []action {
	if g.stopAsked != 0 {
		return nil
	}
	return []action{actLog{fmt.Sprintf("cgrun: %s: recycling generation %d: %s; sending %s (group killed after %v)\n",
		c.name, g.number, why, proc.SignalName(c.p.StopSignal), c.p.StopTimeout)},
		actLiftThrottle{}, actSignal{c.p.StopSignal}, actArmStopTimer{}}
}

// exited decides what follows a generation that ended: the run's end, or the next generation
// after the restart delay (growing after short-lived ones), or giving up at the start limit.
func (c *core) exited(ev evExited) []action {
	code := proc.StatusCode(ev.status)
	why := c.restarts.Why(ev.status, ev.oomKills, ev.recycled)
	var acts []action
	if ev.next != nil && (ev.stopAsked || why == "") {
		acts = append(acts, actDropNext{}) // started by an --overlap recycle; not needed now
	}
	if ev.stopAsked {
		var raise unix.Signal
		if ev.status.Signaled() && ev.status.Signal() == ev.stopSignal {
			raise = ev.stopSignal
		}
		return append(acts, actExit{code: code, raise: raise})
	}
	if why == "" {
		return append(acts, actExit{code: code})
	}
	delay, ok := c.restarts.Next(ev.now, ev.uptime)
	if ev.next != nil {
		delay, ok = 0, true // it already runs, and is ready
	}
	if !ok {
		p := c.p
		err := &proc.Error{Code: proc.ExitStartLimit, Err: fmt.Errorf("%s: gave up: %d restarts within %v (--max-restarts %d, --restart-window %v); the last generation %s",
			c.name, p.MaxRestarts, p.RestartWindow, p.MaxRestarts, p.RestartWindow, proc.Describe(ev.status))}
		return append(acts, actExit{code: proc.ExitStartLimit, err: err})
	}
	if ev.next != nil {
		return append(acts, actLog{fmt.Sprintf("cgrun: %s: generation %d (pid %d) took over (%s)\n", c.name, ev.next.number, ev.next.pid, why)}, actStart{why})
	}
	acts = append(acts, actLog{fmt.Sprintf("cgrun: %s: restarting (%s) as generation %d in %v\n", c.name, why, max(ev.number, ev.last)+1, delay)})
	if delay > 0 {
		acts = append(acts, actShowEnded{})
	}
	c.code, c.why = code, why
	return append(acts, actWait{delay})
}

// signalWaiting is a signal to cgrun during the restart delay: SIGTERM or SIGINT ends the run
// (no generation runs: cgrun stops as the signal asks); the recycle signal cuts the delay short.
func (c *core) signalWaiting(sig unix.Signal) []action {
	switch sig {
	case unix.SIGTERM, unix.SIGINT:
		return []action{actExit{code: c.code, raise: sig}}
	case proc.RecycleSignal:
		return []action{actStart{c.why}}
	}
	return nil
}

// endWindow ends the run when cgrun advise --for is over: memory.high back, then the stop
// signal, and the group killed after the stop timeout, as a recycle's stop but with no restart.
func (c *core) endWindow(g *genState, window time.Duration) []action {
	if g.stopAsked != 0 || g.windowEnded {
		return nil
	}
	g.windowEnded = true
	return []action{actLog{fmt.Sprintf("cgrun: %s: observed for %v; sending %s (group killed after %v)\n",
		c.name, window, proc.SignalName(c.p.StopSignal), c.p.StopTimeout)},
		actAbandonNext{"the advise window ended"}, actLiftThrottle{}, actSignal{c.p.StopSignal}, actArmStopTimer{}}
}

// diagnoseAbove takes the generation's one --diagnose-above dump when memory first crosses the
// mark, unless one was taken less than --diagnose-interval ago; it stops looking once it took or
// refused one, or once the generation is ending.
func (c *core) diagnoseAbove(g *genState, ev evDiagnoseAbove) []action {
	if ending := g.recycled != "" || g.stopAsked != 0; !ev.read || ev.current < c.diagnose.Above || ev.dumping || ending {
		if ending {
			return []action{actUnwatchDiagnoseAbove{}}
		}
		return nil
	}
	if !c.aboveDumps.Allow(ev.now) {
		return []action{actLog{fmt.Sprintf("cgrun: %s: generation %d: memory at %s crossed --diagnose-above %s; no dump: the last was less than --diagnose-interval %v ago\n",
			c.name, g.number, cgroup.FormatSize(ev.current), cgroup.FormatSize(c.diagnose.Above), c.diagnose.Interval)}, actUnwatchDiagnoseAbove{}}
	}
	return []action{actDumpAbove{}, actUnwatchDiagnoseAbove{}}
}

// dumpAtMax gives up a dump that sat at memory.max for diagnose.StuckAfter: it needs more room
// than it has, so cgrun says so, and how to give it room, instead of waiting out
// --diagnose-timeout.
func (c *core) dumpAtMax(g *genState, ev evDumpAtMax) []action {
	if ev.at < diagnose.StuckAfter {
		return nil
	}
	fix := fmt.Sprintf("give it more --diagnose-headroom (now %s)", cgroup.FormatSize(c.diagnose.Headroom))
	switch {
	case ev.aboveOnly:
		fix = "set --diagnose-above lower, far enough below the limit for the dump to fit (that dump raises no limit)"
	case c.diagnose.Headroom == 0:
		fix = "give it --diagnose-headroom (about the dump's size; V8 may need as much again as its heap)"
	}
	if ev.onTmpfs {
		fix += ", and put --diagnose-dir on a disk: on tmpfs the dump itself is charged to the group"
	}
	stuck := fmt.Sprintf("the dump sat at memory.max %s for %s, too little room to write it: %s", cgroup.FormatSize(ev.limit), ev.at.Round(time.Second), fix)
	return []action{actLog{fmt.Sprintf("cgrun: %s: generation %d: %s; not waiting for it any longer\n", c.name, g.number, stuck)}, actGiveUpDump{stuck}}
}

package launch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/launch/advise"
	"github.com/cgrun/cgrun/launch/core"
	"github.com/cgrun/cgrun/launch/diagnose"
	"github.com/cgrun/cgrun/launch/exitcode"
	"github.com/cgrun/cgrun/launch/health"
	"github.com/cgrun/cgrun/launch/notify"
	"github.com/cgrun/cgrun/launch/policy"
	"github.com/cgrun/cgrun/launch/proc"
	"github.com/cgrun/cgrun/launch/report"
	"github.com/cgrun/cgrun/launch/state"
	"github.com/cgrun/cgrun/oomwatch"
	"golang.org/x/sys/unix"
)

// generation is one run of the command in one fresh group. Its supervisor is one loop over a
// few actors — the signal handler (which alone calls wait4), the event watcher, and timers for
// the recycle triggers and health probes — until the child exits; then the watcher is stopped
// and drained, and the group is killed and removed.
type generation struct {
	core.Gen        // what the decisions (core) go on: its number, why it is ending
	dir      string // the payload group: the limits and the watcher are on it
	leaf     string // its leaf that the command starts in (dir/main)
	run      *runner
	pid      int
	started  time.Time // when the child started

	stopTimer  *time.Timer
	aboveTimer *time.Ticker
	// aboveDumpTick looks for --diagnose-above's mark once a second; nil once the dump was
	// taken or refused, or without one.
	aboveDumpTick *time.Ticker
	thrash        *policy.ThrashWatch // nil: thrash recycles nothing here
	thrashPSI     bool                // the thrash trigger is armed on memory.pressure
	thrashTick    *time.Ticker        // refault samples while memory sits near memory.max (no PSI)
	health        *health.Prober
	peak          *cgroup.PeakMeter
	peakTimer     *time.Timer // the next peak sample, on kernels without memory.peak
	peakSaved     time.Time   // when a sampled peak last went into the state file
	peakUnsaved   bool        // the state in memory has a higher sampled peak than the file

	dumping      *dumping              // a diagnostic dump in progress; nil for none
	dumped       *diagnose.Dump        // the dump taken before this generation's recycle
	created      bool                  // the group exists: end removes it
	begun        outcome               // what begin knew
	events       <-chan oomwatch.Event // the watcher's, closed after stopWatching
	stopWatching func()
	closeWatch   func()
	advisor      *advise.Advisor // --advise: the probe of the memory it needs; nil without
	adviceSaved  time.Time       // when noteAdvice last wrote the state file
	adviseTimer  *time.Timer
	next         *handover      // --overlap: the next generation, started beside this one
	notify       *notify.Socket // --overlap: the NOTIFY_SOCKET it says READY=1 on, open until it ends
}

// outcome is how a generation ended.
type outcome struct {
	pid         int
	status      unix.WaitStatus
	started     time.Time
	uptime      time.Duration
	peak        uint64            // the group's memory peak; 0 when nothing could be measured
	peakSource  cgroup.PeakSource // how peak was measured; "" when it is unknown
	oomKill     uint64
	recycled    policy.Reason // why cgrun ended it, or ""
	stopAsked   bool
	stopSignal  unix.Signal    // the signal that asked cgrun to stop
	dump        *diagnose.Dump // the dump taken before the recycle; nil for none
	next        *generation    // --overlap: the next generation, already running and ready
	windowEnded bool           // cgrun advise --for ended it
}

// start makes the group, starts the child in it, supervises it until it exits and removes the
// group with all that is left in it. onStart runs once the child runs (for the recycle record).
// A generation that an --overlap recycle already started (begin) is only supervised.
func (g *generation) start(onStart func(pid int)) (out outcome, err error) {
	if g.pid == 0 {
		if out, err = g.begin(); err != nil {
			g.end()
			return out, err
		}
	} else {
		out = g.begun
	}
	defer g.end()
	if onStart != nil {
		onStart(g.pid)
	}
	out.status = g.supervise(g.events, out.started)
	out.uptime = time.Since(out.started)
	proc.ReclaimForeground()
	g.stopWatching()
	out.recycled, out.stopAsked, out.stopSignal, out.dump = g.Recycled, g.StopAsked != 0 || g.WindowEnded, g.StopAsked, g.dumped
	out.next = g.handedTo()
	out.windowEnded = g.WindowEnded
	g.finish(&out)
	return out, nil
}

// begin makes the group, starts the watcher and the child in it; end undoes it.
func (g *generation) begin() (out outcome, err error) {
	cfg := g.run.cfg
	if err := cgroup.Create(g.dir); err != nil {
		return out, err
	}
	g.created = true
	g.run.last = max(g.run.last, g.Number)
	if err := cfg.Limits.Apply(g.dir); err != nil {
		return out, err
	}
	// The command starts in a leaf, and the payload group enables the controllers for its
	// children: a cgrun that the command runs in turn (a shell starting several, a process
	// manager) can then make its own groups in the payload group, inside these limits.
	g.leaf = state.Leaf(g.dir)
	if err := cgroup.Create(g.leaf); err != nil {
		return out, tooSmall(cfg.Limits, err)
	}
	if _, err := cgroup.EnableControllers(g.dir, cfg.Limits.Controllers()...); err != nil {
		return out, tooSmall(cfg.Limits, err)
	}
	// The leaf carries a copy of the limits: runtimes size themselves from the group they are
	// in (Node's heap, Go's GOMAXPROCS), and read nothing above it.
	if err := cfg.Limits.Mirror(g.leaf); err != nil {
		return out, tooSmall(cfg.Limits, err)
	}
	g.peak = cgroup.NewPeakMeter(g.dir, g.leaf)
	opts := oomwatch.Options{
		Triggers: append(cfg.Pressure, cfg.Policy.RecyclePressure...),
		Children: []string{g.leaf}, // hears an OOM kill at once, however busy memory.events is
		Mirror:   g.leaf,
	}
	thrash := cfg.Policy.Thrash.Enabled(cfg.Policy.Restart)
	if thrash {
		// Where the kernel takes no trigger, the refaults stand in (policy.Thrash).
		opts.Optional = []oomwatch.Trigger{cfg.Policy.Thrash.Pressure}
	}
	w, err := oomwatch.New(g.dir, g.run.h.Rel(g.dir), opts)
	if err != nil {
		return out, fmt.Errorf("watch %s: %w", g.dir, err)
	}
	g.thrashPSI = thrash && w.Armed(cfg.Policy.Thrash.Pressure)
	g.closeWatch = func() { w.Close() }
	if n := w.Notice(); n != nil && g.Number == 1 {
		fmt.Fprintf(cfg.Log, "cgrun: notice: %v\n", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan oomwatch.Event, 64)
	go func() {
		defer close(events)
		_ = w.Run(ctx, func(ev oomwatch.Event) { events <- ev })
	}()
	g.events = events
	g.stopWatching = func() {
		cancel() // the watcher reads every counter once more, then closes events
		for ev := range events {
			g.event(ev)
		}
	}

	out.started = time.Now()
	child := g.run.child(g.leaf)
	child.Path, child.Argv = g.run.path, cfg.Command
	child.Listen, child.Env = g.run.sockets.Files(), g.run.sockets.Env(child.Env)
	if os.Geteuid() == 0 {
		child.Keep = g.run.sockets.Paths()
	}
	child.Shm, child.ShmRefused = g.run.shm, g.run.shmRefused
	if g.notify != nil {
		child.Env = append(notify.Env(child.Env, true), "NOTIFY_SOCKET="+g.notify.Path())
	}
	g.pid, err = proc.Start(child)
	if err != nil {
		g.stopWatching()
		return out, tooSmall(cfg.Limits, err)
	}
	out.pid = g.pid
	g.run.log.Add(g.record(oomwatch.Event{Time: out.started, Kind: report.KindStart}, func(r *report.Event) { r.Command = cfg.Command }))
	g.begun = out
	return out, nil
}

// end closes the watcher and its NOTIFY_SOCKET, and kills and removes what is left of the group.
func (g *generation) end() {
	g.notify.Close()
	g.notify = nil
	if !g.created {
		return
	}
	if g.closeWatch != nil {
		g.closeWatch()
	}
	if terr := g.teardown(); terr != nil {
		fmt.Fprintf(g.run.cfg.Log, "cgrun: warning: %v\n", terr)
	}
	g.created = false
}

// supervise runs the generation's actors until the child exits, and returns its wait status.
// Each case of its loop hands what arrived to one method; only SIGCHLD can end the loop.
func (g *generation) supervise(events <-chan oomwatch.Event, started time.Time) unix.WaitStatus {
	p := g.run.cfg.Policy
	g.started = started
	g.run.core.Watch(&g.Gen)
	if p.Thrash.Enabled(p.Restart) {
		g.thrash = policy.NewThrashWatch(p.Thrash, g.run.cfg.Limits, g.thrashPSI)
	}
	var lifetime, probeTick, sampleTick, peakTick, adviseTick, adviseEnd <-chan time.Time
	defer g.endDump()
	if g.aboveDumpTick = g.diagnoseAboveTick(); g.aboveDumpTick != nil {
		defer func() {
			if g.aboveDumpTick != nil {
				g.aboveDumpTick.Stop()
			}
		}()
	}
	if !g.peak.Kernel() {
		g.PeakEvery = core.PeakSampleEvery
		g.peakTimer = time.NewTimer(g.PeakEvery)
		defer g.peakTimer.Stop()
		peakTick = g.peakTimer.C
	}
	if g.run.sample {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		sampleTick = t.C
	}
	if d := g.Triggers.Lifetime(); d > 0 {
		// From the generation's start: an --overlap generation began before it took over.
		t := time.NewTimer(max(d-time.Since(started), 0))
		defer t.Stop()
		lifetime = t.C
	}
	var probeResults <-chan policy.Probe
	if p.Health.Enabled() {
		g.health = health.New(p.Health)
		defer g.health.Stop()
		t := time.NewTicker(p.Health.Interval)
		defer t.Stop()
		probeTick = t.C
		probeResults = g.health.Results()
	}
	if a := g.run.cfg.Advise; a != nil {
		if t := g.startAdvisor(); t != nil {
			g.adviseTimer = t
			defer t.Stop()
			defer g.endAdvisor()
			adviseTick = t.C
		}
		if a.For > 0 {
			t := time.NewTimer(max(a.For-time.Since(g.run.adviseStarted), 0))
			defer t.Stop()
			adviseEnd = t.C
		}
	}
	for _, e := range g.run.takeEarly() { // the rest are orphans and probes of the generations before
		if e.Pid == g.pid { // --overlap: it ended while the one before it drained
			return e.Status
		}
	}

	defer g.dropUnready()
	defer g.stopTimers()
	for {
		select {
		case sig := <-g.run.sigs.stop:
			g.step(core.EvSignal{Sig: sig.(unix.Signal)})
		case sig := <-g.run.sigs.other:
			g.step(core.EvSignal{Sig: sig.(unix.Signal)})
		case <-g.run.sigs.child:
			if ws, done := g.reap(); done {
				g.stopPending()
				return ws
			}
		case ev := <-events:
			g.observe(ev)
		case now := <-adviseTick:
			g.adviseTimer.Reset(g.advisor.Step(now))
			g.noteAdvice(now)
		case <-adviseEnd:
			g.step(core.EvWindowEnd{Window: g.run.cfg.Advise.For})
		case <-lifetime:
			g.step(core.EvLifetime{Uptime: time.Since(started)})
		case now := <-tickerC(g.aboveTimer):
			g.checkAbove(now)
		case now := <-tickerC(g.thrashTick):
			g.sampleThrash(now)
		case <-sampleTick:
			g.sampleSteady()
		case now := <-peakTick:
			g.samplePeak(now)
		case <-probeTick:
			g.probe()
		case r := <-probeResults:
			g.probed(r)
		case r := <-g.dumpDone():
			g.dumpEnded(r)
		case now := <-g.dumpTick():
			g.checkDumpAtMax(now)
		case now := <-tickerC(g.aboveDumpTick):
			g.checkDiagnoseAbove(now)
		case <-g.next.tick():
			g.probeNext()
		case r := <-g.next.results():
			g.nextProbed(r)
		case <-g.next.readyC():
			g.nextReady()
		case <-g.next.timeout():
			g.nextNotReady()
		case <-timerC(g.stopTimer):
			g.stopTimer = nil
			g.step(core.EvStopTimer{})
		}
	}
}

// timerC is t's channel, or nil (a case that never fires) when there is no timer.
func timerC(t *time.Timer) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C
}

// tickerC is t's channel, or nil when there is no ticker.
func tickerC(t *time.Ticker) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C
}

func (g *generation) stopTimers() {
	if g.stopTimer != nil {
		g.stopTimer.Stop()
	}
	if g.aboveTimer != nil {
		g.aboveTimer.Stop()
	}
	if g.thrashTick != nil {
		g.thrashTick.Stop()
	}
}

// observe handles one event of the watcher: it is logged, and the triggers may recycle.
func (g *generation) observe(ev oomwatch.Event) {
	if !g.thrashOnly(ev) {
		g.event(ev)
	}
	if g.thrash.Fired(ev) {
		if s, err := readThrashSample(g.dir, ev.Time); err == nil {
			g.thrashed(g.thrash.Pressure(ev, s), ev.Time)
		}
	} else if g.thrash != nil {
		g.thrashed(g.thrash.Event(ev), ev.Time)
	}
	g.step(core.EvMemory{Event: ev})
}

// thrashOnly reports whether ev is a firing of the thrash trigger that nobody asked to see
// (--pressure, --recycle-on-pressure): it is the detector's, not a line for the stream.
func (g *generation) thrashOnly(ev oomwatch.Event) bool {
	if !g.thrash.Fired(ev) {
		return false
	}
	for _, asked := range [][]oomwatch.Trigger{g.run.cfg.Pressure, g.run.cfg.Policy.RecyclePressure} {
		for _, t := range asked {
			if t.String() == ev.Pressure.Trigger {
				return false
			}
		}
	}
	return true
}

// thrashed hands the core what the thrash detector said.
func (g *generation) thrashed(v policy.ThrashVerdict, now time.Time) {
	g.step(core.EvThrash{Verdict: v, Now: now})
}

// sampleThrash reads memory.current and the refaults for the thrash detector, while memory sits
// near memory.max on a kernel without PSI.
func (g *generation) sampleThrash(now time.Time) {
	if s, err := readThrashSample(g.dir, now); err == nil {
		g.thrashed(g.thrash.Sample(s), now)
	}
}

// readThrashSample reads what the thrash detector looks at in the group at dir. memory.stat
// first, memory.current after it: a group whose page cache is dropped between the two reads
// (a reader's file closed on hostfs) then reads as below memory.max, not as "at memory.max with
// its cache spent" — thrash, to the detector (a healthy reader on 5.10 was recycled so once).
func readThrashSample(dir string, now time.Time) (policy.RefaultSample, error) {
	stat, err := cgroup.MemoryStatKeys(dir)
	if err != nil {
		return policy.RefaultSample{}, err
	}
	cur, err := cgroup.MemoryCurrent(dir)
	if err != nil {
		return policy.RefaultSample{}, err
	}
	cache := stat["file"] - min(stat["shmem"], stat["file"])
	return policy.RefaultSample{Time: now, Current: cur, Cache: cache, Mapped: stat["file_mapped"],
		Scan: stat["pgscan"], Steal: stat["pgsteal"], Refaults: cgroup.RefaultsOf(stat)}, nil
}

// checkAbove looks once a second, while memory is at the --recycle-above mark, whether it was
// held there for --recycle-after.
func (g *generation) checkAbove(now time.Time) {
	cur, _, _ := g.peak.Sample()
	g.step(core.EvAboveTick{Now: now, Current: cur})
}

// sampleSteady takes the once-a-second memory.current sample for a baseline's median.
func (g *generation) sampleSteady() {
	if cur, _, err := g.peak.Sample(); err == nil {
		g.run.steady.Add(cur)
	}
}

// probe starts a health probe, unless the last one is still running: one that ran past its
// timeout is killed, and its failure comes back through the reaper.
func (g *generation) probe() {
	if g.health.TimedOut() {
		return
	}
	if r, done := g.health.Start(g.run.child(g.leaf)); done {
		g.probed(r)
	}
}

// stopPending takes a SIGTERM or SIGINT that reached cgrun along with its child's end: systemd's
// stop signals every process of the unit at once, and when the SIGCHLD is taken first the run
// would end as a command killed by a signal (exit 143: a failed unit) instead of as stopped. The
// child is reaped: the stop is recorded, not forwarded.
func (g *generation) stopPending() {
	select {
	case sig := <-g.run.sigs.stop:
		if g.StopAsked == 0 {
			g.StopAsked = sig.(unix.Signal)
		}
	default:
	}
}

// reap collects the children that exited; it reports the child's wait status once the child
// exited.
func (g *generation) reap() (unix.WaitStatus, bool) {
	var ws unix.WaitStatus
	done := false
	for _, e := range append(g.run.takeEarly(), proc.ReapAll()...) {
		switch {
		case e.Pid == g.pid:
			ws, done = e.Status, true
		case g.next != nil && g.nextReaped(e.Pid, e.Status):
		case g.health != nil:
			if r, ok := g.health.Exited(e.Pid, e.Status); ok {
				g.probed(r)
			}
		}
	}
	return ws, done
}

// probed handles the result of one health probe.
func (g *generation) probed(r policy.Probe) {
	g.health.Stop() // the probe ended
	g.step(core.EvProbed{Result: r, Uptime: time.Since(g.started)})
}

// recycle asks the core for a recycle of the generation.
func (g *generation) recycle(reason policy.Reason, why string) {
	g.step(core.EvRecycle{Reason: reason, Why: why})
}

// step hands ev to the core and does what it decides: the core's adapter for a generation.
// Not cgroup.Kill for the group: the supervisor must not block; the child's death comes back
// as SIGCHLD, and teardown then kills whatever a fork slipped past that pass.
func (g *generation) step(ev any) {
	for _, a := range g.run.core.Step(&g.Gen, ev) {
		switch a := a.(type) {
		case core.ActLog:
			fmt.Fprint(g.run.cfg.Log, a.Line)
		case core.ActSignal:
			_ = unix.Kill(g.pid, a.Sig) // ESRCH: it is exiting; SIGCHLD follows
		case core.ActKillGroup:
			if err := cgroup.KillNow(g.dir); err != nil {
				fmt.Fprintf(g.run.cfg.Log, "cgrun: warning: kill %s: %v\n", g.dir, err)
			}
		case core.ActLiftThrottle:
			g.liftThrottle()
		case core.ActArmStopTimer:
			g.armStopTimer()
		case core.ActNote:
			g.run.updateState(func(s *state.State) { s.Note(a.Kind, a.Text) })
		case core.ActOverlap:
			if !g.overlap(a.Why) {
				g.step(core.EvNoOverlap{})
			}
		case core.ActDump:
			then := func() { g.step(core.EvDumpEnded{}) }
			if !g.startDump(string(a.Reason), true, then) {
				then()
			}
		case core.ActWatchAbove:
			g.aboveTimer = time.NewTicker(time.Second)
		case core.ActUnwatchAbove:
			g.aboveTimer.Stop()
			g.aboveTimer = nil
		case core.ActSampleThrash:
			g.thrashTick = time.NewTicker(policy.ThrashEvery)
			g.sampleThrash(a.Now) // the window starts at the max event
		case core.ActUnsampleThrash:
			g.thrashTick.Stop()
			g.thrashTick = nil
		case core.ActRecordThrash:
			v := a.Verdict
			ev := oomwatch.Event{Time: a.Now, Kind: report.KindThrash}
			ev.MemoryCurrent, _ = cgroup.MemoryCurrent(g.dir) // at memory.max: the thrash's memory
			ev.MemoryPeak, ev.MemoryPeakSource = g.peak.Peak()
			g.run.log.Add(g.record(ev, func(r *report.Event) {
				r.Reason, r.Thrash = policy.Thrashing, &report.Thrash{Source: v.Source, Why: v.Why, RefaultsPerSecond: v.Rate}
			}))
		case core.ActGiveUpDump:
			g.giveUpDump(a.Why)
		case core.ActDumpAbove:
			g.startDump("above", false, nil)
		case core.ActUnwatchDiagnoseAbove:
			g.aboveDumpTick.Stop()
			g.aboveDumpTick = nil
		case core.ActSamplePeakIn:
			g.peakTimer.Reset(a.After)
		case core.ActHealthy:
			g.run.notify.Healthy()
		case core.ActAbandonNext:
			g.abandonNext(a.Why)
		default:
			panic(fmt.Sprintf("generation: no effect for %T", a))
		}
	}
}

// liftThrottle raises memory.high to max on a generation that is being stopped. Without swap, a
// process past memory.high is throttled on every page it touches — its signal handler and its
// shutdown code included — and may not get to exit before the stop timeout. memory.max still
// bounds it.
func (g *generation) liftThrottle() {
	g.advisor.Halt()
	if l := g.run.cfg.Limits.MemoryHigh; l.Set && !l.Max {
		_ = cgroup.SetMemoryHigh(g.dir, cgroup.Unlimited)
		_ = cgroup.SetMemoryHigh(g.leaf, cgroup.Unlimited) // its copy of the limits throttles too
	}
}

func (g *generation) armStopTimer() {
	if g.stopTimer == nil {
		g.stopTimer = time.NewTimer(g.run.cfg.Policy.StopTimeout)
	}
}

func (g *generation) event(ev oomwatch.Event) {
	if !g.peak.Kernel() {
		if ev.Kind != oomwatch.Emptied { // read after the last process went: says nothing of the peak
			g.peak.Observe(ev.MemoryCurrent)
		}
		ev.MemoryPeak, ev.MemoryPeakSource = g.peak.Peak()
		g.notePeak(ev.MemoryPeak, ev.MemoryPeakSource)
	}
	g.run.log.Add(g.record(ev, nil))
}

// notePeak puts a sampled peak into the state in memory; samplePeak writes it out.
func (g *generation) notePeak(peak uint64, src cgroup.PeakSource) {
	g.run.noteState(func(s *state.State) {
		if peak > s.MemoryPeak {
			s.MemoryPeak, s.MemoryPeakSource = peak, src
			g.peakUnsaved = true
		}
	})
}

// samplePeak reads memory.current for the peak on a kernel without memory.peak; the core sets
// the interval to the next sample. The state (for ps, status and metrics) follows at once in memory,
// and on disk at most once a second.
func (g *generation) samplePeak(now time.Time) {
	_, higher, err := g.peak.Sample()
	if err == nil && higher {
		g.notePeak(g.peak.Peak())
	}
	if g.peakUnsaved && now.Sub(g.peakSaved) >= time.Second {
		g.peakSaved, g.peakUnsaved = now, false
		g.run.updateState(func(*state.State) {})
	}
	g.step(core.EvPeakSampled{Higher: higher})
}

// record wraps an event with who it concerns; more fills in the fields of its kind.
func (g *generation) record(ev oomwatch.Event, more func(*report.Event)) report.Event {
	if ev.Group == "" {
		ev.Group = g.run.h.Rel(g.dir)
	}
	r := report.Event{Event: ev, Name: g.run.name, Pid: g.pid, Generation: g.Number}
	if l := g.run.cfg.Limits.MemoryHigh; l.Set && !l.Max {
		r.MemoryHigh = &l.Value
	}
	if l := g.run.cfg.Limits.MemoryMax; l.Set && !l.Max {
		r.MemoryMax = &l.Value
	}
	if more != nil {
		more(&r)
	}
	return r
}

// finish records how the child ended: the exit record, and the OOM explanation when the
// kernel's OOM killer was involved. It runs before teardown, while the group still exists.
func (g *generation) finish(out *outcome) {
	log := g.run.cfg.Log
	counters, _ := cgroup.MemoryEvents(g.dir, g.leaf)
	out.oomKill = cgroup.OOMKills(counters)
	// No last sample here: after the child's exit memory.current says nothing of its peak, and a
	// command that ended before the first sample has no sampled peak (not a tiny one).
	out.peak, out.peakSource = g.peak.Peak()
	code := exitcode.FromStatus(out.status)
	g.run.report.Add(g.measure(*out, counters))
	g.run.noteState(func(s *state.State) {
		for k, v := range counters {
			s.Totals[k] += v
		}
		s.Counted = s.Group
		if out.peak > s.MemoryPeak { // what ps and status show until the next generation starts
			s.MemoryPeak, s.MemoryPeakSource = out.peak, out.peakSource
		}
		s.Past = diagnose.AddPast(s.Past, pastGeneration(g.Number, *out))
		what := fmt.Sprintf("generation %d (pid %d) %s after %s", g.Number, g.pid, exitcode.Describe(out.status), out.uptime.Round(time.Millisecond))
		if out.oomKill > 0 {
			what += fmt.Sprintf("; %d OOM kills", out.oomKill)
		}
		s.Note("exit", what)
	})
	g.run.log.Settle()
	g.run.log.Add(g.record(oomwatch.Event{Time: time.Now(), Kind: report.KindExit, MemoryPeak: out.peak, MemoryPeakSource: out.peakSource}, func(r *report.Event) {
		r.ExitCode, r.Uptime, r.OOMKills, r.MemoryEvents = &code, out.uptime.Seconds(), &out.oomKill, counters
		r.Reason = out.recycled
		if out.status.Signaled() {
			r.Signal = exitcode.SignalName(out.status.Signal())
		}
	}))
	max := "max"
	if m, err := cgroup.MemoryMax(g.dir); err == nil {
		max = m.Human()
	}
	peak := report.PeakText(out.peak, out.peakSource)
	if out.oomKill == 0 {
		if policy.Aborted(out.status) {
			fmt.Fprintf(log, "cgrun: %s aborted (SIGABRT) with no OOM kill (memory.max %s, peak %s): a runtime at its own memory limit ends so — Node's \"JavaScript heap out of memory\" (its heap is sized from memory.max); --restart on-oom restarts it\n",
				g.run.name, max, peak)
		}
		return
	}
	if out.status.Signaled() && out.status.Signal() == unix.SIGKILL {
		fmt.Fprintf(log, "cgrun: %s killed by the OOM killer (memory.max %s, peak %s)\n", g.run.name, max, peak)
		return
	}
	fmt.Fprintf(log, "cgrun: the OOM killer killed %d time(s) in %s's group, but not %s itself (memory.max %s, peak %s)\n", out.oomKill, g.run.name, g.run.name, max, peak)
}

// measure is the generation's share of the report, read before its group is removed.
func (g *generation) measure(out outcome, counters map[string]uint64) report.Generation {
	gr := report.Generation{Generation: g.Number, Pid: out.pid, Group: g.run.h.Rel(g.dir), ExitCode: exitcode.FromStatus(out.status),
		Reason: out.recycled, UptimeSeconds: out.uptime.Seconds(),
		OOMKills: cgroup.OOMKills(counters), HighEvents: counters["high"], MaxEvents: counters["max"]}
	if out.peakSource != "" {
		peak := out.peak
		gr.MemoryPeak, gr.MemoryPeakSource = &peak, out.peakSource
	}
	if out.status.Signaled() {
		gr.Signal = exitcode.SignalName(out.status.Signal())
	}
	report.ReadGroup(g.dir, &gr)
	return gr
}

// teardown kills whatever is left in the group, waits until it is empty, reaps the orphans that
// came back to cgrun, and removes the group.
func (g *generation) teardown() error {
	ctx, cancel := context.WithTimeout(context.Background(), teardownTimeout)
	defer cancel()
	kerr := cgroup.Kill(ctx, g.dir)
	for _, e := range proc.ReapAll() { // a generation beside this one (--overlap) may have ended too
		g.run.early[e.Pid] = e.Status
	}
	if kerr != nil {
		return fmt.Errorf("kill what is left in %s: %w", g.dir, kerr)
	}
	return cgroup.RemoveTree(g.dir)
}

// tooSmall names --memory-max when the kernel could not charge the group's own set-up or the
// command's exec to it (ENOMEM; E2BIG when exec cannot copy the arguments): cgroup.MinMemory
// was not enough on this machine (its per-CPU structures grow with the number of CPUs).
func tooSmall(l cgroup.Limits, err error) error {
	if !l.MemoryMax.Set || l.MemoryMax.Max || !errors.Is(err, unix.ENOMEM) && !errors.Is(err, unix.E2BIG) {
		return err
	}
	return fmt.Errorf("--memory-max %s is too small to start anything on this machine (%w); give it more, e.g. %s",
		l.MemoryMax.Human(), err, cgroup.FormatSize(4*l.MemoryMax.Value))
}

// groupName is the payload group of generation n of the cgrun with pid: node-4821.1.
func groupName(name string, n int) string { return fmt.Sprintf("%s-%d.%d", name, os.Getpid(), n) }

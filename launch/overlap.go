package launch

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/launch/core"
	"github.com/cgrun/cgrun/launch/health"
	"github.com/cgrun/cgrun/launch/notify"
	"github.com/cgrun/cgrun/launch/policy"
	"github.com/cgrun/cgrun/launch/proc"
	"github.com/cgrun/cgrun/launch/state"

	"golang.org/x/sys/unix"
)

// handover is an --overlap recycle in progress: the next generation runs beside the current
// one, in its own group with its own limits, and the current one is stopped only once the next
// is ready: it said READY=1 on the NOTIFY_SOCKET cgrun gave it, or its --health-cmd, run in
// its group, passed (not --health-http: through a --listen socket the old generation may
// answer it). If it is not ready within --ready-timeout, or ends first,
// it is removed and the current generation recycles as it would without --overlap.
//
// Its timers and probes are actors of the current generation's supervisor; the nil handover's
// channels are nil, so the supervisor's select never picks them.
type handover struct {
	g        *generation // the next generation, begun
	started  time.Time
	probe    *health.Prober // the --health-cmd, run in its group; nil without one
	ticker   *time.Ticker   // the probes'; stopped without a probe
	deadline *time.Timer
	ready    bool
}

// readyProbeEvery bounds the interval of the readiness probes: a ready generation should not
// wait a whole --health-interval before the old one is stopped.
const readyProbeEvery = 250 * time.Millisecond

func (h *handover) tick() <-chan time.Time {
	if h == nil || h.ready {
		return nil
	}
	return h.ticker.C
}

func (h *handover) results() <-chan policy.Probe {
	if h == nil || h.ready || h.probe == nil {
		return nil
	}
	return h.probe.Results()
}

func (h *handover) readyC() <-chan struct{} {
	if h == nil || h.ready {
		return nil
	}
	return h.g.notify.Ready()
}

func (h *handover) timeout() <-chan time.Time {
	if h == nil || h.ready {
		return nil
	}
	return h.deadline.C
}

// overlap starts the next generation beside this one for a recycle (the core decided that
// --overlap applies); it reports whether it started, and the recycle waits for it.
func (g *generation) overlap(why string) bool {
	p := g.run.cfg.Policy
	n := g.run.last + 1
	dir := g.run.groupDir(n)
	// Only a process in the next generation's group may say it is ready.
	notify, err := notify.Listen(os.TempDir(), func(pid int) bool {
		ok, _ := cgroup.Holds(dir, pid)
		return ok
	})
	if err != nil {
		fmt.Fprintf(g.run.cfg.Log, "cgrun: %s: cannot hear the next generation's READY=1 (%v); recycling without overlap\n", g.run.name, err)
		return false
	}
	next := &generation{Gen: core.Gen{Number: n}, dir: dir, run: g.run, notify: notify}
	if _, err := next.begin(); err != nil {
		fmt.Fprintf(g.run.cfg.Log, "cgrun: %s: cannot start generation %d beside generation %d (%v); recycling without overlap\n",
			g.run.name, next.Number, g.Number, err)
		next.end()
		return false
	}
	fmt.Fprintf(g.run.cfg.Log, "cgrun: %s: %s; started generation %d (pid %d) beside generation %d, which stops once it is ready (--ready-timeout %v)\n",
		g.run.name, why, next.Number, next.pid, g.Number, p.ReadyTimeout)
	h := &handover{g: next, started: time.Now(),
		ticker: time.NewTicker(min(p.Health.Interval, readyProbeEvery)), deadline: time.NewTimer(p.ReadyTimeout)}
	if p.Health.Cmd != "" {
		h.probe = health.New(policy.HealthCheck{Cmd: p.Health.Cmd, Timeout: p.Health.Timeout})
	} else {
		h.ticker.Stop()
	}
	g.next = h
	g.run.updateState(func(s *state.State) {
		s.Next = &state.Next{Generation: next.Number, ChildPid: next.pid, Group: g.run.h.Rel(next.dir)}
		s.Note("overlap", fmt.Sprintf("generation %d (pid %d) started beside generation %d: %s", next.Number, next.pid, g.Number, why))
	})
	return true
}

// probeNext starts a readiness probe of the next generation.
func (g *generation) probeNext() {
	h := g.next
	if h.probe.TimedOut() {
		return // its failure comes back through the reaper
	}
	if r, done := h.probe.Start(g.run.child(h.g.leaf)); done {
		g.nextProbed(r)
	}
}

// nextProbed takes a readiness probe's result: the first that passes ends the overlap, and the
// current generation recycles.
func (g *generation) nextProbed(r policy.Probe) {
	h := g.next
	if h == nil || h.ready {
		return
	}
	if !r.OK {
		return
	}
	g.nextReady()
}

// nextReady ends the overlap: the next generation is ready, and the current one recycles. Its
// NOTIFY_SOCKET stays open until it ends: systemd-notify waits for the answer to its BARRIER=1
// after READY=1, and an app may notify again later.
func (g *generation) nextReady() {
	h := g.next
	h.ready = true
	h.probe.Stop()
	h.ticker.Stop()
	h.deadline.Stop()
	g.step(core.EvNextReady{Number: h.g.Number, After: time.Since(h.started)})
}

// nextNotReady gives up the overlap at --ready-timeout.
func (g *generation) nextNotReady() {
	g.step(core.EvNextNotReady{})
}

// nextReaped takes a child of the next generation that the supervisor reaped: its command, or
// a readiness probe. It reports whether pid was one of them.
func (g *generation) nextReaped(pid int, ws unix.WaitStatus) bool {
	h := g.next
	switch {
	case pid == h.g.pid && h.ready: // its own supervisor takes it once the current one ended
		g.run.early[pid] = ws
		return true
	case pid == h.g.pid:
		h.g.pid = 0 // reaped: abandonNext must not signal a pid that may be reused
		g.step(core.EvNextEnded{Status: ws})
		return true
	}
	if h.probe == nil {
		return false
	}
	if r, ok := h.probe.Exited(pid, ws); ok {
		g.nextProbed(r)
		return true
	}
	return false
}

// abandonNext removes the next generation, ready or not, and says why.
func (g *generation) abandonNext(why string) {
	h := g.next
	if h == nil {
		return
	}
	g.next, g.OverlapPhase = nil, core.OverlapGone // the core's too: a generation that ends gives it up without the core
	h.ticker.Stop()
	h.deadline.Stop()
	h.probe.Stop()
	fmt.Fprintf(g.run.cfg.Log, "cgrun: %s: giving up the overlap with generation %d: %s\n",
		g.run.name, h.g.Number, why)
	h.g.stopWatching()
	h.g.end()
	g.run.updateState(func(s *state.State) { s.Next = nil })
}

// dropUnready removes a next generation that was not ready when the current one ended.
func (g *generation) dropUnready() {
	if g.next != nil && !g.next.ready {
		g.abandonNext(fmt.Sprintf("generation %d ended before it was ready", g.Number))
	}
}

// handedTo is the ready next generation that takes over from this one, or nil.
func (g *generation) handedTo() *generation {
	if g.next == nil || !g.next.ready {
		return nil
	}
	return g.next.g
}

// groupDir is the payload group of generation n.
func (r *runner) groupDir(n int) string { return filepath.Join(r.site.Dir, groupName(r.name, n)) }

// takeEarly returns the children reaped outside their supervisor, and forgets them.
func (r *runner) takeEarly() []proc.Exited {
	var out []proc.Exited
	for pid, ws := range r.early {
		out = append(out, proc.Exited{Pid: pid, Status: ws})
	}
	clear(r.early)
	return out
}

// drop removes a ready next generation that will not take over (cgrun stops); nil is fine.
func (g *generation) drop() {
	if g == nil {
		return
	}
	g.stopWatching()
	g.end()
}

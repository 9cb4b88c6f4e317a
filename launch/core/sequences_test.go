package core

import (
	"testing"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/launch/diagnose"
	"github.com/cgrun/cgrun/launch/exitcode"
	"github.com/cgrun/cgrun/launch/policy"
	"golang.org/x/sys/unix"
)

// Sequences of the supervisor's decisions where events meet while another step
// is under way.

func hasAction[A any](acts []Action) bool {
	for _, a := range acts {
		if _, ok := a.(A); ok {
			return true
		}
	}
	return false
}

// A thrash verdict kills the group at once, whatever graceful recycle is under way
// (docs/recycling.md: "it kills its group at once (a thrashing worker could not run its stop
// handler ...; so there is no --stop-signal, no --diagnose-* dump and no --overlap for it)";
// docs/events.md: a thrash record's "recycle follows"). Here a recycle that began first — an
// --overlap waiting for the next generation, a dump before a memory recycle, a recycle's graceful
// stop — must not swallow it.
func TestThrashDuringAnotherRecycle(t *testing.T) {
	thrash := policy.ThrashVerdict{Thrash: true, Why: "refaults", Source: "memory.stat", Rate: 500}
	overlap := policy.DefaultPolicy()
	overlap.Overlap = true
	for _, tc := range []struct {
		name  string
		p     policy.Policy
		d     diagnose.Config
		first any // the recycle under way when the generation thrashes
	}{
		{"--overlap: the next generation is not ready yet", overlap, diagnose.Config{}, EvLifetime{time.Hour}},
		{"--overlap: a memory recycle waits for the next generation", overlap, dumpOn, EvRecycle{policy.MemoryHigh, "5 memory.high events"}},
		{"--diagnose-*: the dump before a memory recycle runs", policy.DefaultPolicy(), dumpOn, EvRecycle{policy.Stall, "stalled at memory.max"}},
		{"the graceful stop of a lifetime recycle", policy.DefaultPolicy(), diagnose.Config{}, EvLifetime{time.Hour}},
		{"a stop: SIGTERM to cgrun", policy.DefaultPolicy(), diagnose.Config{}, EvSignal{unix.SIGTERM}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := New("app", tc.p, cgroup.Limits{}, tc.d)
			g := running(c, 1)
			if acts := c.Step(g, tc.first); len(acts) == 0 {
				t.Fatalf("%#v started no recycle", tc.first)
			}
			acts := c.Step(g, EvThrash{thrash, t0})
			if !hasAction[ActKillGroup](acts) {
				t.Errorf("thrash verdict during it: %#v; want the group killed at once (ActKillGroup)", acts)
			}
			if acts := c.Step(g, EvThrash{thrash, t0}); hasAction[ActKillGroup](acts) {
				t.Errorf("a second thrash verdict: %#v; want the group killed once", acts)
			}
			if acts := c.Step(g, EvDumpEnded{}); len(acts) != 0 {
				t.Errorf("a dump's end after the kill: %#v; want nothing more", acts)
			}
		})
	}
	t.Run("--overlap: no stop signal or dump for a generation that thrashed while the next started", func(t *testing.T) {
		c := New("app", overlap, cgroup.Limits{}, dumpOn)
		g := running(c, 1)
		c.Step(g, EvRecycle{policy.MemoryHigh, "5 memory.high events"})
		c.Step(g, EvThrash{thrash, t0})
		acts := c.Step(g, EvNextReady{2, time.Second})
		if hasAction[ActDump](acts) || hasAction[ActSignal](acts) {
			t.Errorf("the next generation ready after the old one thrashed: %#v; want no dump and no stop signal for a thrashing generation", acts)
		}
	})
}

// A second stop signal to cgrun (SIGINT after SIGTERM) is forwarded, but the stop is the
// first one's: the child that died of the SIGTERM cgrun forwarded is "stopped by SIGTERM to
// cgrun", and cgrun dies of SIGTERM (docs/exit-codes.md: "when SIGTERM/SIGINT to cgrun
// stopped it, cgrun dies of that signal too"). The adapter's stopPending keeps the first too.
func TestSecondStopSignalKeepsTheFirst(t *testing.T) {
	c := New("app", onOOM(), cgroup.Limits{}, diagnose.Config{})
	g := running(c, 1)
	c.Step(g, EvSignal{unix.SIGTERM})
	if acts := c.Step(g, EvSignal{unix.SIGINT}); !hasAction[ActSignal](acts) {
		t.Errorf("the second stop signal: %#v; want it forwarded", acts)
	}
	// The adapter's EvExited: StopSignal is g.StopAsked (generation.start).
	acts := c.Step(nil, EvExited{Now: t0, Number: 1, Last: 1, Status: killed(unix.SIGTERM), StopAsked: true, StopSignal: g.StopAsked})
	if len(acts) != 1 || acts[0] != (ActExit{Code: 143, Raise: unix.SIGTERM}) {
		t.Errorf("the child died of the SIGTERM cgrun forwarded (then SIGINT reached cgrun): %#v (stop asked %v); want exit 143, cgrun dying of SIGTERM",
			acts, exitcode.SignalName(g.StopAsked))
	}
}

// docs/listen.md: "A generation taken over by --overlap counts as a restart for --max-restarts
// ... The start limit never holds a takeover back ... but counts it: a crash after it within
// --restart-window gives up as it would." Takeovers at the start limit were neither refused nor
// counted, so a crash loop right after them restarted where --max-restarts should give up (122).
func TestOverlapTakeoversCountForMaxRestarts(t *testing.T) {
	p := onOOM()
	p.Overlap, p.MaxRestarts, p.RestartWindow = true, 2, 10*time.Second
	c := New("app", p, cgroup.Limits{}, diagnose.Config{})
	takeover := func(n int, at time.Duration) EvExited {
		return EvExited{Now: t0.Add(at), Number: n, Last: n + 1, Status: killed(unix.SIGTERM), Uptime: time.Minute,
			Recycled: policy.Request, Next: &NextStarted{n + 1, 100 + n}}
	}
	// The third within 10s is at the limit: it goes ahead all the same.
	for i, at := range []time.Duration{0, 5 * time.Second, 9 * time.Second} {
		if acts := c.Step(nil, takeover(i+1, at)); !hasAction[ActStart](acts) || hasAction[ActExit](acts) {
			t.Fatalf("takeover %d at %v: %#v; want the ready generation to take over", i+1, at, acts)
		}
	}
	// An OOM kill 3s later has the takeovers of 5s and 9s in its window: cgrun gives up.
	acts := c.Step(nil, oomKilled(4, t0.Add(12*time.Second), time.Second))
	if !hasAction[ActExit](acts) || acts[len(acts)-1].(ActExit).Code != exitcode.StartLimit {
		t.Errorf("an OOM kill after takeovers at 5s and 9s (--max-restarts 2, --restart-window 10s): %#v; want exit %d", acts, exitcode.StartLimit)
	}
	// 25s: the window holds none of them; the next restart goes ahead.
	c = New("app", p, cgroup.Limits{}, diagnose.Config{})
	for i, at := range []time.Duration{0, 5 * time.Second, 9 * time.Second} {
		c.Step(nil, takeover(i+1, at))
	}
	if acts := c.Step(nil, oomKilled(4, t0.Add(25*time.Second), time.Second)); hasAction[ActExit](acts) {
		t.Errorf("an OOM kill 16s after the last takeover (--restart-window 10s): %#v; want a restart", acts)
	}
}

// SIGALRM during a stop and during a dump that a recycle waits for changes nothing; SIGTERM
// during the restart delay that followed a recycle ends the run with the ended generation's code.
func TestRequestsDuringStops(t *testing.T) {
	t.Run("SIGALRM after SIGTERM, and during the dump", func(t *testing.T) {
		c := New("app", policy.DefaultPolicy(), cgroup.Limits{}, dumpOn)
		g := running(c, 1)
		replay(t, c, g, []step{
			{EvRecycle{policy.MemoryAbove, "held"}, []Action{ActNote{"recycle", "memory_above: held"}, ActDump{policy.MemoryAbove}}},
			{EvSignal{exitcode.RecycleSignal}, nil},
			{EvSignal{unix.SIGTERM}, []Action{ActAbandonNext{"cgrun is stopping"}, ActLiftThrottle{}, ActSignal{unix.SIGTERM}, ActArmStopTimer{}}},
			{EvSignal{exitcode.RecycleSignal}, nil},
			{EvDumpEnded{}, nil},
		})
	})
	t.Run("SIGTERM in the delay after a recycle: the recycled generation's code, and cgrun dies of it", func(t *testing.T) {
		c := New("app", policy.DefaultPolicy(), cgroup.Limits{}, diagnose.Config{})
		acts := c.Step(nil, EvExited{Now: t0, Number: 1, Last: 1, Status: killed(unix.SIGTERM), Uptime: time.Second, Recycled: policy.Request})
		if _, ok := acts[len(acts)-1].(ActWait); !ok {
			t.Fatalf("a recycled generation under --restart never: %#v; want a restart (triggers always restart)", acts)
		}
		replay(t, c, nil, []step{{EvSignal{unix.SIGINT}, []Action{ActExit{Code: 143, Raise: unix.SIGINT}}}})
	})
	t.Run("an OOM kill during a stop: 137, no restart, cgrun does not die of the stop signal", func(t *testing.T) {
		c := New("app", onOOM(), cgroup.Limits{}, diagnose.Config{})
		replay(t, c, nil, []step{{EvExited{Now: t0, Number: 1, Last: 1, Status: killed(unix.SIGKILL), OOMKills: 1, StopAsked: true, StopSignal: unix.SIGTERM},
			[]Action{ActExit{Code: 137}}}})
	})
	t.Run("SIGTERM just after the next generation became ready: it is given up, the old one stopped, no restart", func(t *testing.T) {
		p := policy.DefaultPolicy()
		p.Overlap = true
		c := New("app", p, cgroup.Limits{}, diagnose.Config{})
		g := running(c, 1)
		lifetime := "lifetime of 1h0m0s reached"
		replay(t, c, g, []step{
			{EvLifetime{time.Hour}, []Action{ActOverlap{lifetime}}},
			{EvNextReady{2, time.Second}, append(append(logs("cgrun: app: generation 2 is ready after 1s\n"), ActNote{"recycle", "lifetime: " + lifetime}), recycling(1, lifetime)...)},
			{EvSignal{unix.SIGTERM}, []Action{ActAbandonNext{"cgrun is stopping"}, ActLiftThrottle{}, ActSignal{unix.SIGTERM}, ActArmStopTimer{}}},
		})
		if g.OverlapPhase != OverlapGone || g.StopAsked != unix.SIGTERM {
			t.Errorf("phase %v, stop asked %v; want the overlap given up and the stop recorded", g.OverlapPhase, g.StopAsked)
		}
		replay(t, c, nil, []step{{EvExited{Now: t0, Number: 1, Last: 2, Status: killed(unix.SIGTERM), Recycled: policy.Lifetime, StopAsked: true, StopSignal: unix.SIGTERM},
			[]Action{ActExit{Code: 143, Raise: unix.SIGTERM}}}})
	})
	t.Run("lifetime, then the memory mark: one recycle, no dump", func(t *testing.T) {
		c := New("app", policy.DefaultPolicy(), cgroup.Limits{}, dumpOn)
		g := running(c, 1)
		replay(t, c, g, []step{
			{EvLifetime{time.Hour}, append([]Action{ActNote{"recycle", "lifetime: lifetime of 1h0m0s reached"}}, recycling(1, "lifetime of 1h0m0s reached")...)},
			{EvRecycle{policy.MemoryAbove, "held"}, nil},
		})
	})
}

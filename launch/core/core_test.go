package core

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/launch/diagnose"
	"github.com/cgrun/cgrun/launch/exitcode"
	"github.com/cgrun/cgrun/launch/policy"
	"github.com/cgrun/cgrun/oomwatch"
	"golang.org/x/sys/unix"
)

// The core's tests replay what happens to a run — a child's exits, signals, timers, dumps —
// and compare what the core decides with what cgrun does today. No process, no group, no clock.

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func killed(sig unix.Signal) unix.WaitStatus { return unix.WaitStatus(sig) }
func exitedWith(code int) unix.WaitStatus    { return unix.WaitStatus(code << 8) }

// oomKilled is the end of a generation that the OOM killer took after uptime.
func oomKilled(n int, at time.Time, uptime time.Duration) EvExited {
	return EvExited{Now: at, Number: n, Last: n, Status: killed(unix.SIGKILL), Uptime: uptime, OOMKills: 1}
}

func logs(lines ...string) []Action {
	var acts []Action
	for _, l := range lines {
		acts = append(acts, ActLog{l})
	}
	return acts
}

// step is one event of a replay and the actions it must give.
type step struct {
	ev   any
	want []Action
}

// replay feeds the steps to c, for the generation g (nil between generations), and fails at
// the first step whose actions differ.
func replay(t *testing.T, c *Core, g *Gen, steps []step) {
	t.Helper()
	for i, s := range steps {
		have := c.Step(g, s.ev)
		if !reflect.DeepEqual(have, s.want) {
			t.Fatalf("step %d, %#v:\nhave %#v\nwant %#v", i, s.ev, have, s.want)
		}
	}
}

func onOOM() policy.Policy {
	p := policy.DefaultPolicy()
	p.Restart = policy.RestartOnOOM
	return p
}

func TestCoreRestarts(t *testing.T) {
	t.Run("OOM kills back off, doubling, and a healthy uptime resets the delay", func(t *testing.T) {
		c := New("app", onOOM(), cgroup.Limits{}, diagnose.Config{})
		c.p.MaxRestarts = 0 // no start limit
		restart := func(n int, d time.Duration, show bool) []Action {
			acts := logs("cgrun: app: restarting (oom_kill) as generation " + strconv.Itoa(n+1) + " in " + d.String() + "\n")
			if show {
				acts = append(acts, ActShowEnded{})
			}
			return append(acts, ActWait{d})
		}
		replay(t, c, nil, []step{
			{oomKilled(1, t0, time.Second), restart(1, 100*time.Millisecond, true)},
			{EvDelayOver{}, []Action{ActStart{policy.OOMKill}}},
			{oomKilled(2, t0.Add(2*time.Second), time.Second), restart(2, 200*time.Millisecond, true)},
			{EvDelayOver{}, []Action{ActStart{policy.OOMKill}}},
			{oomKilled(3, t0.Add(4*time.Second), time.Second), restart(3, 400*time.Millisecond, true)},
			{EvDelayOver{}, []Action{ActStart{policy.OOMKill}}},
			// --min-uptime 10s: a generation that ran that long starts the backoff over.
			{oomKilled(4, t0.Add(20*time.Second), 15*time.Second), restart(4, 100*time.Millisecond, true)},
			{EvDelayOver{}, []Action{ActStart{policy.OOMKill}}},
		})
	})
	t.Run("the delay stops growing at --restart-delay-max", func(t *testing.T) {
		p := onOOM()
		p.MaxRestarts, p.RestartDelay, p.RestartDelayMax = 0, time.Second, 3*time.Second
		c := New("app", p, cgroup.Limits{}, diagnose.Config{})
		var have []time.Duration
		for n := 1; n <= 4; n++ {
			acts := c.Step(nil, oomKilled(n, t0.Add(time.Duration(n)*time.Minute), time.Second))
			have = append(have, acts[len(acts)-1].(ActWait).After)
		}
		if want := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second}; !reflect.DeepEqual(have, want) {
			t.Errorf("delays %v, want %v", have, want)
		}
	})
	t.Run("a zero delay waits without saving the state", func(t *testing.T) {
		p := onOOM()
		p.RestartDelay = 0
		replay(t, New("app", p, cgroup.Limits{}, diagnose.Config{}), nil, []step{
			{oomKilled(1, t0, time.Second), append(logs("cgrun: app: restarting (oom_kill) as generation 2 in 0s\n"), ActWait{0})},
		})
	})
	t.Run("the next generation's number follows the highest begun", func(t *testing.T) {
		ev := oomKilled(2, t0, time.Second)
		ev.Last = 3 // an --overlap recycle gave up generation 3
		replay(t, New("app", onOOM(), cgroup.Limits{}, diagnose.Config{}), nil, []step{
			{ev, append(logs("cgrun: app: restarting (oom_kill) as generation 4 in 100ms\n"), ActShowEnded{}, ActWait{100 * time.Millisecond})},
		})
	})
	t.Run("the recycle signal cuts the delay short; other signals do not", func(t *testing.T) {
		c := New("app", onOOM(), cgroup.Limits{}, diagnose.Config{})
		c.Step(nil, oomKilled(1, t0, time.Second))
		replay(t, c, nil, []step{
			{EvSignal{unix.SIGHUP}, nil},
			{EvSignal{exitcode.RecycleSignal}, []Action{ActStart{policy.OOMKill}}},
		})
	})
	t.Run("a ready --overlap generation takes over at once", func(t *testing.T) {
		ev := EvExited{Now: t0, Number: 1, Last: 2, Status: killed(unix.SIGTERM), Uptime: time.Hour, Recycled: policy.Lifetime, Next: &NextStarted{2, 42}}
		replay(t, New("app", policy.DefaultPolicy(), cgroup.Limits{}, diagnose.Config{}), nil, []step{
			{ev, append(logs("cgrun: app: generation 2 (pid 42) took over (lifetime)\n"), ActStart{policy.Lifetime})},
		})
	})
}

func TestCoreEnds(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    policy.Policy
		ev   EvExited
		want []Action
	}{
		{"a run once ends with the child's code", policy.DefaultPolicy(),
			EvExited{Now: t0, Number: 1, Last: 1, Status: exitedWith(3)}, []Action{ActExit{Code: 3}}},
		{"--restart on-oom: a clean exit ends the run", onOOM(),
			EvExited{Now: t0, Number: 1, Last: 1, Status: exitedWith(0)}, []Action{ActExit{Code: 0}}},
		{"a SIGKILL without an OOM kill is no OOM kill", onOOM(),
			EvExited{Now: t0, Number: 1, Last: 1, Status: killed(unix.SIGKILL)}, []Action{ActExit{Code: 137}}},
		{"SIGTERM to cgrun: no restart; cgrun dies of it too", onOOM(),
			EvExited{Now: t0, Number: 1, Last: 1, Status: killed(unix.SIGTERM), StopAsked: true, StopSignal: unix.SIGTERM, OOMKills: 1},
			[]Action{ActExit{Code: 143, Raise: unix.SIGTERM}}},
		{"SIGINT to cgrun, the child exits 0: cgrun exits 0", onOOM(),
			EvExited{Now: t0, Number: 1, Last: 1, Status: exitedWith(0), StopAsked: true, StopSignal: unix.SIGINT},
			[]Action{ActExit{Code: 0}}},
		{"a ready --overlap generation is dropped when cgrun stops", policy.DefaultPolicy(),
			EvExited{Now: t0, Number: 1, Last: 2, Status: killed(unix.SIGTERM), StopAsked: true, StopSignal: unix.SIGTERM, Next: &NextStarted{2, 42}},
			[]Action{ActDropNext{}, ActExit{Code: 143, Raise: unix.SIGTERM}}},
		{"... and when nothing restarts", policy.DefaultPolicy(),
			EvExited{Now: t0, Number: 1, Last: 2, Status: exitedWith(1), Next: &NextStarted{2, 42}},
			[]Action{ActDropNext{}, ActExit{Code: 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			replay(t, New("app", tc.p, cgroup.Limits{}, diagnose.Config{}), nil, []step{{tc.ev, tc.want}})
		})
	}
}

func TestCoreGivesUp(t *testing.T) {
	p := onOOM()
	p.MaxRestarts, p.RestartWindow = 2, 10*time.Second
	c := New("app", p, cgroup.Limits{}, diagnose.Config{})
	c.Step(nil, oomKilled(1, t0, time.Second))
	c.Step(nil, oomKilled(2, t0.Add(time.Second), time.Second))
	acts := c.Step(nil, oomKilled(3, t0.Add(2*time.Second), time.Second))
	if len(acts) != 1 {
		t.Fatalf("have %#v, want one exit", acts)
	}
	exit, ok := acts[0].(ActExit)
	if !ok || exit.Code != exitcode.StartLimit || exit.Raise != 0 {
		t.Fatalf("have %#v, want exit %d", acts[0], exitcode.StartLimit)
	}
	var perr *exitcode.Error
	if !errors.As(exit.Err, &perr) || perr.Code != exitcode.StartLimit {
		t.Fatalf("error %#v, want a exitcode.Error with code %d", exit.Err, exitcode.StartLimit)
	}
	if have, want := exit.Err.Error(), "app: gave up: 2 restarts within 10s (--max-restarts 2, --restart-window 10s); the last generation was killed by SIGKILL"; have != want {
		t.Errorf("message\nhave %q\nwant %q", have, want)
	}

	t.Run("restarts outside the window do not count", func(t *testing.T) {
		c := New("app", p, cgroup.Limits{}, diagnose.Config{})
		for n := 1; n <= 5; n++ {
			acts := c.Step(nil, oomKilled(n, t0.Add(time.Duration(n)*time.Minute), time.Second))
			if _, ok := acts[len(acts)-1].(ActWait); !ok {
				t.Fatalf("generation %d: have %#v, want a restart", n, acts)
			}
		}
	})
}

func TestCoreStopDuringDelay(t *testing.T) {
	for _, sig := range []unix.Signal{unix.SIGTERM, unix.SIGINT} {
		t.Run(exitcode.SignalName(sig), func(t *testing.T) {
			c := New("app", onOOM(), cgroup.Limits{}, diagnose.Config{})
			c.Step(nil, EvExited{Now: t0, Number: 1, Last: 1, Status: exitedWith(134)}) // abort: restarts under on-oom
			// No new generation: cgrun ends with the ended one's code, and dies of the signal.
			replay(t, c, nil, []step{{EvSignal{sig}, []Action{ActExit{Code: 134, Raise: sig}}}})
		})
	}
}

// running is generation n, as c begins to supervise it.
func running(c *Core, n int) *Gen {
	g := &Gen{Number: n}
	c.Watch(g)
	return g
}

func TestCoreStop(t *testing.T) {
	t.Run("SIGTERM: forwarded, memory.high lifted, the stop timer kills the group", func(t *testing.T) {
		c := New("app", policy.DefaultPolicy(), cgroup.Limits{}, diagnose.Config{})
		g := running(c, 1)
		replay(t, c, g, []step{
			{EvSignal{unix.SIGTERM}, []Action{ActAbandonNext{"cgrun is stopping"}, ActLiftThrottle{}, ActSignal{unix.SIGTERM}, ActArmStopTimer{}}},
			{EvStopTimer{}, append(logs("cgrun: app: still running 10s after SIGTERM; killing its group\n"), ActKillGroup{})},
		})
		if g.StopAsked != unix.SIGTERM {
			t.Errorf("stopAsked %v, want SIGTERM", g.StopAsked)
		}
	})
	t.Run("a stop asked ends all recycles", func(t *testing.T) {
		c := New("app", policy.DefaultPolicy(), cgroup.Limits{}, diagnose.Config{})
		g := running(c, 1)
		replay(t, c, g, []step{
			{EvSignal{unix.SIGINT}, []Action{ActAbandonNext{"cgrun is stopping"}, ActLiftThrottle{}, ActSignal{unix.SIGINT}, ActArmStopTimer{}}},
			{EvLifetime{time.Hour}, nil},
			{EvSignal{exitcode.RecycleSignal}, nil},
		})
	})
	t.Run("other signals are forwarded", func(t *testing.T) {
		c := New("app", policy.DefaultPolicy(), cgroup.Limits{}, diagnose.Config{})
		replay(t, c, running(c, 1), []step{
			{EvSignal{unix.SIGHUP}, []Action{ActSignal{unix.SIGHUP}}},
			{EvSignal{unix.SIGUSR1}, []Action{ActSignal{unix.SIGUSR1}}},
		})
	})
}

// recycling is what a recycle's stop does, with the default --stop-signal and --stop-timeout.
func recycling(n int, why string) []Action {
	return append(logs("cgrun: app: recycling generation "+strconv.Itoa(n)+": "+why+"; sending SIGTERM (group killed after 10s)\n"),
		ActLiftThrottle{}, ActSignal{unix.SIGTERM}, ActArmStopTimer{})
}

func TestCoreRecycle(t *testing.T) {
	t.Run("lifetime: the stop signal, then the group killed at the stop timeout", func(t *testing.T) {
		c := New("app", policy.DefaultPolicy(), cgroup.Limits{}, diagnose.Config{})
		g := running(c, 2)
		replay(t, c, g, []step{
			{EvLifetime{time.Hour + 400*time.Millisecond}, append([]Action{ActNote{"recycle", "lifetime: lifetime of 1h0m0s reached"}}, recycling(2, "lifetime of 1h0m0s reached")...)},
			{EvLifetime{time.Hour}, nil}, // once
			{EvSignal{exitcode.RecycleSignal}, nil},
			{EvStopTimer{}, append(logs("cgrun: app: still running 10s after SIGTERM; killing its group\n"), ActKillGroup{})},
		})
		if g.Recycled != policy.Lifetime {
			t.Errorf("recycled %q, want lifetime", g.Recycled)
		}
	})
	t.Run("the recycle signal", func(t *testing.T) {
		c := New("app", policy.DefaultPolicy(), cgroup.Limits{}, diagnose.Config{})
		replay(t, c, running(c, 1), []step{
			{EvSignal{exitcode.RecycleSignal}, append([]Action{ActNote{"recycle", "request: recycle requested with SIGALRM"}}, recycling(1, "recycle requested with SIGALRM")...)},
		})
	})
	t.Run("SIGTERM after a recycle still stops cgrun", func(t *testing.T) {
		c := New("app", policy.DefaultPolicy(), cgroup.Limits{}, diagnose.Config{})
		g := running(c, 1)
		c.Step(g, EvRecycle{policy.MemoryAbove, "memory high"})
		replay(t, c, g, []step{
			{EvSignal{unix.SIGTERM}, []Action{ActAbandonNext{"cgrun is stopping"}, ActLiftThrottle{}, ActSignal{unix.SIGTERM}, ActArmStopTimer{}}},
		})
	})
	t.Run("--recycle-above without --diagnose: the stop at once", func(t *testing.T) {
		why := "memory at 900M held at or above 800M for 30s"
		c := New("app", policy.DefaultPolicy(), cgroup.Limits{}, diagnose.Config{})
		replay(t, c, running(c, 1), []step{
			{EvRecycle{policy.MemoryAbove, why}, append([]Action{ActNote{"recycle", "memory_above: " + why}}, recycling(1, why)...)},
			{EvDumpEnded{}, nil}, // a --diagnose-above dump's end stops nothing
		})
	})
	t.Run("a recycle for memory waits for the dump", func(t *testing.T) {
		why := "memory at 900M held at or above 800M for 30s"
		c := New("app", policy.DefaultPolicy(), cgroup.Limits{}, dumpOn)
		g := running(c, 1)
		replay(t, c, g, []step{
			{EvRecycle{policy.MemoryAbove, why}, []Action{ActNote{"recycle", "memory_above: " + why}, ActDump{policy.MemoryAbove}}},
			{EvRecycle{policy.Lifetime, "later"}, nil},
			{EvDumpEnded{}, recycling(1, why)},
			{EvDumpEnded{}, nil},
		})
	})
	t.Run("SIGTERM during the dump: the dump's end sends nothing more", func(t *testing.T) {
		c := New("app", policy.DefaultPolicy(), cgroup.Limits{}, dumpOn)
		g := running(c, 1)
		c.Step(g, EvRecycle{policy.MemoryHigh, "5 memory.high events"})
		replay(t, c, g, []step{
			{EvSignal{unix.SIGTERM}, []Action{ActAbandonNext{"cgrun is stopping"}, ActLiftThrottle{}, ActSignal{unix.SIGTERM}, ActArmStopTimer{}}},
			{EvDumpEnded{}, nil},
		})
	})
	t.Run("a recycle not for memory takes no dump", func(t *testing.T) {
		c := New("app", policy.DefaultPolicy(), cgroup.Limits{}, dumpOn)
		replay(t, c, running(c, 1), []step{
			{EvRecycle{policy.Health, "bad"}, append([]Action{ActNote{"recycle", "health: bad"}}, recycling(1, "bad")...)},
		})
	})
	t.Run("thrashing: the group killed at once, no stop signal, no dump", func(t *testing.T) {
		c := New("app", policy.DefaultPolicy(), cgroup.Limits{}, dumpOn)
		replay(t, c, running(c, 3), []step{
			{EvRecycle{policy.Thrashing, "refaults"}, append(logs("cgrun: app: recycling generation 3: refaults; killing its group (a thrashing worker cannot run its stop handler)\n"),
				ActKillGroup{}, ActNote{"recycle", "thrash: refaults"})},
		})
	})
	t.Run("--stop-signal and --stop-timeout", func(t *testing.T) {
		p := policy.DefaultPolicy()
		p.StopSignal, p.StopTimeout = unix.SIGINT, 3*time.Second
		c := New("app", p, cgroup.Limits{}, diagnose.Config{})
		replay(t, c, running(c, 1), []step{
			{EvRecycle{policy.Request, "asked"}, []Action{ActNote{"recycle", "request: asked"},
				ActLog{"cgrun: app: recycling generation 1: asked; sending SIGINT (group killed after 3s)\n"}, ActLiftThrottle{}, ActSignal{unix.SIGINT}, ActArmStopTimer{}}},
			{EvStopTimer{}, append(logs("cgrun: app: still running 3s after SIGINT; killing its group\n"), ActKillGroup{})},
		})
	})
}

func TestCoreOverlap(t *testing.T) {
	p := policy.DefaultPolicy()
	p.Overlap = true
	lifetime := "lifetime of 1h0m0s reached"
	recycled := append([]Action{ActNote{"recycle", "lifetime: " + lifetime}}, recycling(1, lifetime)...)
	t.Run("ready: the old generation recycles", func(t *testing.T) {
		c := New("app", p, cgroup.Limits{}, diagnose.Config{})
		g := running(c, 1)
		replay(t, c, g, []step{
			{EvLifetime{time.Hour}, []Action{ActOverlap{lifetime}}},
			{EvSignal{exitcode.RecycleSignal}, nil}, // one recycle at a time
			{EvNextReady{2, 1234567 * time.Microsecond}, append(logs("cgrun: app: generation 2 is ready after 1.235s\n"), recycled...)},
			{EvNextReady{2, time.Second}, nil},
			{EvNextNotReady{}, nil},
		})
	})
	t.Run("not ready by --ready-timeout: given up, and the recycle goes on without it", func(t *testing.T) {
		c := New("app", p, cgroup.Limits{}, diagnose.Config{})
		g := running(c, 1)
		replay(t, c, g, []step{
			{EvLifetime{time.Hour}, []Action{ActOverlap{lifetime}}},
			{EvNextNotReady{}, append([]Action{ActAbandonNext{"not ready after --ready-timeout 30s"}}, recycled...)},
		})
	})
	t.Run("the next one ended before it was ready: the same fallback", func(t *testing.T) {
		c := New("app", p, cgroup.Limits{}, diagnose.Config{})
		g := running(c, 1)
		replay(t, c, g, []step{
			{EvLifetime{time.Hour}, []Action{ActOverlap{lifetime}}},
			{EvNextEnded{exitedWith(2)}, append([]Action{ActAbandonNext{"it exited with status 2 before it was ready"}}, recycled...)},
		})
	})
	t.Run("the next one could not start: recycle without overlap, and no overlap after", func(t *testing.T) {
		c := New("app", p, cgroup.Limits{}, diagnose.Config{})
		g := running(c, 1)
		replay(t, c, g, []step{
			{EvLifetime{time.Hour}, []Action{ActOverlap{lifetime}}},
			{EvNoOverlap{}, recycled},
		})
	})
	t.Run("SIGTERM during the overlap gives it up and stops; nothing recycles after", func(t *testing.T) {
		c := New("app", p, cgroup.Limits{}, diagnose.Config{})
		g := running(c, 1)
		replay(t, c, g, []step{
			{EvSignal{exitcode.RecycleSignal}, []Action{ActOverlap{"recycle requested with SIGALRM"}}},
			{EvSignal{unix.SIGTERM}, []Action{ActAbandonNext{"cgrun is stopping"}, ActLiftThrottle{}, ActSignal{unix.SIGTERM}, ActArmStopTimer{}}},
			{EvNextReady{2, time.Second}, nil},
			{EvNextNotReady{}, nil},
			{EvLifetime{time.Hour}, nil},
		})
	})
	t.Run("a recycle that is no overlap (health, stall, thrash) goes ahead at once", func(t *testing.T) {
		c := New("app", p, cgroup.Limits{}, diagnose.Config{})
		replay(t, c, running(c, 1), []step{
			{EvRecycle{policy.Stall, "stuck"}, append([]Action{ActNote{"recycle", "stall: stuck"}}, recycling(1, "stuck")...)},
		})
	})
	t.Run("a memory recycle dumps once the next is ready", func(t *testing.T) {
		c := New("app", p, cgroup.Limits{}, dumpOn)
		g := running(c, 1)
		why := "5 memory.high events"
		replay(t, c, g, []step{
			{EvRecycle{policy.MemoryHigh, why}, []Action{ActOverlap{why}}},
			{EvNextReady{2, time.Second}, append(logs("cgrun: app: generation 2 is ready after 1s\n"), ActNote{"recycle", "memory_high: " + why}, ActDump{policy.MemoryHigh})},
			{EvDumpEnded{}, recycling(1, why)},
		})
	})
}

func TestCoreHealth(t *testing.T) {
	p := policy.DefaultPolicy()
	p.Health = policy.HealthCheck{Cmd: "check", Interval: time.Second, Timeout: time.Second, Retries: 2, StartPeriod: 10 * time.Second}
	failed := func(uptime time.Duration) EvProbed { return EvProbed{policy.Probe{Why: "exit status 1"}, uptime} }
	passed := func(uptime time.Duration) EvProbed { return EvProbed{policy.Probe{OK: true}, uptime} }
	why := "health check failed 2 times in a row (last: exit status 1)"
	unhealthy := append([]Action{ActNote{"recycle", "health: " + why}}, recycling(1, why)...)
	t.Run("failures in the start period do not count; then --health-retries in a row recycle", func(t *testing.T) {
		c := New("app", p, cgroup.Limits{}, diagnose.Config{})
		g := running(c, 1)
		replay(t, c, g, []step{
			{failed(time.Second), nil},
			{failed(2 * time.Second), nil},
			{failed(9 * time.Second), nil},
			{failed(10 * time.Second), nil},
			{passed(11 * time.Second), []Action{ActHealthy{}}}, // starts the count over
			{failed(12 * time.Second), nil},
			{failed(13 * time.Second), unhealthy},
			{failed(14 * time.Second), nil}, // recycled once
		})
	})
	for _, tc := range []struct {
		name        string
		overlap     bool
		startPeriod time.Duration
		steps       []step
	}{
		{"no start period: the first failures count", false, 0, []step{{failed(0), nil}, {failed(time.Second), unhealthy}}},
		{"a health recycle is no overlap: it goes ahead under --overlap too", true, 0, []step{{failed(0), nil}, {failed(time.Second), unhealthy}}},
		{"... but waits while an --overlap generation is not ready", true, 0, []step{
			{EvLifetime{time.Hour}, []Action{ActOverlap{"lifetime of 1h0m0s reached"}}}, {failed(0), nil}, {failed(time.Second), nil}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := p
			p.Overlap, p.Health.StartPeriod = tc.overlap, tc.startPeriod
			c := New("app", p, cgroup.Limits{}, diagnose.Config{})
			replay(t, c, running(c, 1), tc.steps)
		})
	}
}

func TestCoreRecycleAbove(t *testing.T) {
	const mib = 1 << 20
	p := policy.DefaultPolicy()
	p.RecycleAbove = cgroup.Limit{Set: true, Value: 800 * mib}
	lim := cgroup.Limits{MemoryHigh: p.RecycleAbove}
	high := func(at time.Duration, current uint64) EvMemory {
		return EvMemory{oomwatch.Event{Time: t0.Add(at), Kind: oomwatch.High, Count: 1, MemoryCurrent: current}}
	}
	tick := func(at time.Duration, current uint64) EvAboveTick { return EvAboveTick{t0.Add(at), current} }
	why := "memory at " + cgroup.FormatSize(790*mib) + " held at or above " + p.RecycleAbove.Human() + " for 30s"

	c := New("app", p, cgroup.Limits{}, diagnose.Config{})
	g := running(c, 1)
	g.Triggers = policy.NewTriggers(p, lim)
	replay(t, c, g, []step{
		{high(0, 700*mib), nil},                                 // below the mark
		{high(time.Second, 790*mib), []Action{ActWatchAbove{}}}, // at it, within 5%
		{high(2*time.Second, 800*mib), nil},                     // already watched
		{tick(10*time.Second, 790*mib), nil},
		{tick(20*time.Second, 700*mib), []Action{ActUnwatchAbove{}}}, // fell below 90%: the timer disarmed, the wait starts over
		{high(25*time.Second, 790*mib), []Action{ActWatchAbove{}}},
		{tick(54*time.Second, 790*mib), nil},
		{tick(55*time.Second, 790*mib), append([]Action{ActNote{"recycle", "memory_above: " + why}}, recycling(1, why)...)},
		{tick(56*time.Second, 790*mib), nil}, // recycled once
	})
}

func TestCoreMemoryEvents(t *testing.T) {
	t.Run("--recycle-on-high", func(t *testing.T) {
		p := policy.DefaultPolicy()
		p.RecycleOnHigh = 2
		c := New("app", p, cgroup.Limits{}, diagnose.Config{})
		g := running(c, 1)
		ev := func(at time.Duration, n uint64) EvMemory {
			return EvMemory{oomwatch.Event{Time: t0.Add(at), Kind: oomwatch.High, Count: n}}
		}
		why := "2 memory.high events within 10s"
		replay(t, c, g, []step{
			{ev(0, 1), nil},
			{ev(time.Second, 2), nil},
			{ev(2*time.Second, 3), append([]Action{ActNote{"recycle", "memory_high: " + why}}, recycling(1, why)...)},
		})
	})
	t.Run("events that trigger nothing", func(t *testing.T) {
		c := New("app", policy.DefaultPolicy(), cgroup.Limits{}, diagnose.Config{})
		g := running(c, 1)
		replay(t, c, g, []step{
			{EvMemory{oomwatch.Event{Time: t0, Kind: oomwatch.OOMKill, Count: 1}}, nil},
			{EvMemory{oomwatch.Event{Time: t0, Kind: oomwatch.Max, Count: 1}}, nil},
		})
	})
}

func TestCoreThrash(t *testing.T) {
	c := New("app", policy.DefaultPolicy(), cgroup.Limits{}, dumpOn)
	g := running(c, 2)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	sample := policy.ThrashVerdict{Sample: true}
	thrash := policy.ThrashVerdict{Thrash: true, Why: "refaults", Source: "memory.stat", Rate: 500}
	replay(t, c, g, []step{
		{EvThrash{policy.ThrashVerdict{}, at(0)}, nil},
		{EvThrash{sample, at(1)}, []Action{ActSampleThrash{at(1)}}}, // near memory.max: the samples start
		{EvThrash{sample, at(2)}, nil},                              // and run
		{EvThrash{policy.ThrashVerdict{}, at(3)}, []Action{ActUnsampleThrash{}}},
		{EvThrash{sample, at(4)}, []Action{ActSampleThrash{at(4)}}},
		// Thrashing: the samples stop, the record, the group killed at once, without a dump.
		{EvThrash{thrash, at(5)}, append([]Action{ActUnsampleThrash{}, ActRecordThrash{thrash, at(5)}},
			append(logs("cgrun: app: recycling generation 2: refaults; killing its group (a thrashing worker cannot run its stop handler)\n"),
				ActKillGroup{}, ActNote{"recycle", "thrash: refaults"})...)},
		{EvThrash{thrash, at(6)}, []Action{ActRecordThrash{thrash, at(6)}}}, // recycled once
	})
}

// The end of cgrun advise --for's window stops the run as a recycle does, once; not after
// SIGTERM, which stops it already.
func TestCoreAdviseWindow(t *testing.T) {
	p := policy.DefaultPolicy()
	p.StopSignal, p.StopTimeout = unix.SIGINT, 5*time.Second
	stop := []Action{ActLog{"cgrun: app: observed for 10m0s; sending SIGINT (group killed after 5s)\n"},
		ActAbandonNext{"the advise window ended"}, ActLiftThrottle{}, ActSignal{unix.SIGINT}, ActArmStopTimer{}}
	t.Run("the window ends: the stop signal, once", func(t *testing.T) {
		c, g := New("app", p, cgroup.Limits{}, diagnose.Config{}), &Gen{Number: 1}
		replay(t, c, g, []step{{EvWindowEnd{10 * time.Minute}, stop}, {EvWindowEnd{10 * time.Minute}, nil}})
		if !g.WindowEnded || g.Recycled != "" {
			t.Errorf("windowEnded %v, recycled %q; want the window ended, no recycle", g.WindowEnded, g.Recycled)
		}
	})
	t.Run("after SIGTERM: nothing more", func(t *testing.T) {
		c, g := New("app", p, cgroup.Limits{}, diagnose.Config{}), &Gen{Number: 1}
		c.Step(g, EvSignal{unix.SIGTERM})
		replay(t, c, g, []step{{EvWindowEnd{10 * time.Minute}, nil}})
		if g.WindowEnded {
			t.Error("the window taken as ended after SIGTERM stopped the run")
		}
	})
}

// The peak samples (kernels without memory.peak): at the fastest rate while memory rises, then
// twice as long after each sample up to the idle ceiling, or at the fastest rate throughout when
// the run's peak was asked for.
func TestCorePeakSampling(t *testing.T) {
	in := func(d time.Duration) []Action { return []Action{ActSamplePeakIn{d}} }
	t.Run("backs off while memory does not rise, back to the fastest on a new high", func(t *testing.T) {
		c, g := New("app", policy.DefaultPolicy(), cgroup.Limits{}, diagnose.Config{}), &Gen{Number: 1, PeakEvery: PeakSampleEvery}
		replay(t, c, g, []step{
			{EvPeakSampled{false}, in(200 * time.Millisecond)},
			{EvPeakSampled{false}, in(400 * time.Millisecond)},
			{EvPeakSampled{false}, in(800 * time.Millisecond)},
			{EvPeakSampled{false}, in(1600 * time.Millisecond)},
			{EvPeakSampled{false}, in(peakSampleIdle)},
			{EvPeakSampled{false}, in(peakSampleIdle)},
			{EvPeakSampled{true}, in(PeakSampleEvery)},
		})
	})
	t.Run("the peak asked for: the fastest rate throughout", func(t *testing.T) {
		c, g := New("app", policy.DefaultPolicy(), cgroup.Limits{}, diagnose.Config{}), &Gen{Number: 1, PeakEvery: PeakSampleEvery}
		c.PeakAsked = true
		replay(t, c, g, []step{{EvPeakSampled{false}, in(PeakSampleEvery)}, {EvPeakSampled{true}, in(PeakSampleEvery)}})
	})
}

// dumpOn is a --diagnose-signal configuration: a recycle for memory takes a dump first.
var dumpOn = diagnose.Config{Signal: unix.SIGUSR1, Dir: "/dumps", Timeout: time.Minute}

// The --diagnose-above dump: once, when memory first crosses the mark; not while a dump runs
// or when memory.current cannot be read; refused within --diagnose-interval of the last, across
// generations; no more looking once the generation ends.
func TestCoreDiagnoseAbove(t *testing.T) {
	d := dumpOn
	d.Above, d.Interval = 100<<20, time.Hour
	look := func(at time.Time, cur uint64) EvDiagnoseAbove {
		return EvDiagnoseAbove{Now: at, Current: cur, Read: true}
	}
	unwatch := ActUnwatchDiagnoseAbove{}
	t.Run("below the mark, unread, or a dump in progress: go on looking; then the dump", func(t *testing.T) {
		c, g := New("app", policy.DefaultPolicy(), cgroup.Limits{}, d), &Gen{Number: 1}
		replay(t, c, g, []step{
			{look(t0, 50<<20), nil},
			{EvDiagnoseAbove{Now: t0, Current: 200 << 20}, nil},
			{EvDiagnoseAbove{Now: t0, Current: 200 << 20, Read: true, Dumping: true}, nil},
			{look(t0, 100<<20), []Action{ActDumpAbove{}, unwatch}},
		})
	})
	t.Run("the next generation within --diagnose-interval: said, no dump", func(t *testing.T) {
		c := New("app", policy.DefaultPolicy(), cgroup.Limits{}, d)
		replay(t, c, &Gen{Number: 1}, []step{{look(t0, 200<<20), []Action{ActDumpAbove{}, unwatch}}})
		replay(t, c, &Gen{Number: 2}, []step{{look(t0.Add(time.Minute), 200<<20), []Action{
			ActLog{"cgrun: app: generation 2: memory at 200M crossed --diagnose-above 100M; no dump: the last was less than --diagnose-interval 1h0m0s ago\n"}, unwatch}}})
		replay(t, c, &Gen{Number: 3}, []step{{look(t0.Add(2*time.Hour), 200<<20), []Action{ActDumpAbove{}, unwatch}}})
	})
	t.Run("a generation ending: no more looking", func(t *testing.T) {
		c, g := New("app", policy.DefaultPolicy(), cgroup.Limits{}, d), &Gen{Number: 1, Recycled: policy.Lifetime}
		replay(t, c, g, []step{{look(t0, 200<<20), []Action{unwatch}}})
		c, g = New("app", policy.DefaultPolicy(), cgroup.Limits{}, d), &Gen{Number: 1, StopAsked: unix.SIGTERM}
		replay(t, c, g, []step{{look(t0, 50<<20), []Action{unwatch}}})
	})
}

// A dump that sits at memory.max for diagnose.StuckAfter is given up, with what would give it
// room.
func TestCoreDumpStuckAtMax(t *testing.T) {
	const prefix = "cgrun: app: generation 1: the dump sat at memory.max 512M for 5s, too little room to write it: "
	for _, c := range []struct {
		name     string
		headroom uint64
		ev       EvDumpAtMax
		fix      string // "" for no action
	}{
		{"not yet", 0, EvDumpAtMax{At: diagnose.StuckAfter - time.Second, Limit: 512 << 20}, ""},
		{"no headroom", 0, EvDumpAtMax{At: diagnose.StuckAfter, Limit: 512 << 20},
			"give it --diagnose-headroom (about the dump's size; V8 may need as much again as its heap)"},
		{"too little headroom", 64 << 20, EvDumpAtMax{At: diagnose.StuckAfter, Limit: 512 << 20}, "give it more --diagnose-headroom (now 64M)"},
		{"a --diagnose-above dump raises no limit", 64 << 20, EvDumpAtMax{At: diagnose.StuckAfter, Limit: 512 << 20, AboveOnly: true},
			"set --diagnose-above lower, far enough below the limit for the dump to fit (that dump raises no limit)"},
		{"on tmpfs", 0, EvDumpAtMax{At: diagnose.StuckAfter, Limit: 512 << 20, OnTmpfs: true},
			"give it --diagnose-headroom (about the dump's size; V8 may need as much again as its heap), and put --diagnose-dir on a disk: on tmpfs the dump itself is charged to the group"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := dumpOn
			d.Headroom = c.headroom
			var want []Action
			if c.fix != "" {
				stuck := strings.TrimPrefix(prefix, "cgrun: app: generation 1: ") + c.fix
				want = []Action{ActLog{prefix + c.fix + "; not waiting for it any longer\n"}, ActGiveUpDump{stuck}}
			}
			replay(t, New("app", policy.DefaultPolicy(), cgroup.Limits{}, d), &Gen{Number: 1}, []step{{c.ev, want}})
		})
	}
}

package launch

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/launch/core"
	"github.com/cgrun/cgrun/launch/policy"
	"golang.org/x/sys/unix"
)

// The --overlap adapter on the host: the next generation's group cannot be watched here (a
// plain directory has no memory.events), which is the path of a next generation that cannot
// start; and a hand-made handover stands for one that started.

// TestOverlapThatCannotStartRecyclesWithout: when the next generation cannot start beside the
// current one, cgrun says so, tears down what it began, and recycles as without --overlap. (The
// stand-in's teardown cannot kill a directory that is no group, and says so: a real group's
// teardown is the guests' to test.)
func TestOverlapThatCannotStartRecyclesWithout(t *testing.T) {
	p := policy.DefaultPolicy()
	p.Overlap = true
	r, log, _, _ := testRunner(p)
	r.site, r.early = &cgroup.Site{Dir: t.TempDir()}, map[int]unix.WaitStatus{}
	cmd, done := sleeping(t)
	g := &generation{Gen: core.Gen{Number: 1}, run: r, pid: cmd.Process.Pid}
	r.last = 1
	r.core.Watch(&g.Gen)
	g.step(core.EvLifetime{Uptime: time.Minute})
	defer g.stopTimers()
	if ws := <-done; !ws.Signaled() || ws.Signal() != unix.SIGTERM {
		t.Errorf("the current generation ended %v, want SIGTERM", ws)
	}
	next := filepath.Join(r.site.Dir, groupName("app", 2))
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "cgrun: app: cannot start generation 2 beside generation 1 (") ||
		!strings.HasSuffix(lines[0], "); recycling without overlap") ||
		!strings.HasPrefix(lines[1], "cgrun: warning: kill what is left in "+next+": ") ||
		lines[2] != "cgrun: app: recycling generation 1: lifetime of 1m0s reached; sending SIGTERM (group killed after 10s)" {
		t.Fatalf("log %q: want the overlap refused, generation 2's teardown, and the recycle without it", lines)
	}
	if g.next != nil || g.OverlapPhase != core.OverlapGone || g.Recycled != policy.Lifetime || r.last != 2 {
		t.Errorf("next %v, phase %v, recycled %q, last %d: want no handover, the overlap given up, a lifetime recycle, generation 2 counted",
			g.next, g.OverlapPhase, g.Recycled, r.last)
	}
}

// TestOverlapHandover drives a handover the core began (the next generation hand-made: a plain
// child, no group) to each of its ends.
func TestOverlapHandover(t *testing.T) {
	const waiting = "cgrun: app: recycling generation 1: lifetime of 1m0s reached; sending SIGTERM (group killed after 10s)"
	for _, tc := range []struct {
		name  string
		then  func(g *generation)
		ready bool   // the next generation takes over
		gives string // the line that gives the overlap up, if it is given up
	}{
		{"a readiness probe passes: the current generation stops", func(g *generation) { g.nextProbed(policy.Probe{OK: true}) },
			true, ""},
		{"its command ends before it is ready: given up, recycled as without", func(g *generation) {
			if !g.nextReaped(g.next.g.pid, unix.WaitStatus(3<<8)) {
				t.Error("nextReaped: the next generation's pid was not taken")
			}
		}, false, "cgrun: app: giving up the overlap with generation 2: it exited with status 3 before it was ready"},
		{"--ready-timeout passes: given up, recycled as without", func(g *generation) { g.nextNotReady() },
			false, "cgrun: app: giving up the overlap with generation 2: not ready after --ready-timeout 1m0s"},
		{"SIGTERM to cgrun: given up, the stop forwarded", func(g *generation) { g.step(core.EvSignal{Sig: unix.SIGTERM}) },
			false, "cgrun: app: giving up the overlap with generation 2: cgrun is stopping"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := policy.DefaultPolicy()
			p.Overlap, p.ReadyTimeout = true, time.Minute
			r, log, _, _ := testRunner(p)
			r.early = map[int]unix.WaitStatus{}
			cur, curDone := sleeping(t)
			nextCmd, _ := sleeping(t)
			g := &generation{Gen: core.Gen{Number: 1}, run: r, pid: cur.Process.Pid}
			defer g.stopTimers()
			r.core.Watch(&g.Gen)
			// The core asks for the overlap; the adapter's start of it (overlap) needs a group.
			if acts := r.core.Step(&g.Gen, core.EvLifetime{Uptime: time.Minute}); !reflect.DeepEqual(acts, []core.Action{core.ActOverlap{Why: "lifetime of 1m0s reached"}}) {
				t.Fatalf("the core's answer to a lifetime recycle under --overlap: %#v, want the overlap only", acts)
			}
			next := &generation{Gen: core.Gen{Number: 2}, run: r, pid: nextCmd.Process.Pid, stopWatching: func() {}}
			g.next = &handover{g: next, started: time.Now(), ticker: time.NewTicker(time.Hour), deadline: time.NewTimer(time.Hour)}
			if g.next.tick() == nil || g.next.timeout() == nil || g.next.results() != nil {
				t.Error("a handover waiting: want its ticker and deadline heard, no probe results (no --health-cmd)")
			}
			tc.then(g)
			if ws := <-curDone; !ws.Signaled() || ws.Signal() != unix.SIGTERM {
				t.Errorf("the current generation ended %v, want SIGTERM (the stop signal, or cgrun's own forwarded)", ws)
			}
			lines := strings.Split(strings.TrimSpace(log.String()), "\n")
			switch {
			case tc.ready:
				if len(lines) != 2 || !strings.HasPrefix(lines[0], "cgrun: app: generation 2 is ready after ") || lines[1] != waiting {
					t.Errorf("log %q: want generation 2 ready, then the recycle", lines)
				}
				if g.handedTo() != next || g.next.tick() != nil {
					t.Errorf("handed to %v: want generation 2, its ticker no longer heard", g.handedTo())
				}
				g.dropUnready() // ready: it stays
				if g.next == nil {
					t.Error("dropUnready dropped a ready generation")
				}
			default:
				if lines[0] != tc.gives {
					t.Errorf("log %q: want %q first", lines, tc.gives)
				}
				// A stop of cgrun is no recycle: it says nothing more.
				if stopping := tc.gives == "cgrun: app: giving up the overlap with generation 2: cgrun is stopping"; stopping && len(lines) != 1 ||
					!stopping && (len(lines) != 2 || lines[1] != waiting) {
					t.Errorf("log %q: want the recycle after it, unless cgrun stops", lines)
				}
				if g.next != nil || g.handedTo() != nil || g.OverlapPhase != core.OverlapGone {
					t.Errorf("next %v, phase %v: want it removed and the overlap over", g.next, g.OverlapPhase)
				}
			}
		})
	}
}

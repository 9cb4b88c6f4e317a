package launch

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/launch/core"
	"github.com/cgrun/cgrun/launch/eventlog"
	"github.com/cgrun/cgrun/launch/internal/lockedbuf"
	"github.com/cgrun/cgrun/launch/notify"
	"github.com/cgrun/cgrun/launch/policy"
	"github.com/cgrun/cgrun/launch/report"
	"github.com/cgrun/cgrun/launch/state"
	"github.com/cgrun/cgrun/oomwatch"
	"golang.org/x/sys/unix"
)

// Sequences of the adapter: what reaches it while another step is under way.

// docs/recycling.md: "Stopping wins: SIGTERM or SIGINT to cgrun ... never restarts it — also
// when the signal arrives during a restart delay, which ends at once." A SIGTERM that reached
// cgrun while the ended generation was torn down waits in its channel when the delay begins;
// with --restart-delay 0 the delay's timer is ready too, and the select picks either: half the
// time the next generation starts (and is then stopped).
func TestStopBeforeAZeroRestartDelay(t *testing.T) {
	p := onOOM()
	p.RestartDelay, p.MaxRestarts = 0, 0
	started := 0
	const runs = 64
	for i := 0; i < runs; i++ {
		r, _, stop, _ := testRunner(p)
		stop <- unix.SIGTERM
		why, code, raise, err := r.step(oomKilled(1, time.Now(), time.Second), nil)
		if why != "" {
			started++
			continue
		}
		if code != 137 || raise != unix.SIGTERM || err != nil {
			t.Fatalf("have %d, %v, %v; want the run ended with 137 and SIGTERM", code, raise, err)
		}
	}
	if started > 0 {
		t.Errorf("a SIGTERM waiting when a zero restart delay began: the next generation started in %d of %d runs; want none", started, runs)
	}
}

// superviseTakenOver supervises argv as generation 2 that an --overlap recycle started age ago
// (begun, as overlap leaves it) and that now takes over; the outcome comes on done.
func superviseTakenOver(t *testing.T, cfg *Config, age time.Duration, argv ...string) *hostRun {
	t.Helper()
	mount, dir := fakeGroupDir(t)
	log := &lockedbuf.Buffer{}
	cfg.Log, cfg.Name = log, "app"
	stop, child, other := make(chan os.Signal, 2), make(chan os.Signal, 1), make(chan os.Signal, 4)
	r := &runner{cfg: cfg, name: "app", h: cgroup.Hierarchy{Mount: mount},
		sigs: signals{stop: stop, child: child, other: other}, core: core.New("app", cfg.Policy, cfg.Limits, cfg.Diagnose),
		log: eventlog.New("app", cfg.Limits, nil, log), report: &report.Report{Name: "app", Keep: true},
		notify: &notify.Notifier{}, early: map[int]unix.WaitStatus{}, last: 2,
		state:         state.State{RestartsByReason: map[string]int{}, Totals: map[string]uint64{}, Recent: []state.Event{}},
		adviseStarted: time.Now()}
	r.site = &cgroup.Site{Dir: mount} // an --overlap recycle of it begins generation 3 here, and cannot (no group): recycled without
	pid, err := syscall.ForkExec(argv[0], argv, &syscall.ProcAttr{Files: []uintptr{0, 1, 2}, Sys: &syscall.SysProcAttr{Setpgid: true}})
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan oomwatch.Event, 8)
	g := &generation{Gen: core.Gen{Number: 2}, run: r, pid: pid, dir: dir, leaf: state.Leaf(dir),
		peak: cgroup.NewPeakMeter(dir, state.Leaf(dir)), events: events, stopWatching: func() {},
		begun: outcome{pid: pid, started: time.Now().Add(-age)}}
	h := &hostRun{g: g, log: log, stop: stop, other: other, events: events, done: make(chan outcome, 1)}
	quit := make(chan struct{})
	t.Cleanup(func() {
		close(quit)
		_ = unix.Kill(-pid, unix.SIGKILL)
	})
	go func() {
		for {
			select {
			case <-quit:
				return
			case <-time.After(10 * time.Millisecond):
				select {
				case child <- unix.SIGCHLD:
				default:
				}
			}
		}
	}()
	go func() {
		out, _ := g.start(nil)
		h.done <- out
	}()
	return h
}

// --max-lifetime "recycle[s] each generation after this long" (docs/recycling.md). A generation
// that an --overlap recycle started beside the one before has run since it began; its lifetime
// timer starts only when it takes over, so it lives on for as long as the overlap took (up to
// --ready-timeout plus the old one's --stop-timeout): begun 2.5s before it took over, it is
// recycled 3s after the takeover, saying "lifetime of 6s reached".
func TestTakenOverGenerationLifetimeCountsFromItsStart(t *testing.T) {
	p := policy.DefaultPolicy()
	p.Overlap, p.MaxLifetime = true, 3*time.Second
	h := superviseTakenOver(t, &Config{Policy: p}, 2500*time.Millisecond, "/bin/sleep", "60")
	select {
	case out := <-h.done:
		if out.recycled != policy.Lifetime {
			t.Errorf("outcome %+v; want recycled for its lifetime", out)
		}
		// Recycled within 1.5 s of the takeover, not 3 s after it, is the point; the uptime the
		// line gives rounds to 3s or, on a loaded guest, 4s.
		if l := h.log.String(); !strings.Contains(l, "lifetime of 3s reached") && !strings.Contains(l, "lifetime of 4s reached") {
			t.Errorf("log %q; want the lifetime of 3s (or 4s, rounded, on a slow machine)", l)
		}
	case <-time.After(1500 * time.Millisecond):
		h.stop <- unix.SIGTERM
		h.wait(t)
		t.Errorf("a generation begun 2.5s before it took over, --max-lifetime 3s: not recycled 4s after it began; log %q", h.log.String())
	}
}

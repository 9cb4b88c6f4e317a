package launch

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/launch/advise"
	"github.com/cgrun/cgrun/launch/core"
	"github.com/cgrun/cgrun/launch/diagnose"
	"github.com/cgrun/cgrun/launch/eventlog"
	"github.com/cgrun/cgrun/launch/internal/lockedbuf"
	"github.com/cgrun/cgrun/launch/notify"
	"github.com/cgrun/cgrun/launch/policy"
	"github.com/cgrun/cgrun/launch/report"
	"github.com/cgrun/cgrun/launch/state"
	"github.com/cgrun/cgrun/oomwatch"
	"golang.org/x/sys/unix"
)

// These tests run a generation's whole supervision on the host: a real child (sleep, or a shell
// that ignores SIGTERM), a temp dir standing in for its group with the files the supervisor
// reads, events and signals fed into its channels, and SIGCHLD sent until the child is reaped.
// The group is not created by the test's generation (created is false), so nothing is removed.

type hostRun struct {
	g      *generation
	log    *lockedbuf.Buffer
	stop   chan os.Signal
	other  chan os.Signal
	events chan oomwatch.Event
	done   chan outcome
}

// fakeGroupDir makes a payload group and its leaf under a temp dir standing in for the
// hierarchy's mount: memory.current at 8 MiB, no memory.peak (a kernel before 5.19).
func fakeGroupDir(t *testing.T) (mount, dir string) {
	t.Helper()
	mount = t.TempDir()
	dir = filepath.Join(mount, "app-1.1")
	files := map[string]string{
		"memory.current": "8388608", "memory.max": "max", "memory.high": "max",
		"memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n",
		"memory.stat":   "anon 4194304\nfile 4194304\nactive_file 2097152\ninactive_file 2097152\n",
		"cgroup.kill":   "", "cgroup.events": "populated 1\nfrozen 0\n",
		"cpu.stat": "usage_usec 2000000\nuser_usec 1500000\nsystem_usec 500000\n",
	}
	for _, d := range []string{dir, state.Leaf(dir)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, text := range files {
			if err := os.WriteFile(filepath.Join(d, name), []byte(text+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return mount, dir
}

// trapShell is a shell that sets trap, says so by making a file, then idles; trapped waits for
// that file. A signal sent before the trap is set would end the shell instead (on a busy guest a
// shell takes more than 50 ms to get there).
func trapShell(t *testing.T, trap string) (argv []string, trapped func()) {
	t.Helper()
	ready := filepath.Join(t.TempDir(), "trapped")
	argv = []string{"/bin/sh", "-c", trap + "; : >'" + ready + "'; while :; do sleep 0.01; done"}
	return argv, func() {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			if _, err := os.Stat(ready); err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the shell never set its trap (%s)", trap)
			}
		}
	}
}

// superviseOnHost starts argv as generation 1 under cfg's policy and supervises it on a
// goroutine; the outcome comes on done.
func superviseOnHost(t *testing.T, cfg *Config, argv ...string) *hostRun {
	t.Helper()
	return superviseGeneration(t, cfg, 1, 0, argv...)
}

// superviseGeneration is superviseOnHost for generation n, begun age ago. One after the first
// was begun by an --overlap recycle of the one before, and now takes over; an --overlap recycle
// of it begins the next one in the fake mount, and cannot (no group): it recycles without.
func superviseGeneration(t *testing.T, cfg *Config, n int, age time.Duration, argv ...string) *hostRun {
	t.Helper()
	mount, dir := fakeGroupDir(t)
	log := &lockedbuf.Buffer{}
	cfg.Log, cfg.Name = log, "app"
	stop, child, other := make(chan os.Signal, 2), make(chan os.Signal, 1), make(chan os.Signal, 4)
	r := &runner{cfg: cfg, name: "app", h: cgroup.Hierarchy{Mount: mount},
		sigs: signals{stop: stop, child: child, other: other}, core: core.New("app", cfg.Policy, cfg.Limits, cfg.Diagnose),
		log: eventlog.New("app", cfg.Limits, nil, log), report: &report.Report{Name: "app", Keep: true},
		notify: &notify.Notifier{}, early: map[int]unix.WaitStatus{},
		state:         state.State{RestartsByReason: map[string]int{}, Totals: map[string]uint64{}, Recent: []state.Event{}},
		adviseStarted: time.Now()}
	if n > 1 {
		r.last, r.site = n, &cgroup.Site{Dir: mount}
	}
	var pid int
	var err error
	if r.dumpDir, err = openDumpDir(cfg.Diagnose, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.dumpDir.Close() })
	pid, err = syscall.ForkExec(argv[0], argv, &syscall.ProcAttr{Files: []uintptr{0, 1, 2}, Sys: &syscall.SysProcAttr{Setpgid: true}})
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan oomwatch.Event, 8)
	g := &generation{Gen: core.Gen{Number: n}, run: r, pid: pid, dir: dir, leaf: state.Leaf(dir),
		peak: cgroup.NewPeakMeter(dir, state.Leaf(dir)), events: events, stopWatching: func() {},
		begun: outcome{pid: pid, started: time.Now().Add(-age)}}
	h := &hostRun{g: g, log: log, stop: stop, other: other, events: events, done: make(chan outcome, 1)}
	quit := make(chan struct{})
	t.Cleanup(func() {
		close(quit)
		_ = unix.Kill(-pid, unix.SIGKILL)
	})
	go func() {
		// SIGCHLD, as the signal handler would send it, until the child is reaped.
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

func (h *hostRun) wait(t *testing.T) outcome {
	t.Helper()
	select {
	case out := <-h.done:
		return out
	case <-time.After(10 * time.Second):
		t.Fatalf("the generation did not end; log:\n%s", h.log)
		return outcome{}
	}
}

func TestSuperviseOnHost(t *testing.T) {
	t.Run("SIGTERM: forwarded, the child dies of it, its end recorded", func(t *testing.T) {
		cfg := &Config{Policy: policy.DefaultPolicy()}
		h := superviseOnHost(t, cfg, "/bin/sleep", "60")
		time.Sleep(250 * time.Millisecond) // a few peak samples, 100ms apart
		h.stop <- unix.SIGTERM
		out := h.wait(t)
		if !out.status.Signaled() || out.status.Signal() != unix.SIGTERM || !out.stopAsked || out.stopSignal != unix.SIGTERM {
			t.Errorf("outcome %+v; want killed by SIGTERM, asked to stop", out)
		}
		if out.peak != 8<<20 || out.peakSource == "" {
			t.Errorf("peak %d (%q); want the sampled 8 MiB", out.peak, out.peakSource)
		}
		s := h.g.run.state
		if s.MemoryPeak != 8<<20 || len(s.Recent) == 0 || !strings.Contains(s.Recent[len(s.Recent)-1].Detail, "generation 1 (pid ") {
			t.Errorf("state %+v; want the peak and the exit noted", s)
		}
		if gens := h.g.run.report.Generations; len(gens) != 1 || gens[0].Signal != "SIGTERM" || gens[0].CPUUserSeconds != 1.5 {
			t.Errorf("report %+v; want one generation killed by SIGTERM, its cpu.stat read", gens)
		}
	})
	// systemd's stop signals every process of the unit at once: the child's SIGCHLD and cgrun's
	// SIGTERM are both waiting, and select may take either first.
	t.Run("a stop signal waiting when the child is reaped is recorded, not forwarded", func(t *testing.T) {
		stop := make(chan os.Signal, 1)
		g := &generation{run: &runner{sigs: signals{stop: stop}}}
		g.stopPending()
		if g.StopAsked != 0 {
			t.Fatalf("stop asked %v with no signal waiting", g.StopAsked)
		}
		stop <- unix.SIGINT
		g.stopPending()
		if g.StopAsked != unix.SIGINT {
			t.Errorf("stop asked %v, want SIGINT", g.StopAsked)
		}
	})
	t.Run("--lifetime: recycled with the stop signal", func(t *testing.T) {
		p := policy.DefaultPolicy()
		p.MaxLifetime, p.StopSignal = 50*time.Millisecond, unix.SIGINT
		h := superviseOnHost(t, &Config{Policy: p}, "/bin/sleep", "60")
		out := h.wait(t)
		if out.recycled != policy.Lifetime || !out.status.Signaled() || out.status.Signal() != unix.SIGINT {
			t.Errorf("outcome %+v; want recycled for its lifetime by SIGINT", out)
		}
		if l := h.log.String(); !strings.HasPrefix(l, "cgrun: app: recycling generation 1: lifetime of ") || !strings.Contains(l, " reached; sending SIGINT (group killed after 10s)\n") {
			t.Errorf("log %q", h.log)
		}
	})
	t.Run("the stop timeout: the group killed", func(t *testing.T) {
		p := policy.DefaultPolicy()
		p.StopTimeout = 50 * time.Millisecond
		argv, trapped := trapShell(t, "trap '' TERM")
		h := superviseOnHost(t, &Config{Policy: p}, argv...)
		trapped()
		h.stop <- unix.SIGTERM
		kill := filepath.Join(h.g.dir, "cgroup.kill")
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if b, _ := os.ReadFile(kill); string(b) == "1" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cgroup.kill never written; log:\n%s", h.log)
			}
		}
		_ = unix.Kill(-h.g.pid, unix.SIGKILL) // what the kernel does for cgroup.kill
		if out := h.wait(t); !out.status.Signaled() || out.status.Signal() != unix.SIGKILL {
			t.Errorf("outcome %+v; want killed", out)
		}
	})
	t.Run("an OOM kill the watcher reports is logged and counted", func(t *testing.T) {
		h := superviseOnHost(t, &Config{Policy: policy.DefaultPolicy()}, "/bin/sleep", "60")
		h.events <- oomwatch.Event{Time: time.Now(), Kind: oomwatch.OOMKill, Count: 1, Delta: 1, MemoryCurrent: 16 << 20}
		for deadline := time.Now().Add(5 * time.Second); !strings.Contains(h.log.String(), "the OOM killer killed") && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond) // the event taken before the stop: the select picks either
		}
		h.stop <- unix.SIGTERM
		out := h.wait(t)
		if out.peak != 16<<20 {
			t.Errorf("peak %d; want the event's 16 MiB", out.peak)
		}
		if want := "cgrun: app: the OOM killer killed a process in the group (1 so far; current 16M, max unset)\n"; !strings.Contains(h.log.String(), want) {
			t.Errorf("log %q; want the OOM kill", h.log)
		}
	})
	t.Run("failing health probes recycle it", func(t *testing.T) {
		p := policy.DefaultPolicy()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) }))
		defer srv.Close()
		p.Health = policy.HealthCheck{URL: srv.URL, Interval: 20 * time.Millisecond, Timeout: time.Second, Retries: 2}
		h := superviseOnHost(t, &Config{Policy: p}, "/bin/sleep", "60")
		out := h.wait(t)
		if want := "cgrun: app: recycling generation 1: health check failed 2 times in a row (last: HTTP 503 Service Unavailable); sending SIGTERM (group killed after 10s)\n"; h.log.String() != want {
			t.Errorf("log %q; want %q", h.log, want)
		}
		if out.recycled != policy.Health {
			t.Errorf("outcome %+v; want recycled as unhealthy", out)
		}
	})
	t.Run("--recycle-above held for --recycle-after: recycled", func(t *testing.T) {
		p := policy.DefaultPolicy()
		p.RecycleAbove, p.RecycleAfter = cgroup.Bytes(8<<20), 10*time.Millisecond
		cfg := &Config{Policy: p, Limits: cgroup.Limits{MemoryHigh: cgroup.Bytes(8 << 20)}}
		h := superviseOnHost(t, cfg, "/bin/sleep", "60")
		h.events <- oomwatch.Event{Time: time.Now(), Kind: oomwatch.High, Count: 1, Delta: 1, MemoryCurrent: 8 << 20}
		out := h.wait(t) // the look once a second finds memory still at the mark
		if out.recycled != policy.MemoryAbove || !out.status.Signaled() || out.status.Signal() != unix.SIGTERM {
			t.Errorf("outcome %+v; want recycled for memory above the mark", out)
		}
		if l, want := h.log.String(), "cgrun: app: recycling generation 1: memory at 8M held at or above 8M for 10ms; sending SIGTERM (group killed after 10s)\n"; !strings.HasSuffix(l, want) {
			t.Errorf("log %q; want it to end %q", l, want)
		}
		if b, _ := os.ReadFile(filepath.Join(h.g.dir, "memory.high")); string(b) != "max" {
			t.Errorf("memory.high %q; want the throttle lifted for the stop", b)
		}
	})
	t.Run("a recycle for a memory reason waits for the dump first", func(t *testing.T) {
		dumps := t.TempDir()
		p := policy.DefaultPolicy()
		p.RecycleOnHigh = 1
		cfg := &Config{Policy: p, Diagnose: diagnose.Config{Signal: unix.SIGUSR1, Dir: dumps, Timeout: 10 * time.Second, Keep: 3}}
		argv, trapped := trapShell(t, "trap 'echo heap > "+dumps+"/heap.1' USR1")
		h := superviseOnHost(t, cfg, argv...)
		trapped()
		for n := uint64(1); n <= 2; n++ { // the first is the count the window grows from
			h.events <- oomwatch.Event{Time: time.Now(), Kind: oomwatch.High, Count: n, Delta: 1, MemoryCurrent: 8 << 20}
		}
		out := h.wait(t)
		l := h.log.String()
		for _, want := range []string{
			"cgrun: app: generation 1: before the recycle for memory_high: taking a diagnostic dump (SIGUSR1) into " + dumps + ", waiting at most 10s",
			"cgrun: app: generation 1: dump complete after ",
			"/heap.1 (5)\ncgrun: app: recycling generation 1: 1 memory.high events within 10s; sending SIGTERM (group killed after 10s)\n",
		} {
			if !strings.Contains(l, want) {
				t.Errorf("log %q; want %q in it", l, want)
			}
		}
		if out.recycled != policy.MemoryHigh || out.dump == nil || !out.dump.Complete || len(out.dump.Files) != 1 {
			t.Errorf("outcome %+v, dump %+v; want recycled for memory.high after a complete dump", out, out.dump)
		}
		if d := h.g.run.state.Dumps; len(d) != 1 || d[0].Reason != "memory_high" {
			t.Errorf("state's dumps %+v", d)
		}
	})
	t.Run("--diagnose-above: a dump and no recycle", func(t *testing.T) {
		dumps := t.TempDir()
		cfg := &Config{Policy: policy.DefaultPolicy(), Diagnose: diagnose.Config{Signal: unix.SIGUSR1, Dir: dumps, Timeout: 10 * time.Second, Above: 4 << 20, Interval: time.Hour}}
		argv, _ := trapShell(t, "trap 'echo heap > "+dumps+"/heap.1' USR1") // set long before the first look at memory
		h := superviseOnHost(t, cfg, argv...)
		for deadline := time.Now().Add(8 * time.Second); !strings.Contains(h.log.String(), "dump complete"); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no dump; log %q", h.log.String())
			}
		}
		h.stop <- unix.SIGTERM
		out := h.wait(t)
		if want := "cgrun: app: generation 1: memory crossed --diagnose-above 4M: taking a diagnostic dump (SIGUSR1)"; !strings.HasPrefix(h.log.String(), want) {
			t.Errorf("log %q; want it to start %q", h.log, want)
		}
		if out.recycled != "" || out.dump == nil || out.dump.Reason != "above" || len(h.g.run.dumps) != 1 {
			t.Errorf("outcome %+v, dumps %+v; want no recycle, one dump kept", out, h.g.run.dumps)
		}
	})
	t.Run("cgrun advise --for: the window's end stops the run, memory.high back", func(t *testing.T) {
		cfg := &Config{Policy: policy.DefaultPolicy(), Advise: &Advise{For: 300 * time.Millisecond}}
		h := superviseOnHost(t, cfg, "/bin/sleep", "60")
		out := h.wait(t)
		if want := "cgrun: app: observed for 300ms; sending SIGTERM (group killed after 10s)\n"; h.log.String() != want {
			t.Errorf("log %q; want %q", h.log, want)
		}
		if !out.windowEnded || !out.stopAsked || !h.g.run.adviceSeen || h.g.run.state.Advice == nil {
			t.Errorf("outcome %+v, advice seen %v, state's %+v; want the window ended and the advice noted", out, h.g.run.adviceSeen, h.g.run.state.Advice)
		}
		if b, _ := os.ReadFile(filepath.Join(h.g.dir, "memory.high")); string(b) != "max\n" {
			t.Errorf("memory.high %q after the probe; want max", b)
		}
	})
}

// The run's end after a generation supervised on the host: the summary, the report, the
// baseline recorded, or checked and exceeded (report.ExitBaseline).
func TestRunEndOnHost(t *testing.T) {
	// exits0 supervises a command that exits 0 after a few peak samples.
	exits0 := func(t *testing.T, cfg *Config) (*hostRun, outcome) {
		h := superviseOnHost(t, cfg, "/bin/sleep", "0.3")
		return h, h.wait(t)
	}
	t.Run("a baseline recorded, the report written, the summary said", func(t *testing.T) {
		rep := &bytes.Buffer{}
		base := filepath.Join(t.TempDir(), "base.json")
		cfg := &Config{Policy: policy.DefaultPolicy(), Command: []string{"sleep", "0.3"}, Verbose: true, Report: rep, RecordBaseline: base}
		h, out := exits0(t, cfg)
		code, err := h.g.run.end(out.started, out, 0, nil)
		if code != 0 || err != nil {
			t.Fatalf("end = %d, %v", code, err)
		}
		if want := "cgrun: app exited with status 0 after "; !strings.HasPrefix(h.log.String(), want) || !strings.Contains(h.log.String(), "; peak memory 8M sampled (no memory.max), 0 OOM kills, 0 memory.high events, 0 memory.max events, 0 restarts\ncgrun: app: wall ") {
			t.Errorf("log %q; want the summary", h.log)
		}
		var r report.Report
		if err := json.Unmarshal(rep.Bytes(), &r); err != nil || r.MemoryPeak == nil || *r.MemoryPeak != 8<<20 || len(r.Generations) != 1 {
			t.Errorf("report %s: %v", rep, err)
		}
		bl, err := report.LoadBaseline(base)
		if err != nil || bl.MemoryPeak != 8<<20 {
			t.Errorf("baseline %+v, %v; want the peak of 8M", bl, err)
		}
	})
	t.Run("a failed run records no baseline", func(t *testing.T) {
		base := filepath.Join(t.TempDir(), "base.json")
		cfg := &Config{Policy: policy.DefaultPolicy(), RecordBaseline: base}
		h, out := exits0(t, cfg)
		if code, _ := h.g.run.end(out.started, out, 3, nil); code != 3 {
			t.Errorf("code %d; want 3", code)
		}
		if want := "cgrun: not recording a baseline in " + base + ": the run failed (exit 3)\n"; h.log.String() != want {
			t.Errorf("log %q; want %q", h.log, want)
		}
		if _, err := os.Stat(base); !os.IsNotExist(err) {
			t.Errorf("baseline written: %v", err)
		}
	})
	t.Run("a peak over the baseline fails the run", func(t *testing.T) {
		cfg := &Config{Policy: policy.DefaultPolicy(), Baseline: &report.Baseline{Version: 1, MemoryPeak: 4 << 20}, BaselineFile: "base.json", BaselineTolerance: 10}
		h, out := exits0(t, cfg)
		code, err := h.g.run.end(out.started, out, 0, nil)
		if code != report.ExitBaseline || err == nil || !strings.Contains(err.Error(), "app peaked at 8M, 100.0% over the baseline 4M in base.json (tolerance 10%") {
			t.Errorf("end = %d, %v; want exit %d, the line", code, err, report.ExitBaseline)
		}
	})
	t.Run("advise: the advice said at the end", func(t *testing.T) {
		var got *advise.Advice
		cfg := &Config{Policy: policy.DefaultPolicy(), Advise: &Advise{Done: func(a advise.Advice, ended bool) { got = &a }}}
		h, out := exits0(t, cfg)
		h.g.run.end(out.started, out, 0, nil)
		if got == nil || got.Peak != 8<<20 || h.g.run.report.Advice == nil {
			t.Errorf("advice %+v, in the report %+v; want the peak of 8M", got, h.g.run.report.Advice)
		}
	})
}

// TestSummaryGivesTheWholeRun: after restarts, the exit summary gives the whole run's time
// beside the last generation's uptime; a run of one generation has one time.
func TestSummaryGivesTheWholeRun(t *testing.T) {
	var human bytes.Buffer
	l := eventlog.New("w", cgroup.Limits{}, nil, &human)
	out := outcome{status: unix.WaitStatus(0), uptime: 3100 * time.Millisecond}
	for _, tc := range []struct {
		restarts int
		want     string
	}{
		{0, "cgrun: w exited with status 0 after 3.1s; peak memory"},
		{4, "cgrun: w exited with status 0 after 3.1s (the last generation; the whole run 2m10s); peak memory"},
	} {
		if got := summary("w", out, l, cgroup.Limits{}, tc.restarts, 0, 130*time.Second); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%d restarts: %q, want it to start %q", tc.restarts, got, tc.want)
		}
	}
}

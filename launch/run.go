package launch

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/launch/account"
	"github.com/cgrun/cgrun/launch/advise"
	"github.com/cgrun/cgrun/launch/core"
	"github.com/cgrun/cgrun/launch/diagnose"
	"github.com/cgrun/cgrun/launch/eventlog"
	"github.com/cgrun/cgrun/launch/exitcode"
	"github.com/cgrun/cgrun/launch/guard"
	"github.com/cgrun/cgrun/launch/listen"
	"github.com/cgrun/cgrun/launch/logline"
	"github.com/cgrun/cgrun/launch/metrics"
	"github.com/cgrun/cgrun/launch/notify"
	"github.com/cgrun/cgrun/launch/place"
	"github.com/cgrun/cgrun/launch/policy"
	"github.com/cgrun/cgrun/launch/proc"
	"github.com/cgrun/cgrun/launch/report"
	"github.com/cgrun/cgrun/launch/state"
	"github.com/cgrun/cgrun/oomwatch"
	"golang.org/x/sys/unix"
)

// Config is one `cgrun run`.
type Config struct {
	Command  []string // the command and its arguments
	Env      []string // the command's environment
	Name     string   // names the payload group and cgrun's messages; default: the command's base name
	Limits   cgroup.Limits
	Policy   policy.Policy      // when to recycle and restart; policy.DefaultPolicy() runs once
	Parent   string             // --parent: nest under this group instead of cgrun's own
	Pressure []oomwatch.Trigger // PSI triggers on the payload group, reported as events
	Events   io.Writer          // --events: JSON Lines of every event; nil for none
	Verbose  bool               // print the exit summary even when nothing happened
	Report   io.Writer          // --report: the JSON report of the whole run, written at exit; nil for none
	// MetricsAddr serves Prometheus metrics on HOST:PORT (":PORT" is loopback); "" for none.
	MetricsAddr string
	// NotifyReady makes cgrun tell systemd READY=1 itself once the child runs (Type=notify).
	NotifyReady bool

	RecordBaseline    string           // --record-baseline: write the run's memory profile here at exit
	Baseline          *report.Baseline // --baseline: fail (report.ExitBaseline) when the peak exceeds it ...
	BaselineFile      string           // ... read from this file ...
	BaselineTolerance float64          // ... by more than this many percent
	NoClone3          bool             // start through the re-exec stub even where clone3 works
	Log               io.Writer        // where cgrun's own lines go (stderr)

	// User runs the command and its health probes as this user (--user); nil runs them as
	// cgrun's own. cgrun, as root, keeps the group: its files stay root's.
	User *account.User
	// AllowNewPrivs leaves no_new_privs off for a --user command, so that setuid binaries
	// (sudo, su) and file capabilities work in it.
	AllowNewPrivs bool

	Diagnose diagnose.Config // --diagnose-*: a dump before a recycle for memory
	// Listen are the sockets cgrun binds before the first generation and hands to every one
	// (--listen); see package listen.
	Listen []listen.Addr
	// Advise probes the memory the command needs (cgrun advise, run --advise); nil for none.
	Advise *Advise
	// SharedShm leaves the command the host's /dev/shm (--shared-shm). Without it a root
	// cgrun gives each generation a private one (proc.Shm), sized by --memory-max and gone
	// with the generation.
	SharedShm bool

	// path is the command as Validate resolved it; "" until the Config passed Validate, which
	// Run then does not repeat (a start looks the command up once).
	path string
}

// teardownTimeout bounds how long cgrun waits for a killed group to empty.
const teardownTimeout = 10 * time.Second

// runner is what the generations of one `cgrun run` share.
type runner struct {
	cfg  *Config
	name string
	path string // the command, resolved
	h    cgroup.Hierarchy
	site *cgroup.Site
	log  *eventlog.Log
	sigs signals
	core *core.Core // the decisions; runner and generation are its adapter

	report *report.Report // filled in by each generation as it ends
	steady report.Samples // memory.current once a second, when a baseline is recorded or checked
	sample bool           // whether to take those samples

	notify *notify.Notifier

	dumpDir *diagnose.Dir   // --diagnose-dir, open for the run; nil without a dump
	dumps   []diagnose.Dump // the dumps cgrun asked for and keeps, oldest first
	// guard kills the generations if cgrun is SIGKILLed; nil until the first one has run for
	// guardDelay. guardMu guards it and guardOff (set once cgrun releases it) against the
	// timer that starts it.
	guard      *guard.Guard
	guardMu    sync.Mutex
	guardOff   bool
	guardTimer *time.Timer
	raise      unix.Signal // the signal that stopped cgrun, to die of at the end; 0 for none

	sockets *listen.Set // the --listen sockets, open for the whole run
	shm     *proc.Shm   // each generation's private /dev/shm; nil for the host's
	shmOnce sync.Once   // says once that the private /dev/shm was refused
	// early are children reaped outside their generation's supervisor, by pid: a teardown
	// reaps everything, a generation running beside it (--overlap) included.
	early map[int]unix.WaitStatus
	last  int // the highest generation number begun

	adviseStarted time.Time       // when the run began, for cgrun advise --for
	advice        advise.Estimate // what the probes of the ended generations found
	adviceSeen    bool            // a probe ran

	mu       sync.Mutex // guards state: the metrics server reads it
	state    state.State
	stateDir string // "" when there is none (not root and no XDG_RUNTIME_DIR)
	// stateFailing says the last write of the state failed; stateRetry is the pending retry;
	// stateClosed says the file was removed at exit and is never written again.
	stateFailing, stateClosed bool
	stateRetry                *time.Timer
}

// Run starts the command in a fresh group, supervises it, recycles and restarts it as the
// policy says (each generation in a fresh group, never two at once), removes every trace of it,
// and returns the exit code a shell would show for the last generation. An error means cgrun
// itself failed; exitcode.Of(err) is the exit code for it.
func Run(cfg Config) (int, error) {
	code, raise, err := run(cfg)
	if raise != 0 {
		dieOf(raise)
	}
	return code, err
}

// dieOf ends cgrun by the signal that stopped it, once everything is cleaned up, as a shell
// does for SIGINT: the parent sees the signal (128+N in a shell), and systemd counts a SIGTERM
// death of its main process as a clean stop. It returns only if the signal is not deadly.
func dieOf(sig unix.Signal) {
	signal.Reset(sig)
	_ = unix.Kill(os.Getpid(), sig)
	time.Sleep(100 * time.Millisecond)
}

// Validate checks a Config without opening or creating anything, and fills in what follows from
// it (the default name; memory.high from --recycle-above; the command's path). Run calls it
// first unless the Config passed it already; a caller that opens files for Run (--events,
// --report) calls it before, so that bad input leaves nothing behind, and changes nothing it
// checks afterwards. exitcode.Of(err) is the exit code for its error: 125, or 126/127 for the
// command.
func Validate(cfg *Config) error {
	if len(cfg.Command) == 0 {
		return errors.New("no command given: cgrun run [flags] -- COMMAND [ARG...]")
	}
	if cfg.Name == "" {
		cfg.Name = state.DefaultName(cfg.Command[0])
	}
	if err := state.ValidName(cfg.Name); err != nil {
		return err
	}
	// The policy first: its errors name --recycle-above, which sets memory.high below.
	if err := cfg.Policy.Validate(cfg.Limits); err != nil {
		return err
	}
	if cfg.Policy.RecycleAbove.Set && !cfg.Limits.MemoryHigh.Set {
		// cgrun hears that memory rose from memory.high events; see policy.Policy.Validate.
		cfg.Limits.MemoryHigh = cfg.Policy.RecycleAbove
	}
	if err := cfg.Limits.Validate(); err != nil {
		return err
	}
	if err := cfg.Diagnose.Validate(); err != nil {
		return err
	}
	if err := listen.Apart(cfg.Listen, cfg.MetricsAddr, metrics.SplitAddr); err != nil {
		return err
	}
	if err := checkAdvise(cfg); err != nil {
		return err
	}
	if cfg.Diagnose.Headroom != 0 && (!cfg.Limits.MemoryMax.Set || cfg.Limits.MemoryMax.Max) {
		return errors.New("--diagnose-headroom raises memory.max for the dump: give --memory-max too")
	}
	// A probe or a dump command runs in the group beside the command, and pids.max counts it.
	if p := cfg.Limits.PidsMax; p.Set && !p.Max && p.Value < 2 {
		for _, c := range []struct{ flag, cmd string }{{"--health-cmd", cfg.Policy.Health.Cmd}, {"--diagnose-cmd", cfg.Diagnose.Cmd}} {
			if c.cmd != "" {
				return fmt.Errorf("--pids-max %d leaves no room for %s, which runs in the group beside the command and counts too: give 2 or more", p.Value, c.flag)
			}
		}
	}
	if err := CheckDumpDir(cfg.Diagnose, cfg.User); err != nil {
		return err
	}
	if cfg.User != nil {
		if err := account.CheckUser(cfg.User); err != nil {
			return err
		}
	}
	path, err := proc.LookPath(cfg.Command[0])
	cfg.path = path
	return err
}

// run is Run, with the signal cgrun should die of: the one that stopped it, when the child died
// of it too or none was running.
func run(cfg Config) (int, unix.Signal, error) {
	if cfg.path == "" {
		if err := Validate(&cfg); err != nil {
			return exitcode.Of(err), 0, err
		}
	}
	if cfg.Log != nil {
		cfg.Log = logline.Writer{W: cfg.Log} // every line escaped and bounded (docs/security.md)
	}
	r := &runner{cfg: &cfg, name: cfg.Name, path: cfg.path, early: map[int]unix.WaitStatus{},
		core: core.New(cfg.Name, cfg.Policy, cfg.Limits, cfg.Diagnose)}
	var err error
	if r.dumpDir, err = openDumpDir(cfg.Diagnose, cfg.User); err != nil {
		return exitcode.Failure, 0, err
	}
	defer r.dumpDir.Close()
	if r.dumpDir.OnTmpfs() {
		fmt.Fprintf(cfg.Log, "cgrun: warning: --diagnose-dir %s is on tmpfs: a dump written there is memory charged to the command's own group, counted against --memory-max and not freed without swap; put it on a disk (e.g. --diagnose-dir /var/tmp/%s), or give the dump's size in --diagnose-headroom too\n",
			cfg.Diagnose.Dir, filepath.Base(cfg.Diagnose.Dir))
	}
	if cfg.User != nil {
		// No fd of root's crosses to the user: only stdio and the --listen sockets, which every
		// fork names, reach the command, its probes and --diagnose-cmd (README, docs/security.md).
		if err := proc.CloseOnExecFrom(3); err != nil {
			return exitcode.Failure, 0, err
		}
		cfg.Env = cfg.User.Env(cfg.Env)
	}
	if r.sockets, err = bindListen(cfg); err != nil {
		return exitcode.Failure, 0, err
	}
	defer r.sockets.Close()
	if r.h, err = cgroup.Detect(); err != nil {
		return exitcode.Failure, 0, err
	}
	state.CleanStale(r.h) // what an earlier cgrun of this user left when it was SIGKILLed
	if r.site, r.h, err = place.Site(r.h, cfg.Parent, cfg.Limits.Controllers(), r.name, cfg.Command); err != nil {
		return exitcode.Failure, 0, err
	}
	defer func() {
		if rerr := r.site.Release(); rerr != nil {
			fmt.Fprintf(cfg.Log, "cgrun: warning: %v\n", rerr)
		}
	}()
	if err := proc.SetSubreaper(); err != nil {
		return exitcode.Failure, 0, fmt.Errorf("become a subreaper: %w", err)
	}
	defer r.releaseGuard()
	sigs, stop := notifySignals()
	defer stop()
	r.sigs = sigs
	r.log = eventlog.New(r.name, cfg.Limits, cfg.Events, cfg.Log)
	r.log.Probing = cfg.Advise != nil
	defer r.log.Close()
	defer r.log.Settle()
	r.report = &report.Report{Name: r.name, Command: cfg.Command, Keep: cfg.Report != nil}
	cfg.Env = notify.Env(cfg.Env, cfg.NotifyReady)
	r.notify = notify.New(cfg.NotifyReady, cfg.Policy.Health.Enabled(), cfg.Log)
	defer r.notify.Stopping()
	if err := r.initState(); err != nil {
		return exitcode.Failure, 0, err
	}
	defer r.removeState()
	r.sample = cfg.RecordBaseline != "" || cfg.Baseline != nil
	r.core.PeakAsked = cfg.Report != nil || cfg.Verbose || r.sample
	r.shm = privateShm(cfg)
	started := time.Now()
	r.adviseStarted = started
	last, code, err := r.loop()
	if last == nil {
		return code, 0, err
	}
	code, err = r.end(started, *last, code, err)
	return code, r.raise, err
}

// end writes what a finished run owes: the summary, the report, the baseline and its check.
func (r *runner) end(started time.Time, last outcome, code int, err error) (int, error) {
	cfg := r.cfg
	r.log.Close() // the stream's lines before the summary and the report (both may go to stdout)
	r.summarize(last, r.report.Restarts, time.Since(started))
	r.report.Build(started, last.status, cfg.Limits, r.steady.Values())
	switch peak := r.report.MemoryPeak; {
	case cfg.Baseline == nil:
	case peak == nil: // never pass a gate on a figure cgrun does not have
		if err == nil && code == 0 {
			code, err = exitcode.Failure, &exitcode.Error{Code: exitcode.Failure, Err: fmt.Errorf("--baseline %s: %s", cfg.BaselineFile, report.ErrNoPeak)}
		} else {
			fmt.Fprintf(cfg.Log, "cgrun: --baseline %s: %s\n", cfg.BaselineFile, report.ErrNoPeak)
		}
	default:
		c := cfg.Baseline.Check(cfg.BaselineFile, *peak, cfg.BaselineTolerance)
		r.report.Baseline = &c
		if c.Exceeded && err == nil && code == 0 {
			code, err = report.ExitBaseline, &exitcode.Error{Code: report.ExitBaseline, Err: errors.New(c.Line(r.name, *peak))}
		} else if c.Exceeded {
			fmt.Fprintf(cfg.Log, "cgrun: %s\n", c.Line(r.name, *peak))
		}
	}
	if r.adviceSeen {
		a := advise.Advise(r.advice)
		r.report.Advice = &a
		if cfg.Advise.Done != nil {
			cfg.Advise.Done(a, last.windowEnded)
		} else {
			fmt.Fprintf(cfg.Log, "cgrun: %s: %s\n", r.name, a.Line(cgroup.HostHasSwap()))
		}
	}
	if cfg.Verbose {
		fmt.Fprintln(cfg.Log, r.report.Human())
	}
	if cfg.Report != nil {
		if werr := r.report.Write(cfg.Report); werr != nil {
			fmt.Fprintf(cfg.Log, "cgrun: warning: --report: %v\n", werr)
		}
	}
	if cfg.RecordBaseline != "" {
		switch {
		case code != 0 || err != nil:
			fmt.Fprintf(cfg.Log, "cgrun: not recording a baseline in %s: the run failed (exit %d)\n", cfg.RecordBaseline, code)
		default:
			if berr := report.WriteBaseline(cfg.RecordBaseline, r.report); berr != nil {
				fmt.Fprintf(cfg.Log, "cgrun: --record-baseline %s: %v\n", cfg.RecordBaseline, berr)
				return exitcode.Failure, nil
			}
		}
	}
	return code, err
}

// loop runs generations until the policy says stop. It returns the last generation's outcome
// (nil when none ran) and the exit code for the run.
func (r *runner) loop() (*outcome, int, error) {
	var prev *outcome
	var why policy.Reason // why prev was followed by a new generation
	for n := 1; ; n++ {
		if n <= r.last && (prev == nil || prev.next == nil) {
			n = r.last + 1 // an --overlap recycle gave up a generation that took this number
		}
		g := &generation{Gen: core.Gen{Number: n}, dir: r.groupDir(n), run: r}
		if prev != nil && prev.next != nil {
			g, n = prev.next, prev.next.Number // --overlap: started beside the one before, and ready
		}
		out, err := g.start(func(pid int) {
			r.notify.Started(n, pid)
			if r.guardTimer == nil {
				r.guardTimer = time.AfterFunc(guardDelay, r.startGuard)
			}
			r.updateState(func(s *state.State) {
				s.Generation, s.ChildPid, s.Group = n, pid, r.h.Rel(g.dir)
				s.GenerationStarted = time.Now().Format(time.RFC3339Nano)
				s.MemoryPeak, s.MemoryPeakSource = 0, ""                 // the new generation's, once sampled
				s.GenerationMemoryStart, _ = cgroup.MemoryCurrent(g.dir) // for the leak's pace
				s.Next = nil
				if prev != nil {
					s.Restarts++
					s.RestartsByReason[string(why)]++
					s.Note("restart", fmt.Sprintf("generation %d (pid %d) after %s", n, pid, why))
				}
			})
			if prev != nil {
				// The old generation's garbage (records, buffers) is dead now: hand the memory
				// back, so that cgrun's RSS stays where it was before the first restart. Off the
				// restart's path: the child already runs.
				go debug.FreeOSMemory()
				now := time.Now()
				r.report.Recycled(report.Recycle{Generation: n, Reason: why, Time: now.Format(report.TimeFormat)})
				r.log.Add(g.record(oomwatch.Event{Time: now, Kind: report.KindRecycle}, func(rec *report.Event) {
					rec.Reason, rec.OldPid, rec.NewPid, rec.Uptime, rec.OldPeak = why, prev.pid, pid, prev.uptime.Seconds(), prev.peak
					rec.OldPeakSource, rec.Diagnosis = prev.peakSource, prev.dump
				}))
			}
		})
		if err != nil {
			if n > 1 {
				err = fmt.Errorf("restart as generation %d: %w", n, err)
			}
			return prev, exitcode.Of(err), err
		}
		ev := core.EvExited{Now: time.Now(), Number: n, Last: r.last, Status: out.status, Uptime: out.uptime, OOMKills: out.oomKill,
			Recycled: out.recycled, StopAsked: out.stopAsked, StopSignal: out.stopSignal}
		if out.next != nil {
			ev.Next = &core.NextStarted{Number: out.next.Number, PID: out.next.pid}
		}
		var code int
		if why, code, r.raise, err = r.step(ev, out.next); why == "" {
			return &out, code, err
		}
		prev = &out
	}
}

// guardDelay is how long the first generation runs before cgrun starts its guard. The guard is
// cgrun itself, executed again: on a start's path it would cost as much as cgrun's own exec
// and package initialisation, CPU that the command and cgrun's teardown then wait for, all to
// guard a command that may be over already (true, a quick cron check, a failed start). A
// command that ends within guardDelay never gets a guard.
const guardDelay = 20 * time.Millisecond

// startGuard starts the guard once the first generation has run for guardDelay, off the
// start's path, so that the command starts as fast as it did without one. Until it runs, a
// SIGKILLed cgrun's groups are left for the next cgrun ps or cgrun run, which the state, saved
// before anything started, leads to them.
func (r *runner) startGuard() {
	r.guardMu.Lock()
	defer r.guardMu.Unlock()
	if r.guard != nil || r.guardOff {
		return
	}
	g, err := guard.Start(r.site.Dir, fmt.Sprintf("%s-%d.", r.name, os.Getpid()))
	if err != nil {
		fmt.Fprintf(r.cfg.Log, "cgrun: warning: %v; if cgrun is SIGKILLed, the next cgrun ps or cgrun run removes what it left\n", err)
		return
	}
	r.guard = g
}

// releaseGuard ends the guard, or the wait for it, once cgrun has cleaned up itself.
func (r *runner) releaseGuard() {
	r.guardMu.Lock()
	defer r.guardMu.Unlock()
	r.guardOff = true
	if r.guardTimer != nil {
		r.guardTimer.Stop()
	}
	if r.guard != nil {
		r.guard.Release()
	}
}

// step hands ev, the end of a generation, to the core and does what it decides, through the
// restart delay: the core's adapter between generations. It returns why the next generation
// starts, or "" when the run ends, with its exit code, the signal to die of and the error.
// next is the --overlap generation that ev.Next names.
func (r *runner) step(ev any, next *generation) (why policy.Reason, code int, raise unix.Signal, err error) {
	for acts := r.core.Step(nil, ev); len(acts) > 0; {
		a := acts[0]
		acts = acts[1:]
		switch a := a.(type) {
		case core.ActLog:
			fmt.Fprint(r.cfg.Log, a.Line)
		case core.ActDropNext:
			next.drop()
		case core.ActShowEnded:
			r.updateState(func(*state.State) {}) // show the ended generation while cgrun waits
		case core.ActWait:
			acts = r.core.Step(nil, r.wait(a.After))
		case core.ActStart:
			return a.Why, 0, 0, nil
		case core.ActExit:
			return "", a.Code, a.Raise, a.Err
		default:
			panic(fmt.Sprintf("runner: no effect for %T", a))
		}
	}
	panic("runner: the core decided neither a start nor an exit")
}

// wait sleeps through a restart delay, and returns what ended it: the delay's end, or a
// signal to cgrun (SIGTERM, SIGINT, the recycle signal). A stop signal that came while the
// generation before was torn down wins over a delay that is over as it begins (--restart-delay
// 0): select would pick either.
func (r *runner) wait(d time.Duration) any {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case sig := <-r.sigs.stop:
		return core.EvSignal{Sig: sig.(unix.Signal)}
	default:
	}
	for {
		select {
		case <-t.C:
			return core.EvDelayOver{}
		case sig := <-r.sigs.stop:
			return core.EvSignal{Sig: sig.(unix.Signal)}
		case <-r.sigs.child:
			// Orphans of the ended generation, come back to cgrun (a subreaper): nothing waits
			// for their status, and the next generation's own children are not born yet.
			proc.ReapAll()
		case sig := <-r.sigs.other:
			if sig == exitcode.RecycleSignal {
				return core.EvSignal{Sig: sig.(unix.Signal)}
			}
		}
	}
}

// summarize prints the one line at exit, when any memory event happened or with --verbose.
func (r *runner) summarize(out outcome, restarts int, wall time.Duration) {
	r.log.Settle()
	if r.cfg.Verbose || r.log.MemoryEvents() || restarts > 0 {
		fmt.Fprintln(r.cfg.Log, summary(r.name, out, r.log, r.cfg.Limits, restarts, r.report.OOMKills, wall))
	}
}

// summary is the one line printed at exit: how the command ended and what memory it used.
// After restarts, "after" is the last generation's uptime, and the whole run's time (wall,
// since cgrun started) follows it.
func summary(name string, out outcome, log *eventlog.Log, lim cgroup.Limits, restarts int, oomKills uint64, wall time.Duration) string {
	peak := report.PeakText(out.peak, out.peakSource)
	max := "memory.max " + lim.MemoryMax.Human()
	if !lim.MemoryMax.Set || lim.MemoryMax.Max {
		max = "no memory.max"
	}
	after := out.uptime.Round(time.Millisecond).String()
	if restarts > 0 {
		after = fmt.Sprintf("%s (the last generation; the whole run %s)", after, wall.Round(time.Millisecond))
	}
	return fmt.Sprintf("cgrun: %s %s after %s; peak memory %s (%s), %d OOM kills, %d memory.high events, %d memory.max events, %d restarts",
		name, exitcode.Describe(out.status), after, peak, max,
		oomKills, log.Total(oomwatch.High), log.Total(oomwatch.Max), restarts)
}

package launch

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/launch/account"
	"github.com/cgrun/cgrun/launch/core"
	"github.com/cgrun/cgrun/launch/diagnose"
	"github.com/cgrun/cgrun/launch/exitcode"
	"github.com/cgrun/cgrun/launch/logline"
	"github.com/cgrun/cgrun/launch/policy"
	"github.com/cgrun/cgrun/launch/proc"
	"github.com/cgrun/cgrun/launch/report"
	"github.com/cgrun/cgrun/launch/state"
	"github.com/cgrun/cgrun/oomwatch"
	"golang.org/x/sys/unix"
)

// maxStateDumps is how many dumps the state file lists, the newest.
const maxStateDumps = 10

// dumping is a diagnostic dump in progress: cgrun waits for its files before it goes on.
type dumping struct {
	d       diagnose.Dump
	started time.Time
	w       *diagnose.Watcher
	done    chan dumpResult // Wait's answer, once
	then    func()          // what follows the dump: the recycle's stop; nil for none
	tick    *time.Ticker    // a look a second at memory.max while the dump is written
	atMax   diagnose.AtMax
	stuck   string // why the wait ended before the dump was complete; "" when it did not
}

type dumpResult struct {
	files    []diagnose.File
	complete bool
}

// startDump asks for a dump (--diagnose-signal or --diagnose-cmd) and starts waiting for its
// files; then runs once they are complete or --diagnose-timeout passed. With room, it first
// lifts memory.high and, with --diagnose-headroom, raises memory.max. It reports false when no
// dump was asked for: none is configured, one is in progress, or it could not be started.
func (g *generation) startDump(reason string, room bool, then func()) bool {
	cfg := g.run.cfg
	c := cfg.Diagnose
	if c.Enabled() && g.dumping != nil && then != nil && g.dumping.then == nil {
		g.dumping.then = then // a --diagnose-above dump in progress serves the recycle too
		g.liftThrottle()
		return true
	}
	if !c.Enabled() || g.dumping != nil {
		return false
	}
	warn := func(err error) bool {
		fmt.Fprintf(cfg.Log, "cgrun: warning: %s: no diagnostic dump: %v\n", g.run.name, err)
		return false
	}
	w, err := diagnose.Watch(g.run.dumpDir)
	if err != nil {
		return warn(err)
	}
	d := &dumping{started: time.Now(), w: w, done: make(chan dumpResult, 1), then: then,
		d: diagnose.Dump{Generation: g.Number, Reason: reason}, tick: time.NewTicker(time.Second)}
	d.d.Time = d.started.Format(time.RFC3339Nano)
	if room {
		var high, max uint64
		if l := cfg.Limits.MemoryHigh; l.Set && !l.Max {
			high = l.Value
		}
		if l := cfg.Limits.MemoryMax; l.Set && !l.Max {
			max = l.Value
		}
		if d.d.MemoryMax, d.d.Note, err = diagnose.Room(g.dir, g.leaf, g.run.h.Mount, high, max, c.Headroom); err != nil {
			fmt.Fprintf(cfg.Log, "cgrun: warning: %s: room for the dump: %v\n", g.run.name, err)
		}
	}
	how := exitcode.SignalName(c.Signal)
	if c.Signal != 0 {
		err = unix.Kill(g.pid, c.Signal)
	} else {
		how = "--diagnose-cmd"
		child := g.run.child(g.leaf)
		child.Env = append(child.Env, fmt.Sprintf("CGRUN_CHILD_PID=%d", g.pid), "CGRUN_DUMP_DIR="+c.Dir)
		_, err = proc.StartShell(c.Cmd, child) // reaped with the probes: its files say when it is done
	}
	if err != nil {
		w.Close()
		d.tick.Stop()
		return warn(err)
	}
	when := "before the recycle for " + reason
	if reason == "above" {
		when = "memory crossed --diagnose-above " + cgroup.FormatSize(c.Above)
	}
	fmt.Fprintf(cfg.Log, "cgrun: %s: generation %d: %s: taking a diagnostic dump (%s) into %s, waiting at most %v%s\n",
		g.run.name, g.Number, when, how, c.Dir, c.Timeout, parenthesized(d.d.Note))
	go func() {
		files, complete := w.Wait(d.started.Add(c.Timeout), diagnose.Quiet)
		d.done <- dumpResult{files, complete}
	}()
	g.dumping = d
	return true
}

// dumpDone is the channel that says the dump in progress ended; nil when there is none.
func (g *generation) dumpDone() <-chan dumpResult {
	if g.dumping == nil {
		return nil
	}
	return g.dumping.done
}

// dumpTick is the channel of the dump's look a second at memory.max; nil without a dump.
func (g *generation) dumpTick() <-chan time.Time {
	if g.dumping == nil {
		return nil
	}
	return g.dumping.tick.C
}

// checkDumpAtMax looks at the group while a dump is written: how long it sat at memory.max
// (diagnose.AtMax); the core decides when the dump is given up.
func (g *generation) checkDumpAtMax(now time.Time) {
	d := g.dumping
	cur, err1 := cgroup.MemoryCurrent(g.dir)
	limit, err2 := cgroup.MemoryMax(g.dir)
	events, err3 := cgroup.ReadKeyed(g.dir, "memory.events")
	if err1 != nil || err2 != nil || err3 != nil || limit.Max || d.stuck != "" {
		return
	}
	at := d.atMax.Observe(now, cur, limit.Value, events["max"])
	g.step(core.EvDumpAtMax{At: at, Limit: limit.Value, AboveOnly: d.d.Reason == "above" && d.then == nil, OnTmpfs: g.run.dumpDir.OnTmpfs()})
}

// dumpEnded records a dump whose wait ended, keeps the newest --diagnose-keep, and goes on with
// what was waiting for it.
func (g *generation) dumpEnded(res dumpResult) {
	d := g.dumping
	g.dumping = nil
	d.w.Close()
	d.tick.Stop()
	d.d.Files, d.d.Complete, d.d.Seconds = res.files, res.complete, time.Since(d.started).Seconds()
	names := fileNames(d.d.Brief())
	what := fmt.Sprintf("dump complete after %.1fs: %s", d.d.Seconds, names)
	switch {
	case d.stuck != "":
		d.d.Complete = false
		d.d.Note = strings.TrimPrefix(d.d.Note+"; "+d.stuck, "; ")
		what = fmt.Sprintf("dump not complete after %.1fs (at memory.max: more --diagnose-headroom): %s", d.d.Seconds, orNothing(names))
	case !d.d.Complete:
		what = fmt.Sprintf("dump not complete after %.1fs (--diagnose-timeout %v, or the child ended): %s",
			d.d.Seconds, g.run.cfg.Diagnose.Timeout, orNothing(names))
	}
	fmt.Fprintf(g.run.cfg.Log, "cgrun: %s: generation %d: %s\n", g.run.name, g.Number, what)
	g.dumped = &d.d
	g.run.dumps = append(g.run.dumps, d.d)
	var errs []error
	g.run.dumps, errs = diagnose.Prune(g.run.dumpDir, g.run.dumps, g.run.cfg.Diagnose.Keep)
	for _, err := range errs {
		fmt.Fprintf(g.run.cfg.Log, "cgrun: warning: --diagnose-keep: %v\n", err)
	}
	if g.run.cfg.Diagnose.Keep == 0 && len(g.run.dumps) > maxStateDumps {
		g.run.dumps = g.run.dumps[len(g.run.dumps)-maxStateDumps:] // nothing to remove: forget the oldest
	}
	// The state shows the newest few, each in brief: its size is bounded (see maxStateSize).
	var dumps []diagnose.Dump
	for _, d := range g.run.dumps[max(0, len(g.run.dumps)-maxStateDumps):] {
		dumps = append(dumps, d.Brief())
	}
	g.run.updateState(func(s *state.State) {
		s.Dumps = dumps
		s.Note("dump", what)
	})
	cur, _ := cgroup.MemoryCurrent(g.dir)
	g.run.log.Add(g.record(oomwatch.Event{Time: time.Now(), Kind: report.KindDiagnose, MemoryCurrent: cur}, func(r *report.Event) {
		// the recycle reason it came before, or "above" for --diagnose-above (docs/diagnose.md)
		r.Reason, r.Diagnosis = policy.Reason(d.d.Reason), &d.d
	}))
	if d.then != nil {
		d.then()
	}
}

// endDump ends a dump still in progress when the child exited: nothing follows it.
func (g *generation) endDump() {
	if g.dumping == nil {
		return
	}
	g.dumping.then = nil
	g.dumping.w.Close()
	g.dumpEnded(<-g.dumping.done)
}

// diagnoseAboveTick is the ticker that looks for --diagnose-above's mark once a second; nil
// without it.
func (g *generation) diagnoseAboveTick() *time.Ticker {
	if c := g.run.cfg.Diagnose; !c.Enabled() || c.Above == 0 {
		return nil
	}
	return time.NewTicker(time.Second)
}

// checkDiagnoseAbove reads memory.current for the once-a-second look for --diagnose-above's
// mark; the core decides whether the dump is due.
func (g *generation) checkDiagnoseAbove(now time.Time) {
	cur, err := cgroup.MemoryCurrent(g.dir)
	g.step(core.EvDiagnoseAbove{Now: now, Current: cur, Read: err == nil, Dumping: g.dumping != nil})
}

// pastGeneration is how an ended generation shows in the pace's history.
func pastGeneration(n int, out outcome) diagnose.Past {
	p := diagnose.Past{Generation: n, Seconds: out.uptime.Seconds(), Peak: out.peak, Reason: string(out.recycled)}
	switch {
	case out.oomKill > 0:
		p.Reason = "oom_kill"
	case out.recycled != "":
	case out.status.Signaled():
		p.Reason = "signal " + exitcode.SignalName(out.status.Signal())
	default:
		p.Reason = fmt.Sprintf("exit %d", out.status.ExitStatus())
	}
	return p
}

// fileNames lists a dump's files for a line on stderr and in the state's recent events: each
// name escaped (a newline or ESC in a name the command chose must not forge a line of cgrun's),
// and the count of those left out (see diagnose.Dump.Brief).
func fileNames(d diagnose.Dump) string {
	var names []string
	for _, f := range d.Files {
		names = append(names, fmt.Sprintf("%s (%s)", logline.Escape(f.Path), cgroup.FormatSize(uint64(f.Size))))
	}
	if d.FilesLeftOut > 0 {
		names = append(names, fmt.Sprintf("and %d more", d.FilesLeftOut))
	}
	return strings.Join(names, ", ")
}

func parenthesized(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

func orNothing(s string) string {
	if s == "" {
		return "nothing written"
	}
	return s
}

// dumpWriter is who writes the dumps: the --user, or cgrun's own user.
func dumpWriter(u *account.User) diagnose.Writer {
	if u != nil {
		return diagnose.Writer{UID: u.UID, Groups: append([]uint32{u.GID}, u.Groups...)}
	}
	w := diagnose.Writer{UID: uint32(os.Geteuid()), Groups: []uint32{uint32(os.Getegid())}}
	gids, _ := os.Getgroups()
	for _, g := range gids {
		w.Groups = append(w.Groups, uint32(g))
	}
	return w
}

// openDumpDir opens --diagnose-dir for the run (nil without a dump configured): see diagnose.Dir.
func openDumpDir(c diagnose.Config, u *account.User) (*diagnose.Dir, error) {
	if !c.Enabled() {
		return nil, nil
	}
	return diagnose.OpenDir(c.Dir, dumpWriter(u))
}

// CheckDumpDir says, before anything is opened or created, whether --diagnose-dir is a
// directory that the command's user u (nil: cgrun's own) can write and cgrun may remove dumps in.
func CheckDumpDir(c diagnose.Config, u *account.User) error {
	d, err := openDumpDir(c, u)
	d.Close()
	return err
}

// giveUpDump stops waiting for the dump in progress, stuck at memory.max: Wait returns what was
// written so far, and the dump is recorded as not complete, for why.
func (g *generation) giveUpDump(why string) {
	g.dumping.stuck = why
	g.dumping.w.Close()
}

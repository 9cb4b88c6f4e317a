package launch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/oomwatch"
	"golang.org/x/sys/unix"
)

// Config is one `cgrun run`.
type Config struct {
	Command  []string // the command and its arguments
	Env      []string // the command's environment
	Name     string   // names the payload group and cgrun's messages; default: the command's base name
	Limits   cgroup.Limits
	Parent   string             // --parent: nest under this group instead of cgrun's own
	Pressure []oomwatch.Trigger // PSI triggers on the payload group
	Events   io.Writer          // --events: JSON Lines of every event; nil for none
	Verbose  bool               // print the exit summary even when nothing happened
	NoClone3 bool               // start through the re-exec stub even where clone3 works
	Log      io.Writer          // where cgrun's own lines go (stderr)
}

// teardownTimeout bounds how long cgrun waits for a killed group to empty.
const teardownTimeout = 10 * time.Second

// Run starts the command in a fresh group, supervises it until it exits, removes every trace of
// it, and returns the exit code a shell would show for it. An error means cgrun itself failed;
// Code(err) is the exit code for it.
func Run(cfg Config) (int, error) {
	if len(cfg.Command) == 0 {
		return ExitFailure, errors.New("no command given: cgrun run [flags] -- COMMAND [ARG...]")
	}
	name := cfg.Name
	if name == "" {
		name = DefaultName(cfg.Command[0])
	}
	if err := ValidName(name); err != nil {
		return ExitFailure, err
	}
	if err := cfg.Limits.Validate(); err != nil {
		return ExitFailure, err
	}
	path, err := LookPath(cfg.Command[0])
	if err != nil {
		return Code(err), err
	}
	h, err := cgroup.Detect()
	if err != nil {
		return ExitFailure, err
	}
	site, err := place(h, cfg.Parent)
	if err != nil {
		return ExitFailure, err
	}
	if err := setSubreaper(); err != nil {
		_ = site.Release()
		return ExitFailure, fmt.Errorf("become a subreaper: %w", err)
	}
	sigs, stop := notifySignals()
	log := newEventLog(name, cfg.Limits, cfg.Events, cfg.Log)
	g := &generation{name: name, number: 1, h: h, cfg: &cfg, path: path, log: log, sigs: sigs,
		dir: filepath.Join(site.Dir, fmt.Sprintf("%s-%d.%d", name, os.Getpid(), 1))}
	out, err := g.run()
	stop()
	log.settle()
	if err == nil && (cfg.Verbose || log.memoryEvents()) {
		fmt.Fprintln(cfg.Log, summary(name, out, log, cfg.Limits))
	}
	if rerr := site.Release(); rerr != nil {
		fmt.Fprintf(cfg.Log, "cgrun: warning: %v\n", rerr)
	}
	if err != nil {
		return Code(err), err
	}
	return StatusCode(out.status), nil
}

// place picks where payload groups go: under --parent when given, else in cgrun's own group.
func place(h cgroup.Hierarchy, parent string) (*cgroup.Site, error) {
	if parent != "" {
		return cgroup.Under(h, parent)
	}
	return cgroup.Nest(h, fmt.Sprintf("cgrun-%d", os.Getpid()))
}

// generation is one run of the command in one fresh group.
type generation struct {
	name   string
	number int
	dir    string
	h      cgroup.Hierarchy
	cfg    *Config
	path   string
	log    *eventLog
	sigs   <-chan os.Signal
	pid    int
}

// outcome is how a generation ended.
type outcome struct {
	status  unix.WaitStatus
	started time.Time
	uptime  time.Duration
	peak    uint64 // memory.peak of the group; 0 where the kernel has none
	oomKill uint64
}

// run makes the group, starts the child in it, supervises it until it exits and removes the
// group with all that is left in it.
func (g *generation) run() (out outcome, err error) {
	if err := cgroup.Create(g.dir); err != nil {
		return out, err
	}
	defer func() {
		if terr := g.teardown(); terr != nil {
			fmt.Fprintf(g.cfg.Log, "cgrun: warning: %v\n", terr)
		}
	}()
	if err := g.cfg.Limits.Apply(g.dir, g.h); err != nil {
		return out, err
	}
	w, err := oomwatch.New(g.dir, g.h.Rel(g.dir), oomwatch.Options{Triggers: g.cfg.Pressure})
	if err != nil {
		return out, fmt.Errorf("watch %s: %w", g.dir, err)
	}
	defer w.Close()
	if n := w.Notice(); n != nil && g.number == 1 {
		fmt.Fprintf(g.cfg.Log, "cgrun: notice: %v\n", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan oomwatch.Event, 64)
	go func() {
		defer close(events)
		_ = w.Run(ctx, func(ev oomwatch.Event) { events <- ev })
	}()
	stopWatching := func() {
		cancel() // the watcher reads every counter once more, then closes events
		for ev := range events {
			g.event(ev)
		}
	}

	out.started = time.Now()
	g.pid, err = Start(Child{Path: g.path, Argv: g.cfg.Command, Env: g.cfg.Env, GroupDir: g.dir, NoClone3: g.cfg.NoClone3})
	if err != nil {
		stopWatching()
		return out, err
	}
	g.log.add(g.record(oomwatch.Event{Time: out.started, Kind: kindStart}, func(r *record) { r.Command = g.cfg.Command }))
	out.status = g.supervise(events)
	out.uptime = time.Since(out.started)
	reclaimForeground()
	stopWatching()
	g.finish(&out)
	return out, nil
}

// supervise forwards signals to the child, logs events, and reaps until the child has exited.
func (g *generation) supervise(events <-chan oomwatch.Event) unix.WaitStatus {
	// The child may have exited before SIGCHLD was noticed; look once first.
	if ws, done := reap(g.pid); done {
		return ws
	}
	for {
		select {
		case sig := <-g.sigs:
			switch sig {
			case unix.SIGCHLD:
				if ws, done := reap(g.pid); done {
					return ws
				}
			default:
				_ = unix.Kill(g.pid, sig.(unix.Signal)) // ESRCH: it is exiting; SIGCHLD follows
			}
		case ev := <-events:
			g.event(ev)
		}
	}
}

func (g *generation) event(ev oomwatch.Event) { g.log.add(g.record(ev, nil)) }

// record wraps an event with who it concerns; more fills in the fields of its kind.
func (g *generation) record(ev oomwatch.Event, more func(*record)) record {
	if ev.Group == "" {
		ev.Group = g.h.Rel(g.dir)
	}
	r := record{Event: ev, Name: g.name, Pid: g.pid, Generation: g.number}
	if l := g.cfg.Limits.MemoryHigh; l.Set && !l.Max {
		r.MemoryHigh = &l.Value
	}
	if l := g.cfg.Limits.MemoryMax; l.Set && !l.Max {
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
	counters, _ := cgroup.ReadKeyed(g.dir, "memory.events")
	out.oomKill = counters["oom_kill"]
	out.peak, _ = cgroup.MemoryPeak(g.dir)
	code := StatusCode(out.status)
	g.log.settle()
	g.log.add(g.record(oomwatch.Event{Time: time.Now(), Kind: kindExit, MemoryPeak: out.peak}, func(r *record) {
		r.ExitCode, r.Uptime, r.OOMKills, r.MemoryEvents = &code, out.uptime.Seconds(), &out.oomKill, counters
		if out.status.Signaled() {
			r.Signal = signalName(out.status.Signal())
		}
	}))
	if out.oomKill == 0 {
		return
	}
	max := "max"
	if m, err := cgroup.MemoryMax(g.dir); err == nil {
		max = m.Human()
	}
	peak := "unknown"
	if out.peak > 0 {
		peak = cgroup.FormatSize(out.peak)
	}
	if out.status.Signaled() && out.status.Signal() == unix.SIGKILL {
		fmt.Fprintf(g.cfg.Log, "cgrun: %s killed by the OOM killer (memory.max %s, peak %s)\n", g.name, max, peak)
		return
	}
	fmt.Fprintf(g.cfg.Log, "cgrun: the OOM killer killed %d process(es) in %s's group (memory.max %s, peak %s)\n", out.oomKill, g.name, max, peak)
}

// teardown kills whatever is left in the group, waits until it is empty, reaps the orphans that
// came back to cgrun, and removes the group.
func (g *generation) teardown() error {
	ctx, cancel := context.WithTimeout(context.Background(), teardownTimeout)
	defer cancel()
	kerr := cgroup.Kill(ctx, g.dir)
	reap(0)
	if kerr != nil {
		return fmt.Errorf("kill what is left in %s: %w", g.dir, kerr)
	}
	return cgroup.Remove(g.dir)
}

// summary is the one line printed at exit: how the command ended and what memory it used.
func summary(name string, out outcome, log *eventLog, lim cgroup.Limits) string {
	how := fmt.Sprintf("exited with status %d", out.status.ExitStatus())
	if out.status.Signaled() {
		how = "was killed by " + signalName(out.status.Signal())
	}
	peak := "unknown"
	if out.peak > 0 {
		peak = cgroup.FormatSize(out.peak)
	}
	return fmt.Sprintf("cgrun: %s %s after %s; peak memory %s (memory.max %s), %d OOM kills, %d memory.high events, %d memory.max events",
		name, how, out.uptime.Round(time.Millisecond), peak, lim.MemoryMax.Human(), out.oomKill, log.total(oomwatch.High), log.total(oomwatch.Max))
}

// ValidName checks a --name: it becomes part of a directory name in cgroupfs.
func ValidName(name string) error {
	ok := len(name) >= 1 && len(name) <= 64 && !strings.HasPrefix(name, "cgroup.")
	for i := 0; ok && i < len(name); i++ {
		ok = nameChar(name[i]) && (i > 0 || name[i] != '.' && name[i] != '-')
	}
	if !ok {
		return fmt.Errorf("--name %q: use 1 to 64 letters, digits and _ . @ : + -, not starting with . or -", name)
	}
	return nil
}

func nameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_.@:+-", c) >= 0
}

// DefaultName derives a group name from the command: its base name, with characters cgroupfs
// names should not carry replaced by "_".
func DefaultName(command string) string {
	base := filepath.Base(command)
	b := []byte(base)
	for i, c := range b {
		if !nameChar(c) {
			b[i] = '_'
		}
	}
	if len(b) == 0 || b[0] == '.' || b[0] == '-' {
		b = append([]byte("_"), b...)
	}
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}

package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/launch"
	"github.com/cgrun/cgrun/launch/account"
	"github.com/cgrun/cgrun/launch/atomicfile"
	"github.com/cgrun/cgrun/launch/diagnose"
	"github.com/cgrun/cgrun/launch/exitcode"
	"github.com/cgrun/cgrun/launch/listen"
	"github.com/cgrun/cgrun/launch/policy"
	"github.com/cgrun/cgrun/launch/report"
	"github.com/cgrun/cgrun/oomwatch"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"
)

// runFlags are the flags of `cgrun run`, parsed into their types as they are set.
type runFlags struct {
	limits                cgroup.Limits // the sizes, pids and CPU flags; --resources underneath
	oomGroup, notifyReady bool
	name, parent          string
	events                string
	pressure              []oomwatch.Trigger
	verbose               bool

	resources, metricsAddr string
	report, recordBaseline string
	baseline               string
	tolerance              float64
	policy                 policy.Policy

	user          string
	allowNewPrivs bool
	diagnose      diagnose.Config
	listen        []listen.Addr
	advise        bool
	sharedShm     bool
}

func newRunFlagSet(f *runFlags) *pflag.FlagSet {
	fs := pflag.NewFlagSet("cgrun run", pflag.ContinueOnError)
	fs.SetInterspersed(false) // everything after COMMAND belongs to COMMAND
	// What a percentage is of, read only when one is given.
	l, phys := &f.limits, sync.OnceValue(memoryAvailable)
	parsedVar(fs, &l.MemoryMax, "SIZE", "", size(phys), "memory-max", "hard limit (memory.max): past it the group is reclaimed, then OOM-killed")
	parsedVar(fs, &l.MemoryHigh, "SIZE", "", size(phys), "memory-high", "throttle limit (memory.high): past it the group is slowed and reclaimed; must not exceed --memory-max")
	parsedVar(fs, &l.MemoryLow, "SIZE", "", size(phys), "memory-low", "protected memory (memory.low): kept from reclaim while the host has memory elsewhere")
	parsedVar(fs, &l.MemorySwapMax, "SIZE", "", size(phys), "memory-swap-max", "swap limit (memory.swap.max); 0 keeps the group out of swap")
	parsedVar(fs, &l.PidsMax, "N", "", told(cgroup.ParseCount), "pids-max", "most processes and threads at once (pids.max): a number or max")
	textVar(fs, &f.name, "name", "NAME", "", "name of the group and of cgrun's messages (default: the command's base name)")
	textVar(fs, &f.parent, "parent", "GROUP", "", "nest under this existing group (a path under the cgroup2 mount) instead of cgrun's own")
	fs.BoolVar(&f.oomGroup, "oom-group", true, "on OOM kill the whole group, not one process (memory.oom.group)")
	textVar(fs, &f.events, "events", "TARGET", "", "write every event as a JSON line to FILE (appended; a symlink, hard link or other user's file there is refused), - (stdout) or fd:N")
	fs.Var(triggersValue{&f.pressure}, "pressure", "report memory pressure when a PSI `TRIGGER` fires, e.g. 'some 150ms/1s' (repeatable)")
	fs.BoolVarP(&f.verbose, "verbose", "v", false, "print the exit summary even when no memory event happened")
	textVar(fs, &f.metricsAddr, "metrics-addr", "ADDR", "", "serve Prometheus metrics on HOST:PORT (:PORT listens on 127.0.0.1)")
	textVar(fs, &f.user, "user", "USER[:GROUP]", "", "run the command and health probes as USER[:GROUP] (www-data, 33:33) with its groups and HOME, and no inherited fd but stdio and --listen sockets; cgrun stays root and keeps the group")
	fs.BoolVar(&f.allowNewPrivs, "allow-new-privs", false, "with --user, let the command gain privileges through setuid binaries such as sudo (no_new_privs is set otherwise)")
	fs.Var(listenValue{&f.listen}, "listen", "bind `ADDR` (:PORT, HOST:PORT, [IPv6]:PORT or unix:/PATH) once and hand it to every generation (fd 3, 4, ...; LISTEN_FDS, FPM_SOCKETS): no connection is refused during a recycle (repeatable)")
	fs.BoolVar(&f.advise, "advise", false, "probe the memory the command needs (squeezing memory.high while its memory pressure stays low; memory.max untouched) and advise --memory-max and --memory-high: in status, ps --json, --report, the metrics and a line at exit")
	fs.BoolVar(&f.sharedShm, "shared-shm", false, "leave the command the host's /dev/shm; without it a root cgrun gives each generation a private one, a tmpfs of --memory-max bytes (half of RAM without one) charged to the group and gone with the generation")
	fs.BoolVar(&f.notifyReady, "notify-ready", false, "in a Type=notify unit, tell systemd READY=1 once the command runs, or once a health probe passed (for apps that do not speak sd_notify)")

	textVar(fs, &f.resources, "resources", "FILE", "", "read limits from an OCI runtime-spec LinuxResources JSON file; flags override it")
	parsedVar(fs, &l.CPUMax, "PERCENT", "", cpuQuota, "cpu-max", "CPU limit as systemd's CPUQuota=: 150% is one and a half CPUs (cpu.max)")
	parsedVar(fs, &l.CPUWeight, "N", "", told(cgroup.ParseCPUWeight), "cpu-weight", "CPU weight from 1 to 10000, default 100 (cpu.weight)")
	textVar(fs, &f.report, "report", "FILE", "", "write a JSON report of the whole run to FILE (or - for stdout) when cgrun exits, beside it and renamed over it (a symlink or hard link at FILE is refused)")
	textVar(fs, &f.recordBaseline, "record-baseline", "FILE", "", "record the run's memory peak and steady state as a baseline in FILE")
	textVar(fs, &f.baseline, "baseline", "FILE", "", "exit 121 when the memory peak exceeds the baseline in FILE by more than --baseline-tolerance")
	f.tolerance = 5
	parsedVar(fs, &f.tolerance, "PERCENT", "5%", percent, "baseline-tolerance", "how far over the baseline's peak a run may go")

	p := &f.policy
	*p = policy.DefaultPolicy()
	fs.Var(restartValue{&p.Restart}, "restart", "when a generation that ended gets a new one: never, on-oom (an OOM kill, or a runtime's abort at its own limit: SIGABRT, exit 134), on-failure or always")
	fs.Var(signalValue{&p.StopSignal}, "stop-signal", "signal for a graceful stop of the child (recycle, or SIGTERM/SIGINT to cgrun)")
	durationVar(fs, &p.StopTimeout, "stop-timeout", "after the stop signal, kill the whole group after this long")
	durationVar(fs, &p.MaxLifetime, "max-lifetime", "recycle each generation after this long (0: never)")
	durationVar(fs, &p.LifetimeJitter, "lifetime-jitter", "add a random part of this to each --max-lifetime, so a fleet does not recycle at once")
	parsedVar(fs, &p.RecycleAbove, "SIZE", "", size(phys), "recycle-above", "recycle when memory stays at or above SIZE or PERCENT for --recycle-after (sets --memory-high to it when unset)")
	durationVar(fs, &p.RecycleAfter, "recycle-after", "how long memory must stay at the --recycle-above mark")
	fs.Var(&highRateValue{n: &p.RecycleOnHigh, window: &p.HighWindow}, "recycle-on-high", "recycle after N memory.high events within a window: N or N/DURATION (default window 10s)")
	fs.BoolVar(&p.RecycleStall, "recycle-on-stall", false, "recycle a generation stuck at memory.high or memory.max (it is reported even without this flag)")
	fs.Var(thrashValue{&p.Thrash}, "thrash", "recycle a generation that thrashes at memory.max (stalled on memory, not merely there) at once, with reason thrash: on by default wherever --restart restarts an OOM kill; off turns it off; settings tune it: 'pressure=full 100ms/1s' (the PSI trigger), 'refaults=100/s,for=100ms' (without PSI: refaults a second, and the window memory.stat is judged over)")
	fs.Var(triggersValue{&p.RecyclePressure}, "recycle-on-pressure", "recycle when this PSI `TRIGGER` fires, e.g. 'full 500ms/2s' (repeatable; needs PSI)")
	textVar(fs, &p.Health.Cmd, "health-cmd", "COMMAND", "", "health probe: a shell command run in the group; exit 0 is healthy")
	textVar(fs, &p.Health.URL, "health-http", "URL", "", "health probe: GET this URL; 2xx or 3xx is healthy")
	durationVar(fs, &p.Health.Interval, "health-interval", "time between health probes")
	durationVar(fs, &p.Health.Timeout, "health-timeout", "a probe that takes longer has failed")
	countVar(fs, &p.Health.Retries, "health-retries", "failed probes in a row that recycle the generation")
	durationVar(fs, &p.Health.StartPeriod, "health-start-period", "probe failures in a generation's first this-long do not count")
	fs.BoolVar(&p.Overlap, "overlap", false, "start the next generation first and stop the old one once the next says READY=1 (sd_notify) or passes --health-cmd (for recycles of one that still serves: lifetime, memory, pressure, request)")
	durationVar(fs, &p.ReadyTimeout, "ready-timeout", "with --overlap, give up the overlap and recycle as without it when the next generation's probe has not passed after this long")
	durationVar(fs, &p.RestartDelay, "restart-delay", "wait this long before a restart; doubles after each generation shorter than --min-uptime")
	durationVar(fs, &p.RestartDelayMax, "restart-delay-max", "the longest restart delay")
	durationVar(fs, &p.MinUptime, "min-uptime", "a generation that ran this long resets the restart delay")
	countVar(fs, &p.MaxRestarts, "max-restarts", "give up (exit 122) after this many restarts within --restart-window; 0: never give up")
	durationVar(fs, &p.RestartWindow, "restart-window", "the window --max-restarts counts in")

	d := &f.diagnose
	d.Timeout, d.Keep, d.Interval = diagnose.DefaultTimeout, diagnose.DefaultKeep, diagnose.DefaultInterval
	fs.Var(optSignalValue{&d.Signal}, "diagnose-signal", "before a recycle for memory, send SIGNAL to the command to make it dump (SIGUSR2 for node --heapsnapshot-signal=SIGUSR2)")
	textVar(fs, &d.Cmd, "diagnose-cmd", "COMMAND", "", "before a recycle for memory, run this shell command in the group to take a dump ($CGRUN_CHILD_PID, $CGRUN_DUMP_DIR)")
	textVar(fs, &d.Dir, "diagnose-dir", "DIR", "", "where the dump lands; cgrun waits until the files written there are complete before the stop")
	durationVar(fs, &d.Timeout, "diagnose-timeout", "the longest wait for a dump; the generation is stopped then anyway")
	parsedVar(fs, &d.Headroom, "SIZE", "", amount(phys), "diagnose-headroom", "raise memory.max by at most SIZE for the dump (never above what the parent group allows)")
	countVar(fs, &d.Keep, "diagnose-keep", "keep the newest N dumps cgrun asked for, remove older ones; 0 keeps all")
	parsedVar(fs, &d.Above, "SIZE", "", amount(phys), "diagnose-above", "dump once per generation, without recycling, when memory first crosses SIZE or PERCENT")
	durationVar(fs, &d.Interval, "diagnose-interval", "at most one --diagnose-above dump per this long, across generations")
	return fs
}

func runCommand(args, env []string, stdout, stderr io.Writer) int {
	var f runFlags
	fs := newRunFlagSet(&f)
	return launchCommand(fs, &f, nil, args, env, stdout, stderr)
}

// launchCommand parses run's flags (and advise's, when adv is given) and runs the command.
func launchCommand(fs *pflag.FlagSet, f *runFlags, adv *adviseFlags, args, env []string, stdout, stderr io.Writer) int {
	fs.SetOutput(io.Discard)
	help := fs.BoolP("help", "h", false, "show this help")
	var fromEnv map[string]string // the flags a CGRUN_ variable set, and the variable
	fail := func(err error) int {
		fmt.Fprintf(stderr, "cgrun: %s\n", namedByEnv(err.Error(), fromEnv))
		return exitcode.Of(err)
	}
	if err := fs.Parse(args); err != nil {
		if bad, ok := badValue(err, "--"); ok {
			return fail(bad)
		}
		err = unknownFlag(fs, err)
		if adv != nil {
			return fail(fmt.Errorf("%v; see 'cgrun advise --help'", err))
		}
		return fail(fmt.Errorf("%v; see 'cgrun run --help'", err))
	}
	if *help {
		if adv != nil {
			writeAdviseHelp(stdout, fs)
			return 0
		}
		writeRunHelp(stdout, fs)
		return 0
	}
	var err error
	if fromEnv, err = applyEnv(fs, env); err != nil {
		return fail(err)
	}
	for _, w := range misspeltVars(fs, env) {
		fmt.Fprintf(stderr, "cgrun: warning: %s\n", w)
	}
	cmd := fs.Args()
	if len(cmd) == 0 && adv != nil {
		return fail(errors.New("no command given: cgrun advise [--for DUR] [--json] [run flags] -- COMMAND [ARG...]"))
	}
	if len(cmd) == 0 {
		return fail(errors.New("no command given: cgrun run [flags] -- COMMAND [ARG...]"))
	}
	if w := flagsAfterCommand(fs, cmd); w != "" {
		fmt.Fprintf(stderr, "cgrun: warning: %s\n", w)
	}
	origin := func(flag string) string {
		if v, ok := fromEnv[flag]; ok {
			return v
		}
		return "--" + flag
	}
	limits, err := f.limitsOver(origin, fs.Changed)
	if err != nil {
		return fail(err)
	}
	gate, err := f.baselineGate(origin)
	if err != nil {
		return fail(err)
	}
	user, err := f.lookupUser(origin, fs.Changed)
	if err != nil {
		return fail(err)
	}
	cfg := launch.Config{
		Command:     cmd,
		Env:         childEnv(env),
		Name:        f.name,
		Limits:      limits,
		Policy:      f.policy,
		Parent:      f.parent,
		Pressure:    f.pressure,
		MetricsAddr: f.metricsAddr,
		NotifyReady: f.notifyReady,

		RecordBaseline:    f.recordBaseline,
		Baseline:          gate,
		BaselineFile:      f.baseline,
		BaselineTolerance: f.tolerance,
		Verbose:           f.verbose,
		NoClone3:          envValue(env, "CGRUN_NO_CLONE3") == "1",
		User:              user,
		AllowNewPrivs:     f.allowNewPrivs,
		Diagnose:          f.diagnose,
		Listen:            f.listen,
		SharedShm:         f.sharedShm,
		Log:               stderr,
	}
	if f.advise || adv != nil {
		cfg.Advise = &launch.Advise{Trace: envValue(env, "CGRUN_ADVISE_TRACE")}
	}
	var advised *advice
	if adv != nil {
		cfg.Advise.For = adv.window
		advised = &advice{json: adv.json, stdout: stdout}
		cfg.Advise.Done = advised.done
	}
	// Every check that needs no group, before --events and --report are created or truncated.
	if err := f.outputsApart(origin); err != nil {
		return fail(err)
	}
	if err := launch.Validate(&cfg); err != nil {
		return fail(err)
	}
	var closeEvents, closeReport func()
	var eventsCreated func() // an --events file this start created, removed if the start fails
	if cfg.Events, closeEvents, eventsCreated, err = openEvents(f.events, stdout); err != nil {
		return fail(fmt.Errorf("%s: %w", origin("events"), err))
	}
	defer closeEvents()
	if cfg.Report, closeReport, err = openReport(f.report, stdout); err != nil {
		return fail(fmt.Errorf("%s: %w", origin("report"), err))
	}
	defer closeReport()
	code, err := launch.Run(cfg)
	if err != nil {
		eventsCreated()
		return fail(err)
	}
	if advised != nil {
		return advised.exitCode(code, stderr)
	}
	return code
}

// lookupUser resolves --user; launch.Validate then checks, before anything is opened or
// created, that cgrun can switch to it. An empty --user (an unset ${APP_USER} in a unit) is refused rather than read as
// "no --user", which would run the command as root; --allow-new-privs only means something
// with a --user, so it is refused without one.
func (f *runFlags) lookupUser(origin func(flag string) string, changed func(flag string) bool) (*account.User, error) {
	if f.user == "" {
		if changed("user") {
			return nil, fmt.Errorf("%s is empty: give USER[:GROUP] (e.g. www-data or 33:33), or leave it out to run the command as cgrun's own user", origin("user"))
		}
		if f.allowNewPrivs {
			return nil, fmt.Errorf("%s without --user: the command runs as cgrun's own user and no_new_privs is only set with --user; drop it, or add --user USER", origin("allow-new-privs"))
		}
		return nil, nil
	}
	user, err := account.Lookup(f.user)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", origin("user"), f.user, err)
	}
	return user, nil // whether cgrun can switch to it: launch.Validate
}

// namedByEnv names the variable in a line that begins with a flag a CGRUN_ variable set
// ("--restart \"bogus\": …" from CGRUN_RESTART=bogus): checks made after the flags are read word
// their lines by the flag.
func namedByEnv(line string, fromEnv map[string]string) string {
	for flag, name := range fromEnv {
		p := "--" + flag
		if rest, ok := strings.CutPrefix(line, p); ok && rest != "" && (rest[0] == ' ' || rest[0] == ':') {
			return name + rest
		}
	}
	return line
}

// badValue is the line for a typed flag's bad value, when err is one: the flag is named as
// prefix+name ("--memory-max"), or by its variable when prefix is "CGRUN_".
func badValue(err error, prefix string) (error, bool) {
	var iv *pflag.InvalidValueError
	var ve *valueError
	if !errors.As(err, &iv) || !errors.As(err, &ve) {
		return nil, false
	}
	origin := "--" + iv.GetFlag().Name
	if prefix == "CGRUN_" {
		origin = envName(iv.GetFlag().Name)
	}
	return ve.tell(origin, iv.GetValue()), true
}

// limitsOver lays the limit flags over the --resources file, if any: the flags given win.
func (f *runFlags) limitsOver(origin func(flag string) string, changed func(flag string) bool) (cgroup.Limits, error) {
	l := cgroup.Limits{OOMGroup: true}
	if f.resources != "" {
		b, err := readResources(f.resources)
		if err != nil {
			return l, fmt.Errorf("%s %w", origin("resources"), err)
		}
		if l, err = cgroup.ParseOCIResources(b, memoryAvailable()); err != nil {
			return l, fmt.Errorf("%s %s: %w", origin("resources"), f.resources, err)
		}
	}
	if changed("oom-group") {
		l.OOMGroup = f.oomGroup
	}
	if f.limits.CPUMax != nil {
		l.CPUMax = f.limits.CPUMax
	}
	if f.limits.CPUWeight != 0 {
		l.CPUWeight = f.limits.CPUWeight
	}
	for _, s := range []struct{ flag, into *cgroup.Limit }{
		{&f.limits.MemoryMax, &l.MemoryMax},
		{&f.limits.MemoryHigh, &l.MemoryHigh},
		{&f.limits.MemoryLow, &l.MemoryLow},
		{&f.limits.MemorySwapMax, &l.MemorySwapMax},
		{&f.limits.PidsMax, &l.PidsMax},
	} {
		if s.flag.Set {
			*s.into = *s.flag
		}
	}
	return l, l.Validate()
}

// memoryAvailable is what a size given as a percentage is of: the machine's RAM, or a
// container's memory limit where that is lower — the memory.max at the root of the cgroup2
// mount, which in a container's cgroup namespace is the container's own group (a host's root
// group has none). Every group cgrun makes lies under it: --memory-max 75% in `docker run
// --memory 1g` is 768M, not 75% of the host.
func memoryAvailable() uint64 {
	m := physicalMemory()
	if h, err := cgroup.Detect(); err == nil {
		if n, ok, err := cgroup.ReadUint(h.Mount, "memory.max"); err == nil && ok && n > 0 {
			m = min(m, n)
		}
	}
	return m
}

// physicalMemory is the machine's RAM in bytes.
func physicalMemory() uint64 {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return 0
	}
	return uint64(si.Totalram) * uint64(si.Unit)
}

// envName is the variable that can set a flag: --memory-max is CGRUN_MEMORY_MAX.
func envName(flag string) string {
	return "CGRUN_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// applyEnv sets every flag not given on the command line from its CGRUN_ variable, if set, and
// returns the variables it used, by flag name.
func applyEnv(fs *pflag.FlagSet, env []string) (map[string]string, error) {
	var err error
	used := map[string]string{}
	fs.VisitAll(func(fl *pflag.Flag) {
		if err != nil || fl.Changed || fl.Name == "help" {
			return
		}
		v, ok := lookupEnv(env, envName(fl.Name))
		if !ok {
			return
		}
		if serr := fs.Set(fl.Name, v); serr != nil {
			if bad, ok := badValue(serr, "CGRUN_"); ok {
				err = bad
			} else {
				err = fmt.Errorf("%s=%q: %v", envName(fl.Name), v, serr)
			}
		}
		used[fl.Name] = envName(fl.Name)
	})
	return used, err
}

// childEnv is cgrun's environment less the CGRUN_ variables that configured this run, so that a
// cgrun the command starts in turn does not inherit them.
func childEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "CGRUN_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func lookupEnv(env []string, key string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

func envValue(env []string, key string) string {
	v, _ := lookupEnv(env, key)
	return v
}

// openEvents opens the --events target: a file (appended to), "-" for stdout, or "fd:N" for an
// inherited file descriptor. An empty target is no stream.
func openEvents(target string, stdout io.Writer) (w io.Writer, closeIt, unmake func(), err error) {
	nop := func() {}
	switch {
	case target == "":
		return nil, nop, nop, nil
	case target == "-":
		return stdout, nop, nop, nil
	case strings.HasPrefix(target, "fd:"):
		fd, err := strconv.Atoi(target[3:])
		if err != nil || fd < 0 {
			return nil, nop, nop, fmt.Errorf("%q: want fd:N with N a file descriptor number", target)
		}
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		if err != nil {
			return nil, nop, nop, fmt.Errorf("%q: file descriptor %d is not open (%v); open it in the shell, e.g. 3>events.jsonl", target, fd, err)
		}
		if fl&unix.O_ACCMODE == unix.O_RDONLY {
			return nil, nop, nop, fmt.Errorf("%q: file descriptor %d is open for reading only; open it for writing in the shell, e.g. %d>events.jsonl", target, fd, fd)
		}
		unix.CloseOnExec(fd) // the stream is cgrun's, not the command's
		return os.NewFile(uintptr(fd), target), nop, nop, nil
	}
	// Through the directory, never through a symlink or into another file's hard link
	// (atomicfile.Dir.Append): the --user may write the directory.
	// O_NONBLOCK: a FIFO that no one reads yet must not hold up the start. Go's poller then
	// parks the writer goroutine (never the supervisor) on a full pipe.
	dir, name, err := atomicfile.Split(target)
	if err != nil {
		return nil, nop, nop, missingDir(target, err)
	}
	existed := dir.Exists(name)
	f, err := dir.Append(name)
	if errors.Is(err, unix.ENXIO) {
		// A FIFO without a reader: open it on the stream's first write, which happens on the
		// stream's own goroutine; lines wait in its queue (or are dropped and counted) meanwhile.
		l := &lateFile{dir: dir, name: name}
		return l, l.close, nop, nil
	}
	if err != nil {
		dir.Close()
		return nil, nop, nop, err
	}
	unmake = nop
	if !existed {
		unmake = func() { _ = dir.RemoveUnwritten(name, f) }
	}
	return f, func() { f.Close(); dir.Close() }, unmake, nil
}

// missingDir tells an open that failed for want of the file's directory as what to create;
// other errors stay as they are.
func missingDir(target string, err error) error {
	dir := filepath.Dir(target)
	if _, serr := os.Stat(dir); errors.Is(err, os.ErrNotExist) && errors.Is(serr, os.ErrNotExist) {
		return fmt.Errorf("%s: the directory %s does not exist; create it first (mkdir -p %s) or name a file in a directory that exists", target, dir, dir)
	}
	return err
}

// lateFile is a FIFO opened (blocking, until a reader comes) on the first write, in the
// directory opened at the start, and only while it is still a FIFO.
type lateFile struct {
	dir  *atomicfile.Dir
	name string
	mu   sync.Mutex
	f    *os.File
}

func (l *lateFile) Write(b []byte) (int, error) {
	l.mu.Lock()
	f := l.f
	l.mu.Unlock()
	if f == nil {
		var err error
		if f, err = l.dir.OpenFIFO(l.name); err != nil {
			return 0, err
		}
		l.mu.Lock()
		l.f = f
		l.mu.Unlock()
	}
	return f.Write(b)
}

func (l *lateFile) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		l.f.Close()
	}
	l.dir.Close()
}

// maxResourcesSize bounds how much of a --resources file is read; a LinuxResources object is a
// few hundred bytes.
const maxResourcesSize = 1 << 20

// readResources reads the --resources file: a regular file of at most maxResourcesSize bytes,
// so that /dev/zero, a FIFO with no writer (opened O_NONBLOCK, then refused) or a runaway file
// is one line at the start, not a hang.
func readResources(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: no such file; give the path of an OCI runtime-spec LinuxResources JSON file (see docs/limits.md)", path)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	switch {
	case err != nil:
		return nil, err
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%s: not a regular file (%s); give a JSON file, which is read whole at the start", path, fileKind(fi.Mode()))
	case fi.Size() > maxResourcesSize:
		return nil, fmt.Errorf("%s: %d bytes, more than %d; a LinuxResources object is a few hundred", path, fi.Size(), maxResourcesSize)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxResourcesSize+1))
	if err == nil && len(b) > maxResourcesSize {
		err = fmt.Errorf("%s: more than %d bytes; a LinuxResources object is a few hundred", path, maxResourcesSize)
	}
	return b, err
}

// fileKind names what a non-regular file is, for a refusal.
func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	case m&os.ModeSocket != 0:
		return "a socket"
	}
	return "not a plain file"
}

// outputsApart refuses two of --events, --report and --record-baseline that name one file: the
// report, renamed over it at exit, would take the place of every event line.
func (f *runFlags) outputsApart(origin func(string) string) error {
	outs := []struct{ flag, path string }{{"events", f.events}, {"report", f.report}, {"record-baseline", f.recordBaseline}}
	for i, a := range outs {
		for _, b := range outs[i+1:] {
			if isFile(a.path) && isFile(b.path) && sameFile(a.path, b.path) {
				return fmt.Errorf("%s and %s name the same file %s: each writes its own, so give them different files", origin(a.flag), origin(b.flag), a.path)
			}
		}
	}
	return nil
}

// isFile says whether an output target is a file name (not "", "-" for stdout, or fd:N).
func isFile(target string) bool {
	return target != "" && target != "-" && !strings.HasPrefix(target, "fd:")
}

// sameFile says whether two names are one file: the same absolute path, or the same name in one
// directory reached by two paths (/var/run/x and /run/x). The names themselves are never
// followed: a link planted at one is refused as such when it is opened.
func sameFile(a, b string) bool {
	pa, erra := filepath.Abs(a)
	pb, errb := filepath.Abs(b)
	if erra == nil && errb == nil && pa == pb {
		return true
	}
	if filepath.Base(a) != filepath.Base(b) {
		return false
	}
	da, erra := os.Stat(filepath.Dir(a))
	db, errb := os.Stat(filepath.Dir(b))
	return erra == nil && errb == nil && os.SameFile(da, db)
}

// durationValue is a duration flag that also takes a bare number of seconds, as systemd does:
// "10" is 10s; "1h30m" and "500ms" work as in Go.
type durationValue time.Duration

func durationVar(fs *pflag.FlagSet, d *time.Duration, name, usage string) {
	fs.Var((*durationValue)(d), name, usage)
}

func (d *durationValue) Set(s string) error {
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = durationValue(v)
	return nil
}

func (d *durationValue) String() string { return time.Duration(*d).String() }
func (d *durationValue) Type() string   { return "DUR" }

func parseDuration(s string) (time.Duration, error) {
	if n, err := strconv.ParseFloat(s, 64); err == nil && n >= 0 || errors.Is(err, strconv.ErrRange) && n > 0 {
		// A float past int64 nanoseconds would wrap to a negative duration: refuse it by name.
		if n*float64(time.Second) >= math.MaxInt64 {
			return 0, fmt.Errorf("%q is too long: at most %v", s, time.Duration(math.MaxInt64).Truncate(time.Second))
		}
		return time.Duration(n * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil && regexp.MustCompile(`^([0-9]*(\.[0-9]*)?(ns|us|µs|ms|s|m|h))+$`).MatchString(s) {
		// Well formed, so time.ParseDuration refused it for its size ("9999999999h").
		return 0, fmt.Errorf("%q is too long: at most %v", s, time.Duration(math.MaxInt64).Truncate(time.Second))
	}
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration (e.g. 30s, 5m, 1h30m, or a number of seconds)", s)
	}
	return d, nil
}

// baselineGate loads --baseline, and checks that --record-baseline's directory exists.
func (f *runFlags) baselineGate(origin func(string) string) (*report.Baseline, error) {
	var bl *report.Baseline
	if f.baseline != "" {
		var err error
		if bl, err = report.LoadBaseline(f.baseline); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s %s: no such file; record one first from a good run with --record-baseline %s", origin("baseline"), f.baseline, f.baseline)
		} else if err != nil {
			return nil, fmt.Errorf("%s: %w", origin("baseline"), err)
		}
	}
	if f.recordBaseline != "" {
		if _, err := os.Stat(filepath.Dir(f.recordBaseline)); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s %w", origin("record-baseline"), missingDir(f.recordBaseline, err))
		}
		d, name, err := atomicfile.Split(f.recordBaseline)
		if err == nil {
			err = d.Check(name, false)
			d.Close()
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", origin("record-baseline"), err)
		}
	}
	return bl, nil
}

// openReport opens the --report target: a file, written at exit beside the old one and renamed
// over it (so a run that cannot write it keeps the previous report whole), or "-" for stdout.
// The file is checked now: a symlink, a hard link or another user's file is refused.
func openReport(target string, stdout io.Writer) (io.Writer, func(), error) {
	switch target {
	case "":
		return nil, func() {}, nil
	case "-":
		return stdout, func() {}, nil
	}
	r, err := atomicfile.NewReplacer(target)
	if err != nil {
		return nil, func() {}, missingDir(target, err)
	}
	return r, r.Close, nil
}

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/launch/advise"
	"github.com/cgrun/cgrun/launch/diagnose"
	"github.com/cgrun/cgrun/launch/exitcode"
	"github.com/cgrun/cgrun/launch/logline"
	"github.com/cgrun/cgrun/launch/state"
	"github.com/cgrun/cgrun/oomwatch"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"
)

// sandbox is one running cgrun as `cgrun ps --json` and `cgrun status --json` show it: its
// recorded state and the figures of its current group, read now.
type sandbox struct {
	Name              string            `json:"name"`
	Pid               int               `json:"pid"`
	ChildPid          int               `json:"child_pid"`
	UID               int               `json:"uid"`
	Command           []string          `json:"command"`
	Group             string            `json:"group"`
	Generation        int               `json:"generation"`
	Started           string            `json:"started"`
	UptimeSeconds     float64           `json:"uptime_seconds"`
	GenerationSeconds float64           `json:"generation_uptime_seconds"`
	MemoryCurrent     uint64            `json:"memory_current"`
	MemoryHigh        *uint64           `json:"memory_high"` // null: max
	MemoryMax         *uint64           `json:"memory_max"`  // null: max
	MemoryPeak        uint64            `json:"memory_peak"`
	MemoryPeakSource  cgroup.PeakSource `json:"memory_peak_source"` // "memory.peak", or "sampled" before Linux 5.19
	OOMKills          uint64            `json:"oom_kills"`          // all generations
	HighEvents        uint64            `json:"high_events"`        // all generations
	Restarts          int               `json:"restarts"`
	RestartsByReason  map[string]int    `json:"restarts_by_reason"`
	Limits            map[string]string `json:"limits"`
	MetricsAddr       string            `json:"metrics_addr,omitempty"`
	User              *state.User       `json:"user,omitempty"` // --user: who the command runs as
	Next              *sandboxNext      `json:"next,omitempty"` // --overlap: the generation starting beside the current one
	// The leak's pace in the current generation, and how the last generations ended.
	Pace            *diagnose.Pace  `json:"pace,omitempty"`
	Ends            string          `json:"ends,omitempty"`
	PastGenerations []diagnose.Past `json:"past_generations,omitempty"`
	// Advice is what the memory probe found so far (--advise).
	Advice *advise.Advice `json:"advice,omitempty"`
	// Only in status:
	MemoryStat map[string]uint64      `json:"memory_stat,omitempty"` // anon, file, kernel, sock, shmem
	Pressure   *oomwatch.PressureInfo `json:"pressure,omitempty"`    // left out where the kernel has no PSI
	Events     map[string]uint64      `json:"memory_events,omitempty"`
	Recent     []state.Event          `json:"recent,omitempty"`
	Dumps      []diagnose.Dump        `json:"dumps,omitempty"` // the diagnostic dumps cgrun keeps
}

// sandboxNext is the generation an --overlap recycle started beside the current one, until it
// is ready and the current one has stopped.
type sandboxNext struct {
	Generation    int    `json:"generation"`
	ChildPid      int    `json:"child_pid"`
	Group         string `json:"group"`
	MemoryCurrent uint64 `json:"memory_current"`
}

// describeNext reads the next generation's group, found from its live process as the current
// one's is.
func describeNext(h cgroup.Hierarchy, s state.State) *sandboxNext {
	if s.Next == nil {
		return nil
	}
	live := s
	live.ChildPid = s.Next.ChildPid
	dir := live.LiveGroup(h)
	if dir == "" {
		return nil
	}
	n := &sandboxNext{Generation: s.Next.Generation, ChildPid: s.Next.ChildPid, Group: h.Rel(dir)}
	n.MemoryCurrent, _ = cgroup.MemoryCurrent(dir)
	return n
}

// describeSandbox reads the figures of a state's current group. The group is found from the
// live processes, never taken from the file: another user may have written it.
func describeSandbox(h cgroup.Hierarchy, s state.State, detail bool) sandbox {
	dir := s.LiveGroup(h)
	now := time.Now()
	sb := sandbox{Name: s.Name, Pid: s.Pid, ChildPid: s.ChildPid, UID: s.UID, Command: s.Command,
		Generation: s.Generation, Started: s.Started, Restarts: s.Restarts, RestartsByReason: s.RestartsByReason,
		Limits: s.Limits, MetricsAddr: s.MetricsAddr, User: s.User, PastGenerations: s.Past, Ends: diagnose.Summary(s.Past), Advice: s.Advice}
	// A start in the future (the clock was set back, or the file says so) is up 0s, never less.
	if t, err := time.Parse(time.RFC3339Nano, s.Started); err == nil {
		sb.UptimeSeconds = max(0, now.Sub(t).Seconds())
	}
	if t, err := time.Parse(time.RFC3339Nano, s.GenerationStarted); err == nil {
		sb.GenerationSeconds = max(0, now.Sub(t).Seconds())
	}
	sb.Next = describeNext(h, s)
	// The ended generations' counts and the running one's; between two generations, when there
	// is no group to read, what the ended ones add up to and the last peak cgrun recorded.
	events := state.LiveEvents(s, dir)
	sb.OOMKills, sb.HighEvents = cgroup.OOMKills(events), events["high"]
	sb.MemoryPeak, sb.MemoryPeakSource = s.MemoryPeak, s.MemoryPeakSource
	if detail {
		sb.Recent, sb.Dumps, sb.Events = s.Recent, s.Dumps, events
	}
	if dir == "" {
		sb.MemoryHigh, sb.MemoryMax = s.Limit("memory.high"), s.Limit("memory.max") // the next generation's
		return sb
	}
	sb.Group = h.Rel(dir)
	sb.MemoryCurrent, _ = cgroup.MemoryCurrent(dir)
	sb.MemoryPeak, sb.MemoryPeakSource = state.LivePeak(s, dir, sb.MemoryCurrent)
	for file, into := range map[string]**uint64{"memory.high": &sb.MemoryHigh, "memory.max": &sb.MemoryMax} {
		if n, ok, err := cgroup.ReadUint(dir, file); err == nil && ok {
			*into = &n
		}
	}
	sb.Pace = diagnose.Measure(s.GenerationMemoryStart, sb.MemoryCurrent, time.Duration(sb.GenerationSeconds*float64(time.Second)), sb.MemoryHigh, sb.MemoryMax)
	if detail {
		if st, err := cgroup.ReadKeyed(dir, "memory.stat"); err == nil {
			sb.MemoryStat = map[string]uint64{}
			for _, k := range []string{"anon", "file", "kernel", "sock", "shmem"} {
				sb.MemoryStat[k] = st[k]
			}
		}
		if p, err := oomwatch.ReadPressure(dir); err == nil {
			sb.Pressure = &p
		}
	}
	return sb
}

// The flag sets of ps, status, stop and recycle; the man page and the completions read them too.

func newPsFlagSet() (*pflag.FlagSet, *bool) {
	fs := pflag.NewFlagSet("cgrun ps", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs, fs.Bool("json", false, "print a JSON array instead of the table")
}

func newStatusFlagSet() (*pflag.FlagSet, *bool) {
	fs := pflag.NewFlagSet("cgrun status", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs, fs.Bool("json", false, "print a JSON object")
}

func newSignalFlagSet(verb string) (*pflag.FlagSet, *time.Duration) {
	fs := pflag.NewFlagSet("cgrun "+verb, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	timeout := 30 * time.Second
	if verb == "stop" {
		durationVar(fs, &timeout, "timeout", "how long stop waits for cgrun to exit (default: 30s, or its --stop-timeout and 5s more; 0: not at all)")
		fs.Lookup("timeout").DefValue = "" // the usage says it
	}
	return fs, &timeout
}

// stopWait is how long cgrun stop waits for s to exit: what --timeout says, or by default 30s
// and at least the run's own --stop-timeout and 5s more, after which that cgrun has killed its
// command's group and exits.
func stopWait(s state.State, timeout time.Duration, given bool) time.Duration {
	if given {
		return timeout
	}
	return max(timeout, time.Duration(s.StopTimeout*float64(time.Second))+5*time.Second)
}

// parseSub parses the arguments of ps, status, stop or recycle: with -h or --help it prints
// the command's help and says so (done); a bad flag or argument count prints the usage line
// and fails (exit 125).
func parseSub(name string, fs *pflag.FlagSet, args []string, nargs int, stdout, stderr io.Writer) (done bool, code int) {
	help := fs.BoolP("help", "h", false, "show this help")
	err := fs.Parse(args)
	if err == nil && *help {
		return true, subcommandHelp(name, stdout)
	}
	switch {
	case err != nil:
		err = unknownFlag(fs, err)
	case fs.NArg() < nargs:
		err = errors.New("no NAME or PID given")
	case fs.NArg() > nargs:
		err = fmt.Errorf("unexpected argument %q", fs.Arg(nargs))
	}
	if err != nil {
		c := subcommandByName(name)
		fmt.Fprintf(stderr, "cgrun: %s: %v; usage: cgrun %s %s (see 'cgrun %s --help')\n", name, err, name, c.args, name)
		return true, exitcode.Failure
	}
	return false, 0
}

// psCommand is `cgrun ps [--json]`: every running cgrun, one line each.
func psCommand(args []string, stdout, stderr io.Writer) int {
	fs, asJSON := newPsFlagSet()
	if done, code := parseSub("ps", fs, args, 0, stdout, stderr); done {
		return code
	}
	states, err := state.List(state.Dirs())
	if err != nil {
		fmt.Fprintf(stderr, "cgrun: %v\n", err)
		return exitcode.Failure
	}
	h, _ := cgroup.Detect()
	boxes := make([]sandbox, 0, len(states))
	for _, s := range states {
		boxes = append(boxes, describeSandbox(h, s, false))
	}
	if *asJSON {
		return writeJSON(stdout, stderr, boxes)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "NAME\tPID\tGEN\tUPTIME\tCURRENT\tHIGH\tMAX\tPEAK\tOOM\tHIGH EV\tRESTARTS\t")
	for _, b := range boxes {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t\n", shorten(logline.Escape(b.Name), 18), b.Pid, b.Generation,
			humanDuration(b.UptimeSeconds), cgroup.FormatSize(b.MemoryCurrent), sizeOrMax(b.MemoryHigh), sizeOrMax(b.MemoryMax),
			cgroup.FormatSize(b.MemoryPeak), b.OOMKills, b.HighEvents, b.Restarts)
		if n := b.Next; n != nil {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", "(next, starting)", b.Pid, n.Generation,
				"-", cgroup.FormatSize(n.MemoryCurrent), sizeOrMax(b.MemoryHigh), sizeOrMax(b.MemoryMax), "-", "-", "-", "-")
		}
	}
	tw.Flush()
	return 0
}

// statusCommand is `cgrun status NAME|PID [--json]`: one sandbox in detail.
func statusCommand(args []string, stdout, stderr io.Writer) int {
	fs, asJSON := newStatusFlagSet()
	if done, code := parseSub("status", fs, args, 1, stdout, stderr); done {
		return code
	}
	s, err := findSandbox(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "cgrun: %v\n", err)
		return exitcode.Failure
	}
	h, _ := cgroup.Detect()
	b := describeSandbox(h, s, true)
	if *asJSON {
		return writeJSON(stdout, stderr, b)
	}
	w := func(label, format string, a ...any) {
		fmt.Fprintf(stdout, "  %-12s %s\n", label, fmt.Sprintf(format, a...))
	}
	// What comes from the state file is printed with control characters escaped: its writer
	// may be another user, and root's terminal must not run their escape sequences.
	fmt.Fprintf(stdout, "%s — cgrun pid %d, uid %d: %s\n", logline.Escape(b.Name), b.Pid, b.UID, logline.Escape(strings.Join(b.Command, " ")))
	if u := b.User; u != nil {
		w("user", "%s", logline.Escape(runAs(u)))
	}
	w("group", "%s (generation %d, child pid %d, up %s)", logline.Escape(orNone(b.Group)), b.Generation, b.ChildPid, humanDuration(b.GenerationSeconds))
	if n := b.Next; n != nil {
		w("next", "%s (generation %d, child pid %d, starting beside the current one: --overlap; %s)", logline.Escape(n.Group), n.Generation, n.ChildPid, cgroup.FormatSize(n.MemoryCurrent))
	}
	w("started", "%s (up %s)", logline.Escape(b.Started), humanDuration(b.UptimeSeconds))
	var lims []string
	for _, k := range []string{"memory.max", "memory.high", "memory.low", "memory.swap.max", "pids.max", "cpu.max", "cpu.weight"} {
		if v, ok := b.Limits[k]; ok {
			lims = append(lims, k+"="+logline.Escape(limitText(k, v)))
		}
	}
	w("limits", "%s", orNone(strings.Join(lims, " ")))
	peak := cgroup.FormatSize(b.MemoryPeak)
	if b.MemoryPeakSource == cgroup.PeakSampled {
		peak += " (sampled)"
	}
	w("memory", "current %s, peak %s, high %s, max %s", cgroup.FormatSize(b.MemoryCurrent), peak, sizeOrMax(b.MemoryHigh), sizeOrMax(b.MemoryMax))
	if b.MemoryStat != nil {
		var parts []string
		for _, k := range []string{"anon", "file", "kernel", "sock", "shmem"} {
			parts = append(parts, k+" "+cgroup.FormatSize(b.MemoryStat[k]))
		}
		w("memory.stat", "%s", strings.Join(parts, ", "))
	}
	if p := b.Pressure; p != nil {
		w("pressure", "some avg10=%.2f%% avg60=%.2f%%, full avg10=%.2f%% avg60=%.2f%%; stalled %v in this generation", p.SomeAvg10, p.SomeAvg60, p.FullAvg10, p.FullAvg60, p.Stalled())
	} else {
		w("pressure", "n/a (this kernel has no PSI)")
	}
	if b.Pace != nil {
		w("pace", "%s", b.Pace)
	}
	if b.Advice != nil {
		w("advice", "%s", logline.Escape(strings.TrimPrefix(b.Advice.Line(cgroup.HostHasSwap()), "advice: ")))
	}
	if b.Ends != "" {
		w("ends", "%s", logline.Escape(b.Ends))
	}
	for _, d := range b.Dumps {
		var files []string
		for _, f := range d.Files {
			files = append(files, fmt.Sprintf("%s (%s)", logline.Escape(f.Path), cgroup.FormatSize(uint64(f.Size))))
		}
		if d.FilesLeftOut > 0 { // the state lists a dump in brief (diagnose.Dump.Brief)
			files = append(files, fmt.Sprintf("and %d more", d.FilesLeftOut))
		}
		state := "complete"
		if !d.Complete {
			state = "not complete"
		}
		w("dump", "generation %d, %s, %s after %.1fs: %s", d.Generation, logline.Escape(d.Reason), state, d.Seconds, orNone(strings.Join(files, ", ")))
	}
	w("events", "oom_kill %d, oom_group_kill %d, oom %d, max %d, high %d, low %d (all generations)",
		b.Events["oom_kill"], b.Events["oom_group_kill"], b.Events["oom"], b.Events["max"], b.Events["high"], b.Events["low"])
	var rs []string
	for reason, n := range b.RestartsByReason {
		rs = append(rs, fmt.Sprintf("%s %d", logline.Escape(reason), n))
	}
	w("restarts", "%d%s", b.Restarts, parenthesize(strings.Join(rs, ", ")))
	if b.MetricsAddr != "" {
		w("metrics", "http://%s/metrics", logline.Escape(b.MetricsAddr))
	}
	if len(b.Recent) > 0 {
		fmt.Fprintln(stdout, "  recent:")
		for _, e := range b.Recent {
			fmt.Fprintf(stdout, "    %s  %-8s %s\n", logline.Escape(e.Time), logline.Escape(e.Event), logline.Escape(e.Detail))
		}
	}
	return 0
}

// signalCommand is `cgrun stop NAME|PID` (SIGTERM: a graceful stop, then cgrun exits) and
// `cgrun recycle NAME|PID` (SIGALRM: a graceful recycle). Only root or the user who started the
// cgrun may do either.
func signalCommand(verb string, args []string, stdout, stderr io.Writer) int {
	fs, timeout := newSignalFlagSet(verb)
	if done, code := parseSub(verb, fs, args, 1, stdout, stderr); done {
		return code
	}
	s, err := findSandbox(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "cgrun: %v\n", err)
		return exitcode.Failure
	}
	if uid := os.Geteuid(); uid != 0 && uid != s.UID && s.User != nil && uid == int(s.User.UID) {
		// The command's own user may not steer its supervisor: the sandboxed command runs as
		// that user too. docs/user.md has the sudoers line.
		fmt.Fprintf(stderr, "cgrun: %s (pid %d) is root's cgrun running its command as you (uid %d); only root may %s it: use sudo cgrun %s %s, with a sudoers rule for your deploy user if needed\n",
			s.Name, s.Pid, uid, verb, verb, s.Name)
		return exitcode.Failure
	}
	if uid := os.Geteuid(); uid != 0 && uid != s.UID {
		fmt.Fprintf(stderr, "cgrun: %s (pid %d) belongs to uid %d; only root or that user may %s it\n", logline.Escape(s.Name), s.Pid, s.UID, verb)
		return exitcode.Failure
	}
	sig := unix.SIGTERM
	if verb == "recycle" {
		sig = exitcode.RecycleSignal
	}
	// A pidfd names this very process, so a pid reused since the state was read is never hit.
	pfd, err := unix.PidfdOpen(s.Pid, 0)
	if err == nil && !s.Stale() {
		err = unix.PidfdSendSignal(pfd, sig, nil, 0)
	}
	if err != nil {
		fmt.Fprintf(stderr, "cgrun: %s %s (pid %d): %v\n", verb, s.Name, s.Pid, err)
		return exitcode.Failure
	}
	defer unix.Close(pfd)
	if verb == "recycle" {
		fmt.Fprintf(stdout, "cgrun: asked %s (pid %d) to recycle generation %d\n", s.Name, s.Pid, s.Generation)
		return 0
	}
	wait := stopWait(s, *timeout, fs.Changed("timeout"))
	if wait == 0 {
		fmt.Fprintf(stdout, "cgrun: asked %s (pid %d) to stop\n", s.Name, s.Pid)
		return 0
	}
	// The pidfd becomes readable when the process exits: wait on it, no polling.
	fds := []unix.PollFd{{Fd: int32(pfd), Events: unix.POLLIN}}
	for deadline := time.Now().Add(wait); ; {
		ms := int((time.Until(deadline) + time.Millisecond - 1) / time.Millisecond) // never 0 before the deadline
		n, err := unix.Poll(fds, max(ms, 0))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if n == 0 || err != nil {
			name := logline.Escape(s.Name)
			line := fmt.Sprintf("cgrun: %s (pid %d) is still running %v after SIGTERM", name, s.Pid, wait)
			if s.StopTimeout > 0 {
				line += fmt.Sprintf(" (it kills its command's group %v after the signal, its --stop-timeout, and then exits)", time.Duration(s.StopTimeout*float64(time.Second)))
			}
			fmt.Fprintf(stderr, "%s; wait longer with --timeout DUR, or see 'cgrun status %s'\n", line, name)
			return exitcode.Failure
		}
		fmt.Fprintf(stdout, "cgrun: stopped %s (pid %d)\n", s.Name, s.Pid)
		return 0
	}
}

func findSandbox(nameOrPid string) (state.State, error) {
	states, err := state.List(state.Dirs())
	if err != nil {
		return state.State{}, err
	}
	return state.Find(states, nameOrPid)
}

func writeJSON(stdout, stderr io.Writer, v any) int {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		fmt.Fprintf(stderr, "cgrun: %v\n", err)
		return exitcode.Failure
	}
	fmt.Fprintf(stdout, "%s\n", escapeJSON(b))
	return 0
}

// escapeJSON writes DEL and the C1 controls (U+0080 to U+009F), which encoding/json leaves as
// they are, as \u escapes: a terminal may act on them. Outside strings JSON has neither.
func escapeJSON(b []byte) []byte {
	var out bytes.Buffer
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == 0x7f || r >= 0x80 && r < 0xa0 {
			fmt.Fprintf(&out, "\\u%04x", r)
		} else {
			out.Write(b[:n])
		}
		b = b[n:]
	}
	return out.Bytes()
}

// limitText is a limit's kernel value as status shows it: memory sizes as 128M, not bytes;
// everything else (pids.max, cpu.max, "max") as the file has it.
func limitText(file, value string) string {
	if !strings.HasPrefix(file, "memory.") || file == "memory.oom.group" {
		return value
	}
	n, err := strconv.ParseUint(value, 10, 64)
	if err != nil {
		return value
	}
	return cgroup.FormatSize(n)
}

func sizeOrMax(n *uint64) string {
	if n == nil {
		return "max"
	}
	return cgroup.FormatSize(*n)
}

func humanDuration(sec float64) string {
	d := time.Duration(sec * float64(time.Second))
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func parenthesize(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

// runAs describes a --user: "www-data (uid 33, gid 33, groups 33)".
func runAs(u *state.User) string {
	name := u.Name
	if name == "" {
		name = fmt.Sprint(u.UID)
	}
	groups := strings.Trim(fmt.Sprint(u.Groups), "[]")
	return fmt.Sprintf("%s (uid %d, gid %d, groups %s)", name, u.UID, u.GID, strings.ReplaceAll(groups, " ", ","))
}

// Command cgrun-bench measures what cgrun costs next to a plain fork/exec, side by side in one
// run: start latency (start.go), cgrun's own memory and idle cost (idle.go), how late an OOM
// kill shows up in the --events stream (oomlatency.go, kmsg.go), the gap between one generation's
// exit and the next one's start (recycle.go), and whether cgrun's own memory, fds and goroutines
// stay flat over many restarts (soak.go), and what a recycle costs the clients of a Node HTTP
// server with and without --listen and --overlap (listen.go), and how soon a slowly leaking
// worker is replaced once it thrashes at memory.max, beside the kernel's own OOM kill (thrash.go).
//
// It needs a cgroup v2 hierarchy with the memory controller and root (cgrun creates groups);
// scripts/bench/run builds it and runs it inside a user-mode-linux guest, or here with --here.
//
// The same binary is also the payload, selected by its first argument:
//
//	cgrun-bench stamp   write CLOCK_MONOTONIC (ns) to stdout and exit
//	cgrun-bench sleep   write "ready" to stdout and sleep until killed
//	cgrun-bench alloc   touch memory in 1 MiB chunks forever
//	cgrun-bench gap     write "first PID T", wait for a byte on stdin, write "last PID T", exit 0
//	cgrun-bench drip    touch 1 MiB every 100 ms forever
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	t := mono() // first thing: the stamp payload's "first instruction"
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "stamp":
			b := strconv.AppendInt(nil, t, 10)
			_, _ = unix.Write(1, append(b, '\n'))
			return
		case "sleep":
			sleeper()
			return
		case "alloc":
			allocator()
			return
		case "gap":
			gapPayload(t)
			return
		case "drip":
			drip()
			return
		}
	}
	os.Exit(bench(os.Args[1:]))
}

// config is the bench's flags.
type config struct {
	cgrun      string   // the cgrun binary
	oldCgruns  []string // other cgrun binaries whose columns the start comparison adds
	gonop      string   // a minimal static Go binary, for the start comparison
	cgroup2    bool     // /sys/fs/cgroup is cgroup2 with the memory controller
	self       string   // this binary, the payload
	parent     string   // --parent for cgrun, where the bench's own group cannot be nested in
	n          int      // start-latency runs per column
	warmup     int
	idle       time.Duration
	m          int    // OOM runs
	oomMax     string // --memory-max for the OOM runs
	gaps       int    // recycle gaps per column
	soak       int    // generations of the soak
	cycles     int    // recycles per column of the listen bench
	thrashGens int    // generations per column of the thrash bench
	host       string // what the wrapper says about the host machine
	uml        bool   // the wrapper ran us under scripts/uml-run
	guest      string // what the wrapper says about the virtual machine it started (scripts/qemu-run)
	verbose    bool   // per-run details
	only       map[string]bool
	nullFd     int
	baseEnv    []string // the environment without CGRUN_ variables
}

func bench(args []string) int {
	var c config
	var only string
	fs := flag.NewFlagSet("cgrun-bench", flag.ContinueOnError)
	fs.StringVar(&c.cgrun, "cgrun", "", "cgrun binary (default: cgrun next to this binary)")
	var oldCgrun string
	fs.StringVar(&oldCgrun, "old-cgrun", "", "comma-separated cgrun binaries whose columns the start comparison adds, in the same rounds (before and after a change)")
	fs.StringVar(&c.gonop, "gonop", "", "minimal static Go binary for the start comparison (default: gonop next to this binary)")
	fs.StringVar(&c.parent, "parent", "", "pass --parent to cgrun (needed where the bench's own group has other processes)")
	fs.IntVar(&c.n, "n", 200, "start-latency runs per column")
	fs.IntVar(&c.warmup, "warmup", 10, "start-latency runs per column to discard first")
	fs.DurationVar(&c.idle, "idle", 60*time.Second, "idle window for the CPU and wake-up count")
	fs.IntVar(&c.m, "m", 30, "OOM-latency runs")
	fs.StringVar(&c.oomMax, "oom-max", "32M", "--memory-max of the OOM-latency runs")
	fs.IntVar(&c.gaps, "gaps", 200, "recycle gaps per column")
	fs.IntVar(&c.soak, "soak", 1000, "generations of the soak (sampled every 100)")
	fs.IntVar(&c.cycles, "recycles", 20, "recycles per column of the listen bench")
	fs.IntVar(&c.thrashGens, "thrash-gens", 8, "generations per column of the thrash bench")
	fs.StringVar(&c.host, "host", "", "description of the host machine, for the table")
	fs.BoolVar(&c.verbose, "v", false, "print per-run details of the OOM runs")
	fs.BoolVar(&c.uml, "uml", false, "say that this runs in a user-mode-linux guest")
	fs.StringVar(&c.guest, "guest", "", "say what virtual machine this runs in, e.g. \"QEMU TCG guest (scripts/qemu-run)\"")
	fs.StringVar(&only, "only", "start,idle,oom,recycle,soak,thrash", "measurements to run: start, compare (the start beside bare exec, a minimal Go binary and systemd-run; runs without cgroup v2 too, with the columns that need none), idle (RSS and idle cost), oom, recycle (gap), soak, thrash (first max event -> fresh worker), and listen (--listen and --overlap under load; needs Node, not in the default)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	c.only = map[string]bool{}
	for _, s := range strings.Split(only, ",") {
		c.only[strings.TrimSpace(s)] = true
	}
	self, err := os.Executable()
	if err != nil {
		return fail(err)
	}
	c.self = self
	if c.cgrun == "" {
		c.cgrun = filepath.Join(filepath.Dir(self), "cgrun")
	}
	if c.cgrun, err = filepath.Abs(c.cgrun); err != nil {
		return fail(err)
	}
	if _, err := os.Stat(c.cgrun); err != nil {
		return fail(fmt.Errorf("cgrun binary: %w (give -cgrun)", err))
	}
	if c.gonop == "" {
		c.gonop = filepath.Join(filepath.Dir(self), "gonop")
	}
	for _, p := range strings.Split(oldCgrun, ",") {
		if p == "" {
			continue
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return fail(err)
		}
		c.oldCgruns = append(c.oldCgruns, abs)
	}
	if err := checkCgroup2(); err == nil {
		c.cgroup2 = true
	} else if len(c.only) != 1 || !c.only["compare"] {
		// Only the start comparison has columns that need no group.
		return fail(err)
	}
	if c.nullFd, err = unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0); err != nil {
		return fail(err)
	}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CGRUN_") {
			c.baseEnv = append(c.baseEnv, kv)
		}
	}

	printMachine(&c)
	rc := 0
	for _, s := range []struct {
		name string
		run  func(*config) error
	}{{"start", startBench}, {"compare", compareBench}, {"idle", idleBench}, {"oom", oomBench}, {"recycle", recycleBench}, {"soak", soakBench}, {"thrash", thrashBench}, {"listen", listenBench}} {
		if !c.only[s.name] {
			continue
		}
		if err := s.run(&c); err != nil {
			fmt.Printf("  FAILED: %v\n", err)
			rc = 1
		}
		fmt.Println()
	}
	return rc
}

func fail(err error) int {
	fmt.Fprintf(os.Stderr, "cgrun-bench: %v\n", err)
	return 1
}

// checkCgroup2 refuses to run where /sys/fs/cgroup is not cgroup2 with the memory controller:
// the bench must never make cgrun touch a cgroup v1 host.
func checkCgroup2() error {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		return fmt.Errorf("statfs /sys/fs/cgroup: %w", err)
	}
	if st.Type != unix.CGROUP2_SUPER_MAGIC {
		return errors.New("/sys/fs/cgroup is not cgroup2; run this through scripts/bench/run (it uses a UML guest)")
	}
	b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
	if err != nil || !slices.Contains(strings.Fields(string(b)), "memory") {
		return errors.New("cgroup2 has no memory controller here")
	}
	return nil
}

// printMachine heads the table with where the numbers come from.
func printMachine(c *config) {
	var u unix.Utsname
	_ = unix.Uname(&u)
	c.uml = c.uml || isUML()
	env := "this machine"
	switch {
	case c.guest != "":
		env = c.guest
	case c.uml:
		env = "user-mode-linux guest (scripts/uml-run)"
	}
	if isTCG() {
		env += ", TCG (emulated CPU)"
	}
	var res unix.Timespec
	_ = unix.ClockGetres(unix.CLOCK_MONOTONIC, &res)
	fmt.Printf("cgrun bench, %s\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Printf("  kernel %s (%s), %d CPU, %s\n", unix.ByteSliceToString(u.Release[:]), unix.ByteSliceToString(u.Machine[:]), runtime.NumCPU(), env)
	if c.host != "" {
		fmt.Printf("  host   %s\n", c.host)
	}
	fmt.Printf("  cgrun  %s; payload %s (%s)\n", c.cgrun, c.self, runtime.Version())
	fmt.Printf("  CLOCK_MONOTONIC resolution %v; nanosleep(100µs) takes %s (p50 of 50)\n", time.Duration(res.Nano()), ms(sleepGranularity()))
	fmt.Println()
}

// emulationNote says, under a software-emulated CPU, what the figures can and cannot show.
func (c *config) emulationNote(target string) {
	if isTCG() {
		fmt.Println("  TCG: a real kernel, but every instruction is emulated (several times slower than hardware);")
		fmt.Printf("  the columns share the handicap; against the %s target these figures are pessimistic\n", target)
	}
}

// isTCG reports a QEMU guest whose CPU is emulated (TCG) rather than virtualized (KVM).
func isTCG() bool {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return bytes.Contains(b, []byte("QEMU TCG CPU"))
}

func isUML() bool {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return bytes.Contains(b, []byte("User Mode Linux"))
}

// sleepGranularity shows the timer resolution in practice (coarse in some VMs).
func sleepGranularity() time.Duration {
	var d []time.Duration
	for range 50 {
		t := mono()
		ts := unix.NsecToTimespec(100_000)
		_ = unix.Nanosleep(&ts, nil)
		d = append(d, time.Duration(mono()-t))
	}
	return pct(d, 50)
}

// mono is CLOCK_MONOTONIC in nanoseconds.
func mono() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// spawn forks and execs argv[0] with the given fds as 0, 1, 2, 3...
func spawn(argv, env []string, fds ...int) (int, error) {
	files := make([]uintptr, len(fds))
	for i, fd := range fds {
		files[i] = uintptr(fd)
	}
	return syscall.ForkExec(argv[0], argv, &syscall.ProcAttr{Env: env, Files: files})
}

// wait reaps pid.
func wait(pid int) (unix.WaitStatus, error) {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err != unix.EINTR {
			return ws, err
		}
	}
}

// cgrunArgv is `cgrun run [--parent P] FLAGS... -- PAYLOAD...`.
func (c *config) cgrunArgv(flags []string, payload ...string) []string {
	argv := []string{c.cgrun, "run"}
	if c.parent != "" {
		argv = append(argv, "--parent", c.parent)
	}
	argv = append(argv, flags...)
	return append(append(argv, "--"), payload...)
}

func (c *config) env(extra ...string) []string {
	return append(append([]string(nil), c.baseEnv...), extra...)
}

// readLine reads one line from fd (unbuffered, so the rest stays in the pipe).
func readLine(fd int) (string, error) {
	var line []byte
	b := make([]byte, 1)
	for {
		n, err := unix.Read(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return string(line), err
		}
		if n == 0 {
			return string(line), errors.New("EOF before a full line")
		}
		if b[0] == '\n' {
			return string(line), nil
		}
		line = append(line, b[0])
	}
}

// procStatus reads the "Key: value" lines of /proc/PID/status (or a task's).
func procStatus(path string) map[string]string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	m := map[string]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// pct is the p-th percentile (nearest rank) of d.
func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s))*p/100+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

func mean(d []time.Duration) time.Duration {
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	return sum / time.Duration(max(1, len(d)))
}

// ms formats a duration as milliseconds with three decimals.
func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/1e6) }

// signedMs is ms with an explicit sign, for differences.
func signedMs(d time.Duration) string { return fmt.Sprintf("%+.3f ms", float64(d)/1e6) }

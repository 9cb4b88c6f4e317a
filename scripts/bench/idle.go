package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// sleeper is the "sleep" payload: it says it is ready and sleeps until a signal ends it.
func sleeper() {
	_, _ = unix.Write(1, []byte("ready\n"))
	for {
		_ = unix.Pause()
	}
}

// settle is how long the bench waits after the child is ready before it measures, so that
// start-up work (page faults, GC, the scavenger's first round) is over.
const settle = time.Second

// idleBench measures cgrun's own memory and what it costs while its child sleeps: CPU ticks and
// wake-ups (voluntary context switches, all threads) over the idle window. A bare Go process
// that sleeps the same way (the payload itself, started without cgrun) runs beside it as the
// reference for what any Go program costs.
func idleBench(c *config) error {
	fmt.Printf("2+3. RSS AND IDLE COST: cgrun run --memory-max 64M --events /dev/null -- SLEEP, idle window %v\n", c.idle)
	cg, err := startSleeper(c.cgrunArgv([]string{"--memory-max", "64M", "--events", "/dev/null"}, c.self, "sleep"), c.env(), c.nullFd)
	if err != nil {
		return fmt.Errorf("cgrun: %w", err)
	}
	defer stopSleeper(cg, unix.SIGTERM) // cgrun forwards it to the child and exits
	bare, err := startSleeper([]string{c.self, "sleep"}, c.env(), c.nullFd)
	if err != nil {
		return fmt.Errorf("bare sleeper: %w", err)
	}
	defer stopSleeper(bare, unix.SIGKILL)

	time.Sleep(settle)
	cg0, bare0 := usage(cg), usage(bare)
	time.Sleep(c.idle)
	cg1, bare1 := usage(cg), usage(bare)
	if cg1.err != nil {
		return fmt.Errorf("cgrun (pid %d): %w", cg, cg1.err)
	}
	if bare1.err != nil {
		return fmt.Errorf("bare sleeper (pid %d): %w", bare, bare1.err)
	}

	fmt.Printf("  %-32s %9s %9s %9s %9s %9s %8s   %s\n", "resident memory (/proc/PID/status)", "VmRSS", "VmHWM", "RssAnon", "RssFile", "AnonHuge", "threads", "")
	for _, r := range []struct {
		name string
		pid  int
		u    procUsage
		note string
	}{{"cgrun (its own pid)", cg, cg1, "(target VmRSS < 10 MB)"}, {"bare Go sleeper (reference)", bare, bare1, ""}} {
		st := r.u.status
		// Transparent huge pages in the anonymous memory (smaps_rollup, Linux 4.14).
		huge := procStatus(fmt.Sprintf("/proc/%d/smaps_rollup", r.pid))["AnonHugePages"]
		fmt.Printf("  %-32s %9s %9s %9s %9s %9s %8s   %s\n", r.name, kb(st["VmRSS"]), kb(st["VmHWM"]), kb(st["RssAnon"]), kb(st["RssFile"]), kb(huge), st["Threads"], r.note)
	}
	fmt.Printf("  %-32s %9s %9s %9s %9s\n", fmt.Sprintf("idle %v", c.idle), "CPU ticks", "on CPU", "vol. cs", "invol. cs")
	for _, r := range []struct {
		name   string
		u0, u1 procUsage
		note   string
	}{{"cgrun (its own pid)", cg0, cg1, "(target 0 ticks; vol. cs = wake-ups, all threads)"}, {"bare Go sleeper (reference)", bare0, bare1, ""}} {
		ticks := r.u1.ticks - r.u0.ticks
		onCPU := "?"
		if r.u0.onCPU >= 0 && r.u1.onCPU >= 0 {
			onCPU = ms(time.Duration(r.u1.onCPU - r.u0.onCPU))
		}
		fmt.Printf("  %-32s %9d %9s %9d %9d   %s\n", r.name, ticks, onCPU,
			r.u1.voluntary-r.u0.voluntary, r.u1.involuntary-r.u0.involuntary, r.note)
	}
	fmt.Println("  CPU ticks: utime+stime (/proc/PID/stat, 1/100 s); on CPU: schedstat, all threads (ns, but")
	fmt.Println("  jiffy-granular where sched_clock is, as in UML); vol. cs: voluntary context switches = wake-ups")
	return nil
}

// startSleeper starts argv with its stdout on a pipe and waits for the payload's "ready".
func startSleeper(argv, env []string, null int) (int, error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return 0, err
	}
	defer unix.Close(p[0])
	pid, err := spawn(argv, env, null, p[1], 2)
	unix.Close(p[1])
	if err != nil {
		return 0, err
	}
	if line, err := readLine(p[0]); err != nil || line != "ready" {
		_ = unix.Kill(pid, unix.SIGKILL)
		_, _ = wait(pid)
		return 0, fmt.Errorf("%s did not get ready: %q %v", strings.Join(argv, " "), line, err)
	}
	return pid, nil
}

// stopSleeper ends a sleeper with sig, or SIGKILL if it is still there 10 s later.
func stopSleeper(pid int, sig unix.Signal) {
	_ = unix.Kill(pid, sig)
	t := time.AfterFunc(10*time.Second, func() { _ = unix.Kill(pid, unix.SIGKILL) })
	_, _ = wait(pid)
	t.Stop()
}

// procUsage is what /proc says about a process at one moment.
type procUsage struct {
	ticks                  int64 // utime+stime, all threads, in USER_HZ (1/100 s)
	voluntary, involuntary int64 // context switches summed over all threads
	onCPU                  int64 // ns on a CPU, all threads (schedstat; -1 without it)
	status                 map[string]string
	err                    error
}

func usage(pid int) procUsage {
	var u procUsage
	dir := fmt.Sprintf("/proc/%d", pid)
	b, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return procUsage{err: err}
	}
	// Fields after the ")" that ends comm: state is field 3, utime 14, stime 15.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return procUsage{err: fmt.Errorf("short %s/stat", dir)}
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	u.ticks = ut + st
	u.status = procStatus(dir + "/status")
	tasks, _ := filepath.Glob(dir + "/task/*")
	for _, t := range tasks {
		s := procStatus(t + "/status")
		v, _ := strconv.ParseInt(s["voluntary_ctxt_switches"], 10, 64)
		n, _ := strconv.ParseInt(s["nonvoluntary_ctxt_switches"], 10, 64)
		u.voluntary += v
		u.involuntary += n
		if ns := schedstat(t); ns < 0 || u.onCPU < 0 {
			u.onCPU = -1
		} else {
			u.onCPU += ns
		}
	}
	return u
}

// schedstat is a task's time on a CPU in ns (the first field of its schedstat), or -1.
func schedstat(task string) int64 {
	b, err := os.ReadFile(task + "/schedstat")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	ns, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return -1
	}
	return ns
}

// kb turns "1234 kB" into "1.2 MiB".
func kb(s string) string {
	n, err := strconv.ParseFloat(strings.TrimSuffix(s, " kB"), 64)
	if err != nil {
		return "?"
	}
	return fmt.Sprintf("%.1f MiB", n/1024)
}

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// gapPayload is the "gap" payload: it writes "first PID T" (T: its first clock read, taken at
// the top of main), waits for one byte on stdin (the bench's go-ahead, which lets the bench open
// a pidfd on it before it can exit), then writes "last PID T" and exits 0.
func gapPayload(first int64) {
	pid := os.Getpid()
	_, _ = unix.Write(1, fmt.Appendf(nil, "first %d %d\n", pid, first))
	b := make([]byte, 1)
	for {
		if _, err := unix.Read(0, b); err != unix.EINTR {
			break // the byte, or EOF: the bench is gone
		}
	}
	_, _ = unix.Write(1, fmt.Appendf(nil, "last %d %d\n", pid, mono()))
}

// stamp is one line of the gap payload.
type stamp struct {
	pid int
	t   int64 // CLOCK_MONOTONIC ns
}

// gapLoop is one column of the recycle-gap measurement: a chain of gap payloads, one at a time,
// started either by cgrun's restart loop or by the bench's own.
type gapLoop struct {
	in, out int // the payloads' stdin (the bench writes go-aheads) and stdout (their lines)
	cur     stamp
	pidfd   int
	// per gap: the old payload's exit as its pidfd showed it, its last clock read, the bench's
	// fork of the next (plain loop only) and the next payload's first clock read
	exit, last, fork, first []int64
	newPid                  []int
}

// await reads the next "first" line, and opens a pidfd on that payload (it waits for its
// go-ahead, so it cannot be gone yet).
func (l *gapLoop) await() error {
	s, err := readStamp(l.out, "first")
	if err != nil {
		return err
	}
	l.cur = s
	if l.pidfd, err = unix.PidfdOpen(s.pid, 0); err != nil {
		return fmt.Errorf("pidfd_open %d: %w", s.pid, err)
	}
	return nil
}

// release lets the current payload exit and notes when its pidfd said it had.
func (l *gapLoop) release() error {
	defer unix.Close(l.pidfd)
	if _, err := unix.Write(l.in, []byte{'x'}); err != nil {
		return err
	}
	if err := pollIn(l.pidfd, 30*time.Second); err != nil {
		return fmt.Errorf("payload %d did not exit: %w", l.cur.pid, err)
	}
	t := mono()
	last, err := readStamp(l.out, "last")
	if err != nil {
		return err
	}
	l.exit, l.last = append(l.exit, t), append(l.last, last.t)
	return nil
}

// next records the new payload's first clock read once await has seen it.
func (l *gapLoop) next() {
	l.first = append(l.first, l.cur.t)
	l.newPid = append(l.newPid, l.cur.pid)
}

// recycleBench measures the recycle gap: from a generation's exit to the next generation's
// first instruction, with --restart-delay 0 so that no configured wait is counted. The
// reference is the bench's own restart loop (reap, fork/exec), run interleaved with cgrun's,
// one gap each in turn: each chain's payload waits for its go-ahead on stdin meanwhile.
func recycleBench(c *config) error {
	flags := []string{"--restart", "always", "--restart-delay", "0", "--max-restarts", "0", "--events", "fd:3"}
	fmt.Printf("5. RECYCLE GAP, %d restarts per column after %d warm-up, interleaved:\n", c.gaps, c.warmup)
	fmt.Printf("   cgrun run %s -- GAP beside a plain wait4+fork/exec loop\n", strings.Join(flags, " "))
	payload := []string{c.self, "gap"}

	var cg, plain gapLoop
	var cgIn, cgOut, plIn, plOut [2]int
	for _, p := range []*[2]int{&cgIn, &cgOut, &plIn, &plOut} {
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			return err
		}
		defer unix.Close(p[0])
		defer unix.Close(p[1])
	}
	cg.in, cg.out, plain.in, plain.out = cgIn[1], cgOut[0], plIn[1], plOut[0]
	events, err := os.CreateTemp("", "cgrun-bench-events")
	if err != nil {
		return err
	}
	defer os.Remove(events.Name())
	defer events.Close()
	errf, err := os.CreateTemp("", "cgrun-bench-stderr")
	if err != nil {
		return err
	}
	defer os.Remove(errf.Name())
	defer errf.Close()
	stderr := func() string { b, _ := os.ReadFile(errf.Name()); return lastLines(string(b), 5) }

	cgPid, err := spawnCgrun(c.cgrunArgv(flags, payload...), c.env(), cgIn[0], cgOut[1], int(errf.Fd()), int(events.Fd()))
	if err != nil {
		return err
	}
	stopped := false
	defer func() {
		if !stopped {
			_, _, _ = stopCgrun(cgPid)
		}
	}()
	if err := cg.await(); err != nil {
		return fmt.Errorf("cgrun's first generation: %w; cgrun's stderr: %q", err, stderr())
	}
	plainPid, err := spawn(payload, c.env(), plIn[0], plOut[1], 2)
	if err != nil {
		return err
	}
	if err := plain.await(); err != nil {
		return err
	}
	defer func() { _ = unix.Kill(plainPid, unix.SIGKILL); _, _ = wait(plainPid) }()

	for range c.warmup + c.gaps {
		if err := cg.release(); err != nil {
			return fmt.Errorf("cgrun: %w; cgrun's stderr: %q", err, stderr())
		}
		if err := cg.await(); err != nil {
			return fmt.Errorf("cgrun's next generation: %w; cgrun's stderr: %q", err, stderr())
		}
		cg.next()

		if err := plain.release(); err != nil {
			return err
		}
		if _, err := wait(plainPid); err != nil {
			return err
		}
		plain.fork = append(plain.fork, mono())
		if plainPid, err = spawn(payload, c.env(), plIn[0], plOut[1], 2); err != nil {
			return err
		}
		if err := plain.await(); err != nil {
			return err
		}
		plain.next()
	}
	off := realtimeOffset()
	stopped = true
	if ws, _, err := stopCgrun(cgPid); err != nil || !ws.Signaled() || ws.Signal() != unix.SIGTERM {
		fmt.Printf("  note: cgrun's end on SIGTERM: %v, err %v (want: dies of SIGTERM); stderr: %q\n", describeWait(ws), err, stderr())
	}
	recs, err := readEvents(events.Name())
	if err != nil {
		return err
	}

	w := c.warmup
	since := func(to, from []int64) []time.Duration {
		var d []time.Duration
		for i := w; i < len(to); i++ {
			d = append(d, time.Duration(to[i]-from[i]))
		}
		return d
	}
	// cgrun's own view: its "exit" record of the old generation and "start" record of the new one
	var noticed, between, launched []time.Duration
	missing := 0
	for i := w; i < len(cg.first); i++ {
		r, ok := recs[cg.newPid[i]]
		if !ok {
			missing++
			continue
		}
		noticed = append(noticed, time.Duration(r.prevExit.UnixNano()-off-cg.exit[i]))
		between = append(between, r.start.Sub(r.prevExit))
		launched = append(launched, time.Duration(cg.first[i]-(r.start.UnixNano()-off)))
	}

	cgGap, plainGap := since(cg.first, cg.exit), since(plain.first, plain.exit)
	gapHeader("exit (pidfd) -> next payload's first clock read")
	gapRow("plain loop (wait4, fork/exec)", plainGap, "")
	gapRow("cgrun --restart always --restart-delay 0", cgGap, "")
	gapDelta("  cgrun - plain", cgGap, plainGap, "(target <= 5 ms)")
	cgLast, plainLast := since(cg.first, cg.last), since(plain.first, plain.last)
	gapHeader("payload's last clock read -> next's first read")
	gapRow("plain loop", plainLast, "(the old payload's exit included)")
	gapRow("cgrun", cgLast, "")
	gapDelta("  cgrun - plain", cgLast, plainLast, "")
	gapHeader("where the time goes")
	gapRow("plain: exit (pidfd) -> fork", since(plain.fork, plain.exit), "(wait4)")
	gapRow("plain: fork -> first clock read", since(plain.first, plain.fork), "(fork, exec, Go runtime start)")
	gapRow("cgrun: exit (pidfd) -> \"exit\" record", noticed, "(SIGCHLD, reap, read counters, state file)")
	gapRow("cgrun: \"exit\" -> next \"start\" record", between, "(teardown: kill, wait, rmdir; mkdir, limits)")
	gapRow("cgrun: \"start\" record -> first clock read", launched, "(clone3, exec, Go runtime start)")
	fmt.Println("  \"exit\" -> \"start\" is cgrun's own clock; the other cgrun rows tie its wall-clock times to")
	fmt.Println("  CLOCK_MONOTONIC with one offset read at the end (jitter of a few µs)")
	if missing > 0 {
		fmt.Printf("  %d gap(s) had no matching \"exit\"/\"start\" records on --events\n", missing)
	}
	if c.uml {
		fmt.Println("  UML: exec, fork and cgroup syscalls cost 10-100x what they do on hardware, and all shares")
		fmt.Println("  one CPU; compare the columns with each other, not with the 5 ms target (use --here)")
	}
	c.emulationNote("5 ms")
	return nil
}

func gapHeader(what string) {
	fmt.Printf("  %-48s %11s %11s %11s %11s\n", what, "p50", "p90", "p99", "max")
}

func gapRow(name string, d []time.Duration, note string) {
	fmt.Printf("  %-48s %11s %11s %11s %11s  %s\n", name, ms(pct(d, 50)), ms(pct(d, 90)), ms(pct(d, 99)), ms(pct(d, 100)), note)
}

func gapDelta(name string, a, b []time.Duration, note string) {
	fmt.Printf("  %-48s %11s %11s %11s %11s  %s\n", name, signedMs(pct(a, 50)-pct(b, 50)), signedMs(pct(a, 90)-pct(b, 90)),
		signedMs(pct(a, 99)-pct(b, 99)), signedMs(pct(a, 100)-pct(b, 100)), note)
}

// genTimes is what cgrun's --events say about one restart: the old generation's "exit" record
// and the new one's "start" record.
type genTimes struct{ prevExit, start time.Time }

// readEvents reads an --events file and returns the restarts, keyed by the new generation's pid.
func readEvents(path string) (map[int]genTimes, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	exits := map[int]time.Time{} // by generation
	m := map[int]genTimes{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		var r struct {
			Time       time.Time `json:"time"`
			Event      string    `json:"event"`
			Pid        int       `json:"pid"`
			Generation int       `json:"generation"`
		}
		if err := json.Unmarshal(s.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("bad --events line %q: %w", s.Text(), err)
		}
		switch r.Event {
		case "exit":
			exits[r.Generation] = r.Time
		case "start":
			if prev, ok := exits[r.Generation-1]; ok {
				m[r.Pid] = genTimes{prevExit: prev, start: r.Time}
			}
		}
	}
	return m, s.Err()
}

// readStamp reads one line of a gap payload, "WHAT PID T", within 30 s.
func readStamp(fd int, what string) (stamp, error) {
	if err := pollIn(fd, 30*time.Second); err != nil {
		return stamp{}, fmt.Errorf("no %q line from the payload: %w", what, err)
	}
	line, err := readLine(fd)
	if err != nil {
		return stamp{}, fmt.Errorf("reading the payload's %q line: %w", what, err)
	}
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != what {
		return stamp{}, fmt.Errorf("payload wrote %q, want %q PID T", line, what)
	}
	pid, err1 := strconv.Atoi(f[1])
	t, err2 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil {
		return stamp{}, fmt.Errorf("bad payload line %q", line)
	}
	return stamp{pid, t}, nil
}

// pollIn waits until fd is readable (for a pidfd: the process has exited).
func pollIn(fd int, timeout time.Duration) error {
	deadline := mono() + int64(timeout)
	for {
		left := (deadline - mono()) / 1e6
		if left <= 0 {
			return fmt.Errorf("timed out after %v", timeout)
		}
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, int(left))
		switch {
		case err == unix.EINTR:
		case err != nil:
			return err
		case n > 0:
			return nil
		}
	}
}

// realtimeOffset is CLOCK_REALTIME - CLOCK_MONOTONIC in ns, from the tightest of a few brackets.
func realtimeOffset() int64 {
	var off int64
	best := int64(1 << 62)
	for range 20 {
		t1 := mono()
		rt := time.Now().UnixNano()
		t2 := mono()
		if t2-t1 < best {
			best, off = t2-t1, rt-(t1+t2)/2
		}
	}
	return off
}

// spawnCgrun starts cgrun with the given fds as 0, 1, 2, 3...; it gets SIGTERM should the bench
// die first, so that no restart loop outlives the bench.
func spawnCgrun(argv, env []string, fds ...int) (int, error) {
	files := make([]uintptr, len(fds))
	for i, fd := range fds {
		files[i] = uintptr(fd)
	}
	return syscall.ForkExec(argv[0], argv, &syscall.ProcAttr{Env: env, Files: files, Sys: &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}})
}

// stopCgrun ends a restart loop with SIGTERM (cgrun stops its generation and exits) and reaps
// it, with SIGKILL if it is still there 30 s later; a second call does nothing. It returns the
// wait status and how long cgrun took to exit.
func stopCgrun(pid int) (unix.WaitStatus, time.Duration, error) {
	t0 := mono()
	if err := unix.Kill(pid, unix.SIGTERM); err != nil {
		return 0, 0, err
	}
	t := time.AfterFunc(30*time.Second, func() { _ = unix.Kill(pid, unix.SIGKILL) })
	defer t.Stop()
	ws, err := wait(pid)
	return ws, time.Duration(mono() - t0), err
}

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

// describeWait says how a process ended.
func describeWait(ws unix.WaitStatus) string {
	if ws.Signaled() {
		return "killed by " + unix.SignalName(ws.Signal())
	}
	return fmt.Sprintf("exit status %d", ws.ExitStatus())
}

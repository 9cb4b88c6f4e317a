package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// allocStartDelay is how long the "alloc" payload waits before it allocates, so that the bench
// has armed its own watches on the group.
const allocStartDelay = 200 * time.Millisecond

// allocator is the "alloc" payload: it touches memory in 1 MiB chunks until it is killed.
func allocator() {
	time.Sleep(allocStartDelay)
	for {
		b, err := unix.Mmap(-1, 0, 1<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
		if err != nil {
			fmt.Fprintf(os.Stderr, "alloc: mmap: %v\n", err)
			os.Exit(1)
		}
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
	}
}

// oomRun is what one OOM run saw, as CLOCK_MONOTONIC ns (0: not seen).
type oomRun struct {
	line    int64 // the bench read cgrun's "oom_kill" line from --events fd:3
	inotify int64 // the bench's own inotify watch on memory.events woke with oom_kill > 0
	late    bool  // the kill came before the bench's watch was armed
	exit    int64 // the victim exited (its pidfd became readable)
	killTS  int64 // printk timestamp (ns) of the kernel's "Killed process" line
	off     offsetRange
}

// killWindow is when the kernel killed, in CLOCK_MONOTONIC ns: the printk clock read
// [killTS, killTS+res) then, and CLOCK_MONOTONIC - printk clock lies in [off.lo, off.hi].
// ok is false without a "Killed process" line or with markers that contradict each other.
func (r oomRun) killWindow(res time.Duration) (first, last int64, ok bool) {
	if r.killTS == 0 || r.off.lo > r.off.hi {
		return 0, 0, false
	}
	return r.killTS + r.off.lo, r.killTS + int64(res) + r.off.hi, true
}

// oomBench measures how late cgrun reports an OOM kill: from the kernel's kill, as /dev/kmsg
// stamps it, to the bench's read of the "oom_kill" line on cgrun's --events pipe. Alongside, it
// watches memory.events itself (inotify, like cgrun) and the victim's pidfd, which splits the
// latency into the kernel's notification delay and cgrun's own share.
func oomBench(c *config) error {
	flags := []string{"--memory-max", c.oomMax, "--events", "fd:3"}
	if swapOn() {
		flags = append(flags, "--memory-swap-max", "0")
	}
	fmt.Printf("4. OOM EVENT LATENCY, %d runs of cgrun run %s -- ALLOC (1 MiB chunks)\n", c.m, strings.Join(flags, " "))

	k, kerr := openKmsg()
	var res time.Duration
	if kerr == nil {
		defer k.Close()
		res, kerr = k.resolution()
	}
	var runs []oomRun
	for i := range c.m {
		r, err := oomOnce(c, flags, k, res, kerr == nil)
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		runs = append(runs, r)
		if c.verbose {
			rel := func(t int64) string {
				if t == 0 {
					return "-"
				}
				return signedMs(time.Duration(t - r.line))
			}
			kill := "-"
			if first, last, ok := r.killWindow(res); ok {
				kill = "[" + rel(first) + ", " + rel(last) + "]"
			}
			fmt.Printf("    run %2d, relative to the oom_kill line: kill %s, bench inotify %s, victim exit %s\n", i+1, kill, rel(r.inotify), rel(r.exit))
		}
	}

	var inoLine, exitLine []time.Duration
	var kLine, kIno []interval
	late, missed := 0, 0
	for _, r := range runs {
		switch {
		case r.inotify != 0:
			inoLine = append(inoLine, time.Duration(r.line-r.inotify))
		case r.late:
			late++
		default:
			missed++
		}
		if r.exit != 0 {
			exitLine = append(exitLine, time.Duration(r.line-r.exit))
		}
		if first, last, ok := r.killWindow(res); ok {
			kLine = append(kLine, interval{r.line - last, r.line - first})
			if r.inotify != 0 {
				kIno = append(kIno, interval{r.inotify - last, r.inotify - first})
			}
		}
	}

	fmt.Printf("  %-46s %11s %11s %11s %12s %s\n", "", "p50", "p99", "max", "± (max)", "runs")
	irow := func(name string, iv []interval, note string) {
		mid, half := midpoints(iv)
		fmt.Printf("  %-46s %11s %11s %11s %12s %d/%d %s\n", name, ms(pct(mid, 50)), ms(pct(mid, 99)), ms(pct(mid, 100)),
			"±"+strings.TrimSuffix(ms(half), " ms")+" ms", len(iv), c.m, note)
	}
	row := func(name string, d []time.Duration, note string) {
		fmt.Printf("  %-46s %11s %11s %11s %12s %d/%d %s\n", name, ms(pct(d, 50)), ms(pct(d, 99)), ms(pct(d, 100)), "", len(d), c.m, note)
	}
	switch {
	case kerr != nil:
		fmt.Printf("  %-46s %s\n", "kernel kill (kmsg) -> oom_kill line", "NOT MEASURED: "+kerr.Error())
	case len(kLine) == 0:
		fmt.Printf("  %-46s %s\n", "kernel kill (kmsg) -> oom_kill line", "NOT MEASURED: no \"Killed process\" line or no consistent kmsg calibration")
	default:
		irow("kernel kill (kmsg) -> oom_kill line read", kLine, "(target p99 <= 5 ms)")
		irow("kernel kill (kmsg) -> bench's own inotify", kIno, "(kernel's share)")
		var up []time.Duration
		for _, x := range kLine {
			up = append(up, time.Duration(x.hi))
		}
		row("  upper bound: kill -> oom_kill line", up, "")
	}
	row("bench's own inotify wake -> oom_kill line", inoLine, "(cgrun's share)")
	row("victim exit (pidfd) -> oom_kill line", exitLine, "(< 0: reported before the victim was gone)")
	if kerr == nil {
		fmt.Printf("  printk clock resolution %v", res)
		if res >= time.Millisecond {
			fmt.Printf(" (jiffies): the kill time is known only to within %v, so kmsg-based rows are midpoints of intervals", res)
		}
		fmt.Println()
	}
	c.emulationNote("5 ms p99")
	if late > 0 {
		fmt.Printf("  %d run(s): the bench's inotify watch was armed too late to see the kill\n", late)
	}
	if missed > 0 {
		fmt.Printf("  %d run(s): the bench's inotify watch never woke with oom_kill > 0 before the group was removed\n", missed)
	}
	return nil
}

// interval is a latency known to lie in [lo, hi] ns.
type interval struct{ lo, hi int64 }

// midpoints returns the midpoints of iv and the largest half-width.
func midpoints(iv []interval) (mid []time.Duration, half time.Duration) {
	for _, x := range iv {
		mid = append(mid, time.Duration((x.lo+x.hi)/2))
		half = max(half, time.Duration((x.hi-x.lo)/2))
	}
	return mid, half
}

// oomOnce runs the allocator under cgrun until the kernel OOM-kills it and cgrun exits.
func oomOnce(c *config, flags []string, k *kmsg, res time.Duration, useKmsg bool) (oomRun, error) {
	var r oomRun
	r.off = newOffsetRange()
	if useKmsg {
		if err := k.calibrate(&r.off, 4, res); err != nil {
			return r, err
		}
		k.drain()
	}
	errf, err := os.CreateTemp("", "cgrun-bench-stderr")
	if err != nil {
		return r, err
	}
	defer os.Remove(errf.Name())
	defer errf.Close()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return r, err
	}
	defer unix.Close(p[0])
	pid, err := spawn(c.cgrunArgv(flags, c.self, "alloc"), c.env(), c.nullFd, c.nullFd, int(errf.Fd()), p[1])
	unix.Close(p[1])
	if err != nil {
		return r, err
	}
	werr := watchOOM(p[0], &r)
	if werr != nil {
		_ = unix.Kill(pid, unix.SIGKILL)
	}
	ws, err := wait(pid)
	if werr == nil && err == nil && ws.ExitStatus() != 128+int(unix.SIGKILL) {
		werr = fmt.Errorf("cgrun exited with status %d, want 137 (OOM kill)", ws.ExitStatus())
	}
	if werr == nil && r.line == 0 {
		werr = errors.New("no \"oom_kill\" line on --events")
	}
	if werr != nil {
		msg, _ := os.ReadFile(errf.Name())
		return r, fmt.Errorf("%w; cgrun's stderr: %q", werr, msg)
	}
	if useKmsg {
		for _, rec := range k.drain() {
			if r.killTS == 0 && strings.Contains(rec.text, "Killed process") {
				r.killTS = rec.usec * 1000
			}
		}
		if err := k.calibrate(&r.off, 4, res); err != nil {
			return r, err
		}
	}
	return r, nil
}

// watchOOM reads cgrun's event stream until it ends, and meanwhile watches the payload group's
// memory.events (inotify) and the victim (pidfd), noting when each shows the kill.
func watchOOM(events int, r *oomRun) error {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	defer unix.Close(ep)
	add := func(fd int) error {
		return unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)})
	}
	if err := add(events); err != nil {
		return err
	}
	ino, pidfd := -1, -1
	defer func() {
		for _, fd := range []int{ino, pidfd} {
			if fd >= 0 {
				unix.Close(fd)
			}
		}
	}()
	var group string
	var pending []byte
	buf := make([]byte, 64<<10)
	evs := make([]unix.EpollEvent, 4)
	deadline := mono() + int64(60*time.Second)
	for eof := false; !eof; {
		n, err := unix.EpollWait(ep, evs, 1000)
		t := mono()
		if err != nil && err != unix.EINTR {
			return err
		}
		if t > deadline {
			return errors.New("no OOM kill within 60 s")
		}
		for _, ev := range evs[:max(n, 0)] {
			switch int(ev.Fd) {
			case events:
				m, err := unix.Read(events, buf)
				if err != nil && err != unix.EINTR && err != unix.EAGAIN {
					return err
				}
				if m == 0 {
					eof = true // cgrun closed the stream: it has exited
					continue
				}
				pending = append(pending, buf[:max(m, 0)]...)
				for {
					i := strings.IndexByte(string(pending), '\n')
					if i < 0 {
						break
					}
					var rec struct {
						Event string `json:"event"`
						Group string `json:"group"`
						Pid   int    `json:"pid"`
					}
					if err := json.Unmarshal(pending[:i], &rec); err != nil {
						return fmt.Errorf("bad --events line %q: %w", pending[:i], err)
					}
					pending = pending[i+1:]
					switch {
					case rec.Event == "start" && ino < 0:
						group = "/sys/fs/cgroup" + rec.Group
						if ino, err = unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK); err != nil {
							return err
						}
						if _, err := unix.InotifyAddWatch(ino, group+"/memory.events", unix.IN_MODIFY); err != nil {
							return err
						}
						if oomKills(group) > 0 {
							r.late = true // the kill came before the watch
							unix.Close(ino)
							ino = -1
						} else if err := add(ino); err != nil {
							return err
						}
						if pidfd, err = unix.PidfdOpen(rec.Pid, 0); err == nil {
							err = add(pidfd)
						}
						if err != nil {
							return fmt.Errorf("pidfd of %d: %w", rec.Pid, err)
						}
					case rec.Event == "oom_kill" && r.line == 0:
						r.line = t
					}
				}
			case ino:
				for {
					if _, err := unix.Read(ino, buf); err != nil {
						break
					}
				}
				if r.inotify == 0 && oomKills(group) > 0 {
					r.inotify = t
				}
			case pidfd:
				r.exit = t
				_ = unix.EpollCtl(ep, unix.EPOLL_CTL_DEL, pidfd, nil)
			}
		}
	}
	return nil
}

// oomKills reads oom_kill from the group's memory.events (read only).
func oomKills(group string) uint64 {
	b, err := os.ReadFile(group + "/memory.events")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "oom_kill "); ok {
			n, _ := strconv.ParseUint(v, 10, 64)
			return n
		}
	}
	return 0
}

// swapOn reports whether the machine has swap, where --memory-max alone would swap, not kill.
func swapOn() bool {
	b, err := os.ReadFile("/proc/swaps")
	return err == nil && strings.Count(strings.TrimSpace(string(b)), "\n") > 0
}

package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// startMode is one column of the start-latency measurement.
type startMode struct {
	name  string
	argv  []string
	env   []string
	stamp bool // the payload writes a stamp; false: only the total is measured
	first []time.Duration
	total []time.Duration
}

// startBench times `cgrun run -- STAMP` against a plain fork/exec of STAMP: from just before the
// fork to STAMP's first reading of the clock, and to the reaping of the process the bench forked
// (cgrun's exit, teardown included). The columns take turns so that drift hits all alike.
func startBench(c *config) error {
	stamp := []string{c.self, "stamp"}
	modes := []*startMode{
		{name: "plain exec", argv: stamp, env: c.env(), stamp: true},
		{name: "cgrun (clone3)", argv: c.cgrunArgv(nil, stamp...), env: c.env(), stamp: true},
		{name: "cgrun (stub)", argv: c.cgrunArgv(nil, stamp...), env: c.env("CGRUN_NO_CLONE3=1"), stamp: true},
		{name: "cgrun version", argv: []string{c.cgrun, "version"}, env: c.env()},
	}
	fmt.Printf("1. START LATENCY, %d runs per column after %d warm-up, columns interleaved\n", c.n, c.warmup)
	for i := range c.warmup + c.n {
		for k := range modes {
			m := modes[(i+k)%len(modes)]
			first, total, err := startOnce(c, m)
			if err != nil {
				return fmt.Errorf("%s: %w", m.name, err)
			}
			if i >= c.warmup {
				m.first = append(m.first, first)
				m.total = append(m.total, total)
			}
		}
	}
	plain, cg, stub, version := modes[0], modes[1], modes[2], modes[3]

	header := func(what string) {
		fmt.Printf("  %-32s %11s %11s %11s %11s\n", what, "p50", "p90", "p99", "mean")
	}
	row := func(name string, d []time.Duration) {
		fmt.Printf("  %-32s %11s %11s %11s %11s\n", name, ms(pct(d, 50)), ms(pct(d, 90)), ms(pct(d, 99)), ms(mean(d)))
	}
	delta := func(name string, a, b []time.Duration, note string) {
		fmt.Printf("  %-32s %11s %11s %11s %11s  %s\n", name,
			signedMs(pct(a, 50)-pct(b, 50)), signedMs(pct(a, 90)-pct(b, 90)),
			signedMs(pct(a, 99)-pct(b, 99)), signedMs(mean(a)-mean(b)), note)
	}
	header("fork -> payload's first clock read")
	row("plain fork/exec of STAMP", plain.first)
	row("cgrun run -- STAMP", cg.first)
	row("CGRUN_NO_CLONE3=1 (stub)", stub.first)
	delta("  cgrun - plain", cg.first, plain.first, "(target < +2 ms)")
	delta("  stub - plain", stub.first, plain.first, "")
	delta("  stub - cgrun", stub.first, cg.first, "(what the stub's extra exec costs)")
	header("fork -> exit reaped (complete run)")
	row("plain fork/exec of STAMP", plain.total)
	row("cgrun run -- STAMP", cg.total)
	row("CGRUN_NO_CLONE3=1 (stub)", stub.total)
	row("cgrun version (Go binary start)", version.total)
	delta("  cgrun - plain", cg.total, plain.total, "")
	delta("  stub - plain", stub.total, plain.total, "")
	delta("  version - plain", version.total, plain.total, "(exec of cgrun alone; the rest is cgroup work)")
	if c.uml {
		fmt.Println("  UML: every exec, page fault and context switch costs 10-100x what it does on hardware;")
		fmt.Println("  compare the columns with each other, not with the 2 ms target (use --here on a real kernel)")
	}
	c.emulationNote("2 ms")
	return nil
}

// startOnce runs one mode once: first is fork -> the stamp the payload wrote, total is fork -> the
// process reaped.
func startOnce(c *config, m *startMode) (first, total time.Duration, err error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return 0, 0, err
	}
	defer unix.Close(p[0])
	t0 := mono()
	pid, err := spawn(m.argv, m.env, c.nullFd, p[1], 2)
	unix.Close(p[1])
	if err != nil {
		return 0, 0, err
	}
	line, rerr := readLine(p[0])
	ws, werr := wait(pid)
	t1 := mono()
	switch {
	case werr != nil:
		return 0, 0, werr
	case !ws.Exited() || ws.ExitStatus() != 0:
		return 0, 0, fmt.Errorf("%s: exit status %d (signal %v)", strings.Join(m.argv, " "), ws.ExitStatus(), ws.Signal())
	case !m.stamp:
		return 0, time.Duration(t1 - t0), nil
	case rerr != nil:
		return 0, 0, fmt.Errorf("reading the stamp: %w", rerr)
	}
	ts, err := strconv.ParseInt(line, 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("bad stamp %q", line)
	}
	return time.Duration(ts - t0), time.Duration(t1 - t0), nil
}

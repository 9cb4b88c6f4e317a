package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// drip is the "drip" payload: a slow leak, 1 MiB touched every 100 ms, until it is killed.
func drip() {
	var keep [][]byte
	for t := time.NewTicker(100 * time.Millisecond); ; <-t.C {
		b := make([]byte, 1<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		keep = append(keep, b)
	}
}

// thrashBench measures how soon a slowly leaking worker is replaced once it reaches memory.max:
// from its generation's first max event to the next generation's start record, with cgrun's
// thrash recycle (the default under --restart on-oom) beside the kernel alone (--thrash off:
// the OOM kill ends the thrashing). Each generation runs a copy of the payload of its own on the
// root file system that nothing has read since the page cache was dropped (the whole machine's
// clean page cache, once per column), so that its program's pages are charged to its own group
// and are what the kernel reclaims at memory.max, as for a worker whose code nothing else has
// read (as TestThrashSlowLeakIsReplacedSoon does).
func thrashBench(c *config) error {
	flags := []string{"--memory-max", "64M", "--restart", "on-oom", "--restart-delay", "0", "--max-restarts", "0", "--events", "fd:3"}
	fmt.Printf("7. THRASH: a leak of 1 MiB every 100 ms under %s, %d generations per column:\n", strings.Join(flags[:4], " "), c.thrashGens)
	fmt.Println("   first max event -> next generation's start (--events), p50 / p99 / max")
	dir, err := os.MkdirTemp("/var/tmp", "cgrun-bench-thrash-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for _, col := range []struct{ name, flag string }{{"cgrun (thrash recycle)", ""}, {"kernel alone (--thrash off)", "off"}} {
		f := flags
		if col.flag != "" {
			f = append(append([]string(nil), flags...), "--thrash", col.flag)
		}
		d, reasons, err := thrashColumn(c, f, dir)
		if err != nil {
			return fmt.Errorf("%s: %w", col.name, err)
		}
		fmt.Printf("   %-28s %s / %s / %s   (%d generations; ended by %s)\n", col.name, ms(pct(d, 50)), ms(pct(d, 99)), ms(pct(d, 100)), len(d), reasons)
	}
	return nil
}

// thrashColumn runs cgrun with flags until c.thrashGens generations ended, and returns the
// first-max -> next-start times and how the generations ended.
func thrashColumn(c *config, flags []string, dir string) ([]time.Duration, string, error) {
	b, err := os.ReadFile(c.self)
	if err != nil {
		return nil, "", err
	}
	for i := range c.thrashGens + 2 {
		if err := os.WriteFile(fmt.Sprintf("%s/copy-%d", dir, i), b, 0o755); err != nil {
			return nil, "", err
		}
	}
	if err := os.WriteFile(dir+"/next", []byte("0\n"), 0o644); err != nil {
		return nil, "", err
	}
	unix.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("1"), 0); err != nil {
		return nil, "", fmt.Errorf("drop the page cache: %w", err)
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, "", err
	}
	events := os.NewFile(uintptr(p[0]), "events") // it alone closes p[0]
	defer events.Close()
	script := `n=$(cat "$0/next"); echo $((n + 1)) >"$0/next"; exec "$0/copy-$n" drip`
	pid, err := spawnCgrun(c.cgrunArgv(flags, "/bin/sh", "-c", script, dir), c.env(), c.nullFd, c.nullFd, c.nullFd, p[1])
	unix.Close(p[1])
	if err != nil {
		return nil, "", err
	}
	stopped := false
	defer func() {
		if !stopped {
			_, _, _ = stopCgrun(pid)
		}
	}()
	firstMax, start := map[int]time.Time{}, map[int]time.Time{}
	reasons := map[string]int{}
	s := bufio.NewScanner(events)
	deadline := time.AfterFunc(time.Duration(c.thrashGens)*60*time.Second, func() { _ = unix.Kill(pid, unix.SIGTERM) })
	defer deadline.Stop()
	for s.Scan() {
		var r struct {
			Time       time.Time `json:"time"`
			Event      string    `json:"event"`
			Generation int       `json:"generation"`
			Reason     string    `json:"reason"`
		}
		if err := json.Unmarshal(s.Bytes(), &r); err != nil {
			return nil, "", fmt.Errorf("bad --events line %q: %w", s.Text(), err)
		}
		switch r.Event {
		case "max":
			if _, ok := firstMax[r.Generation]; !ok {
				firstMax[r.Generation] = r.Time
			}
		case "start":
			start[r.Generation] = r.Time
		case "recycle":
			reasons[r.Reason]++
		}
		if len(start) > c.thrashGens {
			break
		}
	}
	stopped = true
	_, _, _ = stopCgrun(pid)
	var d []time.Duration
	for g := 1; g <= c.thrashGens; g++ {
		fm, ok1 := firstMax[g]
		st, ok2 := start[g+1]
		if ok1 && ok2 {
			d = append(d, st.Sub(fm))
		}
	}
	if len(d) == 0 {
		return nil, "", fmt.Errorf("no generation reached memory.max and was replaced")
	}
	var rs []string
	for k, n := range reasons {
		rs = append(rs, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(rs)
	return d, strings.Join(rs, ", "), nil
}

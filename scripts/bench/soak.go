package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// soakSettle is how long the bench lets cgrun finish a restart before it samples it.
const soakSettle = 200 * time.Millisecond

// soakSample is cgrun's own state at one generation.
type soakSample struct {
	gen, psGen              int
	rss, hwm, anon          int64 // kB
	fds, threads, goroutine int
}

// soakBench restarts a payload that exits at once c.soak times and samples cgrun's own RSS,
// fds, threads and goroutines every 100 generations, then stops cgrun and looks for anything it
// left behind. The payload, dd, reads one byte of stdin and exits 0; the bench feeds it the
// bytes, one per generation, so it can hold the loop still (a payload waiting for its byte)
// where it samples, and every sample sees cgrun at the same point of a generation.
func soakBench(c *config) error {
	dd, err := exec.LookPath("dd")
	if err != nil {
		return err
	}
	payload := []string{dd, "bs=1", "count=1", "status=none", "of=/dev/null"}
	flags := []string{"--restart", "always", "--restart-delay", "0", "--max-restarts", "0",
		"--metrics-addr", "127.0.0.1:0", "--name", "soak", "--events", "fd:3"}
	fmt.Printf("6. SOAK, %d generations of cgrun run %s -- dd bs=1 count=1 (exits 0)\n", c.soak, strings.Join(flags, " "))

	groupsBefore := cgroupDirs()
	var in, ev [2]int
	for _, p := range []*[2]int{&in, &ev} {
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			return err
		}
	}
	defer unix.Close(in[1])
	errf, err := os.CreateTemp("", "cgrun-bench-stderr")
	if err != nil {
		return err
	}
	defer os.Remove(errf.Name())
	defer errf.Close()
	stderr := func() string { b, _ := os.ReadFile(errf.Name()); return lastLines(string(b), 5) }

	argv := c.cgrunArgv(flags, payload...)
	pid, err := spawnCgrun(argv, c.env(), in[0], c.nullFd, int(errf.Fd()), ev[1])
	unix.Close(in[0])
	unix.Close(ev[1])
	if err != nil {
		unix.Close(ev[0])
		return err
	}
	stopped := false
	defer func() {
		if !stopped {
			_, _, _ = stopCgrun(pid)
		}
	}()
	if err := unix.SetNonblock(ev[0], true); err != nil {
		return err
	}
	evf := os.NewFile(uintptr(ev[0]), "events") // pollable: reads can time out
	defer evf.Close()
	events := &soakEvents{f: evf, r: bufio.NewReader(evf)}

	var samples []soakSample
	var running time.Duration // time the loop ran, without the pauses to sample
	for gen := 1; ; gen = min(gen/100*100+100, c.soak) {
		t := mono()
		if gen > 1 {
			// the waiting generation and the ones up to gen-1 each take a byte and exit;
			// generation gen waits for its own
			if _, err := unix.Write(in[1], make([]byte, gen-events.gen)); err != nil {
				return err
			}
		}
		if err := events.waitFor(gen, 120*time.Second); err != nil {
			return fmt.Errorf("%w; cgrun's stderr: %q", err, stderr())
		}
		running += time.Duration(mono() - t)
		time.Sleep(soakSettle)
		s, err := sampleCgrun(c, pid, gen)
		if err != nil {
			return fmt.Errorf("generation %d: %w; cgrun's stderr: %q", gen, err, stderr())
		}
		samples = append(samples, s)
		if gen >= c.soak {
			break
		}
	}

	fmt.Printf("  %10s %10s %10s %10s %6s %8s %11s %10s\n", "generation", "VmRSS", "VmHWM", "RssAnon", "fds", "threads", "goroutines", "ps --json")
	for _, s := range samples {
		fmt.Printf("  %10d %10s %10s %10s %6d %8d %11d %10d\n", s.gen, mib(s.rss), mib(s.hwm), mib(s.anon), s.fds, s.threads, s.goroutine, s.psGen)
	}
	// Against the half-way sample: the first half is warm-up (the Go heap grows to its GC goal
	// and its spans settle, the runtime adds a thread when two CPUs let it; on Debian's kernel
	// under QEMU that took some 400 restarts, after which 3,000 stayed within 0.5 MiB). The
	// second half must be flat. A leak of 2 KiB a restart or more shows in 1,000.
	ri := 0
	for i, s := range samples {
		if s.gen <= c.soak/2 {
			ri = i
		}
	}
	ref, last := samples[ri], samples[len(samples)-1]
	// The least of the last three samples, for each figure: a goroutine of the moment (a flush
	// timer, the FreeOSMemory after a restart) or the GC cycle's swing is not growth; a leak
	// raises all three.
	low := last
	for _, s := range samples[max(ri+1, len(samples)-3):] {
		low.rss, low.fds, low.goroutine = min(low.rss, s.rss), min(low.fds, s.fds), min(low.goroutine, s.goroutine)
	}
	base := ref
	for _, s := range samples[:ri+1] {
		base.fds, base.goroutine = min(base.fds, s.fds), min(base.goroutine, s.goroutine)
	}
	verdict := "flat"
	if low.rss-ref.rss > 1024 || low.fds > base.fds || low.goroutine > base.goroutine {
		verdict = "GROWS"
	}
	fmt.Printf("  verdict: %s (the last 3 samples against generation %d: fds %+d, goroutines %+d, VmRSS %+.1f MiB, at their least; threads %+d)\n",
		verdict, ref.gen, low.fds-base.fds, low.goroutine-base.goroutine, float64(low.rss-ref.rss)/1024, last.threads-ref.threads)
	fmt.Println("  flat: over the second half, no more fds or goroutines than in the first, RSS within +1 MiB")
	gens := events.gen - 1
	fmt.Printf("  %d restarts took %.1f s, %s each (the pauses to sample not counted)\n", gens, running.Seconds(), ms(running/time.Duration(max(gens, 1))))

	stopped = true
	ws, took, err := stopCgrun(pid)
	if err != nil {
		return err
	}
	fmt.Printf("  stop: SIGTERM -> cgrun %s after %s", describeWait(ws), ms(took))
	if !ws.Signaled() || ws.Signal() != unix.SIGTERM {
		fmt.Printf(" (UNEXPECTED: it should die of SIGTERM, as its generation did); stderr: %q", stderr())
	}
	fmt.Println()
	var left []string
	for _, d := range cgroupDirs() {
		b := filepath.Base(d)
		if !slices.Contains(groupsBefore, d) && (strings.HasPrefix(b, "soak-") || strings.Contains(b, "cgrun")) {
			left = append(left, d)
		}
	}
	fmt.Printf("  groups left: %s\n", orNone(left))
	fmt.Printf("  processes left: %s\n", orNone(findProcs(argv, payload)))
	state := fmt.Sprintf("/run/cgrun/%d.json", pid)
	if _, err := os.Stat(state); err == nil {
		fmt.Printf("  state file left: %s\n", state)
	}
	if verdict != "flat" || len(left) > 0 {
		return errors.New("cgrun did not stay flat or left something behind")
	}
	return nil
}

// soakEvents follows cgrun's --events stream; gen is the newest generation that has started.
type soakEvents struct {
	f   *os.File
	r   *bufio.Reader
	gen int
}

// waitFor reads the stream until generation gen has started and cgrun has logged all of its
// start: the "start" record for the first generation, the "recycle" record after it for later
// ones.
func (e *soakEvents) waitFor(gen int, timeout time.Duration) error {
	_ = e.f.SetReadDeadline(time.Now().Add(timeout))
	for {
		line, err := e.r.ReadBytes('\n')
		if err != nil {
			return fmt.Errorf("waiting for generation %d on --events (at %d): %w", gen, e.gen, err)
		}
		var r struct {
			Event      string `json:"event"`
			Generation int    `json:"generation"`
		}
		if err := json.Unmarshal(line, &r); err != nil {
			return fmt.Errorf("bad --events line %q: %w", line, err)
		}
		if r.Event == "start" {
			e.gen = r.Generation
		}
		if r.Generation == gen && (r.Event == "recycle" || r.Event == "start" && gen == 1) {
			return nil
		}
	}
}

// sampleCgrun reads cgrun's memory, fds and threads from /proc, its generation and metrics
// address from `cgrun ps --json`, and its goroutines from the metrics endpoint (go_goroutines).
func sampleCgrun(c *config, pid, gen int) (soakSample, error) {
	s := soakSample{gen: gen}
	st := procStatus(fmt.Sprintf("/proc/%d/status", pid))
	if st == nil {
		return s, fmt.Errorf("cgrun (pid %d) is gone", pid)
	}
	s.rss, _ = strconv.ParseInt(strings.TrimSuffix(st["VmRSS"], " kB"), 10, 64)
	s.hwm, _ = strconv.ParseInt(strings.TrimSuffix(st["VmHWM"], " kB"), 10, 64)
	s.anon, _ = strconv.ParseInt(strings.TrimSuffix(st["RssAnon"], " kB"), 10, 64)
	s.threads, _ = strconv.Atoi(st["Threads"])
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return s, err
	}
	s.fds = len(fds)

	out, err := exec.Command(c.cgrun, "ps", "--json").Output()
	if err != nil {
		return s, fmt.Errorf("cgrun ps --json: %w", err)
	}
	var ps []struct {
		Pid         int    `json:"pid"`
		Generation  int    `json:"generation"`
		MetricsAddr string `json:"metrics_addr"`
	}
	if err := json.Unmarshal(out, &ps); err != nil {
		return s, fmt.Errorf("cgrun ps --json: %w: %q", err, out)
	}
	addr := ""
	for _, p := range ps {
		if p.Pid == pid {
			s.psGen, addr = p.Generation, p.MetricsAddr
		}
	}
	if addr == "" {
		return s, fmt.Errorf("cgrun ps --json has no metrics_addr for pid %d: %s", pid, out)
	}
	// the least of three scrapes: a goroutine that is just ending (the previous scrape's
	// connection, a timer) is not a leak, and a leaked one shows in all three
	s.goroutine = 1 << 30
	for i := range 3 {
		if i > 0 {
			time.Sleep(50 * time.Millisecond)
		}
		n, err := goroutines(addr)
		if err != nil {
			return s, err
		}
		s.goroutine = min(s.goroutine, n)
	}
	return s, nil
}

// goroutines scrapes go_goroutines from cgrun's metrics, with a plain HTTP/1.0 request on a
// connection of its own (no net/http: the bench is also the payload, and should start fast).
func goroutines(addr string) (int, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, "GET /metrics HTTP/1.0\r\nHost: "+addr+"\r\n\r\n"); err != nil {
		return 0, err
	}
	b, err := io.ReadAll(conn)
	if err != nil {
		return 0, err
	}
	if !strings.HasPrefix(string(b), "HTTP/1.0 200") && !strings.HasPrefix(string(b), "HTTP/1.1 200") {
		return 0, fmt.Errorf("http://%s/metrics: %q", addr, lastLines(string(b), 3))
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "go_goroutines "); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, fmt.Errorf("no go_goroutines in http://%s/metrics", addr)
}

// cgroupDirs lists every group under /sys/fs/cgroup (read only).
func cgroupDirs() []string {
	var dirs []string
	_ = filepath.WalkDir("/sys/fs/cgroup", func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	return dirs
}

// findProcs lists the processes whose command line is one of argvs.
func findProcs(argvs ...[]string) []string {
	var found []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || len(b) == 0 {
			continue
		}
		cmd := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
		for _, a := range argvs {
			if slices.Equal(cmd, a) {
				found = append(found, e.Name()+" "+strings.Join(cmd, " "))
			}
		}
	}
	return found
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// mib formats kB as MiB.
func mib(kb int64) string { return fmt.Sprintf("%.1f MiB", float64(kb)/1024) }

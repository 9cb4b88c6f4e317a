package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/oomwatch"
	"golang.org/x/sys/unix"
)

// The advise tests run workloads whose needs are known by construction: anonymous memory kept
// and touched (hot), anonymous memory kept and never touched again (cold: without swap it
// stays), a file read once (page cache it never needs again), and a file re-read in a loop (hot
// page cache). Each is run three times: without a limit (its speed, and the naive peak), under
// cgrun advise (the probe's cost, the advice, memory.high restored), and under the advised
// limits (no OOM kill, and most of its speed).

// work is the helper's workload: work HOT_MB COLD_MB ONCE_FILE HOT_FILE SECONDS. It drops its
// files from the page cache first (so that what it reads is charged to its own group), reads
// ONCE_FILE once, keeps COLD_MB untouched, then loops: touch every cache line of HOT_MB, read
// HOT_FILE whole. Each second it prints "rate N" on stderr, N the MB it went through in that
// second. On SIGTERM or SIGINT, or after SECONDS, it reports its group (memory.high among the files) on
// stdout and exits 0. "-" is no file.
func work(args []string) int {
	if len(args) != 5 {
		fmt.Fprintln(os.Stderr, "helper work: HOT_MB COLD_MB ONCE_FILE HOT_FILE SECONDS")
		return 2
	}
	hotMB, _ := strconv.Atoi(args[0])
	coldMB, _ := strconv.Atoi(args[1])
	once, hotFile := args[2], args[3]
	secs, _ := strconv.Atoi(args[4])
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	for _, f := range []string{once, hotFile} {
		if f != "-" {
			dropCache(f)
		}
	}
	// The files stay open for the whole run: hostfs (the UML guest's disk) evicts a file's
	// page cache with its inode at the last close, where a disk file system keeps it.
	buf := make([]byte, 1<<20)
	open := func(path string) int {
		if path == "-" {
			return -1
		}
		fd, err := unix.Open(path, unix.O_RDONLY, 0)
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper work:", err)
			os.Exit(3)
		}
		return fd
	}
	readAll := func(fd int) int {
		n := 0
		for {
			k, err := unix.Pread(fd, buf, int64(n))
			if k <= 0 || err != nil {
				return n
			}
			n += k
		}
	}
	onceFd, hotFd := open(once), open(hotFile)
	if onceFd >= 0 {
		readAll(onceFd)
	}
	cold := make([]byte, coldMB<<20)
	for i := 0; i < len(cold); i += 4096 {
		cold[i] = 1
	}
	hot := make([]byte, hotMB<<20)
	for i := 0; i < len(hot); i += 4096 {
		hot[i] = 1
	}
	// What the limits or the probe cost it, counted rather than timed (on a guest sharing a
	// busy host, two identical runs' speeds differ by half): the time its thread slept
	// (throttled at memory.high, or waiting for a read; the loop never sleeps otherwise), and
	// the pages it read again because reclaim took them (refaults of its group), against the
	// time and the work of the loop. Waiting for the CPU is neither.
	runtime.LockOSThread()
	c0 := costNow()
	end := time.Now().Add(time.Duration(secs) * time.Second)
	tick := time.Now().Add(time.Second)
	var done, total int64 // bytes gone through in this second, and in all
	finish := func(note string) int {
		c := costNow()
		fmt.Fprintf(os.Stderr, "cost work_mb=%d refault_mb=%d slept_us=%d wall_us=%d\n", total>>20,
			(c.refaults-c0.refaults)*int64(os.Getpagesize())>>20, (c.slept - c0.slept).Microseconds(), c.wall.Sub(c0.wall).Microseconds())
		if len(cold) > 0 {
			cold[0]++
		}
		reportSelf(note)
		return 0
	}
	for time.Now().Before(end) {
		select {
		case <-term:
			return finish("term")
		default:
		}
		for i := 0; i < len(hot); i += 64 {
			hot[i]++
		}
		n := int64(len(hot))
		if hotFd >= 0 {
			n += int64(readAll(hotFd))
		}
		done, total = done+n, total+n
		if now := time.Now(); !now.Before(tick) {
			fmt.Fprintf(os.Stderr, "rate %d\n", done>>20)
			done, tick = 0, now.Add(time.Second)
		}
	}
	return finish("done")
}

// cost is what work's cost is counted from.
type cost struct {
	wall     time.Time
	slept    time.Duration // the thread's time neither on a CPU nor waiting for one
	refaults int64         // its group's refaulted pages
}

func costNow() cost {
	c := cost{wall: time.Now()}
	h, err := cgroup.Detect()
	if err != nil {
		return c
	}
	dir := h.SelfDir()
	if filepath.Base(dir) == "main" {
		dir = filepath.Dir(dir)
	}
	st, _ := cgroup.ReadKeyed(dir, "memory.stat")
	c.refaults = int64(st["workingset_refault_file"] + st["workingset_refault_anon"])
	// Where the kernel has PSI its group's memory stall is exactly the time reclaim and
	// throttling cost it; where not, the thread's time off the CPU (the kernels without PSI
	// that cgrun is tested on keep schedstat).
	if p, err := oomwatch.ReadPressure(dir); err == nil {
		c.slept = time.Duration(p.SomeTotalUS) * time.Microsecond
		return c
	}
	var run, wait int64
	b, err := os.ReadFile("/proc/thread-self/schedstat") // on a CPU, waiting for one (ns)
	if _, serr := fmt.Sscan(string(b), &run, &wait); err != nil || serr != nil || run == 0 {
		c.slept = -time.Hour // neither: the cost cannot be told, and the test fails
		return c
	}
	c.slept = time.Duration(c.wall.UnixNano()) - time.Duration(run+wait) // minus the start, taken out by the difference
	return c
}

// dropCache takes path's pages out of the page cache, whoever's group they were charged to.
func dropCache(path string) {
	if fd, err := unix.Open(path, unix.O_RDONLY, 0); err == nil {
		unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED)
		unix.Close(fd)
	}
}

// diskFile makes a file of mb MiB on a disk file system (not the guest's tmpfs, whose pages
// are shared memory that reclaim cannot drop without swap): beside the test binary.
func diskFile(t *testing.T, mb int) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(filepath.Dir(exe), "advise-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, fmt.Sprintf("%dM", mb))
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i)
	}
	for i := 0; i < mb; i++ {
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// workCost is what the helper's "cost" line says: the part of its loop's time it slept
// (throttled, or waiting for reads) and the part of its work it read again (refaults). Their
// sum is how much slower the limits or the probe made it, at most.
type workCost struct {
	workMB, refaultMB, sleptUS, wallUS int64
}

func parseCost(t *testing.T, r result) workCost {
	t.Helper()
	var c workCost
	for _, line := range strings.Split(r.stderr, "\n") {
		if _, err := fmt.Sscanf(line, "cost work_mb=%d refault_mb=%d slept_us=%d wall_us=%d", &c.workMB, &c.refaultMB, &c.sleptUS, &c.wallUS); err == nil {
			return c
		}
	}
	t.Fatalf("no cost line from the workload (exit %d): %s", r.code, r.stderr)
	return c
}

func (c workCost) share() float64 {
	if c.workMB <= 0 || c.wallUS <= 0 || c.sleptUS < -c.wallUS/10 {
		return 1 // no work, or no way to tell the time it lost: a cost no check passes
	}
	return float64(c.refaultMB)/float64(c.workMB) + float64(c.sleptUS)/float64(c.wallUS)
}

func (c workCost) String() string {
	return fmt.Sprintf("%.1f%% (%dM of %dM read again, slept %.2fs of %.2fs)", 100*c.share(), c.refaultMB, c.workMB, float64(c.sleptUS)/1e6, float64(c.wallUS)/1e6)
}

// both runs f and g at the same time and waits for both.
func both(f, g func()) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); f() }()
	go func() { defer wg.Done(); g() }()
	wg.Wait()
}

// adviceDoc is `cgrun advise --json`'s object.
type adviceDoc struct {
	MemoryMax       uint64  `json:"memory_max"`
	MemoryHigh      uint64  `json:"memory_high"`
	WorkingSet      uint64  `json:"working_set"`
	Peak            uint64  `json:"peak"`
	ObservedSeconds float64 `json:"observed_seconds"`
	PressureSource  string  `json:"pressure_source"`
	Settled         bool    `json:"settled"`
	Contacts        int     `json:"contacts"`
}

// parseAdvice finds the advice object in advise's stdout (after the helper's own report).
func parseAdvice(t *testing.T, stdout string) adviceDoc {
	t.Helper()
	for _, line := range strings.Split(stdout, "\n") {
		if strings.HasPrefix(line, "{") && strings.Contains(line, `"memory_max"`) {
			var a adviceDoc
			if err := json.Unmarshal([]byte(line), &a); err != nil {
				t.Fatalf("advice %q: %v", line, err)
			}
			return a
		}
	}
	t.Fatalf("no advice in stdout %q", stdout)
	return adviceDoc{}
}

// wantSource is the pressure source advise must use on this kernel.
func wantSource(t *testing.T) string {
	h := requireCgroup2(t)
	if _, err := os.Stat(filepath.Join(h.SelfDir(), "memory.pressure")); err == nil {
		return "psi"
	}
	return "refaults"
}

// cgrunAdvise runs `cgrun ARGS... -- helper work WORK...` and returns what it printed. A run
// that takes more than a minute is stopped (SIGTERM, then SIGKILL): too small a limit throttles
// without end.
func cgrunAdvise(t *testing.T, args []string, work ...string) result {
	cmd := exec.Command(cgrunBin(t), append(append(args, "--", helperPath(t), "work"), work...)...)
	cmd.Env = append(os.Environ(), "CGRUNTEST_HELPER=1")
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		return result{code: -1, stderr: err.Error()}
	}
	timer := time.AfterFunc(time.Minute, func() { cmd.Process.Signal(syscall.SIGTERM) })
	defer timer.Stop()
	kill := time.AfterFunc(75*time.Second, func() { cmd.Process.Kill() })
	defer kill.Stop()
	err := cmd.Wait()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		code = -1
	}
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// workload is one of the advise tests' workloads.
type workload struct {
	hot, cold        int // MB of anonymous memory touched in the loop / kept untouched
	onceMB, hotMB    int // MB of the file read once / re-read in the loop (0: none)
	need             uint64
	underPeakPercent float64 // the advised memory.max must be at most this much of the naive peak
}

func checkAdvise(t *testing.T, w workload) {
	h := requireCgroup2(t)
	src := wantSource(t)
	// Two copies of each file: the workloads that run side by side each read their own.
	once, hotFile := [2]string{"-", "-"}, [2]string{"-", "-"}
	for i := range 2 {
		if w.onceMB > 0 {
			once[i] = diskFile(t, w.onceMB)
		}
		if w.hotMB > 0 {
			hotFile[i] = diskFile(t, w.hotMB)
		}
	}
	before := groupsUnder(t, h.SelfDir())
	args := func(secs, copy int) []string {
		return []string{strconv.Itoa(w.hot), strconv.Itoa(w.cold), once[copy], hotFile[copy], strconv.Itoa(secs)}
	}
	dir := t.TempDir()

	// 1. Probed, and beside it the same workload without a limit (its own copies of the files):
	// the probe's cost, the advice, memory.high as it was; the naive peak.
	rep := filepath.Join(dir, "free.json")
	var free, adv result
	both(func() { free = cgrunAdvise(t, []string{"run", "--report", rep}, args(8, 1)...) }, // ends with the window: its start is not in its 8 s
		func() { adv = cgrunAdvise(t, []string{"advise", "--for", "13s", "--json"}, args(60, 0)...) })
	if free.code != 0 {
		t.Fatalf("unlimited run: exit %d: %s", free.code, free.stderr)
	}
	naive := readReport(t, rep).MemoryPeak
	if adv.code != 0 {
		t.Fatalf("advise: exit %d: %s", adv.code, adv.stderr)
	}
	a := parseAdvice(t, adv.stdout)
	if !a.Settled {
		t.Fatalf("the probe never reached the working set in its window: %+v\n%s", a, adv.stderr)
	}
	if got := parseReport(t, adv.stdout); got.Note != "term" || got.Files["memory.high"] != "max" {
		t.Errorf("at the stop the group's memory.high is %q (%s): want max, as it was before the probe", got.Files["memory.high"], got.Note)
	}
	probed, freeCost := parseCost(t, adv), parseCost(t, free)

	// 2. Under the advised limits (and its unlimited copy beside it, for the log): no OOM kill,
	// most of its speed.
	rep2 := filepath.Join(dir, "limited.json")
	var lim, free2 result
	both(func() {
		lim = cgrunAdvise(t, []string{"run", "--report", rep2, "--memory-max", strconv.FormatUint(a.MemoryMax, 10), "--memory-high", strconv.FormatUint(a.MemoryHigh, 10)}, args(6, 0)...)
	}, func() { free2 = cgrunAdvise(t, []string{"run"}, args(6, 1)...) })
	limRep := readReport(t, rep2)
	limited, free2Cost := parseCost(t, lim), parseCost(t, free2)
	assertNothingLeft(t, h, before)

	t.Logf("need %dM; naive peak %dM; advice %+v; cost: probed %v, limited %v; of the unlimited copies beside them %v and %v",
		w.need>>20, naive>>20, a, probed, limited, freeCost, free2Cost)
	t.Logf("advise said: %s", strings.TrimSpace(adv.stderr[strings.LastIndex(adv.stderr, "\ncgrun")+1:]))
	t.Logf("its stdout: %s", adv.stdout)
	switch {
	case a.PressureSource != src:
		t.Errorf("pressure source %q, want %q on this kernel", a.PressureSource, src)
	case a.MemoryMax < w.need:
		t.Errorf("advised memory.max %dM is below what the workload needs, %dM", a.MemoryMax>>20, w.need>>20)
	case float64(a.MemoryMax) > w.underPeakPercent/100*float64(naive):
		t.Errorf("advised memory.max %dM is not well below the naive peak %dM (want at most %.0f%% of it)", a.MemoryMax>>20, naive>>20, w.underPeakPercent)
	}
	if lim.code != 0 || limRep.OOMKills != 0 {
		t.Errorf("under the advised limits: exit %d, %d OOM kills; want 0 and 0: %s", lim.code, limRep.OOMKills, lim.stderr)
	}
	// Less what its unlimited copy beside it lost as well (the thread's sleep reads a few
	// percent even there: the guest's accounting is by the tick). Where the kernel has no PSI
	// that sleep is told from the scheduler's figures, which on a busy guest differ by a few
	// percent between two runs that nothing limits: the two unlimited copies show by how much
	// here and now, and the checks allow that much more (10% at most).
	noise := min(math.Abs(freeCost.share()-free2Cost.share()), 0.10)
	if d := limited.share() - free2Cost.share(); d > 0.25+noise {
		t.Errorf("under the advised limits it lost %v, %.1f%% more than its unlimited copy: want at most 25%% (at least 75%% of its speed), %.1f%% more for the measurement's noise", limited, 100*d, 100*noise)
	}
	if d := probed.share() - freeCost.share(); d > 0.05+noise {
		t.Errorf("while probed it lost %v, %.1f%% more than its unlimited copy: the probe may cost at most 5%%, %.1f%% more for the measurement's noise", probed, 100*d, 100*noise)
	}
}

// TestAdviseHotAnon: 48M touched all the time, and a 64M file read once at the start.
func TestAdviseHotAnon(t *testing.T) {
	checkAdvise(t, workload{hot: 48, onceMB: 64, need: 48 << 20, underPeakPercent: 75})
}

// TestAdviseColdAnon: 48M kept and never touched again (without swap it must stay), 8M hot,
// and a 64M file read once.
func TestAdviseColdAnon(t *testing.T) {
	checkAdvise(t, workload{hot: 8, cold: 48, onceMB: 64, need: 56 << 20, underPeakPercent: 75})
}

// TestAdviseFileReadOnce: a 128M file read once; 16M hot.
func TestAdviseFileReadOnce(t *testing.T) {
	checkAdvise(t, workload{hot: 16, onceMB: 128, need: 16 << 20, underPeakPercent: 50})
}

// TestAdviseHotFile: a 48M file re-read in a loop (its page cache is needed), 8M hot, and a
// 96M file read once (larger than the other cases' 64M: where the squeeze meets the hot file's
// refaults, some of the file read once may still be cached, and the peak must stand well above
// that).
func TestAdviseHotFile(t *testing.T) {
	checkAdvise(t, workload{hot: 8, onceMB: 96, hotMB: 48, need: 56 << 20, underPeakPercent: 75})
}

// TestRunAdviseInStatusPsMetricsReport: a long-running `cgrun run --advise` shows its estimate in
// `cgrun status` (text and JSON), `cgrun ps --json`, the metrics and the final --report; the probe
// squeezes only the payload group's memory.high, never the leaf's copy of the user's limits
// that runtimes read, and on SIGTERM the command finds memory.high as cgrun leaves it for a
// stop (max: a stop is never throttled), not the probe's value.
func TestRunAdviseInStatusPsMetricsReport(t *testing.T) {
	h := requireCgroup2(t)
	before := groupsUnder(t, h.SelfDir())
	once := diskFile(t, 96)
	rep := filepath.Join(t.TempDir(), "report.json")
	cmd, out, errb := startCgrun(t, []string{"--advise", "--name", "advised", "--memory-high", "900M", "--metrics-addr", ":0", "--report", rep},
		"work", "8", "0", once, "-", "60")
	var box sandbox
	deadline := time.Now().Add(25 * time.Second)
	for {
		stdout, _, code := cgrunCmd(t, nil, "status", "advised", "--json")
		if code == 0 {
			if err := json.Unmarshal([]byte(stdout), &box); err != nil {
				t.Fatalf("status --json printed %q: %v", stdout, err)
			}
			if box.Advice != nil && box.Advice.Settled && box.MemoryHigh != nil && *box.MemoryHigh < 900<<20 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no settled advice and no squeeze in cgrun status after 25 s: %+v, memory.high %v; stderr %s", box.Advice, box.MemoryHigh, errb)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if a := box.Advice; a.MemoryMax < 8<<20 || a.MemoryMax > 64<<20 || a.WorkingSet > a.MemoryHigh || a.MemoryHigh >= a.MemoryMax || string(a.PressureSource) != wantSource(t) {
		t.Errorf("advice in status: %+v; want memory.max between 8M and 64M (8M hot, a 96M file read once), working set < memory.high < memory.max", a)
	}
	leaf := filepath.Join(h.Mount, box.Group, "main")
	if v, err := cgroup.ReadFile(leaf, "memory.high"); err != nil || v != strconv.Itoa(900<<20) {
		t.Errorf("the leaf's memory.high is %q (%v) while the group's is squeezed to %d: want the user's 900M, untouched", v, err, *box.MemoryHigh)
	}
	if b := find(psJSON(t), "advised"); b == nil || b.Advice == nil || b.Advice.MemoryMax == 0 {
		t.Errorf("cgrun ps --json: %+v, want the advice", b)
	}
	text, _, _ := cgrunCmd(t, nil, "status", "advised")
	if !strings.Contains(text, "advice") || !strings.Contains(text, "--memory-max ") {
		t.Errorf("cgrun status has no advice line:\n%s", text)
	}
	m := scrape(t, box.MetricsAddr)
	for _, fig := range []string{"memory_max", "memory_high", "working_set"} {
		if v := m[fmt.Sprintf(`cgrun_advice_bytes{figure=%q,name="advised"}`, fig)]; v <= 0 {
			t.Errorf("cgrun_advice_bytes{figure=%q} = %v, want > 0", fig, v)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	var got helperReport
	for out.Scan() {
		if strings.HasPrefix(out.Text(), "{") {
			got = parseReport(t, out.Text())
		}
	}
	if code := waitCode(t, cmd); code != 0 {
		t.Errorf("exit %d, want 0 (the helper exits 0 on SIGTERM): %s", code, errb)
	}
	if got.Note != "term" || got.Files["memory.high"] != "max" {
		t.Errorf("at the stop the group's memory.high is %q (%s): want max, as cgrun sets it for a stop", got.Files["memory.high"], got.Note)
	}
	var doc struct {
		Advice *adviceDoc `json:"advice"`
	}
	b, _ := os.ReadFile(rep)
	if err := json.Unmarshal(b, &doc); err != nil || doc.Advice == nil || doc.Advice.MemoryMax == 0 || doc.Advice.ObservedSeconds <= 0 {
		t.Errorf("--report: %s (%v), want an advice object", b, err)
	}
	if !strings.Contains(errb.String(), "advice: --memory-max ") {
		t.Errorf("no advice line at exit on stderr: %s", errb)
	}
	assertNothingLeft(t, h, before, cmd.Process.Pid)
}

// TestAdviseBadInputCreatesNothing: what would make the probe set off a recycle, a negative
// window, no command: one line, exit 125, nothing left.
func TestAdviseBadInputCreatesNothing(t *testing.T) {
	h := requireCgroup2(t)
	before := groupsUnder(t, h.SelfDir())
	for _, args := range [][]string{
		{"advise", "--recycle-on-high", "5", "--", "true"},
		{"advise", "--recycle-above", "100M", "--", "true"},
		{"run", "--advise", "--recycle-on-stall", "--", "true"},
		{"advise", "--for", "-5s", "--", "true"},
		{"advise", "--for", "10s"},
	} {
		stdout, stderr, code := cgrunCmd(t, nil, args...)
		if code != 125 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.HasPrefix(stderr, "cgrun: ") || stdout != "" {
			t.Errorf("cgrun %v: exit %d, stdout %q, stderr %q; want 125 and one line", args, code, stdout, stderr)
		}
	}
	assertNothingLeft(t, h, before)
}

// TestAdvisePSIHotFile is TestAdviseHotFile where the kernel has PSI: the probe backs off on the
// group's memory stall (memory.pressure), not on refaults. The PSI step of scripts/test runs it.
func TestAdvisePSIHotFile(t *testing.T) {
	requirePSI(t)
	checkAdvise(t, workload{hot: 8, onceMB: 96, hotMB: 48, need: 56 << 20, underPeakPercent: 75})
}

// TestAdviseRestoresHighOnSignal: cgrun stopped by SIGTERM or SIGINT while the probe has the
// group's memory.high squeezed puts it back as it was (max: no --memory-high) before the command
// hears the signal, for `cgrun advise` and `cgrun run --advise` alike. (A SIGKILLed cgrun's guard
// kills the group, so nothing is left running under a squeezed memory.high.)
func TestAdviseRestoresHighOnSignal(t *testing.T) {
	h := requireCgroup2(t)
	once := diskFile(t, 64)
	for _, c := range []struct {
		name string
		args []string
		sig  syscall.Signal
	}{
		{"advise-term", []string{"advise", "--for", "60s"}, syscall.SIGTERM},
		{"run-advise-int", []string{"run", "--advise"}, syscall.SIGINT},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := groupsUnder(t, h.SelfDir())
			args := append(append(c.args, "--name", c.name, "--", helperPath(t)), "work", "8", "0", once, "-", "60")
			cmd := exec.Command(cgrunBin(t), args...)
			cmd.Env = append(os.Environ(), "CGRUNTEST_HELPER=1")
			var out, errb strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &errb
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			deadline := time.Now().Add(20 * time.Second)
			for {
				stdout, _, code := cgrunCmd(t, nil, "status", c.name, "--json")
				var box sandbox
				if code == 0 && json.Unmarshal([]byte(stdout), &box) == nil && box.MemoryHigh != nil {
					t.Logf("memory.high squeezed to %dM", *box.MemoryHigh>>20)
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the probe never squeezed memory.high in 20 s: %s", errb.String())
				}
				time.Sleep(200 * time.Millisecond)
			}
			cmd.Process.Signal(c.sig)
			if code := waitCode(t, cmd); code != 0 {
				t.Errorf("exit %d, want 0 (the helper exits 0 on %v): %s", code, c.sig, errb.String())
			}
			var got helperReport
			for _, line := range strings.Split(out.String(), "\n") {
				if strings.HasPrefix(line, "{") && strings.Contains(line, `"files"`) {
					got = parseReport(t, line)
				}
			}
			if got.Note != "term" {
				t.Fatalf("no report from the helper on %v: stdout %q, stderr %s", c.sig, out.String(), errb.String())
			}
			if got.Files["memory.high"] != "max" {
				t.Errorf("after %v the group's memory.high is %q: want max, as it was before the probe", c.sig, got.Files["memory.high"])
			}
			assertNothingLeft(t, h, before, cmd.Process.Pid)
		})
	}
}

// TestAdvisePrintsAdviceWhenStoppedBySignal: a command that dies of the SIGTERM cgrun advise
// forwards makes cgrun die of it too (as cgrun run does, for systemd and shells), but the advice
// is on stdout before that.
func TestAdvisePrintsAdviceWhenStoppedBySignal(t *testing.T) {
	h := requireCgroup2(t)
	before := groupsUnder(t, h.SelfDir())
	cmd := exec.Command(cgrunBin(t), "advise", "--json", "--name", "advise-sleep", "--", "sleep", "60")
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if _, _, code := cgrunCmd(t, nil, "status", "advise-sleep"); code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cgrun status never found advise-sleep: %s", errb.String())
		}
	}
	time.Sleep(time.Second) // a sample or two
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	if ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Errorf("cgrun advise ended with %v (%v), want death by SIGTERM, as its command: %s", err, ee, errb.String())
	}
	if a := parseAdvice(t, out.String()); a.ObservedSeconds <= 0 || a.MemoryMax == 0 {
		t.Errorf("advice %+v: want one with the time observed and a memory.max", a)
	}
	assertNothingLeft(t, h, before, cmd.Process.Pid)
}

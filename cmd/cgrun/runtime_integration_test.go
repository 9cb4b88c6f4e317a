package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/cgrun/cgrun/cgroup"
	"golang.org/x/sys/unix"
)

// Runtimes size themselves from the group they run in, and read nothing above it: Node's heap
// and process.constrainedMemory() (libuv, Node 20.3+), Go's GOMAXPROCS (Go 1.25+), the JVM and
// .NET. These tests check that what a command reads of its own group is what cgrun was asked for.

// TestRuntimeReadsItsOwnLimits: the command, and a process it forks, read cgrun's limits from
// the files of the group they are in (the path in /proc/self/cgroup).
func TestRuntimeReadsItsOwnLimits(t *testing.T) {
	requireCgroup2(t)
	for _, tc := range []struct {
		name  string
		flags []string
		want  map[string]string
	}{
		{"no limits", nil, map[string]string{"memory.max": "max", "memory.high": "max", "pids.max": "max"}},
		{"memory.max", []string{"--memory-max", "96M"}, map[string]string{"memory.max": "100663296", "memory.high": "max"}},
		{"memory.high below memory.max", []string{"--memory-max", "96M", "--memory-high", "64M"},
			map[string]string{"memory.max": "100663296", "memory.high": "67108864"}},
		{"swap", []string{"--memory-max", "96M", "--memory-swap-max", "16M"}, map[string]string{"memory.swap.max": "16777216"}},
		{"pids", []string{"--pids-max", "50"}, map[string]string{"pids.max": "50"}},
		{"cpu", []string{"--cpu-max", "50%", "--cpu-weight", "200"}, map[string]string{"cpu.max": "50000 100000", "cpu.weight": "200"}},
		{"oom group", []string{"--memory-max", "96M", "--oom-group"}, map[string]string{"memory.oom.group": "1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, how := range []struct {
				name string
				argv []string
			}{
				{"the command", []string{helperPath(t), "own"}},
				{"a process it forks", []string{"/bin/sh", "-c", `"$0" own & wait`, helperPath(t)}},
			} {
				r := runCgrunArgs(t, append(append(tc.flags, "--"), how.argv...))
				if r.code != 0 {
					t.Fatalf("%s: exit %d, stderr %q", how.name, r.code, r.stderr)
				}
				var got map[string]string
				if err := json.Unmarshal([]byte(strings.TrimSpace(r.stdout)), &got); err != nil {
					t.Fatalf("%s: %q: %v", how.name, r.stdout, err)
				}
				if filepath.Base(got["group"]) != "main" {
					t.Errorf("%s ran in %s, want the leaf GEN/main", how.name, got["group"])
				}
				for f, want := range tc.want {
					if got[f] != want {
						t.Errorf("%s reads %s = %q, want %q", how.name, f, got[f], want)
					}
				}
			}
		})
	}
}

// nodeOrFail returns the path of a Node that sizes itself from cgroup v2 (20.3 or later: libuv
// 1.45), failing the test where the harness requires one and there is none.
func nodeOrFail(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err == nil {
		var out []byte
		out, err = exec.Command(node, "-p", "process.versions.node").Output()
		if err == nil {
			var major, minor int
			fmt.Sscanf(string(out), "%d.%d", &major, &minor)
			if major < 20 || major == 20 && minor < 3 {
				err = fmt.Errorf("node %s is older than 20.3, which is the first to read cgroup v2 limits", strings.TrimSpace(string(out)))
			}
		}
	}
	if err != nil {
		if os.Getenv("CGRUN_REQUIRE_CGROUP2") == "1" {
			t.Fatalf("these tests need Node 20.3 or later (scripts/demo.d/install puts one in): %v", err)
		}
		t.Skipf("needs Node 20.3 or later: %v", err)
	}
	return node
}

// nodeSizes is what Node says of its limits.
type nodeSizes struct {
	Constrained float64 `json:"constrained"` // process.constrainedMemory(); 2^64 with no limit
	HeapLimit   uint64  `json:"heap"`        // v8.getHeapStatistics().heap_size_limit
}

const nodeSizesJS = `console.log(JSON.stringify({constrained: process.constrainedMemory(), heap: require("v8").getHeapStatistics().heap_size_limit}))`

func parseNodeSizes(t *testing.T, out string) nodeSizes {
	t.Helper()
	var s nodeSizes
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &s); err != nil {
		t.Fatalf("node printed %q: %v", out, err)
	}
	return s
}

// plainGroup makes a group beside cgrun's with only memory.max set, as systemd's MemoryMax= or
// a hand-made group would, for comparison with cgrun's.
func plainGroup(t *testing.T, h cgroup.Hierarchy, memoryMax uint64) string {
	t.Helper()
	if _, err := cgroup.EnableControllers(h.Mount, "memory", "pids"); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(h.Mount, fmt.Sprintf("cgrun-test-plain-%d-%s-%d", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "_"), memoryMax))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cgroup.Kill(context.Background(), dir) // cgroup.kill, or the freeze + SIGKILL of kernels before 5.14
		for i := 0; i < 100 && os.Remove(dir) != nil; i++ {
			unix.Nanosleep(&unix.Timespec{Nsec: 10e6}, nil)
		}
	})
	if err := cgroup.SetMemoryMax(dir, cgroup.Bytes(memoryMax)); err != nil {
		t.Fatal(err)
	}
	return dir
}

// runIn runs argv directly in the group dir (clone3 into it) and returns its stdout and status.
func runIn(t *testing.T, dir string, argv ...string) (string, string, int) {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	return runToEnd(t, cmd)
}

// TestRuntimeNodeSeesItsLimit: Node reads cgrun's memory.max (or memory.high, the lower), and
// sizes its heap from it exactly as it does in a plain group with that memory.max — not from the
// machine. The guest has several times the limit's memory (scripts/test boots it with 1536M).
func TestRuntimeNodeSeesItsLimit(t *testing.T) {
	h := requireCgroup2(t)
	node := nodeOrFail(t)
	run := func(flags ...string) nodeSizes {
		t.Helper()
		r := runCgrunArgs(t, append(flags, "--", node, "-e", nodeSizesJS))
		if r.code != 0 {
			t.Fatalf("cgrun run %v: exit %d, stderr %q", flags, r.code, r.stderr)
		}
		return parseNodeSizes(t, r.stdout)
	}
	unlimited := run()
	limited := run("--memory-max", "256M")
	if limited.Constrained != 256<<20 {
		t.Errorf("--memory-max 256M: process.constrainedMemory() = %v, want %d", limited.Constrained, 256<<20)
	}
	if high := run("--memory-max", "256M", "--memory-high", "192M"); high.Constrained != 192<<20 {
		t.Errorf("--memory-high 192M under --memory-max 256M: process.constrainedMemory() = %v, want %d (the lower)", high.Constrained, 192<<20)
	}
	out, errs, code := runIn(t, plainGroup(t, h, 256<<20), node, "-e", nodeSizesJS)
	if code != 0 {
		t.Fatalf("node in a plain group: exit %d, %q", code, errs)
	}
	plain := parseNodeSizes(t, out)
	if limited.HeapLimit != plain.HeapLimit {
		t.Errorf("heap_size_limit under cgrun --memory-max 256M is %d MiB, in a plain group with memory.max 256M %d MiB: want the same",
			limited.HeapLimit>>20, plain.HeapLimit>>20)
	}
	if limited.HeapLimit >= unlimited.HeapLimit {
		t.Errorf("heap_size_limit with --memory-max 256M is %d MiB, with no limit %d MiB: want it sized from the limit, not from the machine",
			limited.HeapLimit>>20, unlimited.HeapLimit>>20)
	}
	// 256M is at V8's floor (259 MiB); above it the heap grows with the limit, as in a plain group.
	larger := run("--memory-max", "768M")
	out, errs, code = runIn(t, plainGroup(t, h, 768<<20), node, "-e", nodeSizesJS)
	if code != 0 {
		t.Fatalf("node in a plain group of 768M: exit %d, %q", code, errs)
	}
	if plain := parseNodeSizes(t, out); larger.HeapLimit != plain.HeapLimit {
		t.Errorf("heap_size_limit under cgrun --memory-max 768M is %d MiB, in a plain group with memory.max 768M %d MiB: want the same",
			larger.HeapLimit>>20, plain.HeapLimit>>20)
	}
	if larger.HeapLimit <= limited.HeapLimit || larger.HeapLimit >= unlimited.HeapLimit {
		t.Errorf("heap_size_limit: %d MiB under 256M, %d MiB under 768M, %d MiB with no limit: want it to grow with the limit and stay below the machine's",
			limited.HeapLimit>>20, larger.HeapLimit>>20, unlimited.HeapLimit>>20)
	}
	t.Logf("heap_size_limit: %d MiB with no limit, %d MiB under --memory-max 256M, %d MiB under 768M", unlimited.HeapLimit>>20, limited.HeapLimit>>20, larger.HeapLimit>>20)
}

// churnJS keeps a live set of LIVE MiB of JS objects and, for SECONDS, makes garbage that
// survives long enough to be promoted to V8's old generation, where only a full collection
// frees it — the shape of an API that caches per request. It prints "done" and its peak RSS in
// KiB, and exits 0.
const churnJS = `
const [live, seconds] = process.argv.slice(1).map(Number);
const keep = [];
for (let i = 0; i < live * 128; i++) keep.push(new Array(1024).fill(i + 0.5)); // 8 KiB each
const ring = new Array(4096);
const end = Date.now() + seconds * 1000;
let n = 0;
while (Date.now() < end) {
  for (let i = 0; i < 256; i++, n++) ring[n % ring.length] = new Array(1024).fill(n + 0.5);
}
console.log("done", process.resourceUsage().maxRSS);
`

// TestRuntimeNodeChurnSurvives: a Node program that keeps a live set of about half of the limit
// (150 MiB kept, 32 MiB in the ring) and churns promoted garbage for 30 s survives under cgrun
// exactly as it does in a plain group with that memory.max: V8 sizes its heap from the limit
// (259 MiB, its floor) and collects before the kernel has to kill. Before cgrun gave the leaf its
// limits, Node sized its heap from the whole guest (773 MiB), let garbage grow past 320M and was
// OOM-killed.
func TestRuntimeNodeChurnSurvives(t *testing.T) {
	h := requireCgroup2(t)
	node := nodeOrFail(t)
	const limit, live, seconds = "320M", "150", "30"
	type result struct {
		out, errs string
		code      int
	}
	dir := plainGroup(t, h, 320<<20)
	plain := make(chan result, 1)
	go func() {
		out, errs, code := runIn(t, dir, node, "-e", churnJS, live, seconds)
		plain <- result{out, errs, code}
	}()
	events := filepath.Join(t.TempDir(), "events")
	r := runCgrunArgs(t, []string{"--memory-max", limit, "--events", events, "--", node, "-e", churnJS, live, seconds})
	p := <-plain
	pe, err := cgroup.ReadKeyed(dir, "memory.events")
	if err != nil {
		t.Fatal(err)
	}
	if p.code != 0 || !strings.HasPrefix(p.out, "done") || pe["max"] != 0 || pe["oom_kill"] != 0 {
		t.Fatalf("in a plain group with memory.max %s: exit %d, %q %q, memory.events %v; want it to run to its end without reaching memory.max (the test's premise)",
			limit, p.code, p.out, p.errs, pe)
	}
	if r.code != 0 || !strings.HasPrefix(r.stdout, "done") {
		t.Errorf("under cgrun --memory-max %s: exit %d, stdout %q, stderr %q; want it to run to its end as in a plain group", limit, r.code, r.stdout, r.stderr)
	}
	for _, ev := range readEvents(t, events) {
		if ev.Event == "exit" && (ev.MemoryEvents["max"] != 0 || ev.MemoryEvents["oom_kill"] != 0) {
			t.Errorf("under cgrun: memory.events %v at exit; want no memory.max and no OOM kill, as in a plain group (%v)", ev.MemoryEvents, pe)
		}
	}
	// V8 collects as often under cgrun as in the plain group: its peak is no more than 10% above.
	var plainRSS, cgrunRSS int
	fmt.Sscanf(p.out, "done %d", &plainRSS)
	fmt.Sscanf(r.stdout, "done %d", &cgrunRSS)
	if cgrunRSS > plainRSS*11/10 {
		t.Errorf("peak RSS %d MiB under cgrun, %d MiB in a plain group: want V8 to hold its heap as it does there", cgrunRSS>>10, plainRSS>>10)
	}
	t.Logf("peak RSS %d MiB under cgrun, %d MiB in a plain group with the same memory.max", cgrunRSS>>10, plainRSS>>10)
}

// heapLeakJS grows the JS heap until V8 gives up at its heap limit.
const heapLeakJS = `const keep = []; for (;;) keep.push(new Array(1024).fill(keep.length + 0.5));`

// TestRuntimeNodeHeapLimitAbortRestarts: a JS-heap leak under a memory.max above V8's heap limit
// ends in V8's own abort ("JavaScript heap out of memory", SIGABRT), not in an OOM kill.
// --restart on-oom restarts it as it restarts an OOM kill; the summary says what happened.
func TestRuntimeNodeHeapLimitAbortRestarts(t *testing.T) {
	requireCgroup2(t)
	node := nodeOrFail(t)
	events := filepath.Join(t.TempDir(), "events")
	r := runCgrunArgs(t, []string{"--name", "leaky", "--memory-max", "700M", "--restart", "on-oom", "--max-restarts", "1",
		"--restart-window", "5m", "--thrash", "off", "--events", events, "--", node, "-e", heapLeakJS})
	if r.code != 122 {
		t.Errorf("exit %d, want 122 (gave up after one restart); stderr %q", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "JavaScript heap out of memory") {
		t.Fatalf("stderr %q: want V8's own heap-limit death (the test's premise)", r.stderr)
	}
	if n := strings.Count(r.stderr, "cgrun: leaky aborted (SIGABRT) with no OOM kill"); n != 2 {
		t.Errorf("%d abort lines, want one per generation (2): %q", n, r.stderr)
	}
	var restarts, exits int
	for _, rec := range readRecords(t, events) {
		switch rec.Event {
		case "recycle":
			restarts++
			if rec.Reason != "abort" {
				t.Errorf("recycle reason %q, want abort", rec.Reason)
			}
		case "exit":
			exits++
		case "oom_kill", "oom_group_kill":
			t.Errorf("an OOM kill: %+v — want V8 to give up before the kernel", rec)
		}
	}
	if restarts != 1 || exits != 2 {
		t.Errorf("%d restarts and %d exits, want 1 and 2", restarts, exits)
	}
}

// TestRuntimeGoMaxProcs: a Go 1.25+ program sets GOMAXPROCS from the cpu.max of the group it is
// in: the quota rounded up, never below 2 (the runtime's floor), never above the CPUs. It needs
// a guest with at least 3 CPUs to show anything, so scripts/test runs it alone in a 4-CPU QEMU
// guest (CGRUN_REQUIRE_CPUS=3) and leaves it out of the one-CPU UML guest.
func TestRuntimeGoMaxProcs(t *testing.T) {
	requireCgroup2(t)
	cpus := runtime.NumCPU()
	if want, _ := strconv.Atoi(os.Getenv("CGRUN_REQUIRE_CPUS")); cpus < 3 {
		if want >= 3 {
			t.Fatalf("%d CPUs here; CGRUN_REQUIRE_CPUS=%d", cpus, want)
		}
		t.Skipf("%d CPUs: Go never sets GOMAXPROCS below 2, so a CPU limit shows only with 3 or more", cpus)
	}
	for _, tc := range []struct {
		flags []string
		want  int
	}{
		{nil, cpus},
		{[]string{"--cpu-max", "50%"}, 2},
		{[]string{"--cpu-max", "100%"}, 2}, // one CPU: Go never goes below 2 (runtime/cgroup_linux.go)
		{[]string{"--cpu-max", "200%"}, 2},
		{[]string{"--cpu-max", "250%"}, min(3, cpus)},
		{[]string{"--cpu-max", fmt.Sprintf("%d%%", 100*cpus)}, cpus},
	} {
		r := runCgrunArgs(t, append(append(tc.flags, "--"), helperPath(t), "own"))
		var got map[string]string
		if err := json.Unmarshal([]byte(strings.TrimSpace(r.stdout)), &got); r.code != 0 || err != nil {
			t.Fatalf("%v: exit %d, %q %q", tc.flags, r.code, r.stdout, r.stderr)
		}
		if got["gomaxprocs"] != strconv.Itoa(tc.want) {
			t.Errorf("%v on %d CPUs: GOMAXPROCS %s, want %d (cpu.max %q)", tc.flags, cpus, got["gomaxprocs"], tc.want, got["cpu.max"])
		}
	}
}

package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// These tests need PSI in cgroups (memory.pressure). Debian's UML kernel has none; scripts/test
// runs them in a second guest booting the PSI kernel of scripts/uml-kernel, with
// CGRUN_REQUIRE_PSI=1 so that they fail there rather than skip.

// requirePSI is requireCgroup2 for a kernel that also has memory.pressure.
func requirePSI(t *testing.T) {
	t.Helper()
	h := requireCgroup2(t)
	if _, err := os.Stat(filepath.Join(h.SelfDir(), "memory.pressure")); err != nil {
		if os.Getenv("CGRUN_REQUIRE_PSI") == "1" {
			t.Fatalf("PSI is required here (CGRUN_REQUIRE_PSI=1): %v", err)
		}
		t.Skipf("needs PSI in cgroups: %v", err)
	}
}

// pressureLine is a pressure record of --events.
type pressureLine struct {
	Event    string `json:"event"`
	Pressure *struct {
		Trigger   string   `json:"trigger"`
		SomeAvg10 *float64 `json:"some_avg10"`
		SomeAvg60 *float64 `json:"some_avg60"`
		FullAvg10 *float64 `json:"full_avg10"`
		FullAvg60 *float64 `json:"full_avg60"`
		SomeTotal *uint64  `json:"some_total_us"`
		FullTotal *uint64  `json:"full_total_us"`
	} `json:"pressure"`
}

func pressureEvents(t *testing.T, path string) []pressureLine {
	t.Helper()
	readEvents(t, path) // the common fields of every line
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []pressureLine
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var p pressureLine
		if err := json.Unmarshal([]byte(line), &p); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if p.Event == "pressure" {
			out = append(out, p)
		}
	}
	return out
}

// TestPressureEventsFromARealStall throttles an allocator at memory.high (no swap: nothing of it
// can be reclaimed, so the kernel makes it sleep, which PSI counts as a memory stall): the
// trigger fires, each firing is one pressure event with the kernel's averages, and people see
// a line on stderr.
func TestPressureEventsFromARealStall(t *testing.T) {
	requirePSI(t)
	path := filepath.Join(t.TempDir(), "events.jsonl")
	r := runCgrun(t, nil, []string{"--memory-high", "16M", "--pressure", "some 100ms/1s", "--events", path}, "alloc", "64", "5", "quiet")
	if r.code != 0 {
		t.Fatalf("exit %d, want 0; stderr %q", r.code, r.stderr)
	}
	evs := pressureEvents(t, path)
	if len(evs) == 0 {
		t.Fatalf("no pressure event in 5 s of throttling; stderr %q", r.stderr)
	}
	// The kernel fires a trigger at most once per window: 5 s of stall, 1 s windows.
	if len(evs) > 7 {
		t.Errorf("%d pressure events in 5 s with a 1 s window; the kernel fires at most once a window", len(evs))
	}
	sawAvg := false
	var lastTotal uint64
	for _, ev := range evs {
		p := ev.Pressure
		if p == nil || p.Trigger != "some 100ms/1s" || p.SomeAvg10 == nil || p.SomeAvg60 == nil || p.FullAvg10 == nil || p.FullAvg60 == nil || p.SomeTotal == nil || p.FullTotal == nil {
			t.Fatalf("pressure record %+v: want the trigger, all four averages and both totals", p)
		}
		if *p.SomeAvg10 < 0 || *p.SomeAvg10 > 100 {
			t.Errorf("some_avg10 %v out of range", *p.SomeAvg10)
		}
		// avg10 is updated every 2 s, so the first firing may still see 0.
		sawAvg = sawAvg || *p.SomeAvg10 > 0
		// The trigger fires once 100ms of stall gathered within a window; the total is exact.
		if *p.SomeTotal < 100_000 || *p.SomeTotal < lastTotal || *p.FullTotal > *p.SomeTotal {
			t.Errorf("some_total_us %d (previous %d), full_total_us %d: want at least the trigger's 100ms, growing, full <= some", *p.SomeTotal, lastTotal, *p.FullTotal)
		}
		lastTotal = *p.SomeTotal
	}
	if !sawAvg {
		t.Errorf("no pressure event carries a some_avg10 above 0 after 5 s of stall: %+v", evs)
	}
	if !strings.Contains(r.stderr, "memory pressure: stalled ") {
		t.Errorf("stderr %q lacks the human pressure line", r.stderr)
	}
	if strings.Contains(r.stderr, "notice") {
		t.Errorf("stderr %q has a notice on a kernel with PSI", r.stderr)
	}
}

// TestPressureQuietWhileNothingStalls: a trigger on a group that never stalls fires never.
func TestPressureQuietWhileNothingStalls(t *testing.T) {
	requirePSI(t)
	path := filepath.Join(t.TempDir(), "events.jsonl")
	r := runCgrun(t, nil, []string{"--pressure", "some 100ms/1s", "--events", path}, "alloc", "8", "2")
	if r.code != 0 {
		t.Fatalf("exit %d, want 0; stderr %q", r.code, r.stderr)
	}
	if evs := pressureEvents(t, path); len(evs) != 0 {
		t.Errorf("pressure events %+v from a group that never stalled", evs)
	}
}

// TestRecycleOnPressure: a generation stalled at memory.high is recycled for pressure, stops
// gracefully (cgrun lifts memory.high first), and the next one starts in a fresh group.
func TestRecycleOnPressure(t *testing.T) {
	requirePSI(t)
	path := filepath.Join(t.TempDir(), "events.jsonl")
	r := runCgrun(t, nil, []string{"--memory-high", "16M", "--recycle-on-pressure", "some 200ms/1s", "--stop-timeout", "5s", "--restart-delay", "0",
		"--max-restarts", "1", "--restart-window", "120s", "--events", path}, "hog", "64")
	if r.code != 122 {
		t.Errorf("exit %d, want 122 (start limit); stderr %q", r.code, r.stderr)
	}
	starts, exits, recycles := generations(t, readRecords(t, path))
	if len(starts) != 2 || len(exits) != 2 {
		t.Fatalf("%d starts and %d exits, want 2 generations", len(starts), len(exits))
	}
	for _, e := range exits {
		if e.Reason != "pressure" || e.ExitCode == nil || *e.ExitCode != 0 {
			t.Errorf("exit %+v: want reason pressure and a graceful exit 0", e)
		}
	}
	if len(recycles) != 1 || recycles[0].Reason != "pressure" {
		t.Errorf("recycles %+v, want one for pressure", recycles)
	}
	if !strings.Contains(r.stderr, `memory pressure trigger "some 200ms/1s" fired`) {
		t.Errorf("stderr %q does not say which trigger fired", r.stderr)
	}
}

// TestPressureWindowsWithoutCapSysResource: without CAP_SYS_RESOURCE (a container's root, a
// user's service) the kernel takes only windows that are whole multiples of 2 s. cgrun says so
// in one line, exits 125 and leaves nothing behind; a 2 s window works.
func TestPressureWindowsWithoutCapSysResource(t *testing.T) {
	requirePSI(t)
	h := requireCgroup2(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatalf("setpriv (util-linux) is needed to drop CAP_SYS_RESOURCE: %v", err)
	}
	drop := []string{"--inh-caps=-sys_resource", "--bounding-set=-sys_resource", "--"}
	run := func(trigger string) result {
		t.Helper()
		before := groupsUnder(t, h.SelfDir())
		args := append(append([]string{}, drop...), cgrunBin(t), "run", "--pressure", trigger, "--", helperPath(t), "exit", "0")
		cmd := exec.Command(setpriv, args...)
		cmd.Env = append(os.Environ(), "CGRUNTEST_HELPER=1")
		stdout, stderr, code := runToEnd(t, cmd)
		assertNothingLeft(t, h, before)
		return result{code: code, stdout: stdout, stderr: stderr}
	}
	r := run("some 150ms/1s")
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	if r.code != 125 || len(lines) != 1 || !strings.Contains(r.stderr, "multiples of 2s") || !strings.Contains(r.stderr, `"some 150ms/2s"`) {
		t.Errorf("1 s window without CAP_SYS_RESOURCE: exit %d, stderr %q; want 125 and one line suggesting a 2s window", r.code, r.stderr)
	}
	if r := run("some 150ms/2s"); r.code != 0 || r.stderr != "" {
		t.Errorf("2 s window without CAP_SYS_RESOURCE: exit %d, stderr %q; want 0 and silence", r.code, r.stderr)
	}
}

// TestPressureInStatusAndMetrics: a sandbox stalled at memory.high shows its pressure in
// `cgrun status` (the averages and the stall so far), in `status --json`, and in the metrics.
func TestPressureInStatusAndMetrics(t *testing.T) {
	requirePSI(t)
	cmd, _, _ := startCgrun(t, []string{"--name", "psi-status", "--memory-high", "16M", "--metrics-addr", ":0"}, "hog", "64")
	defer func() { cmd.Process.Signal(syscall.SIGTERM); waitCode(t, cmd) }()
	// avg10 is recomputed every 2 s: wait until the kernel's figures show the stall.
	var box sandbox
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, stderr, code := cgrunCmd(t, nil, "status", "psi-status", "--json")
		if code == 0 {
			if err := json.Unmarshal([]byte(out), &box); err != nil {
				t.Fatalf("status --json printed %q: %v", out, err)
			}
			if p := box.Pressure; p != nil && p.SomeAvg10 > 0 && p.SomeTotalUS > 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pressure in cgrun status after 20 s of stall: %+v (%s)", box.Pressure, stderr)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if box.Pressure.Trigger != "" || box.Pressure.FullTotalUS > box.Pressure.SomeTotalUS {
		t.Errorf("status pressure %+v: want no trigger and full <= some", box.Pressure)
	}
	human, _, _ := cgrunCmd(t, nil, "status", "psi-status")
	if !regexp.MustCompile(`pressure +some avg10=[0-9.]+%.*; stalled [0-9.]+m?s in this generation`).MatchString(human) {
		t.Errorf("cgrun status lacks the pressure line:\n%s", human)
	}
	m := scrape(t, box.MetricsAddr)
	if v, ok := m[`cgrun_memory_pressure_avg10_percent{kind="some",name="psi-status"}`]; !ok || v <= 0 || v > 100 {
		t.Errorf("cgrun_memory_pressure_avg10_percent{kind=some} = %v (present %v), want in (0, 100]", v, ok)
	}
}

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// reportDoc is the part of the --report document the tests read.
type reportDoc struct {
	Name             string   `json:"name"`
	ExitCode         int      `json:"exit_code"`
	WallSeconds      float64  `json:"wall_seconds"`
	CPUUserSeconds   float64  `json:"cpu_user_seconds"`
	CPUSystemSeconds float64  `json:"cpu_system_seconds"`
	MemoryPeak       uint64   `json:"memory_peak"`
	MemorySteady     *uint64  `json:"memory_steady"`
	PidsPeak         *uint64  `json:"pids_peak"`
	OOMKills         uint64   `json:"oom_kills"`
	Restarts         int      `json:"restarts"`
	Command          []string `json:"command"`
	Recycles         []struct {
		Generation int    `json:"generation"`
		Reason     string `json:"reason"`
	} `json:"recycles"`
	Generations []json.RawMessage `json:"generations"`
	Limits      map[string]string `json:"limits"`
	Baseline    *struct {
		Exceeded bool `json:"exceeded"`
	} `json:"baseline"`
}

func readReport(t *testing.T, path string) reportDoc {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r reportDoc
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("report %s: %v", b, err)
	}
	return r
}

// TestReportPeakOfTheWholeTree spreads a known allocation over three processes. The report's
// peak (memory.peak of the group) must match what they held together; /usr/bin/time, which sees
// only the largest single process, reports far less.
func TestReportPeakOfTheWholeTree(t *testing.T) {
	requireCgroup2(t)
	timeBin, err := exec.LookPath("/usr/bin/time")
	if err != nil {
		t.Fatalf("/usr/bin/time is needed (Debian package time; scripts/test installs it): %v", err)
	}
	path := filepath.Join(t.TempDir(), "report.json")
	cmd := exec.Command(timeBin, "-f", "time_maxrss_kib %M", cgrunBin(t), "run", "--report", path, "--", helperPath(t), "spread", "3", "24")
	cmd.Env = append(os.Environ(), "CGRUNTEST_HELPER=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var sumKiB, timeKiB uint64
	for _, line := range strings.Split(string(out), "\n") {
		fmt.Sscanf(line, "anon_sum_kib %d", &sumKiB)
		fmt.Sscanf(line, "time_maxrss_kib %d", &timeKiB)
	}
	rep := readReport(t, path)
	known := sumKiB << 10
	if diff := float64(rep.MemoryPeak) - float64(known); known < 72<<20 || diff < -0.05*float64(known) || diff > 0.05*float64(known) {
		t.Errorf("report peak %d, the processes held %d together (RssAnon sum): want the peak within 5%% of it", rep.MemoryPeak, known)
	}
	if timeKiB == 0 || timeKiB<<10 >= rep.MemoryPeak/2 {
		t.Errorf("/usr/bin/time says %d KiB, the group's peak is %d KiB: it should see only the largest process", timeKiB, rep.MemoryPeak>>10)
	}
	t.Logf("three processes held %d KiB; cgrun's report: %d KiB; /usr/bin/time: %d KiB", sumKiB, rep.MemoryPeak>>10, timeKiB)
	if rep.ExitCode != 0 || rep.WallSeconds < 3 || rep.CPUUserSeconds+rep.CPUSystemSeconds <= 0 || len(rep.Generations) != 1 ||
		rep.Restarts != 0 || rep.Name == "" || len(rep.Command) != 4 || rep.Recycles == nil {
		t.Errorf("report %+v lacks exit code, wall time, CPU time or its generation", rep)
	}
	switch { // pids.peak came with Linux 6.1
	case kernelBefore(t, 6, 1) && rep.PidsPeak != nil:
		t.Errorf("pids_peak %d on a kernel without pids.peak, want null", *rep.PidsPeak)
	case !kernelBefore(t, 6, 1) && (rep.PidsPeak == nil || *rep.PidsPeak < 4):
		t.Errorf("pids_peak %v, want at least the 4 processes", rep.PidsPeak)
	}
}

func TestReportCountsRestarts(t *testing.T) {
	requireCgroup2(t)
	path := filepath.Join(t.TempDir(), "report.json")
	r := runCgrun(t, nil, []string{"--memory-max", "32M", "--restart", "on-oom", "--restart-delay", "0", "--max-restarts", "2",
		"--restart-window", "60s", "--thrash", "off", "--report", path, "--verbose"}, "leak") // OOM kills, not thrash recycles
	if r.code != 122 {
		t.Fatalf("exit %d; stderr %q", r.code, r.stderr)
	}
	rep := readReport(t, path)
	if rep.Restarts != 2 || len(rep.Recycles) != 2 || rep.Recycles[0].Reason != "oom_kill" || rep.OOMKills == 0 || rep.ExitCode != 137 ||
		len(rep.Generations) != 3 || rep.Limits["memory.max"] != strconv.Itoa(32<<20) {
		t.Errorf("report %+v: want 3 generations, 2 oom_kill recycles, OOM kills counted, exit 137, memory.max", rep)
	}
	if !strings.Contains(r.stderr, "wall ") || !strings.Contains(r.stderr, "memory peak") {
		t.Errorf("--verbose printed no human report: %q", r.stderr)
	}
}

func TestBaselineGate(t *testing.T) {
	requireCgroup2(t)
	dir := t.TempDir()
	bl := filepath.Join(dir, "baseline.json")
	r := runCgrun(t, nil, []string{"--record-baseline", bl}, "holdalloc", "20", "1500")
	if r.code != 0 {
		t.Fatalf("recording: exit %d, stderr %q", r.code, r.stderr)
	}
	var base struct {
		Version          int    `json:"version"`
		MemoryPeak       uint64 `json:"memory_peak"`
		MemorySteady     uint64 `json:"memory_steady"`
		MemoryPeakSource string `json:"memory_peak_source"`
	}
	b, _ := os.ReadFile(bl)
	if err := json.Unmarshal(b, &base); err != nil || base.Version != 1 || base.MemoryPeak < 20<<20 || base.MemorySteady == 0 || base.MemoryPeakSource != wantPeakSource(t) {
		t.Fatalf("baseline %s: %v; want memory_peak_source %q on this kernel", b, err, wantPeakSource(t))
	}
	t.Run("passes within the tolerance", func(t *testing.T) {
		report := filepath.Join(dir, "pass.json")
		r := runCgrun(t, nil, []string{"--baseline", bl, "--baseline-tolerance", "10%", "--report", report}, "holdalloc", "20", "200")
		if r.code != 0 {
			t.Errorf("exit %d, stderr %q; want 0", r.code, r.stderr)
		}
		if rep := readReport(t, report); rep.Baseline == nil || rep.Baseline.Exceeded {
			t.Errorf("report's baseline check %+v", rep.Baseline)
		}
	})
	t.Run("fails above it", func(t *testing.T) {
		r := runCgrun(t, nil, []string{"--baseline", bl, "--baseline-tolerance", "5%"}, "holdalloc", "32", "200")
		if r.code != 121 || !strings.Contains(r.stderr, "over the baseline") || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("exit %d, stderr %q; want 121 and one line", r.code, r.stderr)
		}
	})
	t.Run("a failing command keeps its own code", func(t *testing.T) {
		r := runCgrun(t, nil, []string{"--baseline", bl}, "exit", "3")
		if r.code != 3 {
			t.Errorf("exit %d, want 3", r.code)
		}
	})
	t.Run("a bad baseline file", func(t *testing.T) {
		bad := filepath.Join(dir, "bad.json")
		os.WriteFile(bad, []byte(`{"hello":1}`), 0o644)
		r := runCgrun(t, nil, []string{"--baseline", bad}, "exit", "0")
		if r.code != 125 || !strings.Contains(r.stderr, "not a cgrun baseline") {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
}

func TestResourcesFileRoundTrips(t *testing.T) {
	requireCgroup2(t)
	path := filepath.Join(t.TempDir(), "resources.json")
	os.WriteFile(path, []byte(`{
  "memory": {"limit": 100663296, "reservation": 8388608, "swap": 100663296},
  "pids": {"limit": 48},
  "cpu": {"quota": 50000, "period": 100000, "shares": 2048},
  "unified": {"memory.high": "80M", "memory.oom.group": "0", "memory.min": "4194304"}
}`), 0o644)
	r := runCgrun(t, nil, []string{"--resources", path}, "report")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	rep := parseReport(t, r.stdout)
	want := map[string]string{"memory.max": "100663296", "memory.low": "8388608", "memory.swap.max": "0", "pids.max": "48",
		"memory.high": "83886080", "memory.oom.group": "0", "memory.min": "4194304", "cpu.max": "50000 100000", "cpu.weight": "79"}
	for f, w := range want {
		if rep.Files[f] != w {
			t.Errorf("%s = %q, want %q", f, rep.Files[f], w)
		}
	}
	t.Run("flags override the file", func(t *testing.T) {
		r := runCgrun(t, nil, []string{"--resources", path, "--memory-max", "90M", "--cpu-max", "150%", "--cpu-weight", "300", "--oom-group=true"}, "report")
		rep := parseReport(t, r.stdout)
		for f, w := range map[string]string{"memory.max": "94371840", "cpu.max": "150000 100000", "cpu.weight": "300", "memory.oom.group": "1", "pids.max": "48"} {
			if rep.Files[f] != w {
				t.Errorf("%s = %q, want %q", f, rep.Files[f], w)
			}
		}
	})
}

func TestResourcesBadFilesCreateNothing(t *testing.T) {
	h := requireCgroup2(t)
	dir := t.TempDir()
	for _, tc := range []struct{ name, json, want string }{
		{"unknown key", `{"memory":{"limt":1}}`, `unknown key "limt"`},
		{"bad value", `{"pids":{"limit":"many"}}`, `key "pids.limit"`},
		{"unsupported", `{"blockIO":{"weight":10}}`, `key "blockIO"`},
		{"unified elsewhere", `{"unified":{"io.max":"8:0 rbps=1"}}`, `unified key "io.max"`},
		{"not json", `limit=5`, "not a LinuxResources JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name+".json")
			os.WriteFile(path, []byte(tc.json), 0o644)
			before := groupsUnder(t, h.SelfDir())
			r := runCgrun(t, nil, []string{"--resources", path}, "exit", "0")
			if r.code != 125 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, tc.want) || !strings.Contains(r.stderr, "--resources") {
				t.Errorf("exit %d stderr %q; want 125 and one line naming --resources and %s", r.code, r.stderr, tc.want)
			}
			assertNothingLeft(t, h, before)
		})
	}
	r := runCgrun(t, nil, []string{"--resources", filepath.Join(dir, "missing.json")}, "exit", "0")
	if r.code != 125 || !strings.Contains(r.stderr, "no such file") {
		t.Errorf("missing file: exit %d stderr %q", r.code, r.stderr)
	}
}

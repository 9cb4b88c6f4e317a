package report

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/oomwatch"
	"golang.org/x/sys/unix"
)

func u(n uint64) *uint64 { return &n }

func TestReportSumsGenerations(t *testing.T) {
	rep := &Report{Name: "w", Keep: true}
	rep.Add(Generation{Generation: 1, MemoryPeak: u(40 << 20), MemoryPeakSource: cgroup.PeakKernel, CPUUserSeconds: 1, OOMKills: 1, HighEvents: 3, PidsPeak: u(4)})
	rep.Recycled(Recycle{Generation: 2, Reason: "oom_kill"})
	rep.Add(Generation{Generation: 2, MemoryPeak: u(30 << 20), MemoryPeakSource: cgroup.PeakKernel, CPUUserSeconds: 2, MaxEvents: 5, PidsPeak: u(9)})
	rep.Build(time.Now().Add(-time.Second), unix.WaitStatus(unix.SIGKILL), cgroup.Limits{MemoryMax: cgroup.Bytes(64 << 20)}, []uint64{3, 1, 2})
	switch {
	case rep.Restarts != 1 || rep.CPUUserSeconds != 3 || rep.OOMKills != 1 || rep.HighEvents != 3 || rep.MaxEvents != 5:
		t.Errorf("sums: %+v", rep)
	case rep.MemoryPeak == nil || *rep.MemoryPeak != 40<<20 || *rep.PidsPeak != 9 || rep.SwapPeak != nil:
		t.Errorf("peaks: memory %v pids %v swap %v; want 40M, 9, null", rep.MemoryPeak, rep.PidsPeak, rep.SwapPeak)
	case rep.ExitCode != 137 || rep.Signal != "SIGKILL" || rep.MemorySteady == nil || *rep.MemorySteady != 2:
		t.Errorf("exit %d %q steady %v; want 137 SIGKILL 2", rep.ExitCode, rep.Signal, rep.MemorySteady)
	case len(rep.Generations) != 2 || len(rep.Recycles) != 1 || rep.Limits["memory.max"] != "67108864":
		t.Errorf("kept %d generations %d recycles, limits %v", len(rep.Generations), len(rep.Recycles), rep.Limits)
	}
	var b bytes.Buffer
	if err := rep.Write(&b); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"name", "exit_code", "memory_peak", "memory_peak_source", "swap_peak", "pids_peak", "oom_kills", "recycles", "generations", "limits"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("report has no %q: docs/events.md documents it", k)
		}
	}
}

// TestReportKeepsBoundedHistory: without --report nothing is kept; with it, the latest maxKept.
func TestReportKeepsBoundedHistory(t *testing.T) {
	for _, keep := range []bool{false, true} {
		rep := &Report{Keep: keep}
		for i := 1; i <= maxKept+10; i++ {
			rep.Add(Generation{Generation: i})
			rep.Recycled(Recycle{Generation: i})
		}
		want := 0
		if keep {
			want = maxKept
		}
		if len(rep.Generations) != want || len(rep.Recycles) != want {
			t.Errorf("keep %v: %d generations %d recycles, want %d", keep, len(rep.Generations), len(rep.Recycles), want)
		}
		if keep && rep.Generations[0].Generation != 11 {
			t.Errorf("kept from generation %d, want the latest (11 on)", rep.Generations[0].Generation)
		}
	}
}

func TestBaselineRoundTripAndCheck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "base.json")
	if err := WriteBaseline(path, &Report{Name: "w"}); err == nil || err.Error() != ErrNoPeak {
		t.Errorf("no peak: %v, want %q", err, ErrNoPeak)
	}
	rep := &Report{Name: "w", Command: []string{"node", "x.js"}, MemoryPeak: u(100 << 20), MemoryPeakSource: cgroup.PeakKernel, MemorySteady: u(80 << 20)}
	if err := WriteBaseline(path, rep); err != nil {
		t.Fatal(err)
	}
	bl, err := LoadBaseline(path)
	if err != nil {
		t.Fatal(err)
	}
	if bl.MemoryPeak != 100<<20 || bl.MemorySteady != 80<<20 || bl.Version != 1 {
		t.Errorf("loaded %+v", bl)
	}
	for _, tc := range []struct {
		peak     uint64
		exceeded bool
	}{{105 << 20, false}, {106 << 20, true}} {
		c := bl.Check(path, tc.peak, 5)
		if c.Exceeded != tc.exceeded || c.Allowed != 105<<20 {
			t.Errorf("peak %d: %+v, want exceeded %v, allowed 105M", tc.peak, c, tc.exceeded)
		}
	}
	if line := bl.Check(path, 110<<20, 5).Line("w", 110<<20); !strings.Contains(line, "10.0% over the baseline 100M") {
		t.Errorf("line %q", line)
	}
	if err := os.WriteFile(path, []byte(`{"version":2}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadBaseline(path); err == nil {
		t.Error("a version 2 file loaded as a baseline")
	}
}

// TestEventFieldNames: the --events record's names are docs/events.md's.
func TestEventFieldNames(t *testing.T) {
	code, kills := 137, uint64(1)
	e := Event{Event: oomwatch.Event{Kind: KindExit, Group: "/g"}, Time: "t", Name: "w", Pid: 7, Generation: 2,
		ExitCode: &code, Signal: "SIGKILL", Uptime: 1.5, OOMKills: &kills, Reason: "oom_kill", OldPid: 6, NewPid: 8, OldPeak: 9, OldPeakSource: cgroup.PeakKernel}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"time", "event", "group", "name", "pid", "generation", "exit_code", "signal", "uptime_seconds", "oom_kills", "reason", "old_pid", "new_pid", "old_memory_peak", "old_memory_peak_source"} {
		if _, ok := m[k]; !ok {
			t.Errorf("record %s has no %q", b, k)
		}
	}
}

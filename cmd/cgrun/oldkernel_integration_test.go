package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// These tests hold on every kernel CI boots (Debian's 6.1 and Debian 11's 5.10, see
// scripts/test); where a kernel lacks a feature they check what cgrun does instead.

// kernelBefore reports whether the running kernel is older than major.minor.
func kernelBefore(t *testing.T, major, minor int) bool {
	t.Helper()
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		b.WriteByte(byte(c))
	}
	var ma, mi int
	if _, err := fmt.Sscanf(b.String(), "%d.%d", &ma, &mi); err != nil {
		t.Fatalf("uname release %q: %v", b.String(), err)
	}
	return ma < major || ma == major && mi < minor
}

// wantPeakSource is the memory_peak_source cgrun must give on this kernel.
func wantPeakSource(t *testing.T) string {
	t.Helper()
	if kernelBefore(t, 5, 19) {
		return "sampled" // no memory.peak
	}
	return "memory.peak"
}

// TestStopTimeoutKillsATermIgnoringChild: SIGTERM to cgrun, a command that ignores it and has a
// child that does too; the stop timeout kills the whole group — through cgroup.kill (5.14), or
// before it by freezing the group and sending SIGKILL to each process — and cgrun exits within
// the stop timeout and a second, leaving nothing behind.
func TestStopTimeoutKillsATermIgnoringChild(t *testing.T) {
	h := requireCgroup2(t)
	before := groupsUnder(t, h.SelfDir())
	cmd := exec.Command(cgrunBin(t), "run", "--stop-timeout", "1s", "--", "/bin/sh", "-c",
		`trap "" TERM; sleep 600 & echo "$$ $!"; wait; wait`)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(out)
	var shell, sleeper int
	if !sc.Scan() {
		t.Fatalf("the command did not start; stderr %s", errb.String())
	}
	if _, err := fmt.Sscanf(sc.Text(), "%d %d", &shell, &sleeper); err != nil {
		t.Fatalf("pids %q: %v", sc.Text(), err)
	}
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	code := waitCode(t, cmd)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("cgrun exited %v after SIGTERM, want within the stop timeout (1s) + 1s", d)
	}
	if code != 128+9 {
		t.Errorf("exit %d, want 137 (the command was killed)", code)
	}
	if !strings.Contains(errb.String(), "still running 1s after SIGTERM; killing its group") {
		t.Errorf("stderr %q does not say it killed the group", errb.String())
	}
	assertNothingLeft(t, h, before, shell, sleeper)
}

// TestPeakOfAKnownAllocation: the report, the exit event and the summary give the peak of a
// known allocation (40M under a 64M memory.max) within 10%, and say how it was measured: the
// kernel's memory.peak, or before 5.19 cgrun's own samples of memory.current.
func TestPeakOfAKnownAllocation(t *testing.T) {
	requireCgroup2(t)
	dir := t.TempDir()
	report, events := filepath.Join(dir, "report.json"), filepath.Join(dir, "events.jsonl")
	r := runCgrun(t, nil, []string{"--memory-max", "64M", "--report", report, "--events", events, "--verbose"}, "holdalloc", "40", "1000")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	var anonKiB uint64
	fmt.Sscanf(r.stdout, "%d", &anonKiB)
	known := anonKiB << 10
	within := func(what string, peak uint64) {
		t.Helper()
		if known < 40<<20 || float64(peak) < 0.9*float64(known) || float64(peak) > 1.1*float64(known) {
			t.Errorf("%s peak %d, the process held %d (RssAnon): want within 10%%", what, peak, known)
		}
	}
	src := wantPeakSource(t)
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		MemoryPeak       *uint64 `json:"memory_peak"`
		MemoryPeakSource string  `json:"memory_peak_source"`
		Generations      []struct {
			MemoryPeak       *uint64 `json:"memory_peak"`
			MemoryPeakSource string  `json:"memory_peak_source"`
		} `json:"generations"`
	}
	if err := json.Unmarshal(b, &rep); err != nil || rep.MemoryPeak == nil || len(rep.Generations) != 1 || rep.Generations[0].MemoryPeak == nil {
		t.Fatalf("report %s: %v", b, err)
	}
	within("report", *rep.MemoryPeak)
	within("report generation", *rep.Generations[0].MemoryPeak)
	if rep.MemoryPeakSource != src || rep.Generations[0].MemoryPeakSource != src {
		t.Errorf("report memory_peak_source %q, generation's %q; want %q on this kernel", rep.MemoryPeakSource, rep.Generations[0].MemoryPeakSource, src)
	}
	exits := byKind(readEvents(t, events), "exit")
	if len(exits) != 1 || exits[0].MemoryPeakSource != src {
		t.Fatalf("exit events %+v, want one with memory_peak_source %q", exits, src)
	}
	within("exit event", exits[0].MemoryPeak)
	wantText := "memory peak "
	if src == "sampled" {
		wantText = " sampled"
	}
	if !strings.Contains(r.stderr, "peak memory ") || !strings.Contains(r.stderr, wantText) || strings.Contains(r.stderr, "unknown") {
		t.Errorf("stderr %q: want the peak in the summary and the report line (with %q)", r.stderr, wantText)
	}
}

// TestOneOOMKillCountsOnce: one OOM kill of a one-process group is 1 in the summary, the exit
// event and the report — with memory.oom.group, whose kill the kernel counts twice in oom_kill
// (and before 5.17 has no oom_group_kill to count it once), and without.
func TestOneOOMKillCountsOnce(t *testing.T) {
	requireCgroup2(t)
	for _, tc := range []struct {
		name  string
		flags []string
		three bool // the allocator beside two more processes, which memory.oom.group kills with it
	}{
		{"memory.oom.group", nil, false},
		{"no memory.oom.group", []string{"--oom-group=false"}, false},
		// Before 5.17 the kernel counts an oom_kill for each process the group kill takes.
		{"memory.oom.group, three processes", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			report, events := filepath.Join(dir, "report.json"), filepath.Join(dir, "events.jsonl")
			flags := append([]string{"--name", "leaker", "--memory-max", "32M", "--report", report, "--events", events}, tc.flags...)
			var r result
			if tc.three {
				var args []string
				args = append(append(append(args, "run"), flags...), "--", "/bin/sh", "-c", `sleep 60 & sleep 60 & "$0" alloc 200; exit $?`, helperPath(t))
				r.stdout, r.stderr, r.code = cgrunCmd(t, nil, args...)
			} else {
				r = runCgrun(t, nil, flags, "alloc", "200")
			}
			if r.code != 137 {
				t.Fatalf("exit %d, want 137; stderr %q", r.code, r.stderr)
			}
			if !strings.Contains(r.stderr, ", 1 OOM kills, ") {
				t.Errorf("summary %q, want 1 OOM kills", r.stderr)
			}
			exits := byKind(readEvents(t, events), "exit")
			if len(exits) != 1 || exits[0].OOMKills == nil || *exits[0].OOMKills != 1 {
				t.Errorf("exit events %+v, want one with oom_kills 1", exits)
			}
			if rep := readReport(t, report); rep.OOMKills != 1 {
				t.Errorf("report oom_kills %d, want 1", rep.OOMKills)
			}
		})
	}
}

// TestPsShowsThePeakAfterASpike: a command touches 30M, holds it half a second and gives it
// back; `cgrun ps --json` and `cgrun status` then show the peak, not memory.current — from
// memory.peak, or before 5.19 from cgrun's samples, which its state file carries — and say how
// it was measured.
func TestPsShowsThePeakAfterASpike(t *testing.T) {
	requireCgroup2(t)
	cmd, out, errb := startCgrun(t, []string{"--name", "ps-spike"}, "spike", "30", "500", "20000")
	var anonKiB uint64
	if !out.Scan() {
		t.Fatalf("helper did not start: %s", errb)
	}
	fmt.Sscanf(out.Text(), "%d", &anonKiB)
	if !out.Scan() || out.Text() != "freed" {
		t.Fatalf("helper did not free its memory: %q %s", out.Text(), errb)
	}
	time.Sleep(3 * time.Second) // cgrun writes a sampled peak into its state at most once a second
	box := find(psJSON(t), "ps-spike")
	if box == nil {
		t.Fatal("cgrun ps --json does not show ps-spike")
	}
	if known := anonKiB << 10; known < 30<<20 || float64(box.MemoryPeak) < 0.9*float64(known) || box.MemoryCurrent > box.MemoryPeak/2 {
		t.Errorf("ps: memory_peak %d, memory_current %d; the command held %d (RssAnon) and gave it back: want the peak within 10%% of it", box.MemoryPeak, box.MemoryCurrent, known)
	}
	if src := wantPeakSource(t); string(box.MemoryPeakSource) != src {
		t.Errorf("ps: memory_peak_source %q, want %q on this kernel", box.MemoryPeakSource, src)
	}
	status, _, code := cgrunCmd(t, nil, "status", "ps-spike")
	sampled := strings.Contains(status, " (sampled), high ")
	if code != 0 || sampled != (wantPeakSource(t) == "sampled") {
		t.Errorf("cgrun status (exit %d) should mark a sampled peak as such, and only that:\n%s", code, status)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	waitCode(t, cmd)
}

// TestPsBetweenGenerationsKeepsTheirFigures: in the gap before a restart there is no group to
// read; ps --json still shows the ended generation's peak with its source, and the OOM kills
// of the generations so far — never 0 for "unknown".
func TestPsBetweenGenerationsKeepsTheirFigures(t *testing.T) {
	h := requireCgroup2(t)
	before := groupsUnder(t, h.SelfDir())
	cmd := exec.Command(cgrunBin(t), "run", "--name", "ps-gap", "--memory-max", "32M", "--oom-group=false",
		"--restart", "always", "--restart-delay", "5", "--", helperPath(t), "alloc", "200")
	cmd.Env = append(os.Environ(), "CGRUNTEST_HELPER=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() }) // where the test ends early; its guard then cleans up
	var box *sandbox
	if !eventually(10*time.Second, func() bool {
		box = find(psJSON(t), "ps-gap")
		return box != nil && box.Generation == 1 && box.Group == "" && box.OOMKills > 0
	}) {
		t.Fatalf("no gap after an OOM kill in cgrun ps --json: %+v", box)
	}
	// memory.peak may stand a page or so above memory.max: the kernel counts a charge before it
	// takes it back.
	if box.OOMKills != 1 || box.MemoryPeak < 30<<20 || box.MemoryPeak > 33<<20 || string(box.MemoryPeakSource) != wantPeakSource(t) {
		t.Errorf("between generations: oom_kills %d, memory_peak %d (%q); want 1 and the ended generation's peak, about 32M (%s)",
			box.OOMKills, box.MemoryPeak, box.MemoryPeakSource, wantPeakSource(t))
	}
	cmd.Process.Signal(syscall.SIGTERM)
	waitCode(t, cmd)
	assertNothingLeft(t, h, before)
}

// TestBaselineNeedsAMeasuredPeak: a command that ends at once leaves no peak to record or check
// before 5.19 (no memory.peak, and it ended before cgrun's first sample): the gate refuses with
// one line and exit 125 rather than pass on a figure it does not have. With memory.peak both work.
func TestBaselineNeedsAMeasuredPeak(t *testing.T) {
	requireCgroup2(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	if err := os.WriteFile(good, []byte(`{"version":1,"name":"true","command":["/bin/true"],"memory_peak":20971520,"memory_steady":20971520}`), 0o644); err != nil {
		t.Fatal(err)
	}
	sampled := wantPeakSource(t) == "sampled"
	for _, tc := range []struct {
		name string
		flag string
		file string
	}{
		{"record", "--record-baseline", filepath.Join(dir, "new.json")},
		{"check", "--baseline", good},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := runToEnd(t, exec.Command(cgrunBin(t), "run", tc.flag, tc.file, "--", "/bin/true"))
			_, statErr := os.Stat(tc.file)
			if sampled && code == 0 {
				// A loaded guest can start /bin/true so slowly that cgrun's first sample (100 ms)
				// comes before it ends: then a peak was measured, and recording or checking it is
				// right — as long as the figure is a real one.
				if tc.name == "record" {
					var rec struct {
						MemoryPeak uint64 `json:"memory_peak"`
					}
					b, err := os.ReadFile(tc.file)
					if err == nil {
						err = json.Unmarshal(b, &rec)
					}
					if err != nil || rec.MemoryPeak == 0 {
						t.Errorf("exit 0 without a refusal, baseline %q (%v): want a measured peak in it", b, err)
					}
				}
				t.Logf("a peak was sampled before /bin/true ended (a slow start); stderr %q", stderr)
				return
			}
			switch {
			case sampled && (code != 125 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "no memory peak was measured")):
				t.Errorf("exit %d, stderr %q: want 125 and one line saying no peak was measured", code, stderr)
			case sampled && tc.name == "record" && statErr == nil:
				t.Errorf("a baseline was recorded in %s without a peak", tc.file)
			case !sampled && (code != 0 || statErr != nil):
				t.Errorf("exit %d, stderr %q, stdout %q, baseline file: %v; want 0 and a baseline", code, stderr, stdout, statErr)
			}
		})
	}
}

package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// eventLine is what a test reads of one --events line; the names are the documented format.
type eventLine struct {
	Time             string            `json:"time"`
	Event            string            `json:"event"`
	Name             string            `json:"name"`
	Pid              int               `json:"pid"`
	Group            string            `json:"group"`
	Generation       int               `json:"generation"`
	Delta            uint64            `json:"delta"`
	Count            uint64            `json:"count"`
	MemoryCurrent    *uint64           `json:"memory_current"`
	MemoryPeak       uint64            `json:"memory_peak"`
	MemoryPeakSource string            `json:"memory_peak_source"`
	OOMKills         *uint64           `json:"oom_kills"`
	MemoryMax        *uint64           `json:"memory_max"`
	ExitCode         *int              `json:"exit_code"`
	Signal           string            `json:"signal"`
	Command          []string          `json:"command"`
	MemoryEvents     map[string]uint64 `json:"memory_events"`
}

// readEvents parses a JSON Lines file strictly: every line one object with the common fields.
func readEvents(t *testing.T, path string) []eventLine {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var evs []eventLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ev eventLine
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		if err := dec.Decode(&ev); err != nil || dec.More() {
			t.Fatalf("line %q is not one JSON object: %v", sc.Text(), err)
		}
		if _, err := time.Parse(time.RFC3339Nano, ev.Time); err != nil || len(ev.Time) < len("2006-01-02T15:04:05.000000000Z") {
			t.Errorf("time %q is not RFC 3339 with nanoseconds", ev.Time)
		}
		if ev.Event == "" || ev.Pid == 0 || ev.Group == "" || ev.Generation != 1 || ev.MemoryCurrent == nil {
			t.Errorf("line %q lacks event, pid, group, generation or memory_current", sc.Text())
		}
		evs = append(evs, ev)
	}
	return evs
}

func byKind(evs []eventLine, kind string) []eventLine {
	var out []eventLine
	for _, ev := range evs {
		if ev.Event == kind {
			out = append(out, ev)
		}
	}
	return out
}

func TestEventsOneOOMKillIsOneEvent(t *testing.T) {
	requireCgroup2(t)
	path := filepath.Join(t.TempDir(), "events.jsonl")
	// Without memory.oom.group the kernel counts exactly one kill for the one process.
	r := runCgrun(t, nil, []string{"--name", "leaker", "--memory-max", "32M", "--oom-group=false", "--events", path}, "alloc", "200")
	if r.code != 137 {
		t.Fatalf("exit %d, want 137; stderr %q", r.code, r.stderr)
	}
	evs := readEvents(t, path)
	kills := byKind(evs, "oom_kill")
	if len(kills) != 1 || kills[0].Delta != 1 || kills[0].Count != 1 {
		t.Fatalf("oom_kill events %+v, want exactly one with delta 1, count 1", kills)
	}
	if k := kills[0]; k.MemoryMax == nil || *k.MemoryMax != 32<<20 || k.MemoryPeak < 30<<20 || k.Name != "leaker" || k.MemoryPeakSource != wantPeakSource(t) {
		t.Errorf("oom_kill event %+v: want memory_max 32M, memory_peak near it (%s), name leaker", k, wantPeakSource(t))
	}
	if s := byKind(evs, "start"); len(s) != 1 || len(s[0].Command) != 3 || evs[0].Event != "start" {
		t.Errorf("want one start event first, with the command; got %+v", s)
	}
	exits := byKind(evs, "exit")
	if len(exits) != 1 || exits[0].ExitCode == nil || *exits[0].ExitCode != 137 || exits[0].Signal != "SIGKILL" || evs[len(evs)-1].Event != "exit" {
		t.Errorf("want one exit event last, with exit_code 137 and signal SIGKILL; got %+v", exits)
	}
}

func TestEventsOOMGroupKill(t *testing.T) {
	requireCgroup2(t)
	path := filepath.Join(t.TempDir(), "events.jsonl")
	r := runCgrun(t, nil, []string{"--memory-max", "32M", "--events", path}, "alloc", "200")
	if r.code != 137 {
		t.Fatalf("exit %d, want 137; stderr %q", r.code, r.stderr)
	}
	evs := readEvents(t, path)
	if kernelBefore(t, 5, 17) {
		// No oom_group_kill counter: cgrun counts the group kill once all the same.
		if g := byKind(evs, "oom_group_kill"); len(g) != 0 {
			t.Errorf("oom_group_kill events %+v on a kernel without the counter", g)
		}
	} else if g := byKind(evs, "oom_group_kill"); len(g) != 1 || g[0].Count != 1 {
		t.Errorf("oom_group_kill events %+v, want one", g)
	}
	if exits := byKind(evs, "exit"); len(exits) != 1 || exits[0].OOMKills == nil || *exits[0].OOMKills != 1 {
		t.Errorf("exit events %+v, want one with oom_kills 1", exits)
	}
	var sum, last uint64
	for _, ev := range byKind(evs, "oom_kill") {
		sum, last = sum+ev.Delta, ev.Count
	}
	if sum == 0 || sum != last {
		t.Errorf("oom_kill deltas add up to %d, the count says %d", sum, last)
	}
}

func TestEventsHighCountersAddUp(t *testing.T) {
	requireCgroup2(t)
	path := filepath.Join(t.TempDir(), "events.jsonl")
	start := time.Now()
	// See TestRunMemoryHighThrottlesWithoutKilling for why cgrun may have to stop it.
	r := runCgrunTerm(t, 6*time.Second, nil, []string{"--memory-high", "16M", "--stop-timeout", "1s", "--events", path}, "alloc", "32", "3", "quiet")
	elapsed := time.Since(start)
	if r.code != 0 && r.code != 128+15 && r.code != 128+9 {
		t.Fatalf("exit %d; stderr %q", r.code, r.stderr)
	}
	evs := readEvents(t, path)
	highs := byKind(evs, "high")
	var sum uint64
	for _, ev := range highs {
		if ev.Count != sum+ev.Delta {
			t.Errorf("high event count %d after deltas adding up to %d+%d", ev.Count, sum, ev.Delta)
		}
		sum += ev.Delta
	}
	exit := byKind(evs, "exit")
	if len(exit) != 1 {
		t.Fatalf("%d exit events", len(exit))
	}
	// The exit record holds memory.events as the child left it: the stream must add up to it.
	if kernel := exit[0].MemoryEvents["high"]; len(highs) < 2 || sum != kernel {
		t.Errorf("%d high events adding up to %d; the kernel counted %d", len(highs), sum, kernel)
	}
	// People get rate-limited lines: at most about one a second, not one per event.
	if n := strings.Count(r.stderr, "memory.high reached"); n == 0 || n > int(elapsed.Seconds())+2 {
		t.Errorf("%d memory.high lines on stderr for %d events in %v; want at most one a second", n, len(highs), elapsed)
	}
	if !strings.Contains(r.stderr, "memory.high events") {
		t.Errorf("no exit summary on stderr: %q", r.stderr)
	}
}

// TestEventsHighCountsWhatTheLeafsReclaimEnded: page cache over memory.high is reclaimed in
// the leaf, which carries the group's memory.high, before the kernel looks at the group; such a
// throttling counts in the leaf alone, and cgrun's high count must include it.
func TestEventsHighCountsWhatTheLeafsReclaimEnded(t *testing.T) {
	requireCgroup2(t)
	// The command writes a file of its own and reads it back, on a disk file system (beside the
	// test binary: the guest's tmpfs would be shared memory, which reclaim cannot drop without
	// swap): its page cache is charged to the leaf whatever earlier tests left in the page cache.
	// (Reading the test binary instead found it cached, charged elsewhere, in a full CI run.)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(filepath.Dir(exe), "events-high-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(t.TempDir(), "events.jsonl")
	script := `dd if=/dev/zero of="$1/file" bs=1M count=48 2>/dev/null; for i in 1 2 3; do cat "$1/file" >/dev/null; done
sed -n 's/^high //p' "/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup)/memory.events.local"`
	out, errs, code := cgrunCmd(t, nil, "run", "--memory-high", "8M", "--events", path, "--", "/bin/sh", "-c", script, "sh", dir)
	if code != 0 {
		t.Fatalf("exit %d; stderr %q", code, errs)
	}
	leaf, err := strconv.ParseUint(strings.TrimSpace(out), 10, 64)
	if err != nil || leaf == 0 {
		t.Fatalf("the leaf's own high count %q: want a number above 0 (the reads must go past memory.high)", out)
	}
	exit := byKind(readEvents(t, path), "exit")
	if len(exit) != 1 {
		t.Fatalf("%d exit events", len(exit))
	}
	if have := exit[0].MemoryEvents["high"]; have < leaf {
		t.Errorf("cgrun counted %d high events; the leaf alone counted %d throttlings", have, leaf)
	}
}

func TestEventsMissingPSIIsOneNotice(t *testing.T) {
	requireCgroup2(t)
	if _, err := os.Stat("/proc/pressure/memory"); err == nil {
		t.Skip("this kernel has PSI; the notice is for kernels without it")
	}
	path := filepath.Join(t.TempDir(), "events.jsonl")
	r := runCgrun(t, nil, []string{"--pressure", "some 150ms/1s", "--pressure", "full 100ms/2s", "--events", path}, "exit", "3")
	if r.code != 3 {
		t.Errorf("exit %d, want the command's 3", r.code)
	}
	if n := strings.Count(r.stderr, "cgrun: notice: "); n != 1 || !strings.Contains(r.stderr, "PSI") {
		t.Errorf("stderr %q: want exactly one notice about PSI", r.stderr)
	}
	if evs := readEvents(t, path); len(byKind(evs, "start")) != 1 || len(byKind(evs, "exit")) != 1 {
		t.Errorf("events %+v: want start and exit as usual", evs)
	}
}

func TestEventsTargets(t *testing.T) {
	requireCgroup2(t)
	t.Run("stdout", func(t *testing.T) {
		r := runCgrun(t, nil, []string{"--events", "-"}, "exit", "0")
		if !strings.Contains(r.stdout, `"event":"start"`) || !strings.Contains(r.stdout, `"event":"exit"`) {
			t.Errorf("stdout %q lacks the events", r.stdout)
		}
	})
	t.Run("closed fd", func(t *testing.T) {
		r := runCgrun(t, nil, []string{"--events", "fd:7"}, "exit", "0")
		if r.code != 125 || !strings.Contains(r.stderr, "fd:7") {
			t.Errorf("exit %d stderr %q; want 125 naming fd:7", r.code, r.stderr)
		}
	})
	t.Run("missing directory", func(t *testing.T) {
		h := requireCgroup2(t)
		before := groupsUnder(t, h.SelfDir())
		dir := filepath.Join(t.TempDir(), "missing")
		r := runCgrun(t, nil, []string{"--events", filepath.Join(dir, "x.jsonl")}, "exit", "0")
		want := "cgrun: --events: " + filepath.Join(dir, "x.jsonl") + ": the directory " + dir + " does not exist; create it first (mkdir -p " + dir + ") or name a file in a directory that exists\n"
		if r.code != 125 || r.stderr != want {
			t.Errorf("exit %d stderr %q; want 125 and %q", r.code, r.stderr, want)
		}
		assertNothingLeft(t, h, before)
	})
	t.Run("verbose summary", func(t *testing.T) {
		r := runCgrun(t, nil, []string{"--verbose", "--name", "quiet"}, "exit", "4")
		if r.code != 4 || !strings.Contains(r.stderr, "cgrun: quiet exited with status 4 after ") {
			t.Errorf("exit %d stderr %q; want the summary", r.code, r.stderr)
		}
		r = runCgrun(t, nil, []string{"--name", "quiet"}, "exit", "0")
		if r.stderr != "" {
			t.Errorf("stderr %q: want nothing without --verbose when no memory event happened", r.stderr)
		}
	})
}

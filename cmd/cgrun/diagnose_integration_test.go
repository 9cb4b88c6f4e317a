package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cgrun/cgrun/launch/diagnose"
)

// A dump before a recycle for memory (--diagnose-*), and the leak's pace in status.

// leakJS keeps PER instances of Leak (8 KiB of JS array each) every 100 ms, forever or, with a
// second argument, until that many seconds passed (then it exits 3). It prints "leaking" first.
const leakJS = `
class Leak { constructor(i) { this.i = i; this.data = new Array(1024).fill(i + 0.5); } }
const keep = [];
const [per, seconds] = process.argv.slice(2).map(Number);
let n = 0;
// With SECONDS it exits 3 once it has leaked what SECONDS of ticks leak, not after SECONDS: on a
// busy guest the ticks come late, and a timed exit would end it short of what the test needs.
setInterval(() => {
  for (let i = 0; i < per; i++) keep.push(new Leak(n++));
  if (seconds && n >= per * seconds * 10) process.exit(3);
}, 100);
console.log("leaking");
`

// diagnoseLine is the part of a record with a diagnosis that these tests read.
type diagnoseLine struct {
	Time       string         `json:"time"`
	Event      string         `json:"event"`
	Generation int            `json:"generation"`
	Pid        int            `json:"pid"`
	Reason     string         `json:"reason"`
	ExitCode   *int           `json:"exit_code"`
	Signal     string         `json:"signal"`
	Diagnosis  *diagnose.Dump `json:"diagnosis"`
}

func readDiagnoseLines(t *testing.T, path string) []diagnoseLine {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []diagnoseLine
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r diagnoseLine
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

// byEvent picks the records of one kind.
func byEvent(recs []diagnoseLine, event string) []diagnoseLine {
	var out []diagnoseLine
	for _, r := range recs {
		if r.Event == event {
			out = append(out, r)
		}
	}
	return out
}

// watchMemoryMax reads the memory.max of the running cgrun named name (through cgrun ps --json)
// every 200 ms until stop is closed, and returns the highest seen.
func watchMemoryMax(t *testing.T, name string, stop <-chan struct{}) func() uint64 {
	var mu sync.Mutex
	var highest uint64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			out, err := exec.Command(cgrunBin(t), "ps", "--json").Output()
			if err != nil {
				continue
			}
			var boxes []sandbox
			if json.Unmarshal(out, &boxes) != nil {
				continue
			}
			for _, b := range boxes {
				if b.Name == name && b.MemoryMax != nil {
					mu.Lock()
					highest = max(highest, *b.MemoryMax)
					mu.Unlock()
				}
			}
		}
	}()
	return func() uint64 {
		<-done
		mu.Lock()
		defer mu.Unlock()
		return highest
	}
}

// TestDiagnoseNodeHeapSnapshotBeforeRecycle: a Node worker that leaks JS objects is recycled
// above 120M; before each stop, cgrun gives it room (memory.max + 64M) and sends SIGUSR2, Node
// writes a .heapsnapshot, and only once it is complete is the generation stopped. The snapshot
// is a V8 heap snapshot (JSON with its nodes and edges), the recycle event names it, and with
// --diagnose-keep 1 only the newest is left.
func TestDiagnoseNodeHeapSnapshotBeforeRecycle(t *testing.T) {
	requireCgroup2(t)
	node := nodeOrFail(t)
	dir, tmp := t.TempDir(), t.TempDir()
	events, script := filepath.Join(tmp, "events.jsonl"), writeLeakJS(t, tmp)
	const limit, headroom = 192 << 20, 64 << 20
	stop := make(chan struct{})
	highest := watchMemoryMax(t, "leak", stop)
	r := runCgrunArgs(t, []string{"--name", "leak", "--memory-max", "192M", "--recycle-above", "120M", "--recycle-after", "1s",
		"--diagnose-signal", "SIGUSR2", "--diagnose-dir", dir, "--diagnose-headroom", "64M", "--diagnose-keep", "1",
		"--restart-delay", "0", "--max-restarts", "1", "--restart-window", "600s", "--events", events,
		"--", node, "--max-old-space-size=512", "--heapsnapshot-signal=SIGUSR2", "--diagnostic-dir=" + dir, script, "128"})
	close(stop)
	if r.code != 122 {
		t.Fatalf("exit %d, want 122 (two generations recycled, then gave up); stderr %q", r.code, r.stderr)
	}
	t.Logf("stderr:\n%s", r.stderr)
	recs := readDiagnoseLines(t, events)
	dumps, exits, recycles, starts := byEvent(recs, "diagnose"), byEvent(recs, "exit"), byEvent(recs, "recycle"), byEvent(recs, "start")
	if len(dumps) != 2 || len(exits) != 2 || len(recycles) != 1 || len(starts) != 2 {
		t.Fatalf("%d dumps, %d exits, %d recycles, %d starts; want 2, 2, 1, 2", len(dumps), len(exits), len(recycles), len(starts))
	}
	for i, d := range dumps {
		dg := d.Diagnosis
		if dg == nil || !dg.Complete || dg.Reason != "memory_above" || len(dg.Files) != 1 || !strings.HasSuffix(dg.Files[0].Path, ".heapsnapshot") {
			t.Fatalf("dump %d: %+v; want one complete .heapsnapshot for memory_above", i+1, dg)
		}
		if dg.MemoryMax != limit+headroom || !strings.Contains(dg.Note, "memory.max raised from 192M to 256M") {
			t.Errorf("dump %d: memory.max raised to %d (%q), want %d", i+1, dg.MemoryMax, dg.Note, limit+headroom)
		}
		// Asked for before the stop, complete before the generation's exit.
		asked, ended := parseTime(t, dg.Time), parseTime(t, exits[i].Time)
		if done := asked.Add(time.Duration(dg.Seconds * float64(time.Second))); !done.Before(ended) {
			t.Errorf("dump %d complete at %v, generation ended at %v: want the dump first", i+1, done, ended)
		}
		if exits[i].Reason != "memory_above" {
			t.Errorf("generation %d ended for %q, want memory_above", i+1, exits[i].Reason)
		}
		t.Logf("dump %d: %s, %d bytes, in %.1fs", i+1, filepath.Base(dg.Files[0].Path), dg.Files[0].Size, dg.Seconds)
	}
	// The recycle event names the first generation's dump; the second generation starts after it.
	first := dumps[0].Diagnosis
	if rd := recycles[0].Diagnosis; rd == nil || len(rd.Files) != 1 || rd.Files[0].Path != first.Files[0].Path {
		t.Errorf("recycle event's diagnosis %+v; want the first dump, %s", rd, first.Files[0].Path)
	}
	if !parseTime(t, starts[1].Time).After(parseTime(t, dumps[0].Time)) {
		t.Errorf("generation 2 started at %s, before the dump at %s", starts[1].Time, dumps[0].Time)
	}
	// --diagnose-keep 1: the first snapshot is gone, the second is a heap snapshot.
	if _, err := os.Stat(first.Files[0].Path); !os.IsNotExist(err) {
		t.Errorf("first snapshot %s: %v; want it removed by --diagnose-keep 1", first.Files[0].Path, err)
	}
	b, err := os.ReadFile(dumps[1].Diagnosis.Files[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	var snap struct {
		Snapshot json.RawMessage `json:"snapshot"`
		Nodes    []int64         `json:"nodes"`
		Edges    []int64         `json:"edges"`
		Strings  []string        `json:"strings"`
	}
	if err := json.Unmarshal(b, &snap); err != nil {
		t.Fatalf("snapshot is not JSON: %v", err)
	}
	if len(snap.Snapshot) == 0 || len(snap.Nodes) == 0 || len(snap.Edges) == 0 || !containsString(snap.Strings, "Leak") {
		t.Errorf("snapshot: %d nodes, %d edges, Leak named %v; want a V8 heap snapshot holding the Leak class",
			len(snap.Nodes), len(snap.Edges), containsString(snap.Strings, "Leak"))
	}
	if h := highest(); h > limit+headroom || h <= limit {
		t.Errorf("memory.max seen up to %d; want above the limit (%d) during the dump, never above limit + headroom (%d)", h, limit, limit+headroom)
	}
}

func writeLeakJS(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "leak.js")
	if err := os.WriteFile(p, []byte(leakJS), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// TestDiagnoseCmd: --diagnose-cmd runs in the group with the child's pid and the directory in
// its environment, and the generation is stopped once its file is complete; a dump that never
// completes (a file left open) holds the recycle until --diagnose-timeout, no longer.
func TestDiagnoseCmd(t *testing.T) {
	requireCgroup2(t)
	for _, tc := range []struct {
		name     string
		cmd      string
		complete bool
		min, max float64 // how long cgrun waits for it, in seconds
	}{
		{"writes the child's pid", `echo $CGRUN_CHILD_PID > "$CGRUN_DUMP_DIR/pid.txt"`, true, 0.9, 2.5},
		{"never completes", `exec 3>"$CGRUN_DUMP_DIR/partial"; echo x >&3; sleep 60`, false, 3, 4.5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			events := filepath.Join(t.TempDir(), "events.jsonl")
			// A recycle always restarts: --max-restarts 1 ends the run after the second.
			r := runCgrun(t, nil, []string{"--recycle-above", "24M", "--recycle-after", "1s", "--restart-delay", "0",
				"--max-restarts", "1", "--restart-window", "600s", "--diagnose-keep", "0",
				"--diagnose-cmd", tc.cmd, "--diagnose-dir", dir, "--diagnose-timeout", "3s", "--events", events}, "hog", "40")
			if r.code != 122 {
				t.Fatalf("exit %d, want 122 (two generations recycled); stderr %q", r.code, r.stderr)
			}
			recs := readDiagnoseLines(t, events)
			dumps, exits, starts := byEvent(recs, "diagnose"), byEvent(recs, "exit"), byEvent(recs, "start")
			if len(dumps) != 2 || len(exits) != 2 || dumps[0].Diagnosis == nil {
				t.Fatalf("%d dumps, %d exits; want 2 each; stderr %q", len(dumps), len(exits), r.stderr)
			}
			d := dumps[0].Diagnosis
			if d.Complete != tc.complete || d.Seconds < tc.min || d.Seconds > tc.max || len(d.Files) != 1 {
				t.Errorf("dump %+v; want complete %v after %.1f-%.1fs, one file", d, tc.complete, tc.min, tc.max)
			}
			if ended := parseTime(t, exits[0].Time); ended.Before(parseTime(t, d.Time).Add(time.Duration(d.Seconds * float64(time.Second)))) {
				t.Errorf("generation ended at %v, before the wait for its dump did", ended)
			}
			if tc.complete && len(d.Files) == 1 {
				b, _ := os.ReadFile(d.Files[0].Path)
				var pid int
				if err := json.Unmarshal(b, &pid); err != nil || len(starts) != 2 || pid != starts[1].Pid {
					t.Errorf("pid.txt %q; want the last child's pid, from its start record", b)
				}
			}
		})
	}
}

// TestDiagnoseAboveWithoutRecycle: --diagnose-above dumps once when memory first crosses the
// mark and the worker keeps running; the next generation crosses it within --diagnose-interval
// and gets no dump.
func TestDiagnoseAboveWithoutRecycle(t *testing.T) {
	requireCgroup2(t)
	node := nodeOrFail(t)
	dir, tmp := t.TempDir(), t.TempDir()
	events, script := filepath.Join(tmp, "events.jsonl"), writeLeakJS(t, tmp)
	// Each generation leaks ~5M/s for 15 s' worth of ticks, then exits 3: on-failure restarts it once.
	r := runCgrunArgs(t, []string{"--name", "above", "--diagnose-above", "80M", "--diagnose-signal", "SIGUSR2", "--diagnose-dir", dir,
		"--restart", "on-failure", "--restart-delay", "0", "--max-restarts", "1", "--restart-window", "600s", "--events", events,
		"--", node, "--heapsnapshot-signal=SIGUSR2", "--diagnostic-dir=" + dir, script, "64", "15"})
	t.Logf("stderr:\n%s", r.stderr)
	if r.code != 122 {
		t.Fatalf("exit %d, want 122 (two generations exited 3, then cgrun gave up)", r.code)
	}
	recs := readDiagnoseLines(t, events)
	dumps, exits := byEvent(recs, "diagnose"), byEvent(recs, "exit")
	if len(dumps) != 1 || len(exits) != 2 {
		t.Fatalf("%d dumps, %d exits; want 1 dump (the second crossing is within --diagnose-interval) and 2 exits", len(dumps), len(exits))
	}
	d := dumps[0].Diagnosis
	if d == nil || !d.Complete || d.Reason != "above" || d.Generation != 1 || len(d.Files) != 1 || !strings.HasSuffix(d.Files[0].Path, ".heapsnapshot") {
		t.Errorf("dump %+v; want generation 1's complete .heapsnapshot for above", d)
	}
	for _, e := range exits {
		if e.ExitCode == nil || *e.ExitCode != 3 || e.Reason != "" {
			t.Errorf("generation %d: exit %v, reason %q; want it to run on to its own exit 3", e.Generation, e.ExitCode, e.Reason)
		}
	}
	if !strings.Contains(r.stderr, "generation 2: memory at") || !strings.Contains(r.stderr, "no dump: the last was less than --diagnose-interval 1h0m0s ago") {
		t.Errorf("stderr does not say why generation 2 got no dump")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("%d files in the dump directory, want 1", len(entries))
	}
}

// TestDiagnosePaceInStatus: `cgrun status` of a worker that leaks 1M every 100 ms (600M a
// minute) shows a growth figure within 25% of what it leaked, and ps --json the same figure.
// The pace is over the whole generation, start-up included: what the worker leaked is 600M a
// minute from its "ready" line on, which a busy guest can put seconds after the start.
func TestDiagnosePaceInStatus(t *testing.T) {
	requireCgroup2(t)
	cmd, out, errb := startCgrun(t, []string{"--name", "drip"}, "drip", "1", "100")
	if !out.Scan() || out.Text() != "ready" {
		t.Fatalf("no ready line; stderr %q", errb.String())
	}
	ready := time.Now()
	time.Sleep(6 * time.Second)
	before := time.Now()
	stdout, stderr, code := cgrunCmd(t, nil, "status", "drip", "--json")
	after := time.Now()
	if code != 0 {
		t.Fatalf("status: exit %d, %q", code, stderr)
	}
	var b sandbox
	if err := json.Unmarshal([]byte(stdout), &b); err != nil || b.Pace == nil || b.Pace.Seconds <= 0 {
		t.Fatalf("status --json %q: %v; want a pace", stdout, err)
	}
	const real = 600 << 20 // bytes a minute
	// At least what it leaked from "ready" until the status began; at most 600M a minute over
	// the whole generation and the status call.
	lo := real * before.Sub(ready).Seconds() / b.Pace.Seconds
	hi := real * (b.Pace.Seconds + after.Sub(before).Seconds()) / b.Pace.Seconds
	if got := b.Pace.BytesPerMinute; got < lo*0.75 || got > hi*1.25 {
		t.Errorf("pace %.1f MiB/min over %.1fs, want within 25%% of %.0f–%.0f MiB/min (600M a minute since its ready line %.1fs ago)",
			got/(1<<20), b.Pace.Seconds, lo/(1<<20), hi/(1<<20), before.Sub(ready).Seconds())
	}
	t.Logf("pace %.1f MiB/min over %.1fs (real: %d MiB/min since ready, %.1fs)", b.Pace.BytesPerMinute/(1<<20), b.Pace.Seconds, real>>20, before.Sub(ready).Seconds())
	text, _, _ := cgrunCmd(t, nil, "status", "drip")
	if !strings.Contains(text, "  pace         grows ~") {
		t.Errorf("status text has no pace line:\n%s", text)
	}
	psOut, _, _ := cgrunCmd(t, nil, "ps", "--json")
	var boxes []sandbox
	if err := json.Unmarshal([]byte(psOut), &boxes); err != nil || len(boxes) == 0 || boxes[0].Pace == nil {
		t.Errorf("ps --json %q: %v; want a pace", psOut, err)
	}
	cmd.Process.Signal(os.Interrupt)
	waitCode(t, cmd)
}

// TestDiagnoseDirOnTmpfsWarns: a dump directory on tmpfs gets one warning at the start (a dump
// there is charged to the worker's own memory); one on a disk gets none.
func TestDiagnoseDirOnTmpfsWarns(t *testing.T) {
	requireCgroup2(t)
	shm, err := os.MkdirTemp("/dev/shm", "cgrun-dumps")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(shm)
	disk, err := os.MkdirTemp(".", "cgrun-dumps") // the package's directory: hostfs in the guest
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(disk)
	for _, tc := range []struct {
		dir  string
		warn bool
	}{{shm, true}, {disk, false}} {
		r := runCgrun(t, nil, []string{"--diagnose-cmd", "true", "--diagnose-dir", tc.dir}, "exit", "0")
		want := "cgrun: warning: --diagnose-dir " + tc.dir + " is on tmpfs: a dump written there is memory charged to the command's own group"
		if r.code != 0 || strings.Contains(r.stderr, want) != tc.warn || !tc.warn && r.stderr != "" {
			t.Errorf("%s: exit %d, stderr %q; want 0 and the tmpfs warning: %v", tc.dir, r.code, r.stderr, tc.warn)
		}
	}
}

// TestDiagnoseStuckAtMemoryMaxEndsTheWait: a dump that sits at memory.max (here a
// --diagnose-cmd that writes new files on a disk over and over beside a worker holding 40M under
// a 48M limit, so the kernel reclaims their page cache at the limit all along) is given up after
// seconds with a line that asks for more --diagnose-headroom, not waited for until
// --diagnose-timeout (5 minutes).
func TestDiagnoseStuckAtMemoryMaxEndsTheWait(t *testing.T) {
	requireCgroup2(t)
	dir, events := t.TempDir(), filepath.Join(t.TempDir(), "events.jsonl")
	// New files each time, so that their pages are charged to this generation: files read
	// again would be cached already, charged to the group of the generation before.
	scratch, err := os.MkdirTemp(".", "cgrun-fill") // the package's directory: hostfs in the guest
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(scratch)
	cmd := "i=0; while :; do dd if=/dev/zero of=" + scratch + "/f$i bs=1M count=32 2>/dev/null; rm -f " + scratch + "/f$i; i=$((i+1)); done"
	r := runCgrun(t, nil, []string{"--memory-max", "48M", "--recycle-above", "24M", "--recycle-after", "1s", "--restart-delay", "0",
		"--max-restarts", "1", "--restart-window", "600s", "--diagnose-cmd", cmd, "--diagnose-dir", dir, "--diagnose-timeout", "5m",
		"--events", events}, "hog", "40")
	t.Logf("stderr:\n%s", r.stderr)
	if r.code != 122 {
		t.Fatalf("exit %d, want 122 (two generations recycled); stderr %q", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "the dump sat at memory.max 48M for ") || !strings.Contains(r.stderr, "give it --diagnose-headroom") ||
		!strings.Contains(r.stderr, "not waiting for it any longer") {
		t.Errorf("stderr %q: want the line that the dump sits at memory.max and needs --diagnose-headroom", r.stderr)
	}
	dumps := byEvent(readDiagnoseLines(t, events), "diagnose")
	if len(dumps) != 2 || dumps[0].Diagnosis == nil {
		t.Fatalf("%d dumps; want 2", len(dumps))
	}
	if d := dumps[0].Diagnosis; d.Complete || d.Seconds < diagnose.StuckAfter.Seconds() || d.Seconds > 30 || !strings.Contains(d.Note, "--diagnose-headroom") {
		t.Errorf("dump %+v; want it not complete after %v to 30s, its note naming --diagnose-headroom", d, diagnose.StuckAfter)
	}
}

// TestDiagnoseDirReadOnlyIsRefused: a --diagnose-dir on a read-only file system (a read-only
// bind mount here) is refused at the start, one line and exit 125, not found out at the first
// dump, which could never land there.
func TestDiagnoseDirReadOnlyIsRefused(t *testing.T) {
	h := requireCgroup2(t)
	dir := hostfsDir(t)
	if out, err := exec.Command("mount", "--bind", "-o", "ro", dir, dir).CombinedOutput(); err != nil {
		t.Fatalf("mount --bind -o ro %s: %v: %s", dir, err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	before := groupsUnder(t, h.SelfDir())
	r := runWith(t, nil, nil, "run", "--name", "rodump", "--diagnose-cmd", "true", "--diagnose-dir", dir, "--", "/bin/true")
	want := "cgrun: --diagnose-dir " + dir + ": on a read-only file system, so a dump could never land there; choose a directory on a writable disk\n"
	if r.code != 125 || r.stderr != want {
		t.Errorf("exit %d, stderr %q; want 125 and %q", r.code, r.stderr, want)
	}
	assertNothingLeft(t, h, before)
}

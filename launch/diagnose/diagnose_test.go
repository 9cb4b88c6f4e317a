package diagnose_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cgrun/cgrun/launch/diagnose"
	"golang.org/x/sys/unix"
)

// openDir opens dir as the dump directory of a command that runs as this test's user.
func openDir(t *testing.T, dir string) *diagnose.Dir {
	t.Helper()
	d, err := diagnose.OpenDir(dir, diagnose.Writer{UID: uint32(os.Geteuid()), Groups: []uint32{uint32(os.Getegid())}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

func TestWaitCompleteAfterCloseAndQuiet(t *testing.T) {
	dir := t.TempDir()
	w, err := diagnose.Watch(openDir(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	go func() {
		f, _ := os.Create(filepath.Join(dir, "a.heapsnapshot"))
		for i := 0; i < 5; i++ {
			f.Write([]byte(strings.Repeat("x", 1000)))
			time.Sleep(100 * time.Millisecond) // slower than nothing, quicker than quiet
		}
		f.Close()
	}()
	start := time.Now()
	files, complete := w.Wait(start.Add(10*time.Second), 300*time.Millisecond)
	took := time.Since(start)
	if !complete || len(files) != 1 || files[0].Size != 5000 || filepath.Base(files[0].Path) != "a.heapsnapshot" {
		t.Fatalf("files %+v complete %v; want a.heapsnapshot of 5000 bytes, complete", files, complete)
	}
	if took < 700*time.Millisecond || took > 3*time.Second {
		t.Errorf("took %v; want the write (0.5s) plus quiet (0.3s)", took)
	}
}

func TestWaitRenamedIn(t *testing.T) {
	dir := t.TempDir()
	w, err := diagnose.Watch(openDir(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	tmp := filepath.Join(t.TempDir(), "x.tmp")
	os.WriteFile(tmp, []byte("dump"), 0o644)
	os.Rename(tmp, filepath.Join(dir, "core.1"))
	files, complete := w.Wait(time.Now().Add(5*time.Second), 100*time.Millisecond)
	if !complete || len(files) != 1 || files[0].Size != 4 {
		t.Fatalf("files %+v complete %v", files, complete)
	}
}

func TestWaitTimesOut(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(dir string)
		files int
	}{
		{"nothing written", func(string) {}, 0},
		{"a file left open", func(dir string) {
			f, _ := os.Create(filepath.Join(dir, "open"))
			f.Write([]byte("x"))
			t.Cleanup(func() { f.Close() })
		}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			w, err := diagnose.Watch(openDir(t, dir))
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			tc.write(dir)
			start := time.Now()
			files, complete := w.Wait(start.Add(500*time.Millisecond), 50*time.Millisecond)
			if complete || len(files) != tc.files {
				t.Errorf("files %+v complete %v; want %d, not complete", files, complete, tc.files)
			}
			if d := time.Since(start); d < 450*time.Millisecond || d > 2*time.Second {
				t.Errorf("returned after %v; want the deadline, 500ms", d)
			}
		})
	}
}

func TestWaitEndsOnClose(t *testing.T) {
	w, err := diagnose.Watch(openDir(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(100*time.Millisecond, w.Close)
	start := time.Now()
	if _, complete := w.Wait(start.Add(time.Minute), time.Second); complete || time.Since(start) > 5*time.Second {
		t.Errorf("complete %v after %v; want an early, incomplete return", complete, time.Since(start))
	}
	w.Close()
}

func TestPrune(t *testing.T) {
	dir := t.TempDir()
	var dumps []diagnose.Dump
	for _, n := range []string{"1", "2", "3", "4"} {
		p := filepath.Join(dir, n)
		os.WriteFile(p, []byte(n), 0o644)
		dumps = append(dumps, diagnose.Dump{Generation: len(dumps) + 1, Files: []diagnose.File{{Path: p, Size: 1}}})
	}
	kept, errs := diagnose.Prune(openDir(t, dir), dumps, 2)
	if len(errs) != 0 || len(kept) != 2 || kept[0].Generation != 3 {
		t.Fatalf("kept %+v errs %v", kept, errs)
	}
	for n, want := range map[string]bool{"1": false, "2": false, "3": true, "4": true} {
		if _, err := os.Stat(filepath.Join(dir, n)); (err == nil) != want {
			t.Errorf("file %s: exists %v, want %v", n, err == nil, want)
		}
	}
	if kept, _ := diagnose.Prune(openDir(t, dir), dumps[:1], 0); len(kept) != 1 {
		t.Errorf("keep 0 kept %d, want all", len(kept))
	}
}

func TestLimiter(t *testing.T) {
	l := diagnose.Limiter{Interval: time.Hour}
	t0 := time.Now()
	for i, tc := range []struct {
		at   time.Duration
		want bool
	}{{0, true}, {time.Minute, false}, {59 * time.Minute, false}, {61 * time.Minute, true}, {62 * time.Minute, false}} {
		if got := l.Allow(t0.Add(tc.at)); got != tc.want {
			t.Errorf("%d: Allow at +%v = %v, want %v", i, tc.at, got, tc.want)
		}
	}
}

func TestRaise(t *testing.T) {
	const M = 1 << 20
	for _, tc := range []struct {
		name                          string
		limit, headroom, parent, want uint64
	}{
		{"no parent limit", 100 * M, 50 * M, 0, 150 * M},
		{"parent has room", 100 * M, 50 * M, 200 * M, 150 * M},
		{"parent allows part", 100 * M, 50 * M, 120 * M, 120 * M},
		{"parent allows none", 100 * M, 50 * M, 100 * M, 100 * M},
		{"parent below the limit", 100 * M, 50 * M, 80 * M, 100 * M},
		{"overflow", ^uint64(0) - 1, 50 * M, 0, ^uint64(0)},
	} {
		if got := diagnose.Raise(tc.limit, tc.headroom, tc.parent); got != tc.want {
			t.Errorf("%s: Raise = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestMeasure(t *testing.T) {
	const M = 1 << 20
	high, max := uint64(200*M), uint64(300*M)
	p := diagnose.Measure(10*M, 70*M, 30*time.Second, &high, &max)
	if p.GrowthBytes != 60*M || p.BytesPerMinute != 120*M {
		t.Fatalf("pace %+v; want 60M grown, 120M/min", p)
	}
	if *p.SecondsToHigh != 65 || *p.SecondsToMax != 115 {
		t.Errorf("to high %v, to max %v; want 65 s and 115 s", *p.SecondsToHigh, *p.SecondsToMax)
	}
	if got := p.String(); got != "grows ~120M/min (60M in 30 s); memory.high in ~1 min; memory.max in ~2 min" {
		t.Errorf("String() = %q", got)
	}
	flat := diagnose.Measure(70*M, 60*M, time.Minute, &high, nil)
	if flat.SecondsToHigh != nil || flat.SecondsToMax != nil || !strings.HasPrefix(flat.String(), "not growing (-10M") {
		t.Errorf("shrinking: %+v %q", flat, flat.String())
	}
	if diagnose.Measure(0, 1, 0, nil, nil) != nil {
		t.Error("no time elapsed: want nil")
	}
}

func TestSummary(t *testing.T) {
	h := []diagnose.Past{
		{Generation: 1, Seconds: 40 * 60, Peak: 512 << 20, Reason: "oom_kill"},
		{Generation: 2, Seconds: 10, Reason: "exit 1"},
		{Generation: 3, Seconds: 42 * 60, Peak: 500 << 20, Reason: "oom_kill"},
	}
	if got, want := diagnose.Summary(h), "OOM-killed every ~41 min (peak 512M), 2 of the last 3 generations"; got != want {
		t.Errorf("Summary = %q, want %q", got, want)
	}
	if diagnose.Summary(nil) != "" {
		t.Error("no history: want \"\"")
	}
	for i := 0; i < 20; i++ {
		h = diagnose.AddPast(h, diagnose.Past{Generation: 4 + i})
	}
	if len(h) != diagnose.MaxPast || h[len(h)-1].Generation != 23 {
		t.Errorf("history of %d, last %d", len(h), h[len(h)-1].Generation)
	}
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		c    diagnose.Config
		want string // "" for valid
	}{
		{"nothing", diagnose.Config{}, ""},
		{"signal and dir", diagnose.Config{Signal: unix.SIGUSR2, Dir: dir, Timeout: time.Minute}, ""},
		{"both", diagnose.Config{Signal: unix.SIGUSR2, Cmd: "x", Dir: dir, Timeout: time.Minute}, "give one of them"},
		{"no dir", diagnose.Config{Signal: unix.SIGUSR2, Timeout: time.Minute}, "need --diagnose-dir"},
		{"missing dir", diagnose.Config{Signal: unix.SIGUSR2, Dir: filepath.Join(dir, "no"), Timeout: time.Minute}, "not a directory; make it first"},
		{"a file", diagnose.Config{Signal: unix.SIGUSR2, Dir: file, Timeout: time.Minute}, "a file, not a directory; name a directory"},
		{"dir alone", diagnose.Config{Dir: dir}, "need --diagnose-signal or --diagnose-cmd"},
		{"zero timeout", diagnose.Config{Cmd: "x", Dir: dir}, "above 0"},
	} {
		err := tc.c.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

package oomwatch_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cgrun/cgrun/oomwatch"
)

// fakeGroup is a directory shaped like a cgroup: inotify reports writes to its files as the
// kernel's cgroup_file_notify does, so the watcher's logic can be tested anywhere. The same
// behaviours are tested against a real kernel in realkernel_test.go.
type fakeGroup struct {
	t   *testing.T
	dir string
}

func newFakeGroup(t *testing.T) *fakeGroup {
	g := &fakeGroup{t: t, dir: t.TempDir()}
	g.write("memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n")
	g.write("memory.events.local", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n")
	g.write("pids.events", "max 0\n")
	g.write("cgroup.events", "populated 1\nfrozen 0\n")
	g.write("memory.current", "1048576\n")
	g.write("memory.peak", "2097152\n")
	return g
}

func (g *fakeGroup) write(name, content string) {
	g.t.Helper()
	if err := os.WriteFile(filepath.Join(g.dir, name), []byte(content), 0o644); err != nil {
		g.t.Fatal(err)
	}
}

// collect runs a watcher until stop is closed and returns what it emitted.
func collect(t *testing.T, w *oomwatch.Watcher, ready chan<- struct{}, stop <-chan struct{}) []oomwatch.Event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var evs []oomwatch.Event
	done := make(chan error)
	go func() { done <- w.Run(ctx, func(ev oomwatch.Event) { evs = append(evs, ev) }) }()
	close(ready)
	<-stop
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	return evs
}

// watch runs a watcher on the group at dir. Its events come on the channel; stop (also run at
// the test's end) ends the watcher, which reads every counter once more, and closes the channel.
func watch(t *testing.T, dir string, opts oomwatch.Options) (evs <-chan oomwatch.Event, stop func()) {
	t.Helper()
	w, err := oomwatch.New(dir, "/watched", opts)
	if err != nil {
		t.Fatal(err)
	}
	if n := w.Notice(); n != nil && len(opts.Triggers) > 0 && os.Getenv("CGRUN_REQUIRE_PSI") == "1" {
		t.Fatalf("notice %v on a kernel that must have PSI", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan oomwatch.Event, 1024)
	done := make(chan struct{})
	go func() { w.Run(ctx, func(ev oomwatch.Event) { ch <- ev }); close(done) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
			close(ch)
			w.Close()
		})
	}
	t.Cleanup(stop)
	return ch, stop
}

// waitFor returns the first event of kind k, or fails the test after 15 s.
func waitFor(t *testing.T, evs <-chan oomwatch.Event, k oomwatch.Kind) oomwatch.Event {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case ev := <-evs:
			if ev.Kind == k {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s event within 15 s", k)
		}
	}
}

func TestWatcherReportsEachCounterOnce(t *testing.T) {
	g := newFakeGroup(t)
	w, err := oomwatch.New(g.dir, "/fake", oomwatch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ready, stop := make(chan struct{}), make(chan struct{})
	var evs []oomwatch.Event
	go func() {
		<-ready
		g.write("memory.events", "low 0\nhigh 3\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n")
		time.Sleep(20 * time.Millisecond)
		g.write("memory.events.local", "low 0\nhigh 5\nmax 1\noom 1\noom_kill 1\noom_group_kill 0\n")
		g.write("memory.events", "low 0\nhigh 5\nmax 1\noom 1\noom_kill 1\noom_group_kill 0\n")
		g.write("pids.events", "max 2\n")
		g.write("cgroup.events", "populated 0\nfrozen 0\n")
		time.Sleep(20 * time.Millisecond)
		close(stop)
	}()
	evs = collect(t, w, ready, stop)
	got := map[oomwatch.Kind]uint64{}
	for _, ev := range evs {
		got[ev.Kind] += ev.Delta
		if ev.Group != "/fake" || ev.MemoryCurrent != 1<<20 || ev.MemoryPeak != 2<<20 || ev.Time.IsZero() {
			t.Errorf("event %+v lacks group, memory or time", ev)
		}
	}
	want := map[oomwatch.Kind]uint64{oomwatch.High: 5, oomwatch.Max: 1, oomwatch.OOM: 1, oomwatch.OOMKill: 1, oomwatch.PidsMax: 2, oomwatch.Emptied: 0}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%s: deltas add up to %d, want %d (events %+v)", k, got[k], n, evs)
		}
	}
	var emptied int
	for _, ev := range evs {
		if ev.Kind == oomwatch.Emptied {
			emptied++
		}
		if ev.Kind == oomwatch.OOMKill && (ev.CountLocal == nil || *ev.CountLocal != 1) {
			t.Errorf("oom_kill event without count_local 1: %+v", ev)
		}
	}
	if emptied != 1 {
		t.Errorf("%d emptied events, want 1", emptied)
	}
}

// TestWatcherHearsAChildAtOnce: the kernel may hold back the group's own notification (it
// notifies a file at most once per ~10 ms); the kill is also counted in the victim's leaf, whose
// memory.events wakes the watcher, which then rereads the group's counters.
func TestWatcherHearsAChildAtOnce(t *testing.T) {
	g := newFakeGroup(t)
	leaf := filepath.Join(g.dir, "main")
	if err := os.Mkdir(leaf, 0o755); err != nil {
		t.Fatal(err)
	}
	events := "low 0\nhigh 0\nmax 0\noom 0\noom_kill %d\noom_group_kill 0\n"
	g.write("main/memory.events", fmt.Sprintf(events, 0))
	evs, _ := watch(t, g.dir, oomwatch.Options{Children: []string{leaf}})

	// The group's counter goes up without a notification of its file (a new file renamed over
	// it: the watched inode is not modified), as when the kernel holds it back; the leaf's is
	// notified.
	tmp := filepath.Join(g.dir, ".memory.events")
	if err := os.WriteFile(tmp, []byte(fmt.Sprintf(events, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(g.dir, "memory.events")); err != nil {
		t.Fatal(err)
	}
	g.write("main/memory.events", fmt.Sprintf(events, 1))
	if ev := waitFor(t, evs, oomwatch.OOMKill); ev.Delta != 1 || ev.Count != 1 || ev.Group != "/watched" {
		t.Errorf("event %+v, want the group's oom_kill 1", ev)
	}
}

func TestWatcherReportsNothingFromBeforeNew(t *testing.T) {
	g := newFakeGroup(t)
	g.write("memory.events", "low 0\nhigh 9\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n")
	w, err := oomwatch.New(g.dir, "/fake", oomwatch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ready, stop := make(chan struct{}), make(chan struct{})
	go func() { <-ready; time.Sleep(10 * time.Millisecond); close(stop) }()
	if evs := collect(t, w, ready, stop); len(evs) != 0 {
		t.Errorf("events %+v, want none: the counts predate New", evs)
	}
}

func TestWatcherMissingPSIIsANoticeNotAnError(t *testing.T) {
	g := newFakeGroup(t) // no memory.pressure, as on a kernel without CONFIG_PSI
	tr, _ := oomwatch.ParseTrigger("some 150ms/1s")
	w, err := oomwatch.New(g.dir, "/fake", oomwatch.Options{Triggers: []oomwatch.Trigger{tr, tr}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer w.Close()
	if n := w.Notice(); n == nil || !strings.Contains(n.Error(), "PSI") {
		t.Errorf("Notice() = %v, want one naming PSI", n)
	}
}

// TestWatcherOptionalTriggerWithoutPSI: an optional trigger the kernel cannot take is left
// out without a notice or an error, and Armed says so; a caller then falls back on refaults.
func TestWatcherOptionalTriggerWithoutPSI(t *testing.T) {
	g := newFakeGroup(t) // no memory.pressure
	tr, _ := oomwatch.ParseTrigger("full 300ms/1s")
	w, err := oomwatch.New(g.dir, "/fake", oomwatch.Options{Optional: []oomwatch.Trigger{tr}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer w.Close()
	if w.Armed(tr) || w.Notice() != nil {
		t.Errorf("Armed %v, Notice %v: want neither", w.Armed(tr), w.Notice())
	}
}

// TestWatcherFailedNewClosesWhatItOpened: when New fails part way (here the trigger cannot be
// registered, as when the kernel refuses it), it returns the error, closes every fd it had
// opened, and does not panic.
func TestWatcherFailedNewClosesWhatItOpened(t *testing.T) {
	g := newFakeGroup(t)
	// A directory cannot be opened for writing: EISDIR, even for root.
	if err := os.Mkdir(filepath.Join(g.dir, "memory.pressure"), 0o755); err != nil {
		t.Fatal(err)
	}
	tr, _ := oomwatch.ParseTrigger("some 150ms/1s")
	fds := openFDs(t)
	w, err := oomwatch.New(g.dir, "/fake", oomwatch.Options{Triggers: []oomwatch.Trigger{tr}})
	if err == nil || w != nil {
		t.Fatalf("New = %v, %v; want an error for the trigger", w, err)
	}
	if !strings.Contains(err.Error(), "memory.pressure") {
		t.Errorf("error %q does not name the file", err)
	}
	if after := openFDs(t); after != fds {
		t.Errorf("open fds %d before the failed New, %d after", fds, after)
	}
}

// TestWatcherLeaksNothing runs 1,000 New/Run/stop/Close cycles and counts open fds and
// goroutines before and after.
func TestWatcherLeaksNothing(t *testing.T) {
	g := newFakeGroup(t)
	leakCheck(t, g.dir)
}

func leakCheck(t *testing.T, dir string) {
	t.Helper()
	cycle := func() {
		w, err := oomwatch.New(dir, "/g", oomwatch.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); w.Run(ctx, func(oomwatch.Event) {}) }()
		cancel()
		wg.Wait()
		w.Close()
	}
	cycle() // warm up lazily created runtime state
	fds, gs := openFDs(t), runtime.NumGoroutine()
	for i := 0; i < 1000; i++ {
		cycle()
	}
	time.Sleep(10 * time.Millisecond) // let exited goroutines be accounted
	if after := openFDs(t); after != fds {
		t.Errorf("open fds %d before 1,000 cycles, %d after", fds, after)
	}
	if after := runtime.NumGoroutine(); after > gs {
		t.Errorf("goroutines %d before 1,000 cycles, %d after", gs, after)
	}
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestParseTrigger(t *testing.T) {
	for in, want := range map[string]string{
		"some 150ms/1s":        "some 150ms/1s",
		"full 100ms/2s":        "full 100ms/2s",
		"some 150000 1000000":  "some 150ms/1s",
		"  some  500ms/500ms ": "some 500ms/500ms",
		"some 1s/10s":          "some 1s/10s",
	} {
		tr, err := oomwatch.ParseTrigger(in)
		if err != nil || tr.String() != want {
			t.Errorf("ParseTrigger(%q) = %v, %v; want %s", in, tr, err, want)
		}
	}
	for _, in := range []string{"", "some", "some 150ms", "most 150ms/1s", "some 2s/1s", "some 0s/1s", "some 10ms/100ms",
		"some 1s/11s", "some 150/1000", "some 1.5ns/1s", "some x/1s"} {
		if _, err := oomwatch.ParseTrigger(in); err == nil {
			t.Errorf("ParseTrigger(%q) accepted", in)
		}
	}
}

// TestWatcherPollsForAKillAtTheLimit: while a group presses on memory.max the kernel holds
// memory.events' next notification back, so after a max event Run rereads the file for a
// while; not after the window, and not for longer than its cap in a row. A kill written without
// a notification (the file replaced, so that its watch never fires) shows which: only a reread
// finds it before the final read at stop.
func TestWatcherPollsForAKillAtTheLimit(t *testing.T) {
	const window, most = 300 * time.Millisecond, 500 * time.Millisecond
	for _, tc := range []struct {
		name      string
		pressFor  time.Duration // max events every 20 ms for this long first
		wait      time.Duration // then this long before the kill is written
		heardSoon bool
	}{
		{"right after a max event", 0, 0, true},
		{"after the window", 0, 2 * window, false},
		{"after a long stay at the limit", most + 400*time.Millisecond, 0, false},
		{"at the limit again within a second", 0, 2 * window, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newFakeGroup(t)
			w, err := oomwatch.New(g.dir, "/watched", oomwatch.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			w.SetPolling(window, most)
			ch := make(chan oomwatch.Event, 1024)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { w.Run(ctx, func(ev oomwatch.Event) { ch <- ev }); close(done) }()
			n := 1
			if tc.name == "at the limit again within a second" {
				g.write("memory.events", "max 1\n") // a run that ends, and polling spent for a while
				waitFor(t, ch, oomwatch.Max)
				time.Sleep(most + 200*time.Millisecond)
				n++
			}
			g.write("memory.events", fmt.Sprintf("max %d\n", n))
			for began := time.Now(); time.Since(began) < tc.pressFor; n++ {
				time.Sleep(20 * time.Millisecond)
				g.write("memory.events", fmt.Sprintf("max %d\n", n+1))
			}
			for ev := waitFor(t, ch, oomwatch.Max); ev.Count < uint64(n); {
				ev = waitFor(t, ch, oomwatch.Max) // the last write read, so the kill below is not read with it
			}
			time.Sleep(tc.wait)
			tmp := filepath.Join(g.dir, ".memory.events")
			if err := os.WriteFile(tmp, []byte(fmt.Sprintf("max %d\noom 1\noom_kill 1\n", n)), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, filepath.Join(g.dir, "memory.events")); err != nil {
				t.Fatal(err)
			}
			heard := false
			for soon := time.After(window / 2); !heard; {
				select {
				case ev := <-ch:
					heard = ev.Kind == oomwatch.OOMKill
				case <-soon:
					goto judged
				}
			}
		judged:
			if heard != tc.heardSoon {
				t.Errorf("kill heard before the next notification: %v, want %v", heard, tc.heardSoon)
			}
			cancel()
			<-done
			close(ch)
			for ev := range ch {
				heard = heard || ev.Kind == oomwatch.OOMKill
			}
			if !heard {
				t.Error("the kill was not reported even by the final read")
			}
		})
	}
}

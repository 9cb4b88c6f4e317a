package eventlog

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/launch/internal/lockedbuf"
	"github.com/cgrun/cgrun/launch/report"
	"github.com/cgrun/cgrun/oomwatch"
)

func high(count uint64) report.Event {
	return report.Event{Event: oomwatch.Event{Time: time.Now(), Kind: oomwatch.High, Delta: 1, Count: count, MemoryCurrent: 60 << 20}, Name: "w"}
}

// TestEventLogCoalescesHighAndMax: a burst of high events gives one line at once, on the
// stream and for people, and one more when the interval ends, its delta the sum of those it
// folded, coalesced their number, its count the newest; the totals count every event.
func TestEventLogCoalescesHighAndMax(t *testing.T) {
	var human, stream lockedbuf.Buffer
	l := New("w", cgroup.Limits{MemoryHigh: cgroup.Bytes(64 << 20)}, &stream, &human)
	l.every = 100 * time.Millisecond
	for i := uint64(1); i <= 10; i++ {
		l.Add(high(i))
	}
	if got := human.Lines(); len(got) != 1 || !strings.Contains(got[0], "reached once") {
		t.Fatalf("at once: %q, want the first event's line only", got)
	}
	time.Sleep(300 * time.Millisecond)
	got := human.Lines()
	if len(got) != 2 || !strings.Contains(got[1], "reached 10 times, 9 since the last line") {
		t.Errorf("after the interval: %q, want a second line with the newest count and the 9 since", got)
	}
	l.Close()
	lines := stream.Lines()
	if len(lines) != 2 {
		t.Fatalf("stream: %d lines %q, want 2: the first at once, the other nine folded into one", len(lines), lines)
	}
	var first, last map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil || first["count"] != float64(1) || first["delta"] != float64(1) || first["coalesced"] != nil {
		t.Errorf("first stream line %s (%v): want count 1, delta 1, no coalesced", lines[0], err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &last); err != nil || last["event"] != "high" || last["count"] != float64(10) || last["delta"] != float64(9) || last["coalesced"] != float64(9) || last["name"] != "w" {
		t.Errorf("last stream line %s (%v): want event high, count 10, delta 9, coalesced 9, name w", lines[1], err)
	}
	if l.Total(oomwatch.High) != 10 || !l.MemoryEvents() {
		t.Errorf("totals: %d high, memoryEvents %v; want 10, true", l.Total(oomwatch.High), l.MemoryEvents())
	}
}

// TestEventLogCoalescesPerKindAndGeneration: a max line, a high line and a line of the next
// generation each come at once; other kinds are never coalesced; settle writes what is folded,
// so that the deltas add up before the exit line.
func TestEventLogCoalescesPerKindAndGeneration(t *testing.T) {
	var human, stream lockedbuf.Buffer
	l := New("w", cgroup.Limits{}, &stream, &human)
	l.every = time.Hour
	add := func(kind oomwatch.Kind, gen int, count uint64) {
		l.Add(report.Event{Event: oomwatch.Event{Time: time.Now(), Kind: kind, Delta: 1, Count: count}, Name: "w", Generation: gen})
	}
	add(oomwatch.Max, 1, 1)
	add(oomwatch.High, 1, 1)
	add(oomwatch.Max, 1, 2) // folded
	add(oomwatch.Max, 1, 3) // folded
	for i := uint64(1); i <= 3; i++ {
		add(oomwatch.OOMKill, 1, i)
	}
	add(report.KindThrash, 1, 0)
	add(oomwatch.Max, 2, 1)
	l.Settle()
	l.Close()
	var kinds []string
	var maxDelta uint64
	for _, line := range stream.Lines() {
		var r struct {
			Event      string `json:"event"`
			Generation int    `json:"generation"`
			Delta      uint64 `json:"delta"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, fmt.Sprintf("%s/%d", r.Event, r.Generation))
		if r.Event == "max" && r.Generation == 1 {
			maxDelta += r.Delta
		}
	}
	want := "max/1 high/1 oom_kill/1 oom_kill/1 oom_kill/1 thrash/1 max/2 max/1"
	if have := strings.Join(kinds, " "); have != want {
		t.Errorf("stream: %s\nwant    %s", have, want)
	}
	if maxDelta != 3 {
		t.Errorf("generation 1's max deltas add up to %d, want 3", maxDelta)
	}
}

// blockedWriter never returns from Write until released: a FIFO whose reader stopped reading.
type blockedWriter struct{ release chan struct{} }

func (w blockedWriter) Write(p []byte) (int, error) { <-w.release; return len(p), nil }

// TestEventLogNeverBlocksOnAStuckReader: the supervisor's add returns at once however many
// lines a stuck reader leaves queued; what did not fit is counted and said at close.
func TestEventLogNeverBlocksOnAStuckReader(t *testing.T) {
	var human lockedbuf.Buffer
	w := blockedWriter{make(chan struct{})}
	l := New("w", cgroup.Limits{}, w, &human)
	done := make(chan struct{})
	go func() {
		for i := uint64(1); i <= 3*streamQueue; i++ {
			l.Add(report.Event{Event: oomwatch.Event{Time: time.Now(), Kind: oomwatch.Low, Delta: 1, Count: i}, Name: "w"}) // never coalesced
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("add blocked on a reader that does not read")
	}
	close(w.release)
	l.Close()
	l.mu.Lock()
	dropped := l.dropped
	l.mu.Unlock()
	if dropped == 0 || !strings.Contains(strings.Join(human.Lines(), "\n"), "events were dropped") {
		t.Errorf("dropped %d, human %q: want drops counted and said", dropped, human.Lines())
	}
}

// TestEventLogCoalescesByTheEventsTime: an event the supervisor took late (its time close to the
// last line's) is folded, not written as a line of its own, so that the lines' times too are at
// least the interval apart unless they say coalesced.
func TestEventLogCoalescesByTheEventsTime(t *testing.T) {
	var human, stream lockedbuf.Buffer
	l := New("w", cgroup.Limits{}, &stream, &human)
	l.every = 100 * time.Millisecond
	t0 := time.Now()
	add := func(at time.Time, count uint64) {
		l.Add(report.Event{Event: oomwatch.Event{Time: at, Kind: oomwatch.Max, Delta: 1, Count: count}, Name: "w", Generation: 1})
	}
	add(t0, 1)
	time.Sleep(150 * time.Millisecond)
	add(t0.Add(20*time.Millisecond), 2) // read 20 ms after the first, taken 150 ms later
	time.Sleep(300 * time.Millisecond)
	l.Close()
	lines := stream.Lines()
	if len(lines) != 2 {
		t.Fatalf("stream %q: want 2 lines", lines)
	}
	var second map[string]any
	if err := json.Unmarshal([]byte(lines[1]), &second); err != nil || second["coalesced"] != float64(1) {
		t.Errorf("second line %s (%v): want it folded (coalesced 1)", lines[1], err)
	}
}

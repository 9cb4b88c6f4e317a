package launch

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/launch/report"
	"github.com/cgrun/cgrun/oomwatch"
	"golang.org/x/sys/unix"
)

// lockedBuffer is a bytes.Buffer the rate limit's timer and the test may use at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Split(strings.TrimSpace(b.b.String()), "\n")
}

func high(count uint64) report.Event {
	return report.Event{Event: oomwatch.Event{Time: time.Now(), Kind: oomwatch.High, Delta: 1, Count: count, MemoryCurrent: 60 << 20}, Name: "w"}
}

// TestEventLogRateLimitsPeopleNotTheStream: a burst of events gives people one line at once and
// the newest count once the interval ends; the stream gets every event.
func TestEventLogRateLimitsPeopleNotTheStream(t *testing.T) {
	var human, stream lockedBuffer
	l := newEventLog("w", cgroup.Limits{MemoryHigh: cgroup.Bytes(64 << 20)}, &stream, &human)
	l.every = 100 * time.Millisecond
	for i := uint64(1); i <= 10; i++ {
		l.add(high(i))
	}
	if got := human.lines(); len(got) != 1 || !strings.Contains(got[0], "reached once") {
		t.Fatalf("at once: %q, want the first event's line only", got)
	}
	time.Sleep(300 * time.Millisecond)
	got := human.lines()
	if len(got) != 2 || !strings.Contains(got[1], "reached 10 times") {
		t.Errorf("after the interval: %q, want a second line with the newest count", got)
	}
	l.close()
	lines := stream.lines()
	if len(lines) != 10 {
		t.Fatalf("stream: %d lines, want all 10", len(lines))
	}
	var last map[string]any
	if err := json.Unmarshal([]byte(lines[9]), &last); err != nil || last["event"] != "high" || last["count"] != float64(10) || last["name"] != "w" {
		t.Errorf("last stream line %s (%v): want event high, count 10, name w", lines[9], err)
	}
	if l.total(oomwatch.High) != 10 || !l.memoryEvents() {
		t.Errorf("totals: %d high, memoryEvents %v; want 10, true", l.total(oomwatch.High), l.memoryEvents())
	}
}

// blockedWriter never returns from Write until released: a FIFO whose reader stopped reading.
type blockedWriter struct{ release chan struct{} }

func (w blockedWriter) Write(p []byte) (int, error) { <-w.release; return len(p), nil }

// TestEventLogNeverBlocksOnAStuckReader: the supervisor's add returns at once however many
// lines a stuck reader leaves queued; what did not fit is counted and said at close.
func TestEventLogNeverBlocksOnAStuckReader(t *testing.T) {
	var human lockedBuffer
	w := blockedWriter{make(chan struct{})}
	l := newEventLog("w", cgroup.Limits{}, w, &human)
	done := make(chan struct{})
	go func() {
		for i := uint64(1); i <= 3*streamQueue; i++ {
			l.add(high(i))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("add blocked on a reader that does not read")
	}
	close(w.release)
	l.close()
	l.mu.Lock()
	dropped := l.dropped
	l.mu.Unlock()
	if dropped == 0 || !strings.Contains(strings.Join(human.lines(), "\n"), "events were dropped") {
		t.Errorf("dropped %d, human %q: want drops counted and said", dropped, human.lines())
	}
}

// TestSummaryGivesTheWholeRun: after restarts, the exit summary gives the whole run's time
// beside the last generation's uptime; a run of one generation has one time.
func TestSummaryGivesTheWholeRun(t *testing.T) {
	var human bytes.Buffer
	l := newEventLog("w", cgroup.Limits{}, nil, &human)
	out := outcome{status: unix.WaitStatus(0), uptime: 3100 * time.Millisecond}
	for _, tc := range []struct {
		restarts int
		want     string
	}{
		{0, "cgrun: w exited with status 0 after 3.1s; peak memory"},
		{4, "cgrun: w exited with status 0 after 3.1s (the last generation; the whole run 2m10s); peak memory"},
	} {
		if got := summary("w", out, l, cgroup.Limits{}, tc.restarts, 0, 130*time.Second); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%d restarts: %q, want it to start %q", tc.restarts, got, tc.want)
		}
	}
}

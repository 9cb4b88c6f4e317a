// Package eventlog writes what happens to a run's groups: every event as a JSON Lines record to
// --events, the noteworthy ones as rate-limited lines on cgrun's stderr, and the totals for the
// summary at exit.
package eventlog

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/launch/report"
	"github.com/cgrun/cgrun/oomwatch"
)

// streamQueue is how many lines the --events stream may fall behind before lines are dropped.
const streamQueue = 256

// streamDrain bounds how long cgrun waits at exit for the --events reader to take what is queued.
const streamDrain = time.Second

// Log sends every event to the JSON Lines stream (if any) and the noteworthy ones to
// people as rate-limited lines on stderr, and keeps the totals for the summary at exit.
//
// A group at its limit makes tens of memory.high or memory.max notifications a second, and a
// healthy one may do so all day: their lines, on the stream and on stderr alike, are coalesced
// to at most one per second per kind and generation. The first comes at once; the ones that
// follow within the second are folded into one line when it ends, its delta their sum and
// coalesced their number, and its other fields the newest one's. Every other kind is written
// as it comes.
//
// The stream is written by a goroutine of its own from a bounded queue, so that a reader that
// stops reading (a FIFO, a pipe to a stuck log shipper) never blocks the supervisor: when the
// queue is full, lines are dropped and counted, and the count is said at exit.
type Log struct {
	name   string
	limits cgroup.Limits
	human  io.Writer // stderr
	every  time.Duration
	// Probing: cgrun's own memory probe (--advise) moves memory.high, and its high events are
	// not news to people (the stream still has them).
	Probing bool
	queue   chan []byte   // lines for the stream; nil for none
	wrote   chan struct{} // closed when the stream's writer has ended

	mu      sync.Mutex
	folds   map[foldKey]*fold              // the coalesced kinds (high, max), per generation
	last    map[oomwatch.Kind]time.Time    // when a line of this kind was last printed
	pending map[oomwatch.Kind]report.Event // the newest event of a kind not yet printed
	flush   *time.Timer
	totals  map[oomwatch.Kind]uint64
	err     error  // the first failed write to the stream
	dropped uint64 // lines the queue had no room for
	closed  bool   // the queue is closed
}

// New is the log of the run name: records to stream (nil for none), lines for people to human.
func New(name string, limits cgroup.Limits, stream, human io.Writer) *Log {
	l := &Log{name: name, limits: limits, human: human, every: time.Second,
		folds: map[foldKey]*fold{}, last: map[oomwatch.Kind]time.Time{}, pending: map[oomwatch.Kind]report.Event{}, totals: map[oomwatch.Kind]uint64{}}
	if stream != nil {
		l.queue, l.wrote = make(chan []byte, streamQueue), make(chan struct{})
		go l.writeStream(stream)
	}
	return l
}

// writeStream writes the queued lines to the stream until the queue is closed. After a failed
// write (a reader that went away: EPIPE) it says so once and drops the rest.
func (l *Log) writeStream(stream io.Writer) {
	defer close(l.wrote)
	var err error
	for line := range l.queue {
		if err != nil {
			continue
		}
		if _, err = stream.Write(line); err != nil { // one write per line: whole lines on a pipe
			l.mu.Lock()
			l.err = err
			fmt.Fprintf(l.human, "cgrun: warning: --events: %v; no more events will be written there\n", err)
			l.mu.Unlock()
		}
	}
}

// Close ends the stream: it waits a bounded time for the writer to take what is queued, and
// says how many lines were dropped for a reader that did not keep up. It is idempotent.
func (l *Log) Close() {
	l.mu.Lock()
	if l.queue == nil || l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	close(l.queue)
	l.mu.Unlock()
	t := time.NewTimer(streamDrain)
	defer t.Stop()
	left := 0
	select {
	case <-l.wrote:
	case <-t.C:
		left = len(l.queue)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := l.dropped + uint64(left); n > 0 && l.err == nil {
		fmt.Fprintf(l.human, "cgrun: warning: --events: %d events were dropped: the reader did not keep up\n", n)
	}
}

// foldKey is what lines are coalesced by.
type foldKey struct {
	generation int
	kind       oomwatch.Kind
}

// fold is the state of one coalesced kind of one generation.
type fold struct {
	last    time.Time     // when its last line was written
	seen    time.Time     // the time of the newest event it wrote (the watcher's, which a busy supervisor may take late)
	pending *report.Event // the events since, folded into one; nil for none
	timer   *time.Timer   // writes pending when the second ends
}

// coalesced reports whether lines of kind k are coalesced.
func coalesced(k oomwatch.Kind) bool { return k == oomwatch.High || k == oomwatch.Max }

// Add logs one record. It is safe for concurrent use.
func (l *Log) Add(r report.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r.Time == "" {
		r.Time = r.Event.Time.Format(report.TimeFormat)
	}
	l.totals[r.Kind] += r.Delta
	if coalesced(r.Kind) {
		l.fold(r)
		return
	}
	l.emit(r)
}

// fold writes r at once when no line of its kind and generation was written within the last
// second, and otherwise folds it into the line written when that second ends.
func (l *Log) fold(r report.Event) {
	key := foldKey{r.Generation, r.Kind}
	f := l.folds[key]
	if f == nil {
		f = &fold{}
		l.folds[key] = f
	}
	now := time.Now()
	if f.pending == nil && now.Sub(f.last) >= l.every && r.Event.Time.Sub(f.seen) >= l.every {
		f.last, f.seen = now, r.Event.Time
		l.write(r)
		l.print(r)
		return
	}
	if p := f.pending; p != nil {
		r.Delta += p.Delta
		r.Coalesced = p.Coalesced + 1
	} else {
		r.Coalesced = 1
		f.timer = time.AfterFunc(max(0, l.every-now.Sub(f.last)), func() { l.flushFold(key) })
	}
	f.pending = &r
}

// flushFold writes the folded line of key when its second ended.
func (l *Log) flushFold(key foldKey) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.folds[key]
	if f == nil || f.pending == nil {
		return // settled meanwhile
	}
	r := *f.pending
	f.pending, f.last, f.seen = nil, time.Now(), r.Event.Time
	l.write(r)
	l.print(r)
}

// emit writes r to the stream and, rate-limited, to people.
func (l *Log) emit(r report.Event) {
	l.write(r)
	if humanLine(r, l.limits) == "" || l.Probing && r.Kind == oomwatch.High {
		return
	}
	now := time.Now()
	if now.Sub(l.last[r.Kind]) >= l.every {
		l.print(r)
		return
	}
	// Rate-limited: keep the newest (its counts are totals) and print it when the interval ends.
	l.pending[r.Kind] = r
	if l.flush == nil {
		l.flush = time.AfterFunc(l.every-now.Sub(l.last[r.Kind]), l.flushPending)
	}
}

// write queues r for the stream, or counts it as dropped when the queue is full. It never
// blocks. Its caller holds l.mu.
func (l *Log) write(r report.Event) {
	if l.queue == nil || l.err != nil || l.closed {
		return
	}
	b, err := json.Marshal(r)
	if err != nil {
		return // every field is a plain value: this does not happen
	}
	select {
	case l.queue <- append(b, '\n'):
	default:
		l.dropped++
	}
}

func (l *Log) print(r report.Event) {
	fmt.Fprintf(l.human, "cgrun: %s: %s\n", l.name, humanLine(r, l.limits))
	l.last[r.Kind] = time.Now()
	delete(l.pending, r.Kind)
}

func (l *Log) flushPending() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flush = nil
	for _, r := range l.pending {
		l.print(r)
	}
}

// Settle drops the lines the rate limit still holds for people, when a generation has ended and
// its exit line and the summary say what they would. The stream gets its folded lines at once,
// so that their deltas add up to the counters before the exit line says them.
func (l *Log) Settle() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.flush != nil {
		l.flush.Stop()
		l.flush = nil
	}
	clear(l.pending)
	for key, f := range l.folds {
		if f.timer != nil {
			f.timer.Stop()
		}
		if f.pending != nil {
			l.write(*f.pending)
		}
		delete(l.folds, key)
	}
}

// MemoryEvents reports whether anything happened that a summary should mention.
func (l *Log) MemoryEvents() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range []oomwatch.Kind{oomwatch.High, oomwatch.Max, oomwatch.OOM, oomwatch.OOMKill, oomwatch.OOMGroupKill, oomwatch.PidsMax, oomwatch.SwapMax, oomwatch.SwapFail, oomwatch.Pressure} {
		if l.totals[k] > 0 {
			return true
		}
	}
	return false
}

// Total is how many events of kind k happened.
func (l *Log) Total(k oomwatch.Kind) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.totals[k]
}

// humanLine is the line people see for an event, or "" for events that get none (start, exit,
// emptied; OOM kills are explained when the child exits).
func humanLine(r report.Event, lim cgroup.Limits) string {
	cur := cgroup.FormatSize(r.MemoryCurrent)
	switch r.Kind {
	case oomwatch.High:
		return fmt.Sprintf("memory.high reached %s%s (current %s, high %s)", times(r.Count), since(r), cur, lim.MemoryHigh.Human())
	case oomwatch.Max:
		return fmt.Sprintf("memory.max reached %s%s (current %s, max %s): the kernel reclaims to stay under it; an OOM kill may follow", times(r.Count), since(r), cur, lim.MemoryMax.Human())
	case oomwatch.Low:
		return fmt.Sprintf("memory.low protection breached %s (current %s, low %s)", times(r.Count), cur, lim.MemoryLow.Human())
	case oomwatch.OOMKill:
		if lim.OOMGroup {
			return "" // the whole group goes; explained at exit
		}
		return fmt.Sprintf("the OOM killer killed a process in the group (%d so far; current %s, max %s)", r.Count, cur, lim.MemoryMax.Human())
	case oomwatch.PidsMax:
		return fmt.Sprintf("pids.max %s refused %d forks", lim.PidsMax.String(), r.Count)
	case oomwatch.SwapHigh, oomwatch.SwapMax, oomwatch.SwapFail:
		return fmt.Sprintf("%s %s (current %s, memory.swap.max %s)", r.Kind, times(r.Count), cur, lim.MemorySwapMax.Human())
	case oomwatch.Pressure:
		p := r.Pressure
		return fmt.Sprintf("memory pressure: stalled %v so far; some avg10=%.2f%% avg60=%.2f%%, full avg10=%.2f%% (trigger %s; current %s)", p.Stalled(), p.SomeAvg10, p.SomeAvg60, p.FullAvg10, p.Trigger, cur)
	}
	return ""
}

// since is ", N since the last line" for a line that coalesced several events.
func since(r report.Event) string {
	if r.Coalesced == 0 {
		return ""
	}
	return fmt.Sprintf(", %d since the last line", r.Delta)
}

func times(n uint64) string {
	if n == 1 {
		return "once"
	}
	return fmt.Sprintf("%d times", n)
}

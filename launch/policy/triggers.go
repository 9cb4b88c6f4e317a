package policy

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/oomwatch"
)

// window keeps samples of a running total, to tell how much it grew over the last span.
type window struct {
	span    time.Duration
	samples []sample
}

type sample struct {
	t     time.Time
	total uint64
}

// add records the total at t and returns how much it grew over the last span, and how long
// the samples behind that figure cover (less than span while the growth is young).
func (w *window) add(t time.Time, total uint64) (grew uint64, covered time.Duration) {
	w.samples = append(w.samples, sample{t, total})
	// Keep one sample at or before the window's start, so the growth is measured across it.
	i := 0
	for i+1 < len(w.samples) && t.Sub(w.samples[i+1].t) >= w.span {
		i++
	}
	w.samples = w.samples[i:]
	first := w.samples[0]
	return total - first.total, t.Sub(first.t)
}

// Stall detection: a generation whose memory.high or memory.max events come at least
// stallRate a second for stallFor, with memory within 5% of that limit, is not making progress:
// without swap it cannot shed anonymous memory, and the kernel keeps throttling it (at
// memory.high) or reclaiming its program's own pages (at memory.max) instead of killing it.
const (
	stallFor  = 5 * time.Second
	stallRate = 20
)

// Triggers watches one generation's events for the reasons to recycle it.
type Triggers struct {
	p      Policy
	limits cgroup.Limits

	high  window // memory.high events, for RecycleOnHigh
	stall window // memory.high + memory.max events, for stall detection
	seen  map[oomwatch.Kind]uint64
	// stalled is set once a stall was reported, so that it is said once per generation.
	stalled bool
	// aboveSince is when memory was first seen at the --recycle-above mark, or zero.
	aboveSince time.Time
}

// NewTriggers watches a generation under p with limits l.
func NewTriggers(p Policy, l cgroup.Limits) *Triggers {
	return &Triggers{p: p, limits: l, high: window{span: p.HighWindow}, stall: window{span: stallFor},
		seen: map[oomwatch.Kind]uint64{}}
}

// Lifetime is how long this generation may live; 0 for no limit.
func (t *Triggers) Lifetime() time.Duration {
	if t.p.MaxLifetime == 0 {
		return 0
	}
	d := t.p.MaxLifetime
	if t.p.LifetimeJitter > 0 {
		d += rand.N(t.p.LifetimeJitter)
	}
	return d
}

// Observe looks at one event. It returns a reason to recycle (or ""), a line to tell people
// (or ""), and whether the --recycle-above mark was just reached (so the caller arms its timer).
func (t *Triggers) Observe(ev oomwatch.Event) (reason Reason, say string, armAbove bool) {
	switch ev.Kind {
	case oomwatch.High, oomwatch.Max:
		t.seen[ev.Kind] = ev.Count
	case oomwatch.Pressure:
		for _, tr := range t.p.RecyclePressure {
			if ev.Pressure != nil && ev.Pressure.Trigger == tr.String() {
				return Pressure, fmt.Sprintf("memory pressure trigger %q fired", tr), false
			}
		}
		return "", "", false
	default:
		return "", "", false
	}
	if t.p.RecycleOnHigh > 0 && ev.Kind == oomwatch.High {
		if n, _ := t.high.add(ev.Time, ev.Count); n >= uint64(t.p.RecycleOnHigh) {
			return MemoryHigh, fmt.Sprintf("%d memory.high events within %v", n, t.p.HighWindow), false
		}
	}
	if t.p.RecycleAbove.Set && t.aboveSince.IsZero() && t.atMark(ev.MemoryCurrent) {
		t.aboveSince = ev.Time
		armAbove = true
	}
	n, covered := t.stall.add(ev.Time, t.seen[oomwatch.High]+t.seen[oomwatch.Max])
	if !t.stalled && covered >= stallFor && float64(n)/covered.Seconds() >= stallRate && t.nearLimit(ev) {
		t.stalled = true
		which, limit := "memory.high", t.limits.MemoryHigh
		if ev.Kind == oomwatch.Max {
			which, limit = "memory.max", t.limits.MemoryMax
		}
		say = fmt.Sprintf("looks stalled at %s: %d events in %v with memory at %s of %s; without swap it cannot shed its memory and may never make progress",
			which, n, covered.Round(time.Second), cgroup.FormatSize(ev.MemoryCurrent), limit.Human())
		if t.p.RecycleStall {
			return Stall, say, armAbove
		}
		return "", say + " (--recycle-on-stall would restart it; or raise the limit)", armAbove
	}
	return "", "", armAbove
}

// atMark reports whether memory is at the --recycle-above mark; the kernel's throttling holds
// it just under memory.high, so within 5% counts.
func (t *Triggers) atMark(current uint64) bool {
	return current >= t.p.RecycleAbove.Value-t.p.RecycleAbove.Value/20
}

// nearLimit reports whether memory is within 5% of the limit the event is about.
func (t *Triggers) nearLimit(ev oomwatch.Event) bool {
	l := t.limits.MemoryHigh
	if ev.Kind == oomwatch.Max {
		l = t.limits.MemoryMax
	}
	if !l.Set || l.Max {
		return false
	}
	return ev.MemoryCurrent >= l.Value-l.Value/20
}

// CheckAbove is run by the timer while memory is at the mark: it reports whether memory has
// been held there for RecycleAfter, or clears the mark when memory has fallen below 90% of it.
func (t *Triggers) CheckAbove(now time.Time, current uint64) (recycle, keepWatching bool) {
	if current < t.p.RecycleAbove.Value-t.p.RecycleAbove.Value/10 {
		t.aboveSince = time.Time{}
		return false, false
	}
	return now.Sub(t.aboveSince) >= t.p.RecycleAfter, true
}

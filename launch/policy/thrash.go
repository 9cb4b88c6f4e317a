package policy

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/oomwatch"
)

// Thrash is when a generation stalled on memory is recycled (reason thrash): on by default
// wherever the restart policy would restart an OOM kill, since the kernel lets such a worker
// thrash at memory.max for seconds (minutes on a slow disk) before it kills it, and it serves
// nothing meanwhile.
//
// Being at memory.max is not thrashing: a reader streaming files through its page cache sits
// there all day, and so does a server whose heap fits beside its cache. What tells them apart
// is whether the group has anything left to give but its programs' own pages — page cache that
// no process maps, under a sixteenth of memory.max, is next to nothing — and whether it waits
// for memory it needs back. Where the kernel has PSI (Linux 4.20, CONFIG_PSI) the wait is the
// group's memory.pressure, watched with Pressure as a trigger. Where it has none (Debian's UML
// kernel, many 5.10 builds) it is memory.stat, read every ThrashEvery only while memory sits
// within 5% of memory.max: its refaults (cgroup.Refaults: pages the group evicted and needed
// back; with its page cache spent, its programs' own) coming at Refaults a second or more for
// For and at a twentieth of the page cache a second, or its reclaim counters saying that
// reclaim looked at pages and could free under a quarter of them, since they are in use.
//
// A leak squeezes its page cache down to its program's mapped pages, which the kernel then
// takes and the program reads back, over and over, until the OOM kill; a server whose files do
// not fit beside its heap reads them back too, at rates that may look the same, but out of page
// cache that it reads, not maps, and that the kernel frees as it scans it.
type Thrash struct {
	Off      bool             // --thrash off
	Set      bool             // --thrash was given (it then needs a restart policy)
	Pressure oomwatch.Trigger // the PSI trigger on memory.pressure
	Refaults uint64           // refaults a second, without PSI ...
	For      time.Duration    // ... for this long
}

// pageSize is the unit of memory.stat's event counters.
const pageSize = 4096

// ThrashEvery is how often the refaults are read while memory sits near memory.max.
const ThrashEvery = 100 * time.Millisecond

// DefaultThrash is what `cgrun run` uses without --thrash.
func DefaultThrash() Thrash {
	return Thrash{Pressure: oomwatch.Trigger{Full: true, Threshold: 100 * time.Millisecond, Window: time.Second},
		Refaults: 100, For: 100 * time.Millisecond}
}

// Enabled reports whether thrash recycles a generation under restart policy r: unless turned
// off, wherever r restarts an OOM kill.
func (t Thrash) Enabled(r Restart) bool { return !t.Off && r != RestartNever }

// ParseThrash reads a --thrash value: off, on, or a comma-separated list of settings that each
// change one of the defaults: pressure=TRIGGER (e.g. "full 100ms/1s"), refaults=N/s, for=DURATION.
func ParseThrash(s string) (Thrash, error) {
	t := DefaultThrash()
	t.Set = true
	bad := func(why string) (Thrash, error) {
		return Thrash{}, fmt.Errorf("--thrash %q: %s (want off, on, or settings such as 'pressure=full 100ms/1s,refaults=100/s,for=100ms')", s, why)
	}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		switch {
		case !ok && k == "off":
			t.Off = true
		case !ok && k == "on":
		case !ok:
			return bad(fmt.Sprintf("%q is neither off, on nor KEY=VALUE", k))
		case k == "pressure":
			tr, err := oomwatch.ParseTrigger(v)
			if err != nil {
				return bad(err.Error())
			}
			t.Pressure = tr
		case k == "refaults":
			n, err := strconv.ParseUint(strings.TrimSuffix(v, "/s"), 10, 64)
			if err != nil || n == 0 {
				return bad("refaults must be a number of pages a second above 0, e.g. 500/s")
			}
			t.Refaults = n
		case k == "for":
			d, err := time.ParseDuration(v)
			if err != nil || d < ThrashEvery {
				return bad(fmt.Sprintf("for must be a duration of at least %v", ThrashEvery))
			}
			t.For = d
		default:
			return bad(fmt.Sprintf("unknown setting %q: the settings are pressure, refaults and for", k))
		}
	}
	if t.Off && len(strings.Split(s, ",")) > 1 {
		return bad("off takes no settings")
	}
	return t, nil
}

// String is the value as ParseThrash reads it.
func (t Thrash) String() string {
	if t.Off {
		return "off"
	}
	return fmt.Sprintf("pressure=%v,refaults=%d/s,for=%v", t.Pressure, t.Refaults, t.For)
}

// validate checks the settings against the restart policy.
func (t Thrash) validate(r Restart) error {
	if t.Set && !t.Off && r == RestartNever {
		return errors.New("--thrash recycles a thrashing generation and starts the next one, so it needs --restart on-oom, on-failure or always (or --thrash off)")
	}
	return nil
}

// RefaultSample is one reading of a group near memory.max, for the thrash detector.
type RefaultSample struct {
	Time     time.Time
	Current  uint64 // memory.current
	Cache    uint64 // page cache that can be reclaimed: memory.stat's file less its shmem
	Mapped   uint64 // of it, mapped into the group's processes (file_mapped): their programs, mostly
	Scan     uint64 // pages the kernel's reclaim looked at in the group (pgscan), a running total
	Steal    uint64 // of those, pages it freed (pgsteal)
	Refaults cgroup.Refaults
}

// ThrashVerdict is what the thrash detector made of an event or a sample.
type ThrashVerdict struct {
	Thrash bool   // recycle it
	Why    string // the line that says why (with Thrash)
	Sample bool   // read refaults every ThrashEvery from now on (without PSI): memory is near memory.max
	Source string // the file that told it, with Thrash: "memory.pressure" (PSI) or "memory.stat"
	Rate   uint64 // refaults a second over For (memory.stat, with Thrash)
}

// ThrashWatch tells, for one generation, a group stalled on memory from one merely at
// memory.max. It is pure: the caller feeds it the watcher's events and, while asked to
// (ThrashVerdict.Sample), a RefaultSample every ThrashEvery.
type ThrashWatch struct {
	t   Thrash
	max uint64 // memory.max; 0: none, nothing to watch
	psi bool   // the PSI trigger is armed: refaults are not read
	// samples are the refault readings since memory last came near memory.max, the oldest one
	// at or before For ago kept.
	samples  []RefaultSample
	sampling bool
	done     bool // thrash was said: once per generation
}

// NewThrashWatch watches a generation under t with limits l; psi says whether the trigger
// t.Pressure is armed on its memory.pressure. Nil (which watches nothing) when t is off or
// there is no memory.max.
func NewThrashWatch(t Thrash, l cgroup.Limits, psi bool) *ThrashWatch {
	if t.Off || !l.MemoryMax.Set || l.MemoryMax.Max {
		return nil
	}
	return &ThrashWatch{t: t, max: l.MemoryMax.Value, psi: psi}
}

// near reports whether memory is within 5% of memory.max.
func (w *ThrashWatch) near(current uint64) bool { return current >= w.max-w.max/20 }

// turnover is the share of its page cache a thrashing group reads back a second, at least.
const turnover = 20

// spent reports whether the group has next to nothing left to give but its programs' own pages:
// the page cache that no process maps is under a sixteenth of memory.max.
func (w *ThrashWatch) spent(s RefaultSample) bool {
	return s.Cache-min(s.Mapped, s.Cache) < w.max/16
}

// Reclaim is stuck where it scans at least minScan pages in For and frees under a quarter of
// them: what it finds is in use.
const minScan = 64

// Fired reports whether ev is a firing of the thrash trigger: the caller then reads a
// RefaultSample and hands both to Pressure.
func (w *ThrashWatch) Fired(ev oomwatch.Event) bool {
	return w != nil && w.psi && !w.done && ev.Kind == oomwatch.Pressure && ev.Pressure != nil && ev.Pressure.Trigger == w.t.Pressure.String()
}

// Pressure looks at a firing of the thrash trigger (Fired) and the group as it is now: stalled
// on memory near memory.max with its page cache spent is thrash.
func (w *ThrashWatch) Pressure(ev oomwatch.Event, s RefaultSample) ThrashVerdict {
	if !w.Fired(ev) || !w.near(s.Current) || !w.spent(s) {
		return ThrashVerdict{}
	}
	w.done = true
	return ThrashVerdict{Thrash: true, Source: "memory.pressure",
		Why: fmt.Sprintf("thrashing at memory.max %s: stalled on memory past %v (PSI trigger %q, stalled %v so far; %s of page cache left)",
			cgroup.FormatSize(w.max), w.t.Pressure.Threshold, w.t.Pressure.String(), ev.Pressure.Stalled(), cgroup.FormatSize(s.Cache))}
}

// Event looks at one event of the watcher: without PSI, a max event starts the sampling.
func (w *ThrashWatch) Event(ev oomwatch.Event) ThrashVerdict {
	if w == nil || w.done {
		return ThrashVerdict{}
	}
	switch {
	case !w.psi && ev.Kind == oomwatch.Max && w.near(ev.MemoryCurrent):
		w.sampling = true
		return ThrashVerdict{Sample: true}
	}
	return ThrashVerdict{Sample: w.sampling}
}

// Sample looks at one refault reading; it asks for more while memory stays near memory.max.
func (w *ThrashWatch) Sample(s RefaultSample) ThrashVerdict {
	if w == nil || w.done || w.psi {
		return ThrashVerdict{}
	}
	if !w.near(s.Current) {
		// Below: memory was freed or reclaimed with room to spare. Look again at the next max event.
		w.samples, w.sampling = w.samples[:0], false
		return ThrashVerdict{}
	}
	w.sampling = true
	w.samples = append(w.samples, s)
	i := 0
	for i+1 < len(w.samples) && s.Time.Sub(w.samples[i+1].Time) >= w.t.For {
		i++
	}
	w.samples = w.samples[i:]
	first := w.samples[0]
	covered := s.Time.Sub(first.Time)
	if covered < w.t.For {
		return ThrashVerdict{Sample: true}
	}
	if !w.spent(s) {
		return ThrashVerdict{Sample: true}
	}
	// Every refault counts, not only the activated ones: while the page cache is as small as a
	// spent group's, 5.10 activates few of the program's pages it reads back (their refault
	// distance exceeds its tiny active list), and the stall went unseen for up to 1.3 s.
	d := s.Refaults.Since(first.Refaults)
	grew := max(d.Refault, d.Activate)
	rate := uint64(float64(grew) / covered.Seconds())
	scan, steal := sub(s.Scan, first.Scan), sub(s.Steal, first.Steal)
	var why string
	switch {
	case rate >= w.t.Refaults && rate >= s.Cache/pageSize/turnover:
		why = fmt.Sprintf("%d pages it had evicted read back in over %v (%d/s; --thrash counts %d/s and a twentieth of the page cache a second)",
			grew, covered.Round(time.Millisecond), rate, w.t.Refaults)
	case scan >= minScan && steal*4 < scan:
		why = fmt.Sprintf("the kernel's reclaim looked at %d of its pages over %v and could free only %d: they are in use",
			scan, covered.Round(time.Millisecond), steal)
	default:
		return ThrashVerdict{Sample: true}
	}
	w.done = true
	return ThrashVerdict{Thrash: true, Source: "memory.stat", Rate: rate,
		Why: fmt.Sprintf("thrashing at memory.max %s with %s of page cache, %s of it its programs': %s",
			cgroup.FormatSize(w.max), cgroup.FormatSize(s.Cache), cgroup.FormatSize(min(s.Mapped, s.Cache)), why)}
}

// sub is a - b, or 0 where a torn read makes b larger.
func sub(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}

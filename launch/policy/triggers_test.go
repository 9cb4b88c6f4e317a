package policy

import (
	"testing"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/oomwatch"
)

const mib = 1 << 20

// ev is a counter event at ms milliseconds after t0, with the kernel's running count and
// memory.current in MiB.
func ev(kind oomwatch.Kind, ms int, count, currentMiB uint64) oomwatch.Event {
	return oomwatch.Event{Time: time.Unix(0, 0).Add(time.Duration(ms) * time.Millisecond), Kind: kind, Count: count, MemoryCurrent: currentMiB * mib}
}

func TestTriggersRecycleOnHigh(t *testing.T) {
	p := DefaultPolicy()
	p.RecycleOnHigh, p.HighWindow = 5, time.Second
	tr := NewTriggers(p, cgroup.Limits{MemoryHigh: cgroup.Bytes(100 * mib)})
	for i, tc := range []struct {
		ms    int
		count uint64
		want  Reason
	}{
		{0, 1, ""},
		{100, 3, ""},  // 2 within the window
		{2000, 6, ""}, // 3: the sample at 100ms is the one at or before the window's start
		{2500, 8, MemoryHigh},
	} {
		if have, _, _ := tr.Observe(ev(oomwatch.High, tc.ms, tc.count, 90)); have != tc.want {
			t.Errorf("event %d at %dms: %q, want %q", i, tc.ms, have, tc.want)
		}
	}
}

func TestTriggersPressure(t *testing.T) {
	trig, err := oomwatch.ParseTrigger("some 150ms/1s")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := oomwatch.ParseTrigger("full 100ms/2s")
	p := DefaultPolicy()
	p.RecyclePressure = []oomwatch.Trigger{trig}
	tr := NewTriggers(p, cgroup.Limits{})
	fired := func(tg oomwatch.Trigger) oomwatch.Event {
		return oomwatch.Event{Kind: oomwatch.Pressure, Pressure: &oomwatch.PressureInfo{Trigger: tg.String()}}
	}
	if r, _, _ := tr.Observe(fired(other)); r != "" {
		t.Errorf("a report-only trigger recycled: %q", r)
	}
	if r, say, _ := tr.Observe(fired(trig)); r != Pressure || say == "" {
		t.Errorf("the recycle trigger: %q %q, want %q and a line", r, say, Pressure)
	}
}

func TestTriggersRecycleAbove(t *testing.T) {
	p := DefaultPolicy()
	p.RecycleAbove, p.RecycleAfter = cgroup.Bytes(100*mib), 3*time.Second
	tr := NewTriggers(p, cgroup.Limits{MemoryHigh: cgroup.Bytes(100 * mib)})
	t0 := time.Unix(0, 0)
	if _, _, arm := tr.Observe(ev(oomwatch.High, 0, 1, 80)); arm {
		t.Fatal("armed at 80 MiB of a 100 MiB mark")
	}
	if _, _, arm := tr.Observe(ev(oomwatch.High, 10, 2, 96)); !arm { // within 5%: the kernel holds it under memory.high
		t.Fatal("not armed at 96 MiB of a 100 MiB mark")
	}
	if _, _, arm := tr.Observe(ev(oomwatch.High, 20, 3, 99)); arm {
		t.Error("armed twice")
	}
	for _, tc := range []struct {
		at                    time.Duration
		currentMiB            uint64
		recycle, keepWatching bool
	}{
		{time.Second, 97, false, true},
		{2 * time.Second, 92, false, true},                    // dips, but stays above 90%
		{3*time.Second + 10*time.Millisecond, 99, true, true}, // armed at 10ms
	} {
		recycle, keep := tr.CheckAbove(t0.Add(tc.at), tc.currentMiB*mib)
		if recycle != tc.recycle || keep != tc.keepWatching {
			t.Errorf("at %v with %d MiB: recycle %v keep %v, want %v %v", tc.at, tc.currentMiB, recycle, keep, tc.recycle, tc.keepWatching)
		}
	}
	// Falling below 90% clears the mark; reaching it again re-arms.
	if recycle, keep := tr.CheckAbove(t0.Add(4*time.Second), 80*mib); recycle || keep {
		t.Errorf("below 90%%: recycle %v keep %v, want neither", recycle, keep)
	}
	if _, _, arm := tr.Observe(ev(oomwatch.High, 5000, 4, 98)); !arm {
		t.Error("not re-armed after memory fell and rose again")
	}
}

func TestTriggersStall(t *testing.T) {
	for _, tc := range []struct {
		name    string
		recycle bool
		nearMiB uint64
		want    Reason
		says    bool
	}{
		{"reported only", false, 99, "", true},
		{"recycled", true, 99, Stall, true},
		{"far from the limit", true, 50, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := DefaultPolicy()
			p.RecycleStall = tc.recycle
			tr := NewTriggers(p, cgroup.Limits{MemoryMax: cgroup.Bytes(100 * mib)})
			var reason Reason
			var said bool
			// 30 memory.max events a second for 6 s: above stallRate for longer than stallFor.
			for i := 0; i <= 180; i++ {
				r, say, _ := tr.Observe(ev(oomwatch.Max, i*1000/30, uint64(i+1), tc.nearMiB))
				if r != "" {
					reason = r
				}
				said = said || say != ""
			}
			if reason != tc.want || said != tc.says {
				t.Errorf("reason %q said %v, want %q said %v", reason, said, tc.want, tc.says)
			}
		})
	}
}

func TestLifetimeJitter(t *testing.T) {
	p := DefaultPolicy()
	if d := NewTriggers(p, cgroup.Limits{}).Lifetime(); d != 0 {
		t.Errorf("no --max-lifetime: %v, want 0", d)
	}
	p.MaxLifetime, p.LifetimeJitter = time.Hour, time.Minute
	for range 100 {
		if d := NewTriggers(p, cgroup.Limits{}).Lifetime(); d < time.Hour || d >= time.Hour+time.Minute {
			t.Fatalf("lifetime %v, want within [1h, 1h1m)", d)
		}
	}
}

func TestReasons(t *testing.T) {
	seen := map[Reason]bool{}
	var memory, recycles []Reason
	for _, r := range Reasons() {
		if r.Recycle() {
			recycles = append(recycles, r)
		}
		if seen[r] {
			t.Errorf("%q listed twice", r)
		}
		seen[r] = true
		if r.Memory() {
			memory = append(memory, r)
		}
	}
	if len(recycles) != 8 {
		t.Errorf("%d recycles (%v), want 8: all but the four ends of the command's own", len(recycles), recycles)
	}
	if len(seen) != 12 || len(memory) != 4 {
		t.Errorf("%d reasons, %d about memory (%v); want 12 and 4 (thrash takes no dump: a thrashing worker cannot write one)", len(seen), len(memory), memory)
	}
}

func TestOverlapReasons(t *testing.T) {
	for _, tc := range []struct {
		reason Reason
		want   bool
	}{
		// a generation that still serves
		{Lifetime, true}, {MemoryAbove, true}, {MemoryHigh, true}, {Pressure, true}, {Request, true},
		// one that no longer does, or is gone
		{Health, false}, {Stall, false}, {Thrashing, false}, {OOMKill, false}, {Abort, false}, {Failure, false}, {Exit, false}, {"", false},
	} {
		if have := tc.reason.Overlap(); have != tc.want {
			t.Errorf("%q.Overlap() = %v, want %v", tc.reason, have, tc.want)
		}
	}
}

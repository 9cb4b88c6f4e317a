package policy

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/oomwatch"
)

// traceLine is one sample of a recorded trace (testdata/record.sh).
type traceLine struct {
	at                         time.Duration
	current, max, maxEvents    uint64
	refault, activate, restore uint64
	someUS, fullUS, oomKills   uint64
	anon, file                 uint64
	pgscan, pgsteal            uint64
	mapped, shmem              uint64
}

// sample is the line as the supervisor reads it (readThrashSample).
func (l traceLine) sample(now time.Time) RefaultSample {
	return RefaultSample{Time: now, Current: l.current, Cache: l.file - min(l.shmem, l.file), Mapped: l.mapped, Scan: l.pgscan, Steal: l.pgsteal, Refaults: cgroup.Refaults{Refault: l.refault, Activate: l.activate, Restore: l.restore}}
}

func readTrace(t *testing.T, name string) []traceLine {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []traceLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l traceLine
		var ms int64
		if _, err := fmt.Sscan(sc.Text(), &ms, &l.current, &l.max, &l.maxEvents, &l.refault, &l.activate, &l.restore, &l.someUS, &l.fullUS, &l.oomKills, &l.anon, &l.file, &l.pgscan, &l.pgsteal, &l.mapped, &l.shmem); err != nil {
			t.Fatalf("%s: %q: %v", name, sc.Text(), err)
		}
		l.at = time.Duration(ms) * time.Millisecond
		out = append(out, l)
	}
	return out
}

// replay feeds a trace to a ThrashWatch as the supervisor would: a max event where the kernel's
// count grew, a refault sample every ThrashEvery while asked for (without PSI), and a firing of
// the trigger where the trace's stall total grew by its threshold within its window (with PSI:
// the kernel's own rule, at most once a window). It returns when the verdict came, relative to
// the first max event, or -1 for none; and the first max event's and the OOM kill's times.
func replay(th Thrash, tr []traceLine, psi bool) (verdict ThrashVerdict, after, firstMax, kill time.Duration) {
	t0 := time.Unix(1000, 0)
	w := NewThrashWatch(th, cgroup.Limits{MemoryMax: cgroup.Bytes(tr[0].max)}, psi)
	firstMax, kill, after = -1, -1, -1
	var lastMax uint64
	var sampling bool
	var lastSample, lastFire time.Duration = -time.Hour, -time.Hour
	for i, l := range tr {
		now := t0.Add(l.at)
		var v ThrashVerdict
		got := false // v is a verdict of this line
		sample := func() {
			lastSample, got = l.at, true
			v = w.Sample(l.sample(now))
		}
		if l.maxEvents > lastMax {
			if firstMax < 0 {
				firstMax = l.at
			}
			lastMax, got = l.maxEvents, true
			v = w.Event(oomwatch.Event{Time: now, Kind: oomwatch.Max, Count: l.maxEvents, MemoryCurrent: l.current})
			if v.Sample && !sampling {
				sampling = true
				sample() // the window starts at the max event
			}
		}
		if !v.Thrash && sampling && l.at-lastSample >= ThrashEvery {
			sample()
		}
		if psi && l.at-lastFire >= th.Pressure.Window {
			total := func(l traceLine) uint64 {
				if th.Pressure.Full {
					return l.fullUS
				}
				return l.someUS
			}
			for j := i - 1; j >= 0 && l.at-tr[j].at <= th.Pressure.Window; j-- {
				if time.Duration(total(l)-total(tr[j]))*time.Microsecond >= th.Pressure.Threshold {
					lastFire, got = l.at, true
					v = w.Pressure(oomwatch.Event{Time: now, Kind: oomwatch.Pressure, MemoryCurrent: l.current,
						Pressure: &oomwatch.PressureInfo{Trigger: th.Pressure.String(), SomeTotalUS: l.someUS, FullTotalUS: l.fullUS}}, l.sample(now))
					break
				}
			}
		}
		if got && !v.Thrash {
			sampling = v.Sample
		}
		if v.Thrash && after < 0 {
			verdict, after = v, l.at-firstMax
		}
		if l.oomKills > 0 && kill < 0 {
			kill = l.at
		}
	}
	return verdict, after, firstMax, kill
}

// TestThrashTraces replays the traces recorded in the guests (testdata/record.sh): a leaking
// worker is found thrashing before the kernel's OOM kill, soon after its first max event; a
// reader streaming a file through its page cache and a server at memory.max never are.
func TestThrashTraces(t *testing.T) {
	files, err := filepath.Glob("testdata/*.trace")
	if err != nil || len(files) == 0 {
		t.Fatalf("no traces in testdata (%v)", err)
	}
	th := DefaultThrash()
	for _, f := range files {
		name := filepath.Base(f)
		tr := readTrace(t, name)
		psi := tr[len(tr)-1].someUS > 0 // recorded on a kernel with PSI
		t.Run(name, func(t *testing.T) {
			v, after, firstMax, kill := replay(th, tr, psi)
			switch {
			case strings.HasPrefix(name, "leak"):
				if firstMax < 0 {
					t.Fatalf("the leak never reached memory.max")
				}
				if after < 0 {
					t.Fatalf("the leak was not found thrashing (first max at %v, OOM kill at %v)", firstMax, kill)
				}
				if kill >= 0 && firstMax+after >= kill {
					t.Errorf("thrash found %v after the first max, at or after the kernel's OOM kill %v after it", after, kill-firstMax)
				}
				if kill >= 0 {
					t.Logf("thrash %v after the first max event (the kernel's OOM kill: %v after it); %s", after, kill-firstMax, v.Why)
				} else {
					t.Logf("thrash %v after the first max event (no OOM kill in the trace); %s", after, v.Why)
				}
			default:
				if firstMax < 0 {
					t.Fatalf("the healthy workload never reached memory.max: the trace tells nothing")
				}
				if after >= 0 {
					t.Errorf("a healthy workload was found thrashing %v after its first max event: %s", after, v.Why)
				}
			}
		})
	}
}

func TestParseThrash(t *testing.T) {
	def := DefaultThrash()
	for _, tc := range []struct {
		in   string
		want func(*Thrash)
		bad  string
	}{
		// success
		{in: "on", want: func(*Thrash) {}},
		{in: "off", want: func(t *Thrash) { t.Off = true }},
		{in: "refaults=300/s", want: func(t *Thrash) { t.Refaults = 300 }},
		{in: "pressure=some 150ms/1s,for=1s", want: func(t *Thrash) {
			t.Pressure = oomwatch.Trigger{Threshold: 150 * time.Millisecond, Window: time.Second}
			t.For = time.Second
		}},
		// failure
		{in: "off,refaults=3/s", bad: "off takes no settings"},
		{in: "refaults=0/s", bad: "above 0"},
		{in: "for=10ms", bad: "at least 100ms"},
		{in: "pressure=some 150ms", bad: "pressure trigger"},
		{in: "sometimes", bad: "neither off, on nor KEY=VALUE"},
		{in: "speed=1", bad: `unknown setting "speed"`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			have, err := ParseThrash(tc.in)
			if tc.bad != "" {
				if err == nil || !strings.Contains(err.Error(), tc.bad) || !strings.Contains(err.Error(), "--thrash") {
					t.Errorf("ParseThrash(%q) = %v, want an error about --thrash saying %q", tc.in, err, tc.bad)
				}
				return
			}
			want := def
			want.Set = true
			tc.want(&want)
			if err != nil || have != want {
				t.Errorf("ParseThrash(%q) = %+v, %v; want %+v", tc.in, have, err, want)
			}
		})
	}
}

func TestThrashEnabledAndValidated(t *testing.T) {
	p := DefaultPolicy()
	if p.Thrash.Enabled(RestartNever) || !p.Thrash.Enabled(RestartOnOOM) || !p.Thrash.Enabled(RestartOnFailure) || !p.Thrash.Enabled(RestartAlways) {
		t.Errorf("the default is on exactly where a restart policy restarts an OOM kill")
	}
	if err := p.Validate(cgroup.Limits{}); err != nil {
		t.Errorf("the default policy: %v", err)
	}
	p.Thrash, _ = ParseThrash("refaults=200/s")
	if err := p.Validate(cgroup.Limits{}); err == nil || !strings.Contains(err.Error(), "--restart") {
		t.Errorf("--thrash settings without a restart policy: %v, want an error naming --restart", err)
	}
	p.Thrash, _ = ParseThrash("off")
	if err := p.Validate(cgroup.Limits{}); err != nil {
		t.Errorf("--thrash off without a restart policy: %v", err)
	}
}

// TestThrashWatch: the detector's rules, one at a time.
func TestThrashWatch(t *testing.T) {
	const max = 64 * mib
	l := cgroup.Limits{MemoryMax: cgroup.Bytes(max)}
	t0 := time.Unix(0, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	s := func(ms int, currentMiB, cacheMiB, activate uint64) RefaultSample {
		// all of the page cache mapped: a program's own pages
		return RefaultSample{Time: at(ms), Current: currentMiB * mib, Cache: cacheMiB * mib, Mapped: cacheMiB * mib, Refaults: cgroup.Refaults{Activate: activate}}
	}
	maxEv := func(ms int, currentMiB uint64) oomwatch.Event {
		return oomwatch.Event{Time: at(ms), Kind: oomwatch.Max, Count: 1, MemoryCurrent: currentMiB * mib}
	}
	t.Run("nothing to watch", func(t *testing.T) {
		off, _ := ParseThrash("off")
		if NewThrashWatch(off, l, false) != nil || NewThrashWatch(DefaultThrash(), cgroup.Limits{}, false) != nil {
			t.Error("a watch with --thrash off or without memory.max")
		}
		var w *ThrashWatch
		if v := w.Event(maxEv(0, 64)); v != (ThrashVerdict{}) || w.Fired(maxEv(0, 64)) {
			t.Error("a nil watch said something")
		}
	})
	t.Run("refaults: a max event near the limit starts sampling, thrash after For", func(t *testing.T) {
		w := NewThrashWatch(DefaultThrash(), l, false)
		if v := w.Event(maxEv(0, 50)); v.Sample {
			t.Error("sampling from a max event far below memory.max")
		}
		if v := w.Event(maxEv(0, 63)); !v.Sample {
			t.Error("no sampling from a max event at memory.max")
		}
		th := DefaultThrash()
		th.For = 200 * time.Millisecond
		w = NewThrashWatch(th, l, false)
		w.Event(maxEv(0, 63))
		for _, step := range []struct {
			s    RefaultSample
			want bool
		}{
			{s(0, 63, 4, 0), false},
			{s(100, 63, 4, 50), false}, // not For yet
			{s(200, 63, 4, 120), true}, // 600/s, over 100/s and a twentieth of 4M (51/s)
		} {
			if v := w.Sample(step.s); v.Thrash != step.want || !v.Thrash && !v.Sample {
				t.Fatalf("sample %+v: %+v, want thrash %v", step.s, v, step.want)
			}
		}
		if v := w.Sample(s(300, 63, 4, 900)); v.Thrash {
			t.Error("thrash said twice in one generation")
		}
	})
	t.Run("refaults: a page cache read back slowly is no thrash", func(t *testing.T) {
		w := NewThrashWatch(DefaultThrash(), l, false)
		w.Event(maxEv(0, 63))
		for ms, act := 0, uint64(0); ms <= 2000; ms, act = ms+100, act+15 { // 150/s out of 15M (192/s)
			if v := w.Sample(s(ms, 63, 15, act)); v.Thrash {
				t.Fatalf("thrash at %dms: %s", ms, v.Why)
			}
		}
	})
	t.Run("refaults: a large program thrashes too", func(t *testing.T) {
		w := NewThrashWatch(DefaultThrash(), l, false)
		w.Event(maxEv(0, 63))
		w.Sample(s(0, 63, 30, 0)) // Node's 30M of program text, all of the page cache
		if v := w.Sample(s(100, 63, 30, 200)); !v.Thrash {
			t.Errorf("%+v: want thrash (2000/s out of 30M, all of it mapped)", v)
		}
	})
	t.Run("refaults: refaults the kernel does not activate count too", func(t *testing.T) {
		// 5.10 with a spent page cache of 1M: the program's pages read back, few activated.
		w := NewThrashWatch(DefaultThrash(), l, false)
		w.Event(maxEv(0, 63))
		a, b := s(0, 63, 1, 66), s(100, 63, 1, 66)
		a.Refaults.Refault, b.Refaults.Refault = 66, 165
		w.Sample(a)
		if v := w.Sample(b); !v.Thrash || !strings.Contains(v.Why, "99 pages it had evicted") {
			t.Errorf("%+v: want thrash from 99 refaults in 100ms, none of them activated", v)
		}
	})
	t.Run("refaults: reclaim that finds only pages in use is thrash", func(t *testing.T) {
		w := NewThrashWatch(DefaultThrash(), l, false)
		w.Event(maxEv(0, 63))
		a, b := s(0, 63, 12, 0), s(100, 63, 12, 0)
		b.Scan, b.Steal = 800, 40
		w.Sample(a)
		if v := w.Sample(b); !v.Thrash || !strings.Contains(v.Why, "could free only 40") {
			t.Errorf("%+v: want thrash from reclaim freeing 40 of 800 pages", v)
		}
	})
	t.Run("refaults: reclaim that frees what it scans is no thrash", func(t *testing.T) {
		w := NewThrashWatch(DefaultThrash(), l, false)
		w.Event(maxEv(0, 63))
		a, b := s(0, 63, 12, 0), s(100, 63, 12, 0)
		b.Scan, b.Steal = 800, 790
		w.Sample(a)
		if v := w.Sample(b); v.Thrash {
			t.Errorf("thrash: %s", v.Why)
		}
	})
	t.Run("refaults: a page cache of data that no process maps is no thrash", func(t *testing.T) {
		w := NewThrashWatch(DefaultThrash(), l, false)
		w.Event(maxEv(0, 63))
		for ms, act := 0, uint64(0); ms <= 2000; ms, act = ms+100, act+500 { // 5000/s out of 10M, 6M of it read, not mapped
			sm := s(ms, 63, 10, act)
			sm.Mapped = 4 * mib
			if v := w.Sample(sm); v.Thrash {
				t.Fatalf("thrash at %dms: %s", ms, v.Why)
			}
		}
	})
	t.Run("refaults: memory falling away stops the sampling", func(t *testing.T) {
		w := NewThrashWatch(DefaultThrash(), l, false)
		w.Event(maxEv(0, 63))
		w.Sample(s(0, 63, 4, 0))
		if v := w.Sample(s(100, 40, 4, 500)); v.Sample || v.Thrash {
			t.Errorf("%+v: want sampling stopped", v)
		}
		if v := w.Sample(s(200, 63, 4, 1000)); v.Thrash {
			t.Errorf("thrash from a window that spans the fall: %s", v.Why)
		}
	})
	t.Run("pressure: the thrash trigger near memory.max", func(t *testing.T) {
		th := DefaultThrash()
		w := NewThrashWatch(th, l, true)
		fired := func(tr oomwatch.Trigger, currentMiB uint64) oomwatch.Event {
			return oomwatch.Event{Kind: oomwatch.Pressure, MemoryCurrent: currentMiB * mib, Pressure: &oomwatch.PressureInfo{Trigger: tr.String()}}
		}
		other := oomwatch.Trigger{Threshold: time.Second, Window: 2 * time.Second}
		if w.Fired(fired(other, 63)) {
			t.Error("another trigger counted as the thrash trigger")
		}
		if v := w.Event(maxEv(0, 63)); v.Sample {
			t.Error("refault sampling with PSI")
		}
		if v := w.Pressure(fired(th.Pressure, 40), s(0, 40, 4, 0)); v.Thrash {
			t.Error("thrash far below memory.max")
		}
		data := s(0, 63, 20, 0)
		data.Mapped = 4 * mib
		if v := w.Pressure(fired(th.Pressure, 63), data); v.Thrash {
			t.Error("thrash with 16M of page cache that no process maps")
		}
		if v := w.Pressure(fired(th.Pressure, 63), s(0, 63, 4, 0)); !v.Thrash || v.Source != "memory.pressure" {
			t.Errorf("%+v: want thrash told by pressure", v)
		}
	})
}

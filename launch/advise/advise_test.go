package advise_test

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cgrun/cgrun/launch/advise"
)

// traceLine is one line of a trace the advisor writes with CGRUN_ADVISE_TRACE: the sample, and
// what the prober decided on it.
type traceLine struct {
	advise.Sample
	advise.Action
}

func readTrace(t *testing.T, name string) []traceLine {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []traceLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l traceLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		lines = append(lines, l)
	}
	return lines
}

const mib = 1 << 20

// The traces were recorded in the UML guest (Linux 6.1, no PSI) by the workloads of
// cmd/cgrun/advise_integration_test.go, whose needs are known by construction: replayed, the
// prober decides as it did there, and its estimate covers the need and stays well below the
// peak.
func TestReplayRecordedTraces(t *testing.T) {
	for _, tc := range []struct {
		trace        string
		need         uint64 // what the workload holds and touches, and the runtime's few MiB
		contacts     bool   // the squeeze must have met pressure (a hot cache)
		maxOfPeakPct uint64 // the advised memory.max is at most this much of the peak
	}{
		{"refaults-hot-anon.jsonl", 48 * mib, false, 50},
		{"refaults-cold-anon.jsonl", 56 * mib, false, 55},
		{"refaults-file-read-once.jsonl", 16 * mib, false, 20},
		{"refaults-hot-file.jsonl", 56 * mib, true, 55},
	} {
		t.Run(tc.trace, func(t *testing.T) {
			lines := readTrace(t, tc.trace)
			p := advise.New(advise.DefaultConfig(advise.Refaults, 4096, 0))
			for i, l := range lines {
				if got := p.Step(l.Sample); got != l.Action {
					t.Fatalf("sample %d (at %v): decided %+v, recorded %+v", i, l.At, got, l.Action)
				}
			}
			e := p.Estimate()
			a := advise.Advise(e)
			if !e.Settled || e.WorkingSet < tc.need || a.MemoryMax < tc.need || a.MemoryMax > e.Peak*tc.maxOfPeakPct/100 || (e.Contacts > 0) != tc.contacts {
				t.Errorf("estimate %+v, advice %+v: want settled, the working set and memory.max at least %dM, memory.max at most %d%% of the peak, contacts %v",
					e, a, tc.need/mib, tc.maxOfPeakPct, tc.contacts)
			}
		})
	}
}

// A hot-file trace's decisions, step by step: squeeze in large steps, restore at the first
// refaults, hold, then a gentle step.
func TestHotFileTraceSqueezesThenBacksOff(t *testing.T) {
	lines := readTrace(t, "refaults-hot-file.jsonl")
	var whys []string
	for _, l := range lines {
		if l.Why != "" && (len(whys) == 0 || whys[len(whys)-1] != l.Why) {
			whys = append(whys, l.Why)
		}
	}
	want := []string{"squeeze", "back off", "squeeze", "back off"}
	if len(whys) != len(want) {
		t.Fatalf("decisions %v, want %v", whys, want)
	}
	for i := range want {
		if whys[i] != want[i] {
			t.Fatalf("decisions %v, want %v", whys, want)
		}
	}
}

func sample(at time.Duration, cur, anon, reclaimable, refaults, stall uint64) advise.Sample {
	return advise.Sample{At: at, Current: cur * mib, Anon: anon * mib, Reclaimable: reclaimable * mib, Refaults: refaults, StallUS: stall}
}

// squeezed is where a first squeeze puts memory.high: a fifth of the page cache above the
// floor (what reclaim cannot take, and 2% of memory.current for room) goes.
func squeezed(cur, fixed uint64) uint64 {
	floor := fixed + cur/50
	return cur - uint64(0.2*float64(cur-floor))
}

func TestStep(t *testing.T) {
	s := time.Second
	for _, tc := range []struct {
		name    string
		src     advise.Source
		ceiling uint64
		samples []advise.Sample
		want    advise.Action // after the last sample
		check   func(t *testing.T, p *advise.Prober)
	}{
		// success: squeezes page cache, never below what reclaim cannot take
		{"first squeeze takes a fifth of the cache above the floor", advise.Refaults, 0,
			[]advise.Sample{sample(0, 200, 40, 160, 0, 0), sample(s, 200, 40, 160, 0, 0), sample(2*s, 200, 40, 160, 0, 0)},
			advise.Action{High: squeezed(200*mib, 40*mib), Why: "squeeze", Next: 100 * time.Millisecond}, nil},
		{"at the floor: settled, memory.high no lower", advise.Refaults, 0,
			[]advise.Sample{sample(0, 41, 40, 1, 0, 0), sample(s, 41, 40, 1, 0, 0), sample(2*s, 41, 40, 1, 0, 0), sample(3*s, 41, 40, 1, 0, 0)},
			advise.Action{Next: 500 * time.Millisecond},
			func(t *testing.T, p *advise.Prober) {
				if e := p.Estimate(); !e.Settled || e.WorkingSet != 40*mib || p.High() < 40*mib+41*mib/50 {
					t.Errorf("estimate %+v, high %d: want settled at 40M, memory.high at the floor", e, p.High())
				}
			}},
		// no-op: a growing command is not squeezed; pressure that is not the probe's is left alone
		{"growing: no squeeze until calm", advise.Refaults, 0,
			[]advise.Sample{sample(0, 100, 20, 80, 0, 0), sample(s, 110, 30, 80, 0, 0), sample(2*s, 120, 40, 80, 0, 0), sample(3*s, 130, 50, 80, 0, 0)},
			advise.Action{Next: 500 * time.Millisecond}, nil},
		{"pressure before any squeeze: the original stands", advise.PSI, 0,
			[]advise.Sample{sample(0, 100, 20, 80, 0, 0), sample(s, 100, 20, 80, 0, 500000)},
			advise.Action{Next: 500 * time.Millisecond},
			func(t *testing.T, p *advise.Prober) {
				if p.Estimate().Contacts != 0 {
					t.Errorf("a contact counted for pressure the probe did not cause")
				}
			}},
		// back-off: the original back at the first pressure, the level above it is the working set
		{"PSI stall and refaults after a squeeze: restore, and hold", advise.PSI, 0,
			[]advise.Sample{sample(0, 200, 40, 160, 0, 0), sample(s, 200, 40, 160, 0, 0), sample(2*s, 200, 40, 160, 0, 0), sample(3*s, 200, 40, 160, 0, 0),
				sample(3*s+100*time.Millisecond, 170, 40, 130, 0, 0), sample(3*s+200*time.Millisecond, 150, 40, 110, 100, 2000)},
			advise.Action{Restore: true, Why: "back off", Next: 500 * time.Millisecond},
			func(t *testing.T, p *advise.Prober) {
				if e := p.Estimate(); e.Contacts != 1 || e.WorkingSet != 170*mib || p.High() != 0 {
					t.Errorf("estimate %+v, high %d: want one contact, working set 170M, the original back", e, p.High())
				}
				if a := p.Step(sample(4*s, 180, 40, 140, 100, 2000)); a.High != 0 || a.Restore {
					t.Errorf("during the hold: %+v, want nothing", a)
				}
			}},
		{"a PSI stall with no refaults (a streamed file): no contact, no further squeeze", advise.PSI, 0,
			[]advise.Sample{sample(0, 200, 40, 160, 0, 0), sample(s, 200, 40, 160, 0, 0), sample(2*s, 200, 40, 160, 0, 0),
				sample(2*s+100*time.Millisecond, 170, 40, 130, 0, 50000)},
			advise.Action{Next: 500 * time.Millisecond},
			func(t *testing.T, p *advise.Prober) {
				if e := p.Estimate(); e.Contacts != 0 || p.High() == 0 {
					t.Errorf("estimate %+v, high %d: want no contact, the squeeze kept", e, p.High())
				}
			}},
		{"a stall under the threshold is no pressure", advise.PSI, 0,
			[]advise.Sample{sample(0, 200, 40, 160, 0, 0), sample(s, 200, 40, 160, 0, 0), sample(2*s, 200, 40, 160, 0, 0),
				sample(2*s+100*time.Millisecond, 170, 40, 130, 0, 500)},
			advise.Action{High: squeezed(170*mib, 40*mib), Why: "squeeze", Next: 100 * time.Millisecond}, nil},
		// failure modes guarded: growth past memory.high, the user's ceiling
		{"anonymous memory grew past the squeeze: back up to the floor", advise.Refaults, 0,
			[]advise.Sample{sample(0, 200, 40, 160, 0, 0), sample(s, 200, 40, 160, 0, 0), sample(2*s, 200, 40, 160, 0, 0), sample(3*s, 200, 40, 160, 0, 0),
				sample(3*s+100*time.Millisecond, 170, 160, 10, 0, 0)},
			advise.Action{High: 160*mib + 2*120*mib, Why: "floor", Next: 500 * time.Millisecond}, nil},
		{"never above the user's memory.high", advise.Refaults, 150 * mib,
			[]advise.Sample{sample(0, 140, 40, 100, 0, 0), sample(s, 140, 40, 100, 0, 0), sample(2*s, 140, 40, 100, 0, 0), sample(3*s, 140, 40, 100, 0, 0),
				sample(3*s+100*time.Millisecond, 120, 140, 0, 0, 0)},
			advise.Action{Restore: true, Why: "floor", Next: 500 * time.Millisecond}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := advise.New(advise.DefaultConfig(tc.src, 4096, tc.ceiling))
			var got advise.Action
			for _, s := range tc.samples {
				got = p.Step(s)
			}
			if got != tc.want {
				t.Errorf("decided %+v, want %+v", got, tc.want)
			}
			if tc.check != nil {
				tc.check(t, p)
			}
		})
	}
}

func TestAdviceLine(t *testing.T) {
	a := advise.Advise(advise.Estimate{Source: advise.Refaults, WorkingSet: 176 * mib, Peak: 412 * mib, Settled: true, Observed: 25 * time.Second})
	for _, tc := range []struct {
		swap bool
		want string
	}{
		{true, "advice: --memory-max 229M --memory-high 203M  (working set 176M, peak 412M of which 236M was page cache it did not need again; 25s observed, pressure from refaults)"},
		{false, "advice: --memory-max 229M  (working set 176M, peak 412M of which 236M was page cache it did not need again; 25s observed, pressure from refaults)"},
	} {
		if got := a.Line(tc.swap); got != tc.want {
			t.Errorf("line with swap %v\n%s\nwant\n%s", tc.swap, got, tc.want)
		}
	}
	if a.MemoryHigh >= a.MemoryMax || a.MemoryMax%mib != 0 {
		t.Errorf("advice %+v: want whole MiB, memory.high below memory.max", a)
	}
	small := advise.Advise(advise.Estimate{WorkingSet: 100 << 10})
	if small.MemoryHigh < 1<<20 || small.MemoryMax <= small.MemoryHigh {
		t.Errorf("tiny working set: %+v; want at least 1M and memory.max above memory.high", small)
	}
}

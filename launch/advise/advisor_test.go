package advise

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cgrun/cgrun/cgroup"
)

// fakeGroup is a directory standing in for a payload group: 100 MiB charged, 90 MiB of it
// page cache, memory.high as given, no memory.pressure (a kernel without PSI: refaults tell).
func fakeGroup(t *testing.T, high string) string {
	t.Helper()
	dir := t.TempDir()
	put(t, dir, "memory.high", high)
	put(t, dir, "memory.current", "104857600")
	stat(t, dir, 0)
	return dir
}

func put(t *testing.T, dir, name, text string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(text+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func stat(t *testing.T, dir string, refaults uint64) {
	t.Helper()
	put(t, dir, "memory.stat", fmt.Sprintf("anon 10485760\nfile 94371840\nactive_file 47185920\ninactive_file 47185920\nworkingset_refault_file %d", refaults))
}

func read(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// The advisor squeezes memory.high below memory.current once the group has been calm, writes
// the original back when the squeeze costs refaults, and for good when halted; every sample and
// decision goes to the trace.
func TestAdvisorSqueezesAndRestores(t *testing.T) {
	dir := fakeGroup(t, "max")
	trace := filepath.Join(t.TempDir(), "trace.jsonl")
	var warned []error
	a, err := Start(dir, cgroup.NewPeakMeter(dir), trace, func(err error) { warned = append(warned, err) })
	if err != nil {
		t.Fatal(err)
	}
	if a.prober.cfg.Source != Refaults {
		t.Errorf("source %q without memory.pressure; want refaults", a.prober.cfg.Source)
	}
	now := a.started
	squeezed := false
	for i := 0; i < 20 && !squeezed; i++ {
		next := a.Step(now)
		if next <= 0 {
			t.Fatalf("next sample in %v", next)
		}
		now = now.Add(next)
		squeezed = read(t, dir, "memory.high") != "max"
	}
	if !squeezed {
		t.Fatal("memory.high never squeezed")
	}
	var high uint64
	if _, err := fmt.Sscan(read(t, dir, "memory.high"), &high); err != nil || high >= 104857600 || high <= 10485760 {
		t.Errorf("memory.high %q; want between anon and memory.current", read(t, dir, "memory.high"))
	}

	stat(t, dir, 100000) // the squeeze hurt: pages come back
	a.Step(now)
	if h := read(t, dir, "memory.high"); h != "max" {
		t.Errorf("memory.high %q after refaults; want the original back", h)
	}
	if e := a.Estimate(now); e.Contacts != 1 || e.Peak != 104857600 || e.Observed != now.Sub(a.started) {
		t.Errorf("estimate %+v; want one contact, the peak, observed since the start", e)
	}

	a.Halt()
	if next := a.Step(now.Add(time.Minute)); next != time.Hour || read(t, dir, "memory.high") != "max" {
		t.Errorf("halted: next %v, memory.high %q; want no more squeezing", next, read(t, dir, "memory.high"))
	}
	e := a.Close()
	if e.Peak != 104857600 || e.WorkingSet < 10485760 {
		t.Errorf("estimate %+v", e)
	}
	if len(warned) != 0 {
		t.Errorf("warned %v", warned)
	}
	f, err := os.Open(trace)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines := 0
	for sc := bufio.NewScanner(f); sc.Scan(); lines++ {
		var rec struct {
			Current uint64 `json:"current"`
			Next    int64  `json:"next"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil || rec.Current != 104857600 || rec.Next <= 0 {
			t.Errorf("trace line %q: %v", sc.Text(), err)
		}
	}
	if lines < 3 {
		t.Errorf("%d trace lines; want one per sample", lines)
	}
}

// A memory.high the group already had is the ceiling and what is written back.
func TestAdvisorKeepsTheOriginal(t *testing.T) {
	dir := fakeGroup(t, "209715200")
	a, err := Start(dir, cgroup.NewPeakMeter(dir), "", func(error) {})
	if err != nil {
		t.Fatal(err)
	}
	if a.prober.cfg.Ceiling != 209715200 {
		t.Errorf("ceiling %d; want the group's memory.high", a.prober.cfg.Ceiling)
	}
	for now := a.started; read(t, dir, "memory.high") == "209715200" && now.Sub(a.started) < time.Minute; {
		now = now.Add(a.Step(now))
	}
	a.Close()
	if h := read(t, dir, "memory.high"); h != "209715200" {
		t.Errorf("memory.high %q after Close; want the original", h)
	}
}

func TestAdvisorFailures(t *testing.T) {
	t.Run("no memory.high: no probe", func(t *testing.T) {
		if _, err := Start(t.TempDir(), nil, "", func(error) {}); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("err %v; want not exist", err)
		}
	})
	t.Run("a trace that cannot be opened", func(t *testing.T) {
		dir := fakeGroup(t, "max")
		if _, err := Start(dir, nil, filepath.Join(dir, "none", "trace"), func(error) {}); err == nil {
			t.Error("no error")
		}
	})
	t.Run("the group going: sampled again in a second", func(t *testing.T) {
		dir := fakeGroup(t, "max")
		a, err := Start(dir, cgroup.NewPeakMeter(dir), "", func(error) {})
		if err != nil {
			t.Fatal(err)
		}
		os.Remove(filepath.Join(dir, "memory.stat"))
		if next := a.Step(time.Now()); next != time.Second {
			t.Errorf("next %v without memory.stat; want 1s", next)
		}
		os.Remove(filepath.Join(dir, "memory.current"))
		if next := a.Step(time.Now()); next != time.Second {
			t.Errorf("next %v without memory.current; want 1s", next)
		}
	})
	t.Run("memory.high that cannot be written is said, and not taken as written", func(t *testing.T) {
		dir := fakeGroup(t, "max")
		var warned []error
		a, err := Start(dir, cgroup.NewPeakMeter(dir), "", func(err error) { warned = append(warned, err) })
		if err != nil {
			t.Fatal(err)
		}
		os.Remove(filepath.Join(dir, "memory.high"))
		os.Mkdir(filepath.Join(dir, "memory.high"), 0o755) // EISDIR on open for writing
		for now, i := a.started, 0; i < 20 && len(warned) == 0; i++ {
			now = now.Add(a.Step(now))
		}
		if len(warned) == 0 || a.written {
			t.Errorf("warned %v, written %v; want a warning and nothing to restore", warned, a.written)
		}
		a.Halt()
		var none *Advisor
		none.Halt() // without --advise: nil is fine
	})
}

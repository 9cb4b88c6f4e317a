package cgroup_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cgrun/cgrun/cgroup"
)

func TestOOMKills(t *testing.T) {
	for _, tc := range []struct {
		name   string
		events map[string]uint64
		want   uint64
	}{
		// success: 5.17 and later
		{"group kill, 5.17+", map[string]uint64{"oom": 1, "oom_kill": 2, "oom_group_kill": 1}, 1},
		{"process kills, 5.17+", map[string]uint64{"oom": 3, "oom_kill": 2, "oom_group_kill": 0}, 2},
		// success: before 5.17 (no oom_group_kill)
		{"group kill of one process, 5.10", map[string]uint64{"oom": 1, "oom_kill": 2}, 1},
		{"group kill of three processes, 5.10", map[string]uint64{"oom": 1, "oom_kill": 4}, 1},
		{"process kills, an invocation that killed nothing, 5.10", map[string]uint64{"oom": 3, "oom_kill": 2}, 2},
		// no-op
		{"none, 5.10", map[string]uint64{"oom": 0, "oom_kill": 0}, 0},
		{"none, 5.17+", map[string]uint64{"oom_kill": 0, "oom_group_kill": 0}, 0},
		{"empty", nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if have := cgroup.OOMKills(tc.events); have != tc.want {
				t.Errorf("OOMKills(%v) = %d, want %d", tc.events, have, tc.want)
			}
		})
	}
}

// TestPeakMeter runs on fake groups: files written into a temporary directory.
func TestPeakMeter(t *testing.T) {
	type files map[string]string
	for _, tc := range []struct {
		name       string
		group      files
		leaf       files
		samples    []string // memory.current as Sample reads it, in turn
		want       uint64
		wantSource cgroup.PeakSource
	}{
		// success
		{name: "the kernel's memory.peak", group: files{"memory.peak": "5000", "memory.current": "100"},
			samples: []string{"9000"}, want: 5000, wantSource: cgroup.PeakKernel},
		{name: "sampled: the highest read", group: files{"memory.max": "max", "memory.events.local": "max 0\n"},
			samples: []string{"100", "700", "300"}, want: 700, wantSource: cgroup.PeakSampled},
		{name: "sampled: memory.max reached in the group", group: files{"memory.max": "4096", "memory.events.local": "max 3\n"},
			samples: []string{"100"}, want: 4096, wantSource: cgroup.PeakSampled},
		{name: "sampled: memory.max reached in the leaf", group: files{"memory.max": "8192", "memory.events.local": "max 0\n"},
			leaf: files{"memory.max": "4096", "memory.events.local": "max 1\n"}, samples: []string{"100"}, want: 4096, wantSource: cgroup.PeakSampled},
		{name: "sampled: both reached, the higher counts", group: files{"memory.max": "8192", "memory.events.local": "max 2\n"},
			leaf: files{"memory.max": "4096", "memory.events.local": "max 1\n"}, samples: []string{"100"}, want: 8192, wantSource: cgroup.PeakSampled},
		// no-op: a limit that was never reached does not count
		{name: "sampled: memory.max not reached", group: files{"memory.max": "4096", "memory.events.local": "max 0\n"},
			samples: []string{"100"}, want: 100, wantSource: cgroup.PeakSampled},
		// failure: nothing could be read
		{name: "nothing read", group: files{}, want: 0, wantSource: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			leaf := filepath.Join(dir, "main")
			write := func(dir string, fs files) {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				for name, content := range fs {
					if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			write(dir, tc.group)
			write(leaf, tc.leaf)
			m := cgroup.NewPeakMeter(dir, leaf)
			for _, s := range tc.samples {
				write(dir, files{"memory.current": s})
				if _, _, err := m.Sample(); err != nil {
					t.Fatal(err)
				}
			}
			if n, src := m.Peak(); n != tc.want || src != tc.wantSource {
				t.Errorf("Peak() = %d, %q; want %d, %q", n, src, tc.want, tc.wantSource)
			}
		})
	}
}

func TestMemoryHigh(t *testing.T) {
	for content, want := range map[string]cgroup.Limit{"max\n": cgroup.Unlimited, "50331648\n": cgroup.Bytes(48 << 20)} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "memory.high"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if have, err := cgroup.MemoryHigh(dir); err != nil || have != want {
			t.Errorf("MemoryHigh of %q = %+v, %v; want %+v", content, have, err, want)
		}
	}
}

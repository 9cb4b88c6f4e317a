package cgroup_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cgrun/cgrun/cgroup"
)

func TestMemoryEventsCountsEachThrottlingOnce(t *testing.T) {
	for _, tc := range []struct {
		name       string
		group      string // the group's memory.events
		groupLocal string // the group's memory.events.local; "" for none
		leafLocal  string // the mirror's memory.events.local; "" for none
		mirror     bool
		wantHigh   uint64
		wantOthers map[string]uint64
	}{
		{"no mirror given", "high 365\nmax 71\noom_kill 1\n", "high 174\n", "high 191\n", false, 365, map[string]uint64{"max": 71, "oom_kill": 1}},
		// Anonymous memory without swap: the leaf's reclaim rarely helps, and most throttlings
		// count at both levels (numbers from a UML guest).
		{"counted at both levels", "high 365\nmax 71\noom 1\noom_kill 1\n", "high 174\n", "high 191\nmax 71\noom 1\noom_kill 1\n", true, 191,
			map[string]uint64{"max": 71, "oom": 1, "oom_kill": 1}},
		// Page cache: the leaf's reclaim ends each throttling, the group never counts one.
		{"ended in the leaf", "high 40\n", "high 0\n", "high 40\n", true, 40, nil},
		// What only the group's limit caught (memory of a probe beside the leaf) counts too.
		{"a leaf that never went over memory.high", "high 12\nmax 0\n", "high 12\n", "high 0\n", true, 12, map[string]uint64{"max": 0}},
		{"a torn read: the leaf's count ahead of the group's", "high 10\n", "high 11\n", "high 11\n", true, 0, nil},
		{"the group's own count unreadable", "high 365\n", "", "high 191\n", true, 174, nil},
		{"a kernel without memory.events.local", "high 7\n", "", "", true, 7, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			leaf := filepath.Join(dir, "main")
			write(t, dir, "memory.events", tc.group)
			if tc.groupLocal != "" {
				write(t, dir, "memory.events.local", tc.groupLocal)
			}
			if err := os.Mkdir(leaf, 0o755); err != nil {
				t.Fatal(err)
			}
			if tc.leafLocal != "" {
				write(t, leaf, "memory.events.local", tc.leafLocal)
			}
			mirror := ""
			if tc.mirror {
				mirror = leaf
			}
			have, err := cgroup.MemoryEvents(dir, mirror)
			if err != nil {
				t.Fatal(err)
			}
			if have["high"] != tc.wantHigh {
				t.Errorf("high %d, want %d", have["high"], tc.wantHigh)
			}
			for k, want := range tc.wantOthers {
				if have[k] != want {
					t.Errorf("%s %d, want %d", k, have[k], want)
				}
			}
		})
	}
	if _, err := cgroup.MemoryEvents(t.TempDir(), ""); err == nil {
		t.Error("a group without memory.events: no error")
	}
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

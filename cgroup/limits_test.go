package cgroup_test

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cgrun/cgrun/cgroup"
)

// TestApplyMirror: Apply and Mirror write the files of the limits that are set, each once, in
// one order (memory.high before memory.max); Mirror leaves out memory.low, the Unified files and
// a memory.oom.group that is off.
func TestApplyMirror(t *testing.T) {
	for _, tc := range []struct {
		name          string
		limits        cgroup.Limits
		apply, mirror []string
	}{
		// success
		{"every field", cgroup.Limits{
			CPUWeight: 200, CPUMax: &cgroup.CPUMax{Quota: 50000}, MemorySwapMax: cgroup.Bytes(0),
			MemoryLow: cgroup.Bytes(1 << 20), MemoryHigh: cgroup.Bytes(48 << 20), MemoryMax: cgroup.Bytes(64 << 20),
			PidsMax: cgroup.Bytes(100), OOMGroup: true,
			Unified: map[string]string{"memory.zswap.max": "0", "memory.min": "4096"},
		}, []string{
			"cpu.weight=200", "cpu.max=50000 100000", "memory.swap.max=0", "memory.low=1048576",
			"memory.high=50331648", "memory.max=67108864", "pids.max=100", "memory.oom.group=1",
			"memory.min=4096", "memory.zswap.max=0",
		}, []string{
			"cpu.weight=200", "cpu.max=50000 100000", "memory.swap.max=0",
			"memory.high=50331648", "memory.max=67108864", "pids.max=100", "memory.oom.group=1",
		}},
		{"max", cgroup.Limits{MemoryHigh: cgroup.Unlimited, MemoryMax: cgroup.Unlimited, PidsMax: cgroup.Unlimited},
			[]string{"memory.high=max", "memory.max=max", "pids.max=max", "memory.oom.group=0"},
			[]string{"memory.high=max", "memory.max=max", "pids.max=max"}},
		// no-op: Apply still turns memory.oom.group off
		{"nothing set", cgroup.Limits{}, []string{"memory.oom.group=0"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, writes := fakeGroup(t, controlFiles...)
			if err := tc.limits.Apply(dir); err != nil {
				t.Fatal(err)
			}
			if have := writes(); !slices.Equal(have, tc.apply) {
				t.Errorf("Apply wrote\n%q, want\n%q", have, tc.apply)
			}
			leaf, writes := fakeGroup(t, controlFiles...)
			if err := tc.limits.Mirror(leaf); err != nil {
				t.Fatal(err)
			}
			if have := writes(); !slices.Equal(have, tc.mirror) {
				t.Errorf("Mirror wrote\n%q, want\n%q", have, tc.mirror)
			}
		})
	}
	// failure: the first refused write ends it, and its error names the file and the value
	l := cgroup.Limits{MemoryHigh: cgroup.Bytes(48 << 20), MemoryMax: cgroup.Bytes(64 << 20), PidsMax: cgroup.Bytes(100)}
	dir, writes := fakeGroup(t, slices.DeleteFunc(slices.Clone(controlFiles), func(f string) bool { return f == "memory.max" })...)
	var we *cgroup.WriteError
	if err := l.Apply(dir); !errors.As(err, &we) || we.Path != filepath.Join(dir, "memory.max") || we.Value != "67108864" {
		t.Errorf("Apply without memory.max: %v", err)
	}
	if have, want := writes(), []string{"memory.high=50331648"}; !slices.Equal(have, want) {
		t.Errorf("Apply without memory.max wrote %q, want %q", have, want)
	}
}

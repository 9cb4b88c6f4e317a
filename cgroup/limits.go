package cgroup

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Limits are the settings cgrun writes into a fresh group before anything runs in it.
// A Limit that is not Set leaves the kernel's default alone.
type Limits struct {
	MemoryMax     Limit
	MemoryHigh    Limit
	MemoryLow     Limit
	MemorySwapMax Limit
	PidsMax       Limit
	OOMGroup      bool    // memory.oom.group: the OOM killer takes the whole group, not one process
	CPUMax        *CPUMax // cpu.max; nil leaves it alone
	CPUWeight     uint64  // cpu.weight; 0 leaves it alone
	// Unified are further files of the memory, pids and cpu controllers to write as they are
	// (an OCI runtime spec's "unified" map, less the keys that have a field above).
	Unified map[string]string
}

// Controllers are the controllers the limits need enabled on the parent of the group.
func (l Limits) Controllers() []string {
	ctrls := []string{"memory", "pids"}
	cpu := l.CPUMax != nil || l.CPUWeight != 0
	for k := range l.Unified {
		cpu = cpu || strings.HasPrefix(k, "cpu.")
	}
	if cpu {
		ctrls = append(ctrls, "cpu")
	}
	return ctrls
}

// MinMemory is the smallest memory.max and memory.high cgrun accepts. The kernel charges a new
// group's own structures (per CPU) and the command's first pages to the group: below a few
// hundred KiB it refuses to enable controllers in it (ENOMEM) or to exec the command, and a
// memory.high that low throttles even /bin/true for minutes. 1M starts a small command on the
// kernels cgrun is tested on, with room for many CPUs.
const MinMemory = 1 << 20

// Validate checks the limits against each other, and memory.max and memory.high against
// MinMemory.
func (l Limits) Validate() error {
	for _, m := range []struct {
		flag  string
		limit Limit
	}{{"--memory-max", l.MemoryMax}, {"--memory-high", l.MemoryHigh}} {
		if m.limit.Set && !m.limit.Max && m.limit.Value < MinMemory {
			// A number of 1 to 1023 without a unit is bytes, and most likely meant as megabytes.
			meant := ""
			if m.limit.Value > 0 && m.limit.Value < 1024 {
				meant = fmt.Sprintf("; a number without a unit is bytes: did you mean %dM?", m.limit.Value)
			}
			return fmt.Errorf("%s %s is too small to start anything (the kernel charges the group's own set-up and the command's first pages to it); the smallest value that works is %s%s",
				m.flag, m.limit.Human(), FormatSize(MinMemory), meant)
		}
	}
	if l.MemoryHigh.Above(l.MemoryMax) {
		return fmt.Errorf("--memory-high %s is above --memory-max %s: memory.high must not exceed memory.max", l.MemoryHigh.Human(), l.MemoryMax.Human())
	}
	if l.MemoryLow.Above(l.MemoryMax) {
		return fmt.Errorf("--memory-low %s is above --memory-max %s: memory.low must not exceed memory.max", l.MemoryLow.Human(), l.MemoryMax.Human())
	}
	return nil
}

// limitFile is one field of Limits: whether it is set, whether Mirror copies it, and the
// setter of its file.
type limitFile struct {
	set, mirror bool
	write       func(dir string) error
}

// files are the fields of the limits in the order Apply writes them, memory.high before
// memory.max. Mirror writes those a runtime reads, in the same order: all but memory.low, and
// memory.oom.group only when on (a fresh leaf's is 0).
func (l Limits) files() []limitFile {
	return []limitFile{
		{l.CPUWeight != 0, true, func(d string) error { return SetCPUWeight(d, l.CPUWeight) }},
		{l.CPUMax != nil, true, func(d string) error { return SetCPUMax(d, *l.CPUMax) }},
		{l.MemorySwapMax.Set, true, func(d string) error { return SetMemorySwapMax(d, l.MemorySwapMax) }},
		{l.MemoryLow.Set, false, func(d string) error { return SetMemoryLow(d, l.MemoryLow) }},
		{l.MemoryHigh.Set, true, func(d string) error { return SetMemoryHigh(d, l.MemoryHigh) }},
		{l.MemoryMax.Set, true, func(d string) error { return SetMemoryMax(d, l.MemoryMax) }},
		{l.PidsMax.Set, true, func(d string) error { return SetPidsMax(d, l.PidsMax) }},
		{true, l.OOMGroup, func(d string) error { return SetMemoryOOMGroup(d, l.OOMGroup) }},
	}
}

// Apply writes the limits into the group dir, one file each, in a fixed order: cpu.weight,
// cpu.max, memory.swap.max, memory.low, memory.high, memory.max, pids.max, memory.oom.group,
// then the Unified files by name. Straight writes, not containerd/cgroups' Manager.Update: a
// file per value is all Update did, and linking its cgroup2 package made every start of cgrun
// initialise its protobuf stats (with protobuf and cilium/ebpf), 0.47 million of the 1.38
// million instructions of `cgrun version` (README's Speed section).
func (l Limits) Apply(dir string) error {
	if err := l.writeFiles(dir, false); err != nil {
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(l.Unified)) {
		if err := writeFile(dir, k, l.Unified[k]); err != nil {
			return err
		}
	}
	return nil
}

// Mirror writes onto leaf, a child of the group the limits were applied to, the limits that a
// runtime reads from the group it runs in: cpu.weight, cpu.max, memory.swap.max, memory.high,
// memory.max and pids.max (and memory.oom.group, so that an OOM decided in the leaf takes as much
// as one decided in the group). Node (libuv's uv_get_constrained_memory), Go (GOMAXPROCS from
// cpu.max), the JVM and .NET read only their own group's files, never its ancestors', so without
// this a command in the leaf sees no limit at all.
//
// The group keeps every limit: it bounds the whole tree, the leaf and the groups a nested cgrun
// makes beside it. With the same memory.high on both, the kernel counts a high event at each
// level that is over it (reclaim_high walks up the tree); MemoryEvents discounts the leaf's.
func (l Limits) Mirror(leaf string) error { return l.writeFiles(leaf, true) }

// writeFiles writes the files of the limits that are set into dir, only those Mirror copies when
// mirror is true.
func (l Limits) writeFiles(dir string, mirror bool) error {
	for _, f := range l.files() {
		if !f.set || mirror && !f.mirror {
			continue
		}
		if err := f.write(dir); err != nil {
			return err
		}
	}
	return nil
}

// String lists the limits that are set, for messages: "memory.max=64M pids.max=100".
func (l Limits) String() string {
	var s string
	for _, kv := range []struct {
		name string
		v    Limit
	}{{"memory.max", l.MemoryMax}, {"memory.high", l.MemoryHigh}, {"memory.low", l.MemoryLow}, {"memory.swap.max", l.MemorySwapMax}} {
		if kv.v.Set {
			s += fmt.Sprintf(" %s=%s", kv.name, kv.v.Human())
		}
	}
	if l.PidsMax.Set {
		s += " pids.max=" + l.PidsMax.String()
	}
	if l.CPUMax != nil {
		s += " cpu.max=" + strings.ReplaceAll(l.CPUMax.String(), " ", "/")
	}
	if l.CPUWeight != 0 {
		s += fmt.Sprintf(" cpu.weight=%d", l.CPUWeight)
	}
	if s == "" {
		return "no limits"
	}
	return s[1:]
}

// Files are the limits as the kernel's files take them: {"memory.max": "67108864", ...}.
func (limits Limits) Files() map[string]string {
	m := map[string]string{}
	for name, l := range map[string]Limit{"memory.max": limits.MemoryMax, "memory.high": limits.MemoryHigh,
		"memory.low": limits.MemoryLow, "memory.swap.max": limits.MemorySwapMax, "pids.max": limits.PidsMax} {
		if l.Set {
			m[name] = l.String()
		}
	}
	if limits.CPUMax != nil {
		m["cpu.max"] = limits.CPUMax.String()
	}
	if limits.CPUWeight != 0 {
		m["cpu.weight"] = fmt.Sprint(limits.CPUWeight)
	}
	for k, v := range limits.Unified {
		m[k] = v
	}
	return m
}

package cgroup

// MemoryEventNames are the keys of memory.events, in the kernel's order
// (Documentation/admin-guide/cgroup-v2.rst): every list of them in cgrun is this one.
func MemoryEventNames() []string {
	return []string{"low", "high", "max", "oom", "oom_kill", "oom_group_kill"}
}

// MemoryEvents reads the group's memory.events counters (hierarchical: the group's own events
// and those of every group below it) as people count them when mirror, a child of dir that
// carries a copy of the group's limits (Limits.Mirror), is given.
//
// The kernel reclaims from every level that is over its memory.high and counts a high event at
// each (mm/memcontrol.c, reclaim_high), so a leaf with the group's memory.high would count each
// throttling twice in the group's memory.events. The leaf's own high events
// (memory.events.local, Linux 5.2) are taken out again. Every other counter is counted once:
// max and oom at the one level whose limit was hit, oom_kill in the victim's group,
// oom_group_kill in the group that was killed as a whole.
func MemoryEvents(dir, mirror string) (map[string]uint64, error) {
	m, err := ReadKeyed(dir, "memory.events")
	if err != nil || mirror == "" {
		return m, err
	}
	if local, lerr := ReadKeyed(mirror, "memory.events.local"); lerr == nil {
		m["high"] = sub(m["high"], local["high"])
	}
	return m, nil
}

// sub is a - b, or 0 where a read torn between the two files makes b larger.
func sub(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}

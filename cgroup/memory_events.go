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
// The kernel reclaims from every level that is over its memory.high, the charging group first,
// and counts a high event at each level that is still over when its turn comes (mm/memcontrol.c,
// reclaim_high). With the group's memory.high on the leaf too, one throttling counts once in the
// leaf and, when the leaf's reclaim did not bring the group under its memory.high, once more in
// the group: its memory.events holds leaf + group (+ any group below the leaf). Those counted
// twice are at most the smaller of the two levels' own counts (memory.events.local, Linux 5.2),
// which is taken out again; so a throttling the leaf's reclaim ended (page cache, swap) counts
// once, as does one that went on to the group. Every other counter is counted once: max and oom
// at the one level whose limit was hit, oom_kill in the victim's group, oom_group_kill in the
// group that was killed as a whole.
func MemoryEvents(dir, mirror string) (map[string]uint64, error) {
	m, err := ReadKeyed(dir, "memory.events")
	if err != nil || mirror == "" {
		return m, err
	}
	leaf, lerr := ReadKeyed(mirror, "memory.events.local")
	if lerr != nil {
		return m, nil
	}
	twice := leaf["high"]
	if own, oerr := ReadKeyed(dir, "memory.events.local"); oerr == nil {
		twice = min(twice, own["high"])
	}
	m["high"] = sub(m["high"], twice)
	return m, nil
}

// sub is a - b, or 0 where a read torn between the two files makes b larger.
func sub(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}

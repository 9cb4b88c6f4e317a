package cgroup

// MemoryStat is what cgrun reads of a group's memory.stat: where its memory is, and how much of
// what reclaim took the group needed again (refaults).
type MemoryStat struct {
	Anon uint64 // bytes of anonymous memory (and shmem's swap-backed pages are in File)
	File uint64 // bytes of page cache
	// Refaults are pages reclaimed from the group that it faulted in again soon after, since the
	// group was made: workingset_refault_file + workingset_refault_anon (Linux 5.9), or
	// workingset_refault before.
	Refaults uint64
	// Reclaimable is the page cache reclaim can take without swap: inactive_file + active_file,
	// less what is shared memory or mapped dirty (kept out: it cannot simply be dropped).
	Reclaimable uint64
}

// ReadMemoryStat reads the group's memory.stat (hierarchical: the group and every group below
// it).
func ReadMemoryStat(dir string) (MemoryStat, error) {
	m, err := ReadKeyed(dir, "memory.stat")
	if err != nil {
		return MemoryStat{}, err
	}
	return memoryStat(m), nil
}

func memoryStat(m map[string]uint64) MemoryStat {
	s := MemoryStat{Anon: m["anon"], File: m["file"]}
	s.Refaults = RefaultsOf(m).Refault
	cache := m["active_file"] + m["inactive_file"]
	s.Reclaimable = sub(cache, m["file_dirty"]+m["file_writeback"])
	return s
}

// MemoryStatKeys reads the whole of the group's memory.stat, key by key: its memory by kind and
// its reclaim counters (the keys differ between kernels, so callers look up what they need;
// ReadMemoryStat picks out what most callers need).
func MemoryStatKeys(dir string) (map[string]uint64, error) {
	return ReadKeyed(dir, "memory.stat")
}

// Refaults are the working-set counters of memory.stat, running totals in pages since the group
// was made. When the kernel reclaims a page it leaves a shadow entry; a page read back in while
// its shadow entry is still there is a refault. A refault soon enough after the eviction (the
// pages read in between fit in the working set) is activated: the page was needed all along.
// Activated pages that were active when they were evicted are restored. A worker thrashing at
// memory.max refaults its own program text over and over, and those refaults are activated and
// restored; a reader streaming a file larger than the limit refaults too, but each page long
// after its eviction, so it activates almost nothing.
//
// The counters are split into anon and file since Linux 5.9 (workingset_refault_anon, ...);
// before, they are file pages only (workingset_refault, ...; workingset_restore since 5.8).
type Refaults struct {
	Refault  uint64 // pages read back in after eviction
	Activate uint64 // of those, part of the working set
	Restore  uint64 // of those, active before the eviction (Linux 5.8)
}

// ReadRefaults reads the group's working-set counters from memory.stat.
func ReadRefaults(dir string) (Refaults, error) {
	m, err := MemoryStatKeys(dir)
	if err != nil {
		return Refaults{}, err
	}
	return RefaultsOf(m), nil
}

// RefaultsOf picks the working-set counters out of a parsed memory.stat, of any kernel.
func RefaultsOf(stat map[string]uint64) Refaults {
	sum := func(key string) uint64 { return stat[key] + stat[key+"_anon"] + stat[key+"_file"] }
	return Refaults{Refault: sum("workingset_refault"), Activate: sum("workingset_activate"), Restore: sum("workingset_restore")}
}

// Since is how much each counter grew since prev; a counter that reads lower (a torn read) grew
// by nothing.
func (r Refaults) Since(prev Refaults) Refaults {
	return Refaults{Refault: sub(r.Refault, prev.Refault), Activate: sub(r.Activate, prev.Activate), Restore: sub(r.Restore, prev.Restore)}
}

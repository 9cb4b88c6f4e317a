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
	s.Refaults = m["workingset_refault_file"] + m["workingset_refault_anon"]
	if _, ok := m["workingset_refault_file"]; !ok {
		s.Refaults = m["workingset_refault"] // before Linux 5.9
	}
	cache := m["active_file"] + m["inactive_file"]
	s.Reclaimable = sub(cache, m["file_dirty"]+m["file_writeback"])
	return s
}

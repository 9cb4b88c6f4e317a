package cgroup

import (
	"errors"
	"os"
)

// MemoryPeak reads memory.peak (Linux 5.19). On older kernels it returns ErrUnsupported.
func MemoryPeak(dir string) (uint64, error) {
	n, _, err := ReadUint(dir, "memory.peak")
	if errors.Is(err, os.ErrNotExist) {
		return 0, ErrUnsupported
	}
	return n, err
}

// MemoryCurrent reads memory.current.
func MemoryCurrent(dir string) (uint64, error) {
	n, _, err := ReadUint(dir, "memory.current")
	return n, err
}

// MemoryMax reads memory.max.
func MemoryMax(dir string) (Limit, error) {
	n, ok, err := ReadUint(dir, "memory.max")
	if err != nil {
		return Limit{}, err
	}
	if !ok {
		return Unlimited, nil
	}
	return Bytes(n), nil
}

// OOMKills counts the OOM killer's kills in memory.events counters: the group kills when the
// group was killed as a whole (memory.oom.group; oom_group_kill, Linux 5.17), else the processes
// killed (oom_kill). With memory.oom.group the kernel counts the victim in oom_kill once when it
// picks it and again when it kills the group, so oom_kill alone would say 2 for one kill of a
// one-process group.
func OOMKills(events map[string]uint64) uint64 {
	if n := events["oom_group_kill"]; n > 0 {
		return n
	}
	return events["oom_kill"]
}

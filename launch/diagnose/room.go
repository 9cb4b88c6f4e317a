package diagnose

import (
	"fmt"
	"path/filepath"

	"github.com/cgrun/cgrun/cgroup"
)

// Room makes room for a dump in the group dir and its leaf (which carries a copy of the
// limits): memory.high is lifted on both, so that the dumping process is not throttled, and
// with a headroom, memory.max is raised from limit (0: none set) by at most headroom, never
// above the lowest memory.max of dir's ancestors up to mount. It returns the memory.max written
// (0 when none was) and what it did, in words.
func Room(dir, leaf, mount string, high, limit, headroom uint64) (raised uint64, note string, err error) {
	var said []string
	if high != 0 {
		for _, d := range []string{dir, leaf} {
			if err := cgroup.SetMemoryHigh(d, cgroup.Unlimited); err != nil {
				return 0, "", err
			}
		}
		said = append(said, fmt.Sprintf("memory.high %s lifted", cgroup.FormatSize(high)))
	}
	if headroom != 0 && limit != 0 {
		parent, from := ancestorMax(dir, mount)
		raised = Raise(limit, headroom, parent)
		switch {
		case raised <= limit:
			raised = 0
			said = append(said, fmt.Sprintf("memory.max %s not raised: %s allows no more (memory.max %s)", cgroup.FormatSize(limit), from, cgroup.FormatSize(parent)))
		default:
			// The group first: the leaf's limit counts only within its parent's.
			for _, d := range []string{dir, leaf} {
				if err := cgroup.SetMemoryMax(d, cgroup.Bytes(raised)); err != nil {
					return 0, "", err
				}
			}
			s := fmt.Sprintf("memory.max raised from %s to %s", cgroup.FormatSize(limit), cgroup.FormatSize(raised))
			if raised < limit+headroom {
				s += fmt.Sprintf(" (not the whole --diagnose-headroom: %s allows no more)", from)
			}
			said = append(said, s)
		}
	}
	if len(said) == 0 {
		return 0, "", nil
	}
	note = said[0]
	for _, s := range said[1:] {
		note += "; " + s
	}
	return raised, note + " for the dump", nil
}

// Raise is the memory.max for a dump: limit plus headroom, but not above parent (0: no limit
// above).
func Raise(limit, headroom, parent uint64) uint64 {
	n := limit + headroom
	if n < limit { // overflow
		n = ^uint64(0)
	}
	if parent != 0 && n > parent {
		n = max(parent, limit)
	}
	return n
}

// ancestorMax is the lowest memory.max of dir's ancestors below mount (0 when all are max), and
// the group that sets it. A file that cannot be read counts as no limit: the kernel still
// enforces the real one, and the dump may then be OOM-killed sooner.
func ancestorMax(dir, mount string) (uint64, string) {
	var lowest uint64
	var from string
	for d := filepath.Dir(dir); len(d) > len(mount); d = filepath.Dir(d) {
		if n, ok, err := cgroup.ReadUint(d, "memory.max"); err == nil && ok && (lowest == 0 || n < lowest) {
			lowest, from = n, d
		}
	}
	return lowest, from
}

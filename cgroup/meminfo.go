package cgroup

import (
	"os"
	"strconv"
	"strings"
)

// HostHasSwap says whether /proc/meminfo counts any swap (SwapTotal above 0). Without swap,
// memory.high cannot push a command's anonymous memory out: one that grows past it is throttled
// almost to a stop instead of reaching memory.max, so advice names --memory-high only with swap.
// Unreadable, it says no, the safer answer.
func HostHasSwap() bool {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return false
	}
	return swapTotal(string(b)) > 0
}

// swapTotal is the SwapTotal figure of a /proc/meminfo text, in kB; 0 when it has none.
func swapTotal(meminfo string) uint64 {
	for _, line := range strings.Split(meminfo, "\n") {
		if v, ok := strings.CutPrefix(line, "SwapTotal:"); ok {
			f := strings.Fields(v)
			if len(f) == 0 {
				return 0
			}
			kb, _ := strconv.ParseUint(f[0], 10, 64) // 0 when it is not a number
			return kb
		}
	}
	return 0
}

package cgroup

import "testing"

func TestSwapTotal(t *testing.T) {
	for _, tc := range []struct {
		name, meminfo string
		want          uint64
	}{
		{"swap", "MemTotal:       24576000 kB\nSwapTotal:       2097148 kB\nSwapFree:        2097148 kB\n", 2097148},
		{"no swap", "MemTotal:       24576000 kB\nSwapTotal:             0 kB\n", 0},
		{"no line", "MemTotal:       24576000 kB\n", 0},
		{"garbage", "SwapTotal:       12x kB\n", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := swapTotal(tc.meminfo); got != tc.want {
				t.Errorf("swapTotal = %d, want %d", got, tc.want)
			}
		})
	}
}

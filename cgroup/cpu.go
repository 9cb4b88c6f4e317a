package cgroup

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// CPUMax is cpu.max: at most Quota of every Period of CPU time; Quota 0 means no limit.
type CPUMax struct {
	Quota  uint64 // microseconds
	Period uint64 // microseconds; 100000 unless set
}

// String is the value cpu.max takes: "150000 100000" or "max 100000".
func (c CPUMax) String() string {
	period := c.Period
	if period == 0 {
		period = 100000
	}
	if c.Quota == 0 {
		return fmt.Sprintf("max %d", period)
	}
	return fmt.Sprintf("%d %d", c.Quota, period)
}

// SetCPUMax writes cpu.max.
func SetCPUMax(dir string, c CPUMax) error { return writeFile(dir, "cpu.max", c.String()) }

// SetCPUWeight writes cpu.weight.
func SetCPUWeight(dir string, w uint64) error {
	return writeFile(dir, "cpu.weight", strconv.FormatUint(w, 10))
}

// ParseCPUQuota reads a CPU limit the way systemd reads CPUQuota=: a percentage of one CPU
// ("150%" is one and a half CPUs), or max.
func ParseCPUQuota(s string) (CPUMax, error) {
	in := strings.TrimSpace(s)
	if strings.EqualFold(in, "max") || strings.EqualFold(in, "infinity") {
		return CPUMax{Period: 100000}, nil
	}
	p, ok := strings.CutSuffix(in, "%")
	f, err := strconv.ParseFloat(p, 64)
	if !ok || err != nil || f <= 0 || f > 100000 || strings.ContainsAny(p, "eExX_+") {
		return CPUMax{}, fmt.Errorf("%w %q: want a percentage of one CPU such as 50%% or 150%%, or max", ErrBadValue, s)
	}
	q := uint64(f * 1000) // of a 100000 µs period
	if q < 1000 {
		q = 1000 // the kernel's minimum quota is 1ms
	}
	return CPUMax{Quota: q, Period: 100000}, nil
}

// ParseCPUWeight reads cpu.weight as systemd's CPUWeight=: 1 to 10000 (100 is the default).
func ParseCPUWeight(s string) (uint64, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 1 || n > 10000 {
		return 0, fmt.Errorf("%w %q: want a CPU weight from 1 to 10000 (the default is 100)", ErrBadValue, s)
	}
	return n, nil
}

// CPUStat is the time a group's processes spent on CPU (cpu.stat, present in every cgroup v2
// group whether or not the cpu controller is on).
type CPUStat struct {
	UserUsec, SystemUsec uint64
}

// ReadCPUStat reads user_usec and system_usec from cpu.stat of the group at dir.
func ReadCPUStat(dir string) (CPUStat, error) {
	m, err := ReadKeyed(dir, "cpu.stat")
	if errors.Is(err, os.ErrNotExist) {
		return CPUStat{}, ErrUnsupported
	}
	if err != nil {
		return CPUStat{}, fmt.Errorf("read cpu.stat of %s: %w", dir, err)
	}
	return CPUStat{UserUsec: m["user_usec"], SystemUsec: m["system_usec"]}, nil
}

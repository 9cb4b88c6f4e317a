package cgroup

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// unifiedFiles are the files of the memory, pids and cpu controllers that an OCI "unified" map
// may set. Other controllers are not enabled by cgrun, and cgroup.* files are cgrun's own.
func unifiedFiles() []string {
	return []string{
		"memory.min", "memory.low", "memory.high", "memory.max", "memory.swap.high", "memory.swap.max",
		"memory.zswap.max", "memory.oom.group", "pids.max",
		"cpu.max", "cpu.max.burst", "cpu.weight", "cpu.weight.nice", "cpu.idle", "cpu.uclamp.min", "cpu.uclamp.max",
	}
}

// ParseOCIResources reads an OCI runtime-spec LinuxResources document (the "resources" object of
// a container's config.json) into limits: memory limit, reservation (memory.low) and swap, pids
// limit, cpu quota, period and shares, and the "unified" map of cgroup v2 files. An unknown key,
// a bad value, or a setting cgroup v2 or cgrun cannot honour is an error that names the key.
func ParseOCIResources(data []byte, total uint64) (Limits, error) {
	var r specs.LinuxResources
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te) && te.Field == "":
			return Limits{}, fmt.Errorf("not a LinuxResources JSON object: the file holds a JSON %s; want an object such as {\"memory\":{\"limit\":268435456}}", te.Value)
		case errors.As(err, &te):
			return Limits{}, fmt.Errorf("key %q: %s is not a valid %s", te.Field, te.Value, te.Type)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return Limits{}, fmt.Errorf("unknown key %s: LinuxResources takes memory, cpu, pids and unified",
				strings.TrimPrefix(err.Error(), "json: unknown field "))
		}
		return Limits{}, fmt.Errorf("not a LinuxResources JSON object: %w", err)
	}
	if dec.More() {
		return Limits{}, errors.New("trailing data after the JSON object")
	}
	unsupported := map[string]bool{
		"devices": len(r.Devices) > 0, "blockIO": r.BlockIO != nil, "hugepageLimits": len(r.HugepageLimits) > 0,
		"network": r.Network != nil, "rdma": len(r.Rdma) > 0,
	}
	l := Limits{OOMGroup: true}
	if m := r.Memory; m != nil {
		unsupported["memory.kernel"] = m.Kernel != nil
		unsupported["memory.kernelTCP"] = m.KernelTCP != nil
		unsupported["memory.swappiness"] = m.Swappiness != nil
		unsupported["memory.disableOOMKiller"] = m.DisableOOMKiller != nil
		l.MemoryMax = ociBytes(m.Limit)
		l.MemoryLow = ociBytes(m.Reservation)
		if m.Swap != nil {
			// OCI's swap is memory plus swap; cgroup v2's memory.swap.max is swap alone.
			switch {
			case *m.Swap == -1:
				l.MemorySwapMax = Unlimited
			case m.Limit == nil || *m.Limit < 0:
				return Limits{}, errors.New("key \"memory.swap\": needs a memory.limit, since OCI's swap is memory + swap")
			case *m.Swap < *m.Limit:
				return Limits{}, fmt.Errorf("key \"memory.swap\": %d is below memory.limit %d (OCI's swap is memory + swap)", *m.Swap, *m.Limit)
			default:
				l.MemorySwapMax = Bytes(uint64(*m.Swap - *m.Limit))
			}
		}
		for k, v := range map[string]*int64{"memory.limit": m.Limit, "memory.reservation": m.Reservation} {
			if v != nil && *v < -1 {
				return Limits{}, fmt.Errorf("key %q: %d is not a size in bytes or -1", k, *v)
			}
		}
	}
	if p := r.Pids; p != nil {
		l.PidsMax = Unlimited
		if p.Limit != nil && *p.Limit > 0 {
			n, err := ParseCount(strconv.FormatInt(*p.Limit, 10))
			if err != nil {
				return Limits{}, fmt.Errorf("key \"pids.limit\": %w", err)
			}
			l.PidsMax = n
		}
	}
	if c := r.CPU; c != nil {
		unsupported["cpu.cpus"] = c.Cpus != ""
		unsupported["cpu.mems"] = c.Mems != ""
		unsupported["cpu.realtimeRuntime"] = c.RealtimeRuntime != nil
		unsupported["cpu.realtimePeriod"] = c.RealtimePeriod != nil
		unsupported["cpu.burst"] = c.Burst != nil
		unsupported["cpu.idle"] = c.Idle != nil
		if c.Quota != nil || c.Period != nil {
			max := CPUMax{Period: 100000}
			if c.Period != nil {
				if *c.Period < 1000 || *c.Period > 1000000 {
					return Limits{}, fmt.Errorf("key \"cpu.period\": %d µs is outside 1000..1000000", *c.Period)
				}
				max.Period = *c.Period
			}
			if c.Quota != nil && *c.Quota > 0 {
				if *c.Quota < 1000 {
					return Limits{}, fmt.Errorf("key \"cpu.quota\": %d µs is below the kernel's 1000", *c.Quota)
				}
				max.Quota = uint64(*c.Quota)
			}
			l.CPUMax = &max
		}
		if c.Shares != nil {
			// runc's conversion of cgroup v1 shares (2..262144) to cgroup v2 weight (1..10000).
			if *c.Shares < 2 || *c.Shares > 262144 {
				return Limits{}, fmt.Errorf("key \"cpu.shares\": %d is outside 2..262144", *c.Shares)
			}
			l.CPUWeight = 1 + ((*c.Shares-2)*9999)/262142
		}
	}
	var bad []string
	for k, on := range unsupported {
		if on {
			bad = append(bad, k)
		}
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		return Limits{}, fmt.Errorf("key %q: not supported by cgrun on cgroup v2 (it sets memory, pids and cpu limits)", bad[0])
	}
	if err := l.applyUnified(r.Unified, total); err != nil {
		return Limits{}, err
	}
	return l, l.Validate()
}

// applyUnified takes the unified map: the files cgrun knows as fields go into them (so that
// they are validated and flags can override them); the others are written as they are.
func (l *Limits) applyUnified(u map[string]string, total uint64) error {
	for _, k := range slices.Sorted(maps.Keys(u)) {
		v := strings.TrimSpace(u[k])
		if !slices.Contains(unifiedFiles(), k) {
			return fmt.Errorf("unified key %q: not a memory, pids or cpu file cgrun can set (one of %s)", k, strings.Join(unifiedFiles(), ", "))
		}
		var err error
		switch k {
		case "memory.max":
			l.MemoryMax, err = ParseSize(v, total)
		case "memory.high":
			l.MemoryHigh, err = ParseSize(v, total)
		case "memory.low":
			l.MemoryLow, err = ParseSize(v, total)
		case "memory.swap.max":
			l.MemorySwapMax, err = ParseSize(v, total)
		case "pids.max":
			l.PidsMax, err = ParseCount(v)
		case "memory.oom.group":
			if v != "0" && v != "1" {
				err = fmt.Errorf("want 0 or 1, not %q", v)
			}
			l.OOMGroup = v == "1"
		case "cpu.weight":
			l.CPUWeight, err = ParseCPUWeight(v)
		case "cpu.max":
			var m CPUMax
			m, err = parseCPUMaxFile(v)
			l.CPUMax = &m
		default:
			if v == "" || strings.ContainsAny(v, "\n") {
				err = fmt.Errorf("want a one-line value, not %q", v)
			}
			if l.Unified == nil {
				l.Unified = map[string]string{}
			}
			l.Unified[k] = v
		}
		if err != nil {
			return fmt.Errorf("unified key %q: %w", k, err)
		}
	}
	return nil
}

// parseCPUMaxFile reads cpu.max's own format: "QUOTA PERIOD" or "max PERIOD" or "QUOTA".
func parseCPUMaxFile(s string) (CPUMax, error) {
	f := strings.Fields(s)
	if len(f) < 1 || len(f) > 2 {
		return CPUMax{}, fmt.Errorf("want \"QUOTA PERIOD\", not %q", s)
	}
	m := CPUMax{Period: 100000}
	if len(f) == 2 {
		p, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil || p < 1000 || p > 1000000 {
			return CPUMax{}, fmt.Errorf("period %q: want 1000..1000000 µs", f[1])
		}
		m.Period = p
	}
	if f[0] != "max" {
		q, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil || q < 1000 {
			return CPUMax{}, fmt.Errorf("quota %q: want max or at least 1000 µs", f[0])
		}
		m.Quota = q
	}
	return m, nil
}

func ociBytes(v *int64) Limit {
	switch {
	case v == nil:
		return Limit{}
	case *v < 0:
		return Unlimited
	}
	return Bytes(uint64(*v))
}

package cgroup

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Limit is a memory or pids limit: a number, or no limit at all ("max").
// The zero value means "not set": cgrun leaves the kernel's value alone.
type Limit struct {
	Set   bool
	Max   bool   // no limit: the kernel's "max"
	Value uint64 // bytes (memory) or a count (pids) when !Max
}

// Unlimited is the limit written as "max".
var Unlimited = Limit{Set: true, Max: true}

// Bytes is a limit of n.
func Bytes(n uint64) Limit { return Limit{Set: true, Value: n} }

// String is the value as the kernel's files take it: a decimal number or "max".
func (l Limit) String() string {
	switch {
	case !l.Set:
		return ""
	case l.Max:
		return "max"
	}
	return strconv.FormatUint(l.Value, 10)
}

// Human is the limit for people: 64M, 1.5G, max.
func (l Limit) Human() string {
	switch {
	case !l.Set:
		return "unset"
	case l.Max:
		return "max"
	}
	return FormatSize(l.Value)
}

// Above reports whether l is a larger limit than m; "max" is above every number.
func (l Limit) Above(m Limit) bool {
	switch {
	case !l.Set || !m.Set || m.Max:
		return false
	case l.Max:
		return true
	}
	return l.Value > m.Value
}

// ErrBadSize is wrapped by every size that ParseSize refuses.
var ErrBadSize = errors.New("bad size")

// ErrBadValue is wrapped by every count, CPU share or weight that ParseCount, ParseCPUMax and
// ParseCPUWeight refuse.
var ErrBadValue = errors.New("bad value")

// ParseSize reads a memory size the way systemd reads MemoryMax=: bytes, or a number with K, M, G,
// T, P or E (base 1024, an optional B or iB after it, fractions allowed: 1.5G), "infinity" or
// "max", or a percentage ("75%") of total: the memory there is, in bytes.
func ParseSize(s string, total uint64) (Limit, error) {
	in := strings.TrimSpace(s)
	bad := func(why string) (Limit, error) {
		return Limit{}, fmt.Errorf("%w %q: %s (want bytes, a number with K, M, G, T, P or E, a percentage such as 75%%, or max)", ErrBadSize, s, why)
	}
	switch strings.ToLower(in) {
	case "":
		return bad("empty")
	case "max", "infinity":
		return Unlimited, nil
	}
	if strings.HasPrefix(in, "-") {
		return bad("sizes cannot be negative")
	}
	if p, ok := strings.CutSuffix(in, "%"); ok {
		f, err := strconv.ParseFloat(p, 64)
		if err != nil || math.IsNaN(f) || f < 0 || f > 100 || strings.ContainsAny(p, "eEx_+") {
			return bad("a percentage must be a number from 0 to 100")
		}
		return Bytes(uint64(float64(total) * f / 100)), nil
	}
	i := strings.IndexFunc(in, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(in)
	}
	num, unit := in[:i], strings.ToUpper(strings.TrimSpace(in[i:]))
	shift, ok := unitShift(unit)
	if !ok {
		return bad("unknown unit " + strconv.Quote(in[i:]))
	}
	if num == "" || num == "." || strings.Count(num, ".") > 1 {
		return bad("not a number")
	}
	if shift == 0 && strings.Contains(num, ".") {
		return bad("a number of bytes must be whole")
	}
	whole, frac, _ := strings.Cut(num, ".")
	w, err := strconv.ParseUint(orZero(whole), 10, 64)
	if errors.Is(err, strconv.ErrRange) {
		return bad("too large: the kernel takes sizes below 8E; use max for no limit")
	}
	if err != nil {
		return bad("not a number")
	}
	if shift > 0 && w > math.MaxUint64>>shift {
		return bad("too large")
	}
	v := w << shift
	if frac != "" {
		f, err := strconv.ParseFloat("0."+frac, 64)
		if err != nil {
			return bad("not a number")
		}
		// f < 1, but its product may round up to a whole unit: 15.99999999999999999E is 16E,
		// which is past what 64 bits hold.
		add := f * float64(uint64(1)<<shift)
		if add >= float64(uint64(1)<<shift) || v+uint64(add) < v {
			return bad("too large")
		}
		v += uint64(add)
	}
	// The kernel takes up to 2^63-1 bytes (a page count in a long); larger numbers would reach
	// it as negative ones.
	if v > math.MaxInt64 {
		return bad("too large: the kernel takes sizes below 8E; use max for no limit")
	}
	return Bytes(v), nil
}

// unitShift is the power of 1024 (as a bit shift) of a size unit, upper case.
func unitShift(unit string) (uint, bool) {
	switch strings.TrimSuffix(strings.TrimSuffix(unit, "B"), "I") {
	case "":
		return 0, unit == "" || unit == "B"
	case "K":
		return 10, true
	case "M":
		return 20, true
	case "G":
		return 30, true
	case "T":
		return 40, true
	case "P":
		return 50, true
	case "E":
		return 60, true
	}
	return 0, false
}

func orZero(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

// PidsLimit is the largest number pids.max takes: PID_MAX_LIMIT on 64-bit Linux (4194304); the
// kernel refuses anything above it with EINVAL.
const PidsLimit = 4 << 20

// ParseCount reads a pids.max: a whole number from 1 to PidsLimit, "max" or "infinity". 0 is
// refused: the command itself is one of the processes pids.max counts, and could not start.
func ParseCount(s string) (Limit, error) {
	in := strings.TrimSpace(s)
	switch strings.ToLower(in) {
	case "max", "infinity":
		return Unlimited, nil
	}
	n, err := strconv.ParseUint(in, 10, 64)
	switch {
	case errors.Is(err, strconv.ErrRange) || err == nil && n > PidsLimit:
		return Limit{}, fmt.Errorf("%w %q: above the kernel's largest pids.max, %d; use max for no limit", ErrBadValue, s, PidsLimit)
	case err != nil || strings.HasPrefix(in, "+"):
		return Limit{}, fmt.Errorf("%w %q: want a whole number or max", ErrBadValue, s)
	case n == 0:
		return Limit{}, fmt.Errorf("%w %q: 0 leaves no room for the command itself, which pids.max counts too; use 1 or more", ErrBadValue, s)
	}
	return Limit{Set: true, Value: n}, nil
}

// FormatSize writes n bytes the way ParseSize reads them, for people: 64M, 1.5G, 4096 — to one
// decimal, so 64M and 4K more also reads 64M.
func FormatSize(n uint64) string {
	units := []string{"E", "P", "T", "G", "M", "K"}
	for i, u := range units {
		shift := uint(60 - 10*i)
		if n < 1<<shift {
			continue
		}
		if n%(1<<shift) == 0 {
			return strconv.FormatUint(n>>shift, 10) + u
		}
		f := float64(n) / float64(uint64(1)<<shift)
		return strings.TrimSuffix(strconv.FormatFloat(f, 'f', 1, 64), ".0") + u
	}
	return strconv.FormatUint(n, 10)
}

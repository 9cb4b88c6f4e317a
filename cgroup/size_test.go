package cgroup_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/cgrun/cgrun/cgroup"
)

func TestParseSize(t *testing.T) {
	const phys = 8 << 30
	success := []struct {
		in   string
		want cgroup.Limit
	}{
		{"0", cgroup.Bytes(0)},
		{"4096", cgroup.Bytes(4096)},
		{"64K", cgroup.Bytes(64 << 10)},
		{"64M", cgroup.Bytes(64 << 20)},
		{"64m", cgroup.Bytes(64 << 20)},
		{"64MB", cgroup.Bytes(64 << 20)},
		{"64MiB", cgroup.Bytes(64 << 20)},
		{"2G", cgroup.Bytes(2 << 30)},
		{"1.5G", cgroup.Bytes(3 << 29)},
		{".5G", cgroup.Bytes(1 << 29)},
		{"1T", cgroup.Bytes(1 << 40)},
		{" 12M ", cgroup.Bytes(12 << 20)},
		{"100B", cgroup.Bytes(100)},
		{"max", cgroup.Unlimited},
		{"infinity", cgroup.Unlimited},
		{"MAX", cgroup.Unlimited},
		{"75%", cgroup.Bytes(6 << 30)},
		{"12.5%", cgroup.Bytes(1 << 30)},
		{"0%", cgroup.Bytes(0)},
		{"100%", cgroup.Bytes(phys)},
		{"7.5E", cgroup.Bytes(15 << 59)},
		{"9223372036854775807", cgroup.Bytes(1<<63 - 1)},
	}
	for _, tc := range success {
		have, err := cgroup.ParseSize(tc.in, phys)
		if err != nil || have != tc.want {
			t.Errorf("ParseSize(%q) = %+v, %v; want %+v", tc.in, have, err, tc.want)
		}
	}
	failure := []string{"", "abc", "12X", "-1", "-1M", "1.5", "1..5G", "1.2.3M", "101%", "-5%", "abc%", "1e3", "0x10",
		"16E", "99999999999999999999", "M", ".", "1 2M", "NaN%", "inf%",
		"15.99999999999999999E", "15.9999999999999999999999E", "8E", "9E", "15.5E", "9223372036854775808"}
	for _, in := range failure {
		if have, err := cgroup.ParseSize(in, phys); !errors.Is(err, cgroup.ErrBadSize) {
			t.Errorf("ParseSize(%q) = %+v, %v; want ErrBadSize", in, have, err)
		}
	}
	// The line says why, in the user's words.
	for in, why := range map[string]string{"-5M": "sizes cannot be negative", "-1": "sizes cannot be negative",
		"15.99999999999999999E": "too large", "16E": "too large", "9E": "use max", "99999999999999999999": "too large: the kernel takes sizes below 8E"} {
		if _, err := cgroup.ParseSize(in, phys); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("ParseSize(%q): %v; want it to say %q", in, err, why)
		}
	}
}

func TestParseCount(t *testing.T) {
	for in, want := range map[string]cgroup.Limit{"1": {Set: true, Value: 1}, "64": {Set: true, Value: 64}, "4194304": {Set: true, Value: 4194304}, "max": cgroup.Unlimited, "infinity": cgroup.Unlimited} {
		if have, err := cgroup.ParseCount(in); err != nil || have != want {
			t.Errorf("ParseCount(%q) = %+v, %v; want %+v", in, have, err, want)
		}
	}
	for _, in := range []string{"", "-1", "+5", "1.5", "12K", "lots", "0", "4194305", "9223372036854775808", "99999999999999999999999"} {
		if _, err := cgroup.ParseCount(in); !errors.Is(err, cgroup.ErrBadValue) {
			t.Errorf("ParseCount(%q): %v, want ErrBadValue", in, err)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[uint64]string{0: "0", 1000: "1000", 1024: "1K", 64 << 20: "64M", 3 << 29: "1.5G", 1 << 40: "1T", 1<<20 + 1: "1M", 1<<20 + 200<<10: "1.2M"} {
		if have := cgroup.FormatSize(n); have != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, have, want)
		}
	}
}

func TestLimitsValidate(t *testing.T) {
	for _, tc := range []struct {
		l  cgroup.Limits
		ok bool
	}{
		{cgroup.Limits{}, true},
		{cgroup.Limits{MemoryMax: cgroup.Bytes(64 << 20), MemoryHigh: cgroup.Bytes(32 << 20)}, true},
		{cgroup.Limits{MemoryMax: cgroup.Bytes(64 << 20), MemoryHigh: cgroup.Bytes(64 << 20)}, true},
		{cgroup.Limits{MemoryMax: cgroup.Unlimited, MemoryHigh: cgroup.Bytes(64 << 20)}, true},
		{cgroup.Limits{MemoryHigh: cgroup.Unlimited}, true},
		{cgroup.Limits{MemoryMax: cgroup.Bytes(64 << 20), MemoryHigh: cgroup.Bytes(65 << 20)}, false},
		{cgroup.Limits{MemoryMax: cgroup.Bytes(64 << 20), MemoryHigh: cgroup.Unlimited}, false},
		{cgroup.Limits{MemoryMax: cgroup.Bytes(64 << 20), MemoryLow: cgroup.Bytes(65 << 20)}, false},
	} {
		if err := tc.l.Validate(); (err == nil) != tc.ok {
			t.Errorf("%v: Validate() = %v, want ok=%v", tc.l, err, tc.ok)
		}
	}
}

// FuzzParseSize checks that every accepted size round-trips through FormatSize to within the
// precision FormatSize keeps, and that nothing panics.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"64M", "1.5G", "75%", "max", "4096", "1e3", "9999999999999999999E", ".5K"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := cgroup.ParseSize(s, 8<<30)
		if err != nil {
			if !errors.Is(err, cgroup.ErrBadSize) {
				t.Fatalf("ParseSize(%q): error %v does not wrap ErrBadSize", s, err)
			}
			return
		}
		if !l.Set {
			t.Fatalf("ParseSize(%q) accepted but returned an unset limit", s)
		}
		if l.Max || l.Value >= 79<<60/10 {
			return // FormatSize rounds sizes from 7.95E up to "8E", one past the largest size
		}
		back, err := cgroup.ParseSize(cgroup.FormatSize(l.Value), 8<<30)
		if err != nil {
			t.Fatalf("FormatSize(%d) = %q does not parse: %v", l.Value, cgroup.FormatSize(l.Value), err)
		}
		diff := int64(back.Value) - int64(l.Value)
		if diff < 0 {
			diff = -diff
		}
		if uint64(diff) > l.Value/10+1 {
			t.Fatalf("%q = %d, formatted %q = %d", s, l.Value, cgroup.FormatSize(l.Value), back.Value)
		}
	})
}

package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/launch/logline"
	"github.com/cgrun/cgrun/launch/state"
)

func TestEscapeKeepsControlsOffTheTerminal(t *testing.T) {
	for in, want := range map[string]string{
		"worker":                 "worker",
		"\x1b]0;pwned\a\x1b[2J":  `\x1b]0;pwned\a\x1b[2J`,
		"tab\there":              `tab\there`,
		"csi\u009b2J":            `csi\u009b2J`,
		"del\x7f":                `del\x7f`,
		"bad\xffbyte":            `bad\xffbyte`,
		"é and \uFFFD stay":      "é and \uFFFD stay",
		"php-fpm: pool www (ok)": "php-fpm: pool www (ok)",
	} {
		if have := logline.Escape(in); have != want {
			t.Errorf("escape(%q) = %q, want %q", in, have, want)
		}
	}
}

func TestEscapeJSONKeepsItJSON(t *testing.T) {
	in := []string{"\x1b[2J", "csi\u009b2J", "del\x7f", "é"}
	b, _ := json.Marshal(in)
	out := escapeJSON(b)
	for _, c := range []string{"\x1b", "\u009b", "\x7f"} {
		if json.Valid(out) && !strings.Contains(string(out), c) {
			continue
		}
		t.Errorf("escapeJSON(%s) = %s: still holds %q or is not JSON", b, out, c)
	}
	var back []string
	if err := json.Unmarshal(out, &back); err != nil || len(back) != len(in) {
		t.Fatalf("escapeJSON output %s does not read back: %v", out, err)
	}
	for i := range in {
		if back[i] != in[i] {
			t.Errorf("read back %q, want %q", back[i], in[i])
		}
	}
}

// TestUptimeOfAFutureStartIsZero: a state that says it started in the future (the clock was set
// back, or its writer says so) shows up 0s, not a negative uptime.
func TestUptimeOfAFutureStartIsZero(t *testing.T) {
	future := time.Now().Add(time.Hour).Format(time.RFC3339Nano)
	sb := describeSandbox(cgroup.Hierarchy{}, state.State{Name: "x", Started: future, GenerationStarted: future}, false)
	if sb.UptimeSeconds != 0 || sb.GenerationSeconds != 0 {
		t.Errorf("uptime %v, generation uptime %v; want 0 for a start in the future", sb.UptimeSeconds, sb.GenerationSeconds)
	}
}

// TestStopWait: stop waits what --timeout says; by default 30s, and longer for a run whose own
// --stop-timeout is longer (it exits only after its group's kill).
func TestStopWait(t *testing.T) {
	for _, tc := range []struct {
		stopTimeout float64
		timeout     time.Duration
		given       bool
		want        time.Duration
	}{
		{0, 30 * time.Second, false, 30 * time.Second},
		{10, 30 * time.Second, false, 30 * time.Second},
		{45, 30 * time.Second, false, 50 * time.Second},
		{45, 5 * time.Second, true, 5 * time.Second},
		{45, 0, true, 0},
	} {
		if have := stopWait(state.State{StopTimeout: tc.stopTimeout}, tc.timeout, tc.given); have != tc.want {
			t.Errorf("--stop-timeout %vs, --timeout %v (given %v): %v, want %v", tc.stopTimeout, tc.timeout, tc.given, have, tc.want)
		}
	}
}

// TestLimitsBetweenGenerations: in a restart's gap, with no group to read, ps and status show
// the limits the next generation gets, not "max" (a crash-looping worker looked unlimited).
func TestLimitsBetweenGenerations(t *testing.T) {
	s := state.State{Name: "x", Limits: map[string]string{"memory.max": "67108864", "memory.high": "max"}}
	sb := describeSandbox(cgroup.Hierarchy{}, s, false)
	if sb.MemoryMax == nil || *sb.MemoryMax != 64<<20 || sb.MemoryHigh != nil {
		t.Errorf("memory.max %v, memory.high %v; want 64M and max (null)", sb.MemoryMax, sb.MemoryHigh)
	}
	if sb := describeSandbox(cgroup.Hierarchy{}, state.State{Name: "x"}, false); sb.MemoryMax != nil || sb.MemoryHigh != nil {
		t.Errorf("no limits: memory.max %v, memory.high %v; want both max (null)", sb.MemoryMax, sb.MemoryHigh)
	}
}

// TestLimitText: status shows memory limits as sizes, and the rest as the kernel's files have
// them.
func TestLimitText(t *testing.T) {
	for _, tc := range [][3]string{
		{"memory.max", "134217728", "128M"},
		{"memory.high", "100663296", "96M"},
		{"memory.swap.max", "0", "0"},
		{"memory.low", "1610612736", "1.5G"},
		{"memory.max", "max", "max"},
		{"memory.oom.group", "1", "1"},
		{"pids.max", "1024", "1024"},
		{"cpu.max", "50000 100000", "50000 100000"},
	} {
		if got := limitText(tc[0], tc[1]); got != tc[2] {
			t.Errorf("limitText(%s, %s) = %q, want %q", tc[0], tc[1], got, tc[2])
		}
	}
}

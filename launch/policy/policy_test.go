package policy

import (
	"testing"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"golang.org/x/sys/unix"
)

func exitedWith(code int) unix.WaitStatus      { return unix.WaitStatus(code << 8) }
func killedBy(sig unix.Signal) unix.WaitStatus { return unix.WaitStatus(sig) }

func TestReasonToRestart(t *testing.T) {
	type outcome struct {
		status  unix.WaitStatus
		oomKill uint64
	}
	oom := outcome{killedBy(unix.SIGKILL), 1}
	clean := outcome{exitedWith(0), 0}
	failed := outcome{exitedWith(3), 0}
	term := outcome{killedBy(unix.SIGTERM), 0}
	abort := outcome{killedBy(unix.SIGABRT), 0}
	shellAbort := outcome{exitedWith(134), 0}
	for _, tc := range []struct {
		policy   Restart
		out      outcome
		recycled Reason
		want     Reason
	}{
		{RestartNever, oom, "", ""},
		{RestartNever, clean, "lifetime", "lifetime"},
		{RestartOnOOM, oom, "", "oom_kill"},
		{RestartOnOOM, failed, "", ""},
		{RestartOnOOM, clean, "", ""},
		{RestartOnOOM, term, "", ""},
		{RestartOnOOM, abort, "", "abort"},
		{RestartOnOOM, shellAbort, "", "abort"},
		{RestartNever, abort, "", ""},
		{RestartOnFailure, abort, "", "abort"},
		{RestartAlways, shellAbort, "", "abort"},
		{RestartOnFailure, oom, "", "oom_kill"},
		{RestartOnFailure, failed, "", "failure"},
		{RestartOnFailure, term, "", "failure"},
		{RestartOnFailure, clean, "", ""},
		{RestartAlways, clean, "", "exit"},
		{RestartAlways, failed, "", "failure"},
		{RestartAlways, clean, "health", "health"},
	} {
		p := DefaultPolicy()
		p.Restart = tc.policy
		if have := NewRestarts(p).Why(tc.out.status, tc.out.oomKill, tc.recycled); have != tc.want {
			t.Errorf("%s, status %#x, recycled %q: %q, want %q", tc.policy, tc.out.status, tc.recycled, have, tc.want)
		}
	}
}

func TestRestartsBackoffAndLimit(t *testing.T) {
	p := DefaultPolicy()
	p.RestartDelay, p.RestartDelayMax, p.MinUptime = 100*time.Millisecond, 500*time.Millisecond, 10*time.Second
	p.MaxRestarts, p.RestartWindow = 6, time.Minute
	r := NewRestarts(p)
	now := time.Unix(1000, 0)
	want := []time.Duration{100, 200, 400, 500, 500}
	for i, w := range want {
		d, ok := r.Next(now.Add(time.Duration(i)*time.Second), time.Second)
		if !ok || d != w*time.Millisecond {
			t.Errorf("restart %d: delay %v ok %v, want %v", i+1, d, ok, w*time.Millisecond)
		}
	}
	// A long-lived generation resets the delay.
	if d, ok := r.Next(now.Add(5*time.Second), time.Minute); !ok || d != 100*time.Millisecond {
		t.Errorf("after a long run: delay %v ok %v, want 100ms", d, ok)
	}
	// The seventh restart within the minute hits the limit; once the window has moved on it is allowed.
	if _, ok := r.Next(now.Add(6*time.Second), time.Second); ok {
		t.Error("restart 7 within the window was allowed")
	}
	if _, ok := r.Next(now.Add(62*time.Second), time.Second); !ok {
		t.Error("a restart after the window moved on was refused")
	}
}

func TestRestartsNoLimit(t *testing.T) {
	p := DefaultPolicy()
	p.MaxRestarts = 0
	r := NewRestarts(p)
	for i := 0; i < 1000; i++ {
		if _, ok := r.Next(time.Unix(0, 0), 0); !ok {
			t.Fatalf("restart %d refused with --max-restarts 0", i)
		}
	}
}

func TestWindow(t *testing.T) {
	w := window{span: 5 * time.Second}
	t0 := time.Unix(0, 0)
	for _, tc := range []struct {
		at      time.Duration
		total   uint64
		grew    uint64
		covered time.Duration
	}{
		{0, 10, 0, 0},
		{time.Second, 30, 20, time.Second},
		{3 * time.Second, 50, 40, 3 * time.Second},
		{6 * time.Second, 80, 50, 5 * time.Second}, // measured from the sample at 1s, the one at or before 6s-5s
		{20 * time.Second, 81, 1, 14 * time.Second},
	} {
		grew, covered := w.add(t0.Add(tc.at), tc.total)
		if grew != tc.grew || covered != tc.covered {
			t.Errorf("at %v total %d: grew %d over %v, want %d over %v", tc.at, tc.total, grew, covered, tc.grew, tc.covered)
		}
	}
}

func TestPolicyValidate(t *testing.T) {
	max64 := cgroup.Limits{MemoryMax: cgroup.Bytes(64 << 20)}
	for _, tc := range []struct {
		name string
		edit func(*Policy)
		l    cgroup.Limits
		ok   bool
	}{
		{"defaults", func(*Policy) {}, cgroup.Limits{}, true},
		{"jitter without lifetime", func(p *Policy) { p.LifetimeJitter = time.Second }, cgroup.Limits{}, false},
		{"delay max below delay", func(p *Policy) { p.RestartDelay = time.Minute }, cgroup.Limits{}, false},
		{"recycle-above above max", func(p *Policy) { p.RecycleAbove = cgroup.Bytes(65 << 20) }, max64, false},
		{"recycle-above at max", func(p *Policy) { p.RecycleAbove = cgroup.Bytes(64 << 20) }, max64, true},
		{"recycle-above max", func(p *Policy) { p.RecycleAbove = cgroup.Unlimited }, cgroup.Limits{}, false},
		{"recycle-above too small", func(p *Policy) { p.RecycleAbove = cgroup.Bytes(100) }, cgroup.Limits{}, false},
		{"recycle-above at the smallest", func(p *Policy) { p.RecycleAbove = cgroup.Bytes(cgroup.MinMemory) }, cgroup.Limits{}, true},
		{"health both", func(p *Policy) { p.Health.Cmd, p.Health.URL = "true", "http://x/" }, cgroup.Limits{}, false},
		{"health zero retries", func(p *Policy) { p.Health.Cmd, p.Health.Retries = "true", 0 }, cgroup.Limits{}, false},
		{"negative max restarts", func(p *Policy) { p.MaxRestarts = -1 }, cgroup.Limits{}, false},
		{"a start limit with no window", func(p *Policy) { p.RestartWindow = 0 }, cgroup.Limits{}, false},
		{"no start limit, no window", func(p *Policy) { p.MaxRestarts, p.RestartWindow = 0, 0 }, cgroup.Limits{}, true},
		{"health port too large", func(p *Policy) { p.Health.URL = "http://127.0.0.1:99999/" }, cgroup.Limits{}, false},
		{"health port 0", func(p *Policy) { p.Health.URL = "http://127.0.0.1:0/" }, cgroup.Limits{}, false},
		{"health port named", func(p *Policy) { p.Health.URL = "http://127.0.0.1:http/" }, cgroup.Limits{}, false},
		{"health port", func(p *Policy) { p.Health.URL = "https://[::1]:8443/healthz" }, cgroup.Limits{}, true},
		{"health no port", func(p *Policy) { p.Health.URL = "http://localhost/healthz" }, cgroup.Limits{}, true},
	} {
		p := DefaultPolicy()
		tc.edit(&p)
		if err := p.Validate(tc.l); (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestParseRestart(t *testing.T) {
	for _, in := range []string{"never", "no", "on-oom", "on-failure", "always"} {
		if _, err := ParseRestart(in); err != nil {
			t.Errorf("ParseRestart(%q): %v", in, err)
		}
	}
	if _, err := ParseRestart("sometimes"); err == nil {
		t.Error("ParseRestart(sometimes) accepted")
	}
}

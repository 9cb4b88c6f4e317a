package policy

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestHealthVerdicts(t *testing.T) {
	h := HealthCheck{Cmd: "true", Interval: time.Second, Timeout: 2 * time.Second, Retries: 3}
	for _, tc := range []struct {
		name string
		have Probe
		want Probe
	}{
		{"exit 0", h.CommandResult(exitedWith(0), time.Second), Probe{OK: true}},
		{"exit 1", h.CommandResult(exitedWith(1), time.Second), Probe{Why: "exit status 1"}},
		{"killed", h.CommandResult(killedBy(unix.SIGKILL), time.Second), Probe{Why: "killed by SIGKILL"}},
		{"exit 0 too late", h.CommandResult(exitedWith(0), 3*time.Second), Probe{Why: "timed out after 2s"}},
		{"HTTP 200", HTTPResult(200, "200 OK", nil), Probe{OK: true}},
		{"HTTP 302", HTTPResult(302, "302 Found", nil), Probe{OK: true}},
		{"HTTP 503", HTTPResult(503, "503 Service Unavailable", nil), Probe{Why: "HTTP 503 Service Unavailable"}},
		{"HTTP timeout", HTTPResult(0, "", fmt.Errorf("get: %w", context.DeadlineExceeded)), Probe{Why: "timed out"}},
		{"HTTP refused", HTTPResult(0, "", errors.New("connection refused")), Probe{Why: "connection refused"}},
	} {
		if tc.have != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, tc.have, tc.want)
		}
	}
}

func TestHealthCount(t *testing.T) {
	h := HealthCheck{Cmd: "true", Interval: time.Second, Timeout: time.Second, Retries: 3, StartPeriod: 10 * time.Second}
	c := NewHealthCount(h)
	bad, good := Probe{Why: "exit status 1"}, Probe{OK: true}
	for i, tc := range []struct {
		p         Probe
		uptime    time.Duration
		unhealthy bool
		fails     int
	}{
		{bad, 5 * time.Second, false, 0}, // within the start period: not counted
		{bad, 11 * time.Second, false, 1},
		{bad, 12 * time.Second, false, 2},
		{good, 13 * time.Second, false, 0}, // a pass resets the run
		{bad, 14 * time.Second, false, 1},
		{bad, 15 * time.Second, false, 2},
		{bad, 16 * time.Second, true, 3},
	} {
		if u := c.Record(tc.p, tc.uptime); u != tc.unhealthy || c.Fails() != tc.fails {
			t.Errorf("probe %d: unhealthy %v fails %d, want %v %d", i, u, c.Fails(), tc.unhealthy, tc.fails)
		}
	}
}

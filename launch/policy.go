package launch

import (
	"fmt"
	"strings"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/oomwatch"
	"golang.org/x/sys/unix"
)

// Restart says when a generation that ended is followed by a new one.
type Restart string

// Restart policies, named as systemd's Restart= and Docker's --restart name them.
const (
	RestartNever     Restart = "never"      // run once (the default: right for one-off runs)
	RestartOnOOM     Restart = "on-oom"     // after the OOM killer took the child or its group, or it aborted (a runtime's own limit)
	RestartOnFailure Restart = "on-failure" // after an OOM kill, a non-zero exit or a death by signal
	RestartAlways    Restart = "always"     // after every end, a clean exit included
)

// ParseRestart reads a --restart value.
func ParseRestart(s string) (Restart, error) {
	switch r := Restart(s); r {
	case RestartNever, RestartOnOOM, RestartOnFailure, RestartAlways:
		return r, nil
	case "no":
		return RestartNever, nil
	}
	return "", fmt.Errorf("--restart %q: want never, on-oom, on-failure or always", s)
}

// Policy is when cgrun recycles a generation, and how it restarts one.
type Policy struct {
	Restart Restart

	StopSignal  unix.Signal   // sent to the child for a graceful stop (SIGTERM)
	StopTimeout time.Duration // then the group is killed (10s)

	MaxLifetime    time.Duration // recycle after this long; 0: never
	LifetimeJitter time.Duration // plus a random part of this, so a fleet spreads out

	RecycleAbove cgroup.Limit  // recycle when memory stays at or above this ...
	RecycleAfter time.Duration // ... for this long

	RecycleOnHigh int           // recycle after this many memory.high events ...
	HighWindow    time.Duration // ... within this long
	RecycleStall  bool          // recycle a generation stuck at memory.high or memory.max

	RecyclePressure []oomwatch.Trigger // recycle when one of these PSI triggers fires

	Health HealthCheck

	RestartDelay    time.Duration // wait before a restart; doubles after short-lived generations
	RestartDelayMax time.Duration // up to this
	MinUptime       time.Duration // a generation that ran this long resets the delay
	MaxRestarts     int           // give up after this many restarts ...
	RestartWindow   time.Duration // ... within this long; 0 restarts: no limit

	// Overlap starts the next generation before the current one stops, for a recycle of one
	// that still serves, and stops the current one once the next said READY=1 (sd_notify) or
	// passed the --health-cmd, or recycles without overlap after ReadyTimeout.
	Overlap      bool
	ReadyTimeout time.Duration
}

// DefaultPolicy is what `cgrun run` uses for flags not given.
func DefaultPolicy() Policy {
	return Policy{
		Restart:         RestartNever,
		StopSignal:      unix.SIGTERM,
		StopTimeout:     10 * time.Second,
		RecycleAfter:    30 * time.Second,
		HighWindow:      10 * time.Second,
		Health:          HealthCheck{Interval: 30 * time.Second, Timeout: 30 * time.Second, Retries: 3},
		RestartDelay:    100 * time.Millisecond,
		RestartDelayMax: 30 * time.Second,
		MinUptime:       10 * time.Second,
		ReadyTimeout:    30 * time.Second,
		MaxRestarts:     5,
		RestartWindow:   10 * time.Second,
	}
}

// Validate checks the policy against itself and the limits.
func (p Policy) Validate(l cgroup.Limits) error {
	switch {
	case p.StopTimeout < 0 || p.MaxLifetime < 0 || p.LifetimeJitter < 0 || p.RecycleAfter < 0 || p.RestartDelay < 0 || p.RestartDelayMax < 0 || p.MinUptime < 0 || p.RestartWindow < 0 || p.HighWindow < 0:
		return fmt.Errorf("durations must not be negative")
	case p.LifetimeJitter > 0 && p.MaxLifetime == 0:
		return fmt.Errorf("--lifetime-jitter needs --max-lifetime")
	case p.RestartDelayMax < p.RestartDelay:
		return fmt.Errorf("--restart-delay-max %v is below --restart-delay %v", p.RestartDelayMax, p.RestartDelay)
	case p.MaxRestarts < 0:
		return fmt.Errorf("--max-restarts must not be negative")
	case p.Overlap && p.ReadyTimeout <= 0:
		return fmt.Errorf("--ready-timeout must be above 0")
	case p.RecycleAbove.Set && p.RecycleAbove.Max:
		return fmt.Errorf("--recycle-above needs a size, not max")
	case p.RecycleAbove.Set && l.MemoryMax.Set && !l.MemoryMax.Max && p.RecycleAbove.Value > l.MemoryMax.Value:
		return fmt.Errorf("--recycle-above %s is above --memory-max %s: memory never gets there", p.RecycleAbove.Human(), l.MemoryMax.Human())
	case p.RecycleAbove.Set && l.MemoryHigh.Set && !l.MemoryHigh.Max && p.RecycleAbove.Value < l.MemoryHigh.Value:
		return fmt.Errorf("--recycle-above %s is below --memory-high %s: cgrun learns that memory rose from memory.high events, so the mark must be at or above memory.high (or leave --memory-high out: then it is set to the mark)",
			p.RecycleAbove.Human(), l.MemoryHigh.Human())
	}
	return p.Health.Validate()
}

// ParseSignal reads a signal name or number: TERM, SIGTERM, 15.
func ParseSignal(s string) (unix.Signal, error) {
	name := strings.ToUpper(strings.TrimSpace(s))
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	var n int
	if _, err := fmt.Sscanf(s, "%d", &n); err == nil && n > 0 && n < 65 && fmt.Sprint(n) == strings.TrimSpace(s) {
		return unix.Signal(n), nil
	}
	return 0, fmt.Errorf("%q is not a signal name or number (e.g. SIGTERM, INT, 15)", s)
}

// restarts decides what follows a generation: the backoff and the start limit.
type restarts struct {
	p     Policy
	delay time.Duration // the next delay
	times []time.Time   // when recent restarts happened
}

func newRestarts(p Policy) *restarts { return &restarts{p: p, delay: p.RestartDelay} }

// reasonToRestart is why an ended generation should be followed by a new one under the
// policy, or "" when it should not. recycled is the reason cgrun itself ended it, if it did.
func (r *restarts) reasonToRestart(out outcome, recycled string) string {
	if recycled != "" {
		return recycled // cgrun's own triggers always restart
	}
	oom := out.oomKill > 0 && out.status.Signaled() && out.status.Signal() == unix.SIGKILL
	failed := oom || out.status.Signaled() || out.status.ExitStatus() != 0
	switch {
	case r.p.Restart == RestartNever:
		return ""
	case oom:
		return "oom_kill"
	case aborted(out.status):
		return "abort"
	case r.p.Restart == RestartOnFailure && failed:
		return "failure"
	case r.p.Restart == RestartAlways:
		if failed {
			return "failure"
		}
		return "exit"
	}
	return ""
}

// aborted reports whether the command died of SIGABRT, or exited 134 (128+SIGABRT, as a shell
// reports a child that did). A runtime that reaches its own memory limit before the kernel's
// ends so: V8 at its heap limit ("FATAL ERROR: ... JavaScript heap out of memory", sized from the
// group's memory.max since Node 20.3), a JVM with -XX:+CrashOnOutOfMemoryError. --restart on-oom
// restarts it like an OOM kill.
func aborted(ws unix.WaitStatus) bool {
	return ws.Signaled() && ws.Signal() == unix.SIGABRT || ws.Exited() && ws.ExitStatus() == 128+int(unix.SIGABRT)
}

// next records a restart at now after a generation that ran for uptime, and returns the delay
// to wait before it, or ok=false when the start limit is reached.
func (r *restarts) next(now time.Time, uptime time.Duration) (delay time.Duration, ok bool) {
	if r.p.MaxRestarts > 0 {
		keep := r.times[:0]
		for _, t := range r.times {
			if now.Sub(t) < r.p.RestartWindow {
				keep = append(keep, t)
			}
		}
		r.times = keep
		if len(r.times) >= r.p.MaxRestarts {
			return 0, false
		}
		r.times = append(r.times, now)
	}
	if uptime >= r.p.MinUptime {
		r.delay = r.p.RestartDelay
	}
	delay = r.delay
	r.delay = min(max(2*r.delay, r.p.RestartDelay), r.p.RestartDelayMax)
	return delay, true
}

// Package policy decides, from what the kernel and the probes report, when a generation is
// recycled and whether and when the next one starts; it is pure logic, with no process or group.
package policy

import (
	"fmt"
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

// Reason is why a generation ended and the next one started: docs/recycling.md's list of restart and
// recycle reasons, the label of cgrun_restarts_total, the "reason" of a recycle record.
type Reason string

// The reasons. The first four are the policy's, after the command ended by itself; the others
// are cgrun's own recycles.
const (
	OOMKill     Reason = "oom_kill"     // the OOM killer took the child or its group
	Abort       Reason = "abort"        // SIGABRT or exit 134: a runtime at its own memory limit
	Failure     Reason = "failure"      // a non-zero exit or a death by signal
	Exit        Reason = "exit"         // a clean exit, under --restart always
	Lifetime    Reason = "lifetime"     // --max-lifetime
	MemoryAbove Reason = "memory_above" // --recycle-above held for --recycle-after
	MemoryHigh  Reason = "memory_high"  // --recycle-on-high memory.high events within --high-window
	Stall       Reason = "stall"        // --recycle-on-stall
	Thrashing   Reason = "thrash"       // stalled on memory at memory.max (Thrash, on by default)
	Pressure    Reason = "pressure"     // a --recycle-pressure PSI trigger fired
	Health      Reason = "health"       // --health-retries failed probes in a row
	Request     Reason = "request"      // cgrun recycle, or SIGALRM
)

// Reasons lists every reason, in docs/recycling.md's order.
func Reasons() []Reason {
	return []Reason{OOMKill, Abort, Failure, Exit, Lifetime, MemoryAbove, MemoryHigh, Stall, Thrashing, Pressure, Health, Request}
}

// Memory reports whether the reason is about memory growing: the recycles a heap dump is worth
// taking before.
func (r Reason) Memory() bool {
	return r == MemoryAbove || r == MemoryHigh || r == Stall || r == Pressure
}

// Overlap reports whether the reason is a recycle of a generation that still serves: the ones
// --overlap applies to. A failed health check or a stall means the old one serves no more; a
// death (an OOM kill, a crash) leaves nothing to overlap with.
func (r Reason) Overlap() bool {
	switch r {
	case Lifetime, MemoryAbove, MemoryHigh, Pressure, Request:
		return true
	}
	return false
}

// Recycle reports whether the reason is one of cgrun's own recycles, not an end of the
// command's own.
func (r Reason) Recycle() bool {
	switch r {
	case Lifetime, MemoryAbove, MemoryHigh, Stall, Thrashing, Pressure, Health, Request:
		return true
	}
	return false
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

	Thrash Thrash // recycle a generation stalled on memory at memory.max

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
		Thrash:          DefaultThrash(),
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
	case p.MaxRestarts > 0 && p.RestartWindow == 0:
		// No restart would ever count: the start limit would never stop a crash loop.
		return fmt.Errorf("--restart-window 0 counts no restart, so --max-restarts %d would never give up: give a window (e.g. 60s), or --max-restarts 0 to never give up", p.MaxRestarts)
	case p.Overlap && p.ReadyTimeout <= 0:
		return fmt.Errorf("--ready-timeout must be above 0")
	case p.RecycleAbove.Set && p.RecycleAbove.Max:
		return fmt.Errorf("--recycle-above needs a size, not max")
	case p.RecycleAbove.Set && p.RecycleAbove.Value < cgroup.MinMemory:
		// It becomes memory.high where --memory-high is not given (launch.run).
		return fmt.Errorf("--recycle-above %s is too small: it sets memory.high, and below %s that throttles even /bin/true; the smallest value that works is %s",
			p.RecycleAbove.Human(), cgroup.FormatSize(cgroup.MinMemory), cgroup.FormatSize(cgroup.MinMemory))
	case p.RecycleAbove.Set && l.MemoryMax.Set && !l.MemoryMax.Max && p.RecycleAbove.Value > l.MemoryMax.Value:
		return fmt.Errorf("--recycle-above %s is above --memory-max %s: memory never gets there", p.RecycleAbove.Human(), l.MemoryMax.Human())
	case p.RecycleAbove.Set && l.MemoryHigh.Set && !l.MemoryHigh.Max && p.RecycleAbove.Value < l.MemoryHigh.Value:
		return fmt.Errorf("--recycle-above %s is below --memory-high %s: cgrun learns that memory rose from memory.high events, so the mark must be at or above memory.high (or leave --memory-high out: then it is set to the mark)",
			p.RecycleAbove.Human(), l.MemoryHigh.Human())
	}
	if err := p.Thrash.validate(p.Restart); err != nil {
		return err
	}
	return p.Health.Validate()
}

// Restarts decides what follows a generation: the backoff and the start limit.
type Restarts struct {
	p     Policy
	delay time.Duration // the next delay
	times []time.Time   // when recent restarts happened
}

// NewRestarts starts the backoff at --restart-delay.
func NewRestarts(p Policy) *Restarts { return &Restarts{p: p, delay: p.RestartDelay} }

// Why is why a generation that ended with status (and oomKills OOM kills in its group) should
// be followed by a new one under the policy, or "" when it should not. recycled is the reason
// cgrun itself ended it, if it did.
func (r *Restarts) Why(status unix.WaitStatus, oomKills uint64, recycled Reason) Reason {
	if recycled != "" {
		return recycled // cgrun's own triggers always restart
	}
	oom := oomKills > 0 && status.Signaled() && status.Signal() == unix.SIGKILL
	failed := oom || status.Signaled() || status.ExitStatus() != 0
	switch {
	case r.p.Restart == RestartNever:
		return ""
	case oom:
		return OOMKill
	case Aborted(status):
		return Abort
	case r.p.Restart == RestartOnFailure && failed:
		return Failure
	case r.p.Restart == RestartAlways:
		if failed {
			return Failure
		}
		return Exit
	}
	return ""
}

// Aborted reports whether the command died of SIGABRT, or exited 134 (128+SIGABRT, as a shell
// reports a child that did). A runtime that reaches its own memory limit before the kernel's
// ends so: V8 at its heap limit ("FATAL ERROR: ... JavaScript heap out of memory", sized from the
// group's memory.max since Node 20.3), a JVM with -XX:+CrashOnOutOfMemoryError. --restart on-oom
// restarts it like an OOM kill.
func Aborted(ws unix.WaitStatus) bool {
	return ws.Signaled() && ws.Signal() == unix.SIGABRT || ws.Exited() && ws.ExitStatus() == 128+int(unix.SIGABRT)
}

// Next records a restart at now after a generation that ran for uptime, and returns the delay
// to wait before it, or ok=false when the start limit is reached (and records nothing).
func (r *Restarts) Next(now time.Time, uptime time.Duration) (delay time.Duration, ok bool) {
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
	}
	return r.Took(now, uptime), true
}

// Took records a restart at now that the start limit does not hold back — an --overlap
// takeover, whose generation already runs and is ready — so that the restarts after it count
// it, and returns the delay Next would have given it.
func (r *Restarts) Took(now time.Time, uptime time.Duration) time.Duration {
	if r.p.MaxRestarts > 0 {
		r.times = append(r.times, now)
	}
	if uptime >= r.p.MinUptime {
		r.delay = r.p.RestartDelay
	}
	delay := r.delay
	r.delay = min(max(2*r.delay, r.p.RestartDelay), r.p.RestartDelayMax)
	return delay
}

// Package health runs one generation's health probes: --health-cmd as a process in its group,
// --health-http as a GET, each bounded by the probe's timeout; package policy judges the results.
package health

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/cgrun/cgrun/launch/policy"
	"github.com/cgrun/cgrun/launch/proc"
	"golang.org/x/sys/unix"
)

// Prober runs the probes of one generation. Command probes are processes in the generation's
// group; their exit comes back through the supervisor's reaper (the only caller of wait4),
// which hands it to Exited. Their results are returned to the supervisor, which handles them at
// once: nothing on the supervisor's goroutine ever waits to send a result. HTTP probes run on a
// goroutine that sends its one result into Results (one slot: at most one probe runs at a
// time) and that Stop ends.
type Prober struct {
	h       policy.HealthCheck
	results chan policy.Probe
	pid     int       // the running command probe, or 0
	started time.Time // when it started
	cancel  context.CancelFunc
}

func New(h policy.HealthCheck) *Prober {
	return &Prober{h: h, results: make(chan policy.Probe, 1)}
}

// Results delivers the result of each HTTP probe.
func (p *Prober) Results() <-chan policy.Probe {
	return p.results
}

// Start begins a probe, unless one is still running; a command probe starts as c says (its
// group, environment and user). A command probe that cannot start (no room under pids.max, say)
// is a failed probe: its result is returned, with true.
func (p *Prober) Start(c proc.Child) (policy.Probe, bool) {
	if p.pid != 0 || p.cancel != nil {
		return policy.Probe{}, false
	}
	p.started = time.Now()
	if p.h.Cmd != "" {
		pid, err := proc.StartShell(p.h.Cmd, c)
		if err != nil {
			return policy.Probe{Why: fmt.Sprintf("cannot start: %v", err)}, true
		}
		p.pid = pid
		return policy.Probe{}, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.h.Timeout)
	p.cancel = cancel
	go func() {
		p.results <- httpProbe(ctx, p.h.URL)
	}()
	return policy.Probe{}, false
}

// TimedOut kills a command probe that ran past the timeout — its whole process group, so that
// what the probe's shell started dies with it; it reports the failure when reaped.
func (p *Prober) TimedOut() bool {
	if p.pid != 0 && time.Since(p.started) > p.h.Timeout {
		// The probe leads a process group of its own (proc.Start sets Setpgid, or Setsid with --user), and it is not reaped
		// yet, so the group's id cannot have been reused.
		_ = unix.Kill(-p.pid, unix.SIGKILL)
		return true
	}
	return false
}

// Exited takes the wait status of a reaped pid if it is the running command probe, and
// returns the probe's result.
func (p *Prober) Exited(pid int, ws unix.WaitStatus) (policy.Probe, bool) {
	if pid == 0 || pid != p.pid {
		return policy.Probe{}, false
	}
	p.pid = 0
	return p.h.CommandResult(ws, time.Since(p.started)), true
}

// Stop ends a running HTTP probe, or releases the context of one that ended; a command probe
// dies with the group. nil is fine.
func (p *Prober) Stop() {
	if p == nil {
		return
	}
	if p.cancel != nil {
		p.cancel()
		p.cancel = nil
	}
}

func httpProbe(ctx context.Context, u string) policy.Probe {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return policy.Probe{Why: err.Error()}
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err == nil {
		resp.Body.Close()
		return policy.HTTPResult(resp.StatusCode, resp.Status, nil)
	}
	return policy.HTTPResult(0, "", err)
}

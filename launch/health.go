package launch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"golang.org/x/sys/unix"
)

// HealthCheck is a probe of the child's health, as Docker's HEALTHCHECK; unlike Docker, cgrun
// recycles a generation that fails Retries probes in a row.
type HealthCheck struct {
	Cmd         string        // run with /bin/sh -c inside the generation's group; exit 0 is healthy
	URL         string        // GET it; a 2xx or 3xx answer is healthy
	Interval    time.Duration // between probes (30s)
	Timeout     time.Duration // a probe that takes longer failed (30s)
	Retries     int           // failures in a row that make the generation unhealthy (3)
	StartPeriod time.Duration // failures in the first this-long do not count
}

// Enabled reports whether any probe is configured.
func (h HealthCheck) Enabled() bool { return h.Cmd != "" || h.URL != "" }

// Validate checks the probe settings.
func (h HealthCheck) Validate() error {
	switch {
	case h.Cmd != "" && h.URL != "":
		return errors.New("--health-cmd and --health-http exclude each other: pick one")
	case !h.Enabled():
		return nil
	case h.Interval <= 0 || h.Timeout <= 0:
		return errors.New("--health-interval and --health-timeout must be above 0")
	case h.Retries < 1:
		return errors.New("--health-retries must be at least 1")
	}
	if h.URL != "" {
		u, err := url.Parse(h.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--health-http %q: want an http:// or https:// URL", h.URL)
		}
	}
	return nil
}

// probeResult is the end of one probe.
type probeResult struct {
	ok  bool
	why string
}

// prober runs the probes of one generation. Command probes are processes in the generation's
// group; their exit comes back through the supervisor's reaper (the only caller of wait4),
// which hands it to exited. Their results are returned to the supervisor, which handles them at
// once: nothing on the supervisor's goroutine ever waits to send a result. HTTP probes run on a
// goroutine that sends its one result into results (one slot: at most one probe runs at a
// time) and that cancel ends.
type prober struct {
	h       HealthCheck
	results chan probeResult
	pid     int       // the running command probe, or 0
	started time.Time // when it started
	cancel  context.CancelFunc
	fails   int
}

func newProber(h HealthCheck) *prober {
	return &prober{h: h, results: make(chan probeResult, 1)}
}

// start begins a probe, unless one is still running; a command probe starts as c says (its
// group, environment and user). A command probe that cannot start (no room under pids.max, say)
// is a failed probe: its result is returned, with true.
func (p *prober) start(c Child) (probeResult, bool) {
	if p.pid != 0 || p.cancel != nil {
		return probeResult{}, false
	}
	p.started = time.Now()
	if p.h.Cmd != "" {
		pid, err := startProbe(p.h.Cmd, c)
		if err != nil {
			return probeResult{why: fmt.Sprintf("cannot start: %v", err)}, true
		}
		p.pid = pid
		return probeResult{}, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.h.Timeout)
	p.cancel = cancel
	go func() {
		p.results <- httpProbe(ctx, p.h.URL)
	}()
	return probeResult{}, false
}

// timedOut kills a command probe that ran past the timeout — its whole process group, so that
// what the probe's shell started dies with it; it reports the failure when reaped.
func (p *prober) timedOut() bool {
	if p.pid != 0 && time.Since(p.started) > p.h.Timeout {
		// The probe leads a process group of its own (Start sets Setpgid), and it is not reaped
		// yet, so the group's id cannot have been reused.
		_ = unix.Kill(-p.pid, unix.SIGKILL)
		return true
	}
	return false
}

// exited takes the wait status of a reaped pid if it is the running command probe, and
// returns the probe's result.
func (p *prober) exited(pid int, ws unix.WaitStatus) (probeResult, bool) {
	if pid == 0 || pid != p.pid {
		return probeResult{}, false
	}
	p.pid = 0
	switch {
	case time.Since(p.started) > p.h.Timeout:
		return probeResult{why: fmt.Sprintf("timed out after %v", p.h.Timeout)}, true
	case ws.Exited() && ws.ExitStatus() == 0:
		return probeResult{ok: true}, true
	case ws.Signaled():
		return probeResult{why: "killed by " + signalName(ws.Signal())}, true
	}
	return probeResult{why: fmt.Sprintf("exit status %d", ws.ExitStatus())}, true
}

// record counts a result; it reports whether the generation is now unhealthy.
func (p *prober) record(r probeResult, uptime time.Duration) bool {
	if p.cancel != nil {
		p.cancel()
		p.cancel = nil
	}
	switch {
	case r.ok:
		p.fails = 0
	case uptime >= p.h.StartPeriod:
		p.fails++
	}
	return p.fails >= p.h.Retries
}

// stop ends a running HTTP probe; a command probe dies with the group. nil is fine.
func (p *prober) stop() {
	if p == nil {
		return
	}
	if p.cancel != nil {
		p.cancel()
		p.cancel = nil
	}
}

func httpProbe(ctx context.Context, u string) probeResult {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return probeResult{why: err.Error()}
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return probeResult{why: "timed out"}
		}
		return probeResult{why: err.Error()}
	}
	resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 400 {
		return probeResult{ok: true}
	}
	return probeResult{why: "HTTP " + resp.Status}
}

// startProbe starts a command probe as c says, with /dev/null as its stdio, the way the command
// itself is started (clone3 into the group, or the re-exec stub; as the --user).
func startProbe(cmd string, c Child) (int, error) {
	null, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(null)
	fd := uintptr(null)
	c.Path, c.Argv, c.Stdio = "/bin/sh", []string{"sh", "-c", cmd}, []uintptr{fd, fd, fd}
	return Start(c)
}

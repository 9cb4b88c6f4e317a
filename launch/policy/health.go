package policy

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/cgrun/cgrun/launch/exitcode"
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
		// A port the probe could never dial would fail every probe and recycle the command
		// until the start limit: bad input, said now.
		if port := u.Port(); port != "" {
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				return fmt.Errorf("--health-http %q: port %s is not a TCP port (want 1 to 65535, or leave it out for the scheme's own)", h.URL, port)
			}
		}
	}
	return nil
}

// Probe is the verdict of one health probe.
type Probe struct {
	OK  bool
	Why string // what failed, for the recycle line
}

// CommandResult is the verdict on a command probe that ended with ws after took.
func (h HealthCheck) CommandResult(ws unix.WaitStatus, took time.Duration) Probe {
	switch {
	case took > h.Timeout:
		return Probe{Why: fmt.Sprintf("timed out after %v", h.Timeout)}
	case ws.Exited() && ws.ExitStatus() == 0:
		return Probe{OK: true}
	case ws.Signaled():
		return Probe{Why: "killed by " + exitcode.SignalName(ws.Signal())}
	}
	return Probe{Why: fmt.Sprintf("exit status %d", ws.ExitStatus())}
}

// HTTPResult is the verdict on an HTTP probe that got the answer code (status is its text) or
// failed with err: a 2xx or 3xx answer is healthy.
func HTTPResult(code int, status string, err error) Probe {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return Probe{Why: "timed out"}
	case err != nil:
		return Probe{Why: err.Error()}
	case code >= 200 && code < 400:
		return Probe{OK: true}
	}
	return Probe{Why: "HTTP " + status}
}

// HealthCount counts the failed probes in a row of one generation.
type HealthCount struct {
	h     HealthCheck
	fails int
}

// NewHealthCount counts under h's retries and start period.
func NewHealthCount(h HealthCheck) HealthCount { return HealthCount{h: h} }

// Record counts a verdict on a probe of a generation that has run for uptime; it reports
// whether the generation is now unhealthy. Failures within the start period do not count.
func (c *HealthCount) Record(p Probe, uptime time.Duration) bool {
	switch {
	case p.OK:
		c.fails = 0
	case uptime >= c.h.StartPeriod:
		c.fails++
	}
	return c.fails >= c.h.Retries
}

// Fails is how many probes failed in a row.
func (c *HealthCount) Fails() int { return c.fails }

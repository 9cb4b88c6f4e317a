package health

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgrun/cgrun/launch/policy"
	"github.com/cgrun/cgrun/launch/proc"
	"golang.org/x/sys/unix"
)

func result(t *testing.T, p *Prober) policy.Probe {
	t.Helper()
	select {
	case r := <-p.Results():
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no result from the HTTP probe")
		return policy.Probe{}
	}
}

func TestHTTPProbe(t *testing.T) {
	for _, c := range []struct {
		name    string
		handler http.HandlerFunc
		ok      bool
		why     string
	}{
		{"200 passes", func(w http.ResponseWriter, _ *http.Request) {}, true, ""},
		{"500 fails", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500) }, false, "500"},
		{"a redirect is the answer (3xx passes), not followed to a page that fails", func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/health" {
				w.WriteHeader(500)
				return
			}
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		}, true, ""},
		{"past the timeout fails", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}, false, "timed out"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(c.handler)
			defer srv.Close()
			p := New(policy.HealthCheck{URL: srv.URL + "/health", Timeout: 200 * time.Millisecond})
			if r, done := p.Start(proc.Child{}); done {
				t.Fatalf("Start returned a result at once: %+v", r)
			}
			if r, done := p.Start(proc.Child{}); done || r != (policy.Probe{}) {
				t.Errorf("a second Start while one runs: %+v, %v; want nothing", r, done)
			}
			r := result(t, p)
			p.Stop()
			if r.OK != c.ok || !strings.Contains(r.Why, c.why) {
				t.Errorf("result %+v; want OK %v, why containing %q", r, c.ok, c.why)
			}
		})
	}
}

func TestHTTPProbeBadURL(t *testing.T) {
	p := New(policy.HealthCheck{URL: "http://bad host/", Timeout: time.Second})
	p.Start(proc.Child{})
	if r := result(t, p); r.OK || r.Why == "" {
		t.Errorf("result %+v; want a failure that says why", r)
	}
	p.Stop()
	var nilProber *Prober
	nilProber.Stop() // no generation probes: nil is fine
}

// A command probe that cannot start (here: its group is missing) is a failed probe at once.
func TestCommandProbeCannotStart(t *testing.T) {
	p := New(policy.HealthCheck{Cmd: "true", Timeout: time.Second})
	r, done := p.Start(proc.Child{GroupDir: filepath.Join(t.TempDir(), "gone")})
	if !done || r.OK || !strings.HasPrefix(r.Why, "cannot start: ") {
		t.Errorf("Start = %+v, %v; want a failed probe that says it cannot start", r, done)
	}
	if p.TimedOut() {
		t.Error("TimedOut with no probe running")
	}
}

// A command probe past its timeout is killed with its process group, and its failure comes from
// the wait status the reaper hands over; another pid's status is not the probe's. The probe here
// is a real sleep in a process group of its own, as proc.Start makes it.
func TestCommandProbeTimesOut(t *testing.T) {
	p := New(policy.HealthCheck{Cmd: "sleep 10", Timeout: 50 * time.Millisecond})
	pid, err := syscall.ForkExec("/bin/sleep", []string{"sleep", "10"}, &syscall.ProcAttr{Sys: &syscall.SysProcAttr{Setpgid: true}})
	if err != nil {
		t.Fatal(err)
	}
	p.pid, p.started = pid, time.Now()
	if r, done := p.Start(proc.Child{}); done || r != (policy.Probe{}) {
		t.Errorf("Start while a probe runs: %+v, %v; want nothing", r, done)
	}
	if p.TimedOut() {
		t.Fatal("timed out before its timeout")
	}
	time.Sleep(60 * time.Millisecond)
	if !p.TimedOut() {
		t.Fatal("not timed out past its timeout")
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil {
		t.Fatal(err)
	}
	if !ws.Signaled() || ws.Signal() != unix.SIGKILL {
		t.Fatalf("probe's wait status %v; want killed by SIGKILL", ws)
	}
	if _, ok := p.Exited(pid+1, ws); ok {
		t.Error("another pid's exit taken as the probe's")
	}
	r, ok := p.Exited(pid, ws)
	if !ok || r.OK || !strings.HasPrefix(r.Why, "timed out after") {
		t.Errorf("Exited = %+v, %v; want a probe failed for its timeout", r, ok)
	}
	if _, ok := p.Exited(pid, ws); ok {
		t.Error("the probe's exit taken twice")
	}
}

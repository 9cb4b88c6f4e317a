package notify

import (
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// listen is a unit's notify socket: NOTIFY_SOCKET points at it for the test.
func listen(t *testing.T) *net.UnixConn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	t.Setenv("WATCHDOG_USEC", "")
	return c
}

func messages(t *testing.T, c *net.UnixConn) []string {
	t.Helper()
	var out []string
	buf := make([]byte, 4096)
	for {
		_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, err := c.Read(buf)
		if err != nil {
			return out
		}
		out = append(out, string(buf[:n]))
	}
}

func TestNotifierSays(t *testing.T) {
	for _, tc := range []struct {
		name        string
		on, healthy bool
		want        []string
	}{
		{"off", false, false, nil},
		{"ready at start", true, false, []string{"READY=1\nSTATUS=generation 1 running as pid 10", "STATUS=generation 2 running as pid 11", "STOPPING=1"}},
		{"ready at the first passing probe", true, true, []string{"STATUS=generation 1 running as pid 10", "READY=1", "STATUS=generation 2 running as pid 11", "STOPPING=1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := listen(t)
			var log strings.Builder
			n := New(tc.on, tc.healthy, &log)
			n.Started(1, 10)
			n.Healthy()
			n.Healthy() // READY=1 once
			n.Started(2, 11)
			n.Stopping()
			if got := messages(t, c); !slices.Equal(got, tc.want) {
				t.Errorf("said %q, want %q", got, tc.want)
			}
			if log.Len() != 0 {
				t.Errorf("logged %q, want nothing: systemd got every message", log.String())
			}
		})
	}
}

// TestNotifierTellsWhatSystemdMissed: a message that cannot be sent is told once (a unit
// waiting for READY=1 would otherwise only time out), and without --notify-ready nothing is.
func TestNotifierTellsWhatSystemdMissed(t *testing.T) {
	for _, tc := range []struct {
		name, socket string
		on           bool
		want         string // the one line told, "" for none
	}{
		{"no socket", "", true, "cgrun: warning: --notify-ready: NOTIFY_SOCKET is not set, so systemd hears nothing: run cgrun from a unit with Type=notify, or leave --notify-ready out\n"},
		{"a socket nobody listens on", "/nonexistent/notify", true, "cgrun: warning: --notify-ready: systemd did not get READY=1: dial unixgram /nonexistent/notify: connect: no such file or directory (NOTIFY_SOCKET=/nonexistent/notify)\n"},
		{"off", "", false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("NOTIFY_SOCKET", tc.socket)
			var log strings.Builder
			n := New(tc.on, false, &log)
			n.Started(1, 10)
			n.Started(2, 11)
			n.Stopping()
			if log.String() != tc.want {
				t.Errorf("logged %q, want %q", log.String(), tc.want)
			}
		})
	}
}

func TestEnv(t *testing.T) {
	env := []string{"A=1", "NOTIFY_SOCKET=/run/systemd/notify", "WATCHDOG_USEC=1000", "WATCHDOG_PID=1", "B=2"}
	for _, tc := range []struct {
		cgrunSpeaks bool
		want        string
	}{
		{false, "A=1 NOTIFY_SOCKET=/run/systemd/notify WATCHDOG_USEC=1000 B=2"},
		{true, "A=1 B=2"},
	} {
		if got := strings.Join(Env(env, tc.cgrunSpeaks), " "); got != tc.want {
			t.Errorf("cgrun speaks %v: %q, want %q", tc.cgrunSpeaks, got, tc.want)
		}
	}
}

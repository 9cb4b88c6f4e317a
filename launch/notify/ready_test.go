package notify

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestIsReady(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		want bool
	}{
		{"READY=1", true},
		{"STATUS=starting\nREADY=1\n", true},
		{"READY=0", false},
		{"STATUS=READY=1", false},
		{"", false},
	} {
		if have := IsReady([]byte(tc.msg)); have != tc.want {
			t.Errorf("IsReady(%q) = %v, want %v", tc.msg, have, tc.want)
		}
	}
}

// send sends msg to the socket at path, with fds attached.
func send(t *testing.T, path, msg string, fds ...int) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0) // unbound, as sd_notify's
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if err := unix.Sendmsg(fd, []byte(msg), oob, &unix.SockaddrUnix{Name: path}, 0); err != nil {
		t.Fatal(err)
	}
}

func TestSocketHearsReady(t *testing.T) {
	self := os.Getpid()
	var asked []int
	s, err := Listen(t.TempDir(), func(pid int) bool { asked = append(asked, pid); return pid == self })
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	send(t, s.Path(), "STATUS=warming up")
	select {
	case <-s.Ready():
		t.Fatal("ready before READY=1")
	case <-time.After(50 * time.Millisecond):
	}
	send(t, s.Path(), "READY=1")
	select {
	case <-s.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("READY=1 was not heard")
	}
	send(t, s.Path(), "READY=1") // again: no panic on a closed channel
	if len(asked) == 0 || asked[0] != self {
		t.Errorf("the sender was asked about pids %v, want the sender's own %d (SCM_CREDENTIALS)", asked, self)
	}
}

// TestSocketIgnoresStrangers: READY=1 from a process the generation does not hold is dropped.
func TestSocketIgnoresStrangers(t *testing.T) {
	s, err := Listen(t.TempDir(), func(int) bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range 3 {
		send(t, s.Path(), "READY=1")
	}
	select {
	case <-s.Ready():
		t.Fatal("READY=1 from a sender outside the generation made it ready")
	case <-time.After(200 * time.Millisecond):
	}
}

// TestSocketAnswersBarriers: BARRIER=1 carries a pipe's write end, and its sender waits until
// the receiver closes it (systemd-notify since systemd 246) — after READY=1 too, and from a
// stranger alike (its fd is never kept).
func TestSocketAnswersBarriers(t *testing.T) {
	self := os.Getpid()
	for _, tc := range []struct {
		name   string
		sender func(int) bool
	}{
		{"generation", func(pid int) bool { return pid == self }},
		{"stranger", func(int) bool { return false }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Listen(t.TempDir(), tc.sender)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			send(t, s.Path(), "READY=1")
			var p [2]int
			if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
				t.Fatal(err)
			}
			defer unix.Close(p[0])
			send(t, s.Path(), "BARRIER=1", p[1])
			unix.Close(p[1])
			fds := []unix.PollFd{{Fd: int32(p[0]), Events: unix.POLLIN}}
			n, err := unix.Poll(fds, 5000)
			if err != nil || n != 1 || fds[0].Revents&unix.POLLHUP == 0 {
				t.Fatalf("poll of the barrier's read end: %d %v revents %#x: want POLLHUP, the write end closed by the receiver", n, err, fds[0].Revents)
			}
		})
	}
}

// TestSocketSystemdNotify: the real systemd-notify --ready (READY=1, then BARRIER=1) exits 0.
func TestSocketSystemdNotify(t *testing.T) {
	bin, err := exec.LookPath("systemd-notify")
	if err != nil {
		t.Skip("no systemd-notify here; the guests' TestEdgeOverlapSystemdNotify runs it")
	}
	s, err := Listen(t.TempDir(), func(int) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cmd := exec.Command(bin, "--ready")
	cmd.Env = []string{"NOTIFY_SOCKET=" + s.Path()}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-notify --ready: %v: %s", err, strings.TrimSpace(string(out)))
	}
	select {
	case <-s.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("READY=1 from systemd-notify was not heard")
	}
}

package exitcode

import (
	"errors"
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
)

func exitedWith(code int) unix.WaitStatus      { return unix.WaitStatus(code << 8) }
func killedBy(sig unix.Signal) unix.WaitStatus { return unix.WaitStatus(sig) }

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]unix.Signal{"TERM": unix.SIGTERM, "SIGQUIT": unix.SIGQUIT, "int": unix.SIGINT, "15": unix.SIGTERM, "SIGUSR2": unix.SIGUSR2} {
		if have, err := ParseSignal(in); err != nil || have != want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v", in, have, err, want)
		}
	}
	for _, in := range []string{"", "SIGNOPE", "0", "99", "15x"} {
		if _, err := ParseSignal(in); err == nil {
			t.Errorf("ParseSignal(%q) accepted", in)
		}
	}
}

func TestFromStatus(t *testing.T) {
	for ws, want := range map[unix.WaitStatus]int{exitedWith(0): 0, exitedWith(1): 1, exitedWith(255): 255, killedBy(unix.SIGKILL): 137, killedBy(unix.SIGTERM): 143} {
		if have := FromStatus(ws); have != want {
			t.Errorf("FromStatus(%#x) = %d, want %d", ws, have, want)
		}
	}
}

func TestOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{errors.New("no such group"), Failure},
		{&Error{Code: StartLimit, Err: errors.New("gave up")}, StartLimit},
		{fmt.Errorf("start: %w", &Error{Code: NotFound, Err: errors.New("nope: command not found")}), NotFound},
	} {
		if have := Of(tc.err); have != tc.want {
			t.Errorf("Of(%v) = %d, want %d", tc.err, have, tc.want)
		}
	}
}

func TestDescribeAndSignalName(t *testing.T) {
	for ws, want := range map[unix.WaitStatus]string{exitedWith(3): "exited with status 3", killedBy(unix.SIGKILL): "was killed by SIGKILL"} {
		if have := Describe(ws); have != want {
			t.Errorf("Describe(%#x) = %q, want %q", ws, have, want)
		}
	}
	if have := SignalName(unix.Signal(99)); have != "signal 99" {
		t.Errorf("SignalName(99) = %q, want \"signal 99\" (no such signal has a name)", have)
	}
	if have := SignalName(RecycleSignal); have != "SIGALRM" {
		t.Errorf("the recycle signal is %q, want SIGALRM (cgrun recycle and the docs name it)", have)
	}
}

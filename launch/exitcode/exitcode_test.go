package exitcode

import (
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

func TestStatusCode(t *testing.T) {
	for ws, want := range map[unix.WaitStatus]int{exitedWith(0): 0, exitedWith(1): 1, exitedWith(255): 255, killedBy(unix.SIGKILL): 137, killedBy(unix.SIGTERM): 143} {
		if have := FromStatus(ws); have != want {
			t.Errorf("FromStatus(%#x) = %d, want %d", ws, have, want)
		}
	}
}

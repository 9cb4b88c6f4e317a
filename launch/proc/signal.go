package proc

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// RecycleSignal asks a running cgrun for a graceful recycle of its current generation (cgrun
// recycle NAME sends it). cgrun does not forward it; SIGALRM is one no supervisor sends by
// accident.
const RecycleSignal = unix.SIGALRM

// Describe says how a child ended: "exited with status 3", "was killed by SIGKILL".
func Describe(ws unix.WaitStatus) string {
	if ws.Signaled() {
		return "was killed by " + SignalName(ws.Signal())
	}
	return fmt.Sprintf("exited with status %d", ws.ExitStatus())
}

// SignalName is "SIGKILL" for 9.
func SignalName(s unix.Signal) string {
	if n := unix.SignalName(s); n != "" {
		return n
	}
	return fmt.Sprintf("signal %d", int(s))
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

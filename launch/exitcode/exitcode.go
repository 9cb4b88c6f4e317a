// Package exitcode is the words cgrun and shells share for how a process ends: the exit codes
// (the child's own, 128+N for signal N, cgrun's 122 and 125–127), the code of a wait status, the
// names of signals, and the signal that asks a running cgrun for a recycle. Pure: both the
// supervisor and the packages below it import it.
package exitcode

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// Exit codes, as shells and timeout(1) use them. The child's own code passes through; a child
// killed by signal N gives 128+N.
const (
	Failure    = 125 // cgrun itself failed: bad input, no usable cgroup, a kernel error
	CannotExec = 126 // the command was found but cannot be executed
	NotFound   = 127 // the command was not found
	SignalBase = 128 // plus N: the child died of signal N
	StartLimit = 122 // cgrun gave up restarting: --max-restarts within --restart-window
)

// Error is a failure that ends cgrun with Code.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Of is the exit code for err: the Code of an *Error in its chain, else Failure.
func Of(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Failure
}

// FromStatus is the exit code a shell would show for a wait status.
func FromStatus(ws unix.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return SignalBase + int(ws.Signal())
	}
	return Failure
}

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

package proc

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Exit codes, as shells and timeout(1) use them. The child's own code passes through; a child
// killed by signal N gives 128+N.
const (
	ExitFailure    = 125 // cgrun itself failed: bad input, no usable cgroup, a kernel error
	ExitCannotExec = 126 // the command was found but cannot be executed
	ExitNotFound   = 127 // the command was not found
	ExitSignalBase = 128 // plus N: the child died of signal N
	ExitStartLimit = 122 // cgrun gave up restarting: --max-restarts within --restart-window
)

// Error is a failure that ends cgrun with Code.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Code is the exit code for err: the Code of an *Error in its chain, else ExitFailure.
func Code(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ExitFailure
}

// StatusCode turns a wait status into the exit code a shell would show.
func StatusCode(ws unix.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return ExitSignalBase + int(ws.Signal())
	}
	return ExitFailure
}

// execError classifies an execve(2) errno the way shells do: 127 for a missing file, 126 for one
// that cannot be executed.
func execError(path string, err error) error {
	switch {
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
		return &Error{Code: ExitNotFound, Err: fmt.Errorf("%s: command not found", path)}
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.ENOEXEC), errors.Is(err, unix.EISDIR),
		errors.Is(err, unix.ETXTBSY), errors.Is(err, unix.EPERM), errors.Is(err, unix.ELOOP):
		return &Error{Code: ExitCannotExec, Err: fmt.Errorf("%s: cannot execute: %v", path, err)}
	}
	return &Error{Code: ExitFailure, Err: fmt.Errorf("%s: exec: %w", path, err)}
}

package proc

import (
	"errors"
	"fmt"

	"github.com/cgrun/cgrun/launch/exitcode"
	"golang.org/x/sys/unix"
)

// execError classifies an execve(2) errno the way shells do: 127 for a missing file, 126 for one
// that cannot be executed.
func execError(path string, err error) error {
	switch {
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
		return &exitcode.Error{Code: exitcode.NotFound, Err: fmt.Errorf("%s: command not found", path)}
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.ENOEXEC), errors.Is(err, unix.EISDIR),
		errors.Is(err, unix.ETXTBSY), errors.Is(err, unix.EPERM), errors.Is(err, unix.ELOOP):
		return &exitcode.Error{Code: exitcode.CannotExec, Err: fmt.Errorf("%s: cannot execute: %v", path, err)}
	}
	return &exitcode.Error{Code: exitcode.Failure, Err: fmt.Errorf("%s: exec: %w", path, err)}
}

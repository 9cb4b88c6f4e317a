package proc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/cgrun/cgrun/launch/exitcode"
	"golang.org/x/sys/unix"
)

// execError classifies an execve(2) errno the way shells do: 127 for a missing file, 126 for one
// that cannot be executed.
func execError(path string, err error) error {
	switch {
	case errors.Is(err, unix.EAGAIN):
		return &exitcode.Error{Code: exitcode.Failure, Err: fmt.Errorf("%s: cannot start it: %s", path, noProcess)}
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
		return &exitcode.Error{Code: exitcode.NotFound, Err: fmt.Errorf("%s: %s", path, missing(path))}
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.ENOEXEC), errors.Is(err, unix.EISDIR),
		errors.Is(err, unix.ETXTBSY), errors.Is(err, unix.EPERM), errors.Is(err, unix.ELOOP):
		return &exitcode.Error{Code: exitcode.CannotExec, Err: fmt.Errorf("%s: cannot execute: %v", path, err)}
	}
	return &exitcode.Error{Code: exitcode.Failure, Err: fmt.Errorf("%s: exec: %w", path, err)}
}

// noProcess says what fork's EAGAIN means.
const noProcess = "the kernel refused a new process (EAGAIN): the pids.max of its group or of one above it is reached, or the user's process limit (ulimit -u); raise the limit, or see what holds those processes"

// missing says what execve's ENOENT meant: the file itself, or, where the file is there, the
// interpreter its #! line names (or an ELF's loader) — as bash's "required file not found".
func missing(path string) string {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return "command not found"
	}
	defer f.Close()
	head := make([]byte, 256)
	n, _ := io.ReadFull(f, head)
	line, _, _ := bytes.Cut(head[:n], []byte("\n"))
	if interp, ok := bytes.CutPrefix(line, []byte("#!")); ok {
		if fields := strings.Fields(string(interp)); len(fields) > 0 {
			return fmt.Sprintf("cannot execute: its interpreter %s (the #! line) is not found", fields[0])
		}
	}
	return "cannot execute: a file it needs (its #! interpreter or its ELF loader) is not found"
}

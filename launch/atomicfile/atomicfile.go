// Package atomicfile writes a file so that a reader sees either the old one or the whole new one.
package atomicfile

import (
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Write writes data to path so that a reader sees either the old file or the whole new
// one: a temporary file beside it, renamed over it. The file is world-readable (0644).
//
// The mode is set on the open file and the rename is rename(2) itself (os.Rename first stats
// the target), and the temporary file is removed only when the rename did not happen: cgrun
// saves its state file twice on every start, and each of those syscalls is on the start's path.
func Write(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".cgrun-*")
	if err != nil {
		return err
	}
	if err := write(tmp, data); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := unix.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return &os.LinkError{Op: "rename", Old: tmp.Name(), New: path, Err: err}
	}
	return nil
}

// write fills the temporary file, makes it world-readable and closes it.
func write(tmp *os.File, data []byte) error {
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	return tmp.Close()
}

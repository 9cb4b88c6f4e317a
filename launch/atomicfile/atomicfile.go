// Package atomicfile writes a file so that a reader sees either the old one or the whole new one.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write writes data to path so that a reader sees either the old file or the whole new
// one: a temporary file beside it, renamed over it. The file is world-readable (0644).
func Write(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".cgrun-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing left to remove
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

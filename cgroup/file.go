// Package cgroup finds, creates, configures and removes cgroup v2 groups.
//
// Every read and write of a cgroupfs file goes through ReadFile and writeFile, so that each error
// names the file and, for writes, the value that the kernel refused. Control files are written
// only here, each by the typed setter beside its reader (SetMemoryHigh in memory.go), so that
// nothing outside the package writes one by name.
package cgroup

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// WriteError is a write to a cgroupfs file that the kernel refused.
type WriteError struct {
	Path  string
	Value string
	Err   error
}

func (e *WriteError) Error() string {
	return fmt.Sprintf("write %q to %s: %v", e.Value, e.Path, e.Err)
}

func (e *WriteError) Unwrap() error { return e.Err }

// ParseError is a cgroupfs or procfs file whose content cgrun cannot read.
type ParseError struct {
	Path string
	Line string
	Err  error
}

func (e *ParseError) Error() string {
	if e.Line == "" {
		return fmt.Sprintf("parse %s: %v", e.Path, e.Err)
	}
	return fmt.Sprintf("parse %s: line %q: %v", e.Path, e.Line, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// ReadFile reads one file of the group at dir, without the trailing newline.
func ReadFile(dir, name string) (string, error) {
	b, err := readFile(filepath.Join(dir, name))
	if err != nil {
		return "", err
	}
	return string(bytes.TrimSpace(b)), nil
}

// readFile reads a cgroupfs file with plain open/read/close. os.ReadFile would also register
// the file with Go's poller (cgroup files are pollable: five more syscalls each), and cgrun reads
// a few dozen of them between two generations.
func readFile(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	buf := make([]byte, 0, 512)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

// writeFile writes value to one file of the group at dir in a single write(2), as the kernel
// expects: cgroupfs files act on each write, not on the file's final content.
func writeFile(dir, name, value string) error {
	path := filepath.Join(dir, name)
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_TRUNC|unix.O_CLOEXEC, 0)
	if err != nil {
		return &WriteError{Path: path, Value: value, Err: err}
	}
	_, err = unix.Write(fd, []byte(value))
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		return &WriteError{Path: path, Value: value, Err: err}
	}
	return nil
}

// ReadKeyed reads a flat keyed file ("key value" per line, as memory.events and cgroup.events).
func ReadKeyed(dir, name string) (map[string]uint64, error) {
	path := filepath.Join(dir, name)
	b, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return ParseKeyed(path, b)
}

// ParseKeyed parses the content of a flat keyed file; path only names it in errors.
func ParseKeyed(path string, content []byte) (map[string]uint64, error) {
	m := make(map[string]uint64)
	sc := bufio.NewScanner(bytes.NewReader(content))
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		k, v, ok := strings.Cut(line, " ")
		if !ok {
			return nil, &ParseError{Path: path, Line: line, Err: errors.New("want \"key value\"")}
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return nil, &ParseError{Path: path, Line: line, Err: err}
		}
		m[k] = n
	}
	return m, nil
}

// ReadUint reads a file holding one number or "max"; "max" reads as ok=false.
func ReadUint(dir, name string) (n uint64, ok bool, err error) {
	s, err := ReadFile(dir, name)
	if err != nil {
		return 0, false, err
	}
	if s == "max" {
		return 0, false, nil
	}
	n, err = strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false, &ParseError{Path: filepath.Join(dir, name), Line: s, Err: err}
	}
	return n, true, nil
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

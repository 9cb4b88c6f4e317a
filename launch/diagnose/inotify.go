package diagnose

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Watcher hears, through inotify, the files written in a dump directory. It is made before the
// dump is asked for, so that no write is missed.
type Watcher struct {
	dir *Dir
	f   *os.File // the inotify fd, non-blocking: Go's poller parks Wait, and Close wakes it
}

// Watch starts watching dir: the directory opened, through its fd, not what its path names now.
func Watch(dir *Dir) (*Watcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify_init1: %w", err)
	}
	const mask = unix.IN_CREATE | unix.IN_MODIFY | unix.IN_CLOSE_WRITE | unix.IN_MOVED_TO | unix.IN_ONLYDIR
	if _, err := unix.InotifyAddWatch(fd, dir.procPath(), mask); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("watch %s: %w", dir.Path, err)
	}
	return &Watcher{dir: dir, f: os.NewFile(uintptr(fd), "inotify "+dir.Path)}, nil
}

// Close stops the watcher; a Wait in progress returns what it saw. It is safe to call twice.
func (w *Watcher) Close() { _ = w.f.Close() }

// Wait returns the files written in the directory once the dump is complete — at least one file
// was closed after writing (or moved in), none is still being written, and nothing changed for
// quiet — with complete true; or what it saw when deadline passed or the watcher was closed,
// with complete false.
func (w *Watcher) Wait(deadline time.Time, quiet time.Duration) (files []File, complete bool) {
	var written []string         // in the order first seen
	writing := map[string]bool{} // created or modified, not yet closed
	var closed bool              // a file was closed after writing
	var last time.Time           // the last change
	buf := make([]byte, 64<<10)
	for {
		until := deadline
		if closed && len(writing) == 0 && last.Add(quiet).Before(until) {
			until = last.Add(quiet)
		}
		if !time.Now().Before(until) {
			return w.stat(written), until != deadline
		}
		_ = w.f.SetReadDeadline(until)
		n, err := w.f.Read(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		if err != nil {
			return w.stat(written), false // closed
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := string(buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)])
			off += unix.SizeofInotifyEvent + int(ev.Len)
			name = trimNUL(name)
			if name == "" || ev.Mask&unix.IN_ISDIR != 0 {
				continue
			}
			last = time.Now()
			if !slices.Contains(written, name) {
				written = append(written, name)
			}
			switch {
			case ev.Mask&(unix.IN_CLOSE_WRITE|unix.IN_MOVED_TO) != 0:
				delete(writing, name)
				closed = true
			default:
				writing[name] = true
			}
		}
	}
}

// stat names the files that are still there, with their sizes. A file that was written and then
// renamed away (a temporary) is left out; the name it was given is among names.
func (w *Watcher) stat(names []string) []File {
	var files []File
	for _, n := range names {
		if f, ok := w.dir.stat(n); ok {
			files = append(files, f)
		}
	}
	return files
}

func trimNUL(s string) string {
	for len(s) > 0 && s[len(s)-1] == 0 {
		s = s[:len(s)-1]
	}
	return s
}

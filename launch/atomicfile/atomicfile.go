// Package atomicfile opens and writes the files a run leaves (report, events, baselines, state)
// through their directory, never following a link another user planted; a file it replaces is
// seen by readers either whole or as it was.
//
// cgrun runs as root on behalf of a --user that may be able to write the directory a file goes
// in. So the directory is opened once, component by component (Dir), and the file is opened
// relative to it with O_NOFOLLOW: a symlink at the name is refused, never followed. An existing
// target must be a regular file of cgrun's own user with one link (a hard link to another file
// has two): anything else is refused with a RefusedError, before anything is written. A
// replaced file is written beside the target under a fresh name (O_EXCL), given its mode
// through the open fd (fchmod, never chmod by name) and renamed over the target: rename replaces
// a directory entry, whatever it points at, and never writes through it.
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// RefusedError is a target cgrun will not write: a symlink, a hard link, a file of another user,
// something that is not a regular file, or a directory on the way that is a symlink in a
// directory others can write.
type RefusedError struct {
	Path string
	Why  string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("%s: %s; cgrun writes only a regular file of its own user with one link (remove it, or name another file)", e.Path, e.Why)
}

// Dir is a directory opened for writing files in it, and its path for messages.
type Dir struct {
	fd   int
	path string
}

// maxLinks bounds the symlinks followed while opening a directory, as the kernel's 40.
const maxLinks = 40

// OpenDir opens the directory path component by component without following a symlink, except
// one that lies in a directory no other user can write (owned by cgrun's user or root, not
// writable by group or others: /var/run -> /run is root's), or that is root's or cgrun's user's
// own in a sticky directory (/tmp), whose target is then walked the same way. Any other symlink
// in a directory another user can write (/tmp, a user's home) is refused: its owner could point
// it anywhere between two runs.
func OpenDir(path string) (*Dir, error) {
	if path == "" {
		path = "."
	}
	start := "."
	if filepath.IsAbs(path) {
		start = "/"
	}
	fd, err := unix.Open(start, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", start, err)
	}
	todo := strings.Split(path, "/")
	links := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		if c == "" || c == "." {
			continue
		}
		next, err := unix.Openat(fd, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == nil {
			unix.Close(fd)
			fd = next
			continue
		}
		if !errors.Is(err, unix.ELOOP) && !errors.Is(err, unix.ENOTDIR) {
			unix.Close(fd)
			return nil, fmt.Errorf("open directory %s: %w", path, err)
		}
		target, lerr := readlinkat(fd, c)
		if lerr != nil { // not a symlink: a file where a directory should be
			unix.Close(fd)
			return nil, fmt.Errorf("open directory %s: %w", path, err)
		}
		if why := othersWrite(fd); why != "" && !ownSticky(fd, c) {
			unix.Close(fd)
			return nil, &RefusedError{Path: path, Why: fmt.Sprintf("%s is a symlink in a directory %s", c, why)}
		}
		if links++; links > maxLinks {
			unix.Close(fd)
			return nil, fmt.Errorf("open directory %s: %w", path, unix.ELOOP)
		}
		todo = append(strings.Split(target, "/"), todo...)
		if strings.HasPrefix(target, "/") {
			unix.Close(fd)
			if fd, err = unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
				return nil, fmt.Errorf("open /: %w", err)
			}
		}
	}
	return &Dir{fd: fd, path: path}, nil
}

func readlinkat(dfd int, name string) (string, error) {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(dfd, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// othersWrite says why users other than cgrun's may write the directory dfd ("" when none can).
func othersWrite(dfd int) string {
	var st unix.Stat_t
	if err := unix.Fstat(dfd, &st); err != nil {
		return "cgrun cannot stat"
	}
	if euid := uint32(os.Geteuid()); st.Uid != euid && st.Uid != 0 {
		return fmt.Sprintf("of uid %d", st.Uid)
	}
	if st.Mode&0o022 != 0 {
		return fmt.Sprintf("that others can write (mode %04o)", st.Mode&0o7777)
	}
	return ""
}

// ownSticky reports whether the symlink name in dfd is root's or cgrun's user's in a sticky
// directory (/tmp): there no other user may remove or replace it.
func ownSticky(dfd int, name string) bool {
	var dir, link unix.Stat_t
	if unix.Fstat(dfd, &dir) != nil || dir.Mode&unix.S_ISVTX == 0 {
		return false
	}
	if unix.Fstatat(dfd, name, &link, unix.AT_SYMLINK_NOFOLLOW) != nil {
		return false
	}
	return link.Uid == 0 || link.Uid == uint32(os.Geteuid())
}

// Close closes the directory; a nil Dir is fine.
func (d *Dir) Close() {
	if d != nil && d.fd >= 0 {
		unix.Close(d.fd)
		d.fd = -1
	}
}

// Check says whether name may be written in d: absent, or a regular file of cgrun's user with
// one link (or a FIFO, when fifo is set).
func (d *Dir) Check(name string, fifo bool) error {
	var st unix.Stat_t
	err := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", d.join(name), err)
	}
	return d.verify(name, &st, fifo)
}

// verify checks what a name is, from its lstat or the fstat of the file opened at it.
func (d *Dir) verify(name string, st *unix.Stat_t, fifo bool) error {
	refuse := func(why string) error { return &RefusedError{Path: d.join(name), Why: why} }
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFIFO:
		if fifo {
			return nil // a pipe holds no file to overwrite: whoever made it reads the lines
		}
		return refuse("it is a FIFO")
	case unix.S_IFLNK:
		return refuse("it is a symlink")
	default:
		return refuse("it is not a regular file")
	}
	switch {
	case st.Nlink != 1:
		return refuse(fmt.Sprintf("it has %d links (a hard link to another file)", st.Nlink))
	case st.Uid != uint32(os.Geteuid()):
		return refuse(fmt.Sprintf("it belongs to uid %d, not cgrun's uid %d", st.Uid, os.Geteuid()))
	}
	return nil
}

func (d *Dir) join(name string) string { return filepath.Join(d.path, name) }

// CheckWritable says whether the caller may create files in d: a report written at exit must
// not fail then for a reason known at the start (a directory of another user, or, for root too,
// a read-only file system).
func (d *Dir) CheckWritable() error {
	if err := unix.Faccessat(d.fd, ".", unix.W_OK|unix.X_OK, unix.AT_EACCESS); err != nil {
		return fmt.Errorf("%s: cannot create files there: %w", d.path, err)
	}
	return nil
}

// Replace writes data as name in d so that a reader sees either the old file or the whole new
// one, world-readable (0644): a fresh file beside it, renamed over it. It refuses (RefusedError)
// an existing name that Check refuses; the rename replaces the name itself, so a link put there
// after the check is replaced, not written through.
func (d *Dir) Replace(name string, data []byte) error {
	if err := d.Check(name, false); err != nil {
		return err
	}
	var tmp string
	var fd int
	for i := 0; ; i++ {
		tmp = "." + name + ".cgrun-" + strconv.FormatUint(rand.Uint64()>>16, 36)
		var err error
		fd, err = unix.Openat(d.fd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EEXIST) || i == 100 {
			return fmt.Errorf("create a file beside %s: %w", d.join(name), err)
		}
	}
	f := os.NewFile(uintptr(fd), d.join(tmp))
	_, err := f.Write(data)
	if err == nil {
		err = unix.Fchmod(fd, 0o644) // the open file, never the name: it may be another file by now
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(d.fd, tmp, d.fd, name)
	}
	if err != nil {
		_ = unix.Unlinkat(d.fd, tmp, 0)
		return fmt.Errorf("write %s: %w", d.join(name), err)
	}
	return nil
}

// Append opens name in d for appending, created 0644 if absent, without blocking (a FIFO with
// no reader gives ENXIO, unwrapped). It refuses what Check refuses, from the open file's own
// fstat: a name swapped between a check and the open cannot slip through.
func (d *Dir) Append(name string) (*os.File, error) {
	fd, err := unix.Openat(d.fd, name, unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0o644)
	switch {
	case errors.Is(err, unix.ELOOP):
		return nil, &RefusedError{Path: d.join(name), Why: "it is a symlink"}
	case errors.Is(err, unix.EISDIR):
		return nil, &RefusedError{Path: d.join(name), Why: "it is a directory"}
	case err != nil:
		return nil, &os.PathError{Op: "open", Path: d.join(name), Err: err}
	}
	return d.verified(fd, name, true)
}

// Exists reports whether d holds anything named name (not followed: a symlink counts).
func (d *Dir) Exists(name string) bool {
	var st unix.Stat_t
	return !errors.Is(unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW), unix.ENOENT)
}

// RemoveUnwritten removes name from d if it is still the file f, a regular file that nothing was
// written to: the --events file a start created and then failed after (the port to --listen on
// was taken), so that bad input leaves no file behind. Any other file at name stays.
func (d *Dir) RemoveUnwritten(name string, f *os.File) error {
	var open, named unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &open); err != nil {
		return err
	}
	if err := unix.Fstatat(d.fd, name, &named, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if open.Dev != named.Dev || open.Ino != named.Ino || open.Mode&unix.S_IFMT != unix.S_IFREG || open.Size != 0 {
		return nil
	}
	return unix.Unlinkat(d.fd, name, 0)
}

// OpenFIFO opens the FIFO name in d for writing, blocking until a reader opens it: the late open
// of an --events FIFO that had no reader at the start. The name must still be a FIFO; nothing is
// created.
func (d *Dir) OpenFIFO(name string) (*os.File, error) {
	fd, err := unix.Openat(d.fd, name, unix.O_WRONLY|unix.O_APPEND|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ELOOP) {
		return nil, &RefusedError{Path: d.join(name), Why: "it is a symlink"}
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: d.join(name), Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		unix.Close(fd)
		return nil, &RefusedError{Path: d.join(name), Why: "it is no longer the FIFO it was at the start"}
	}
	return os.NewFile(uintptr(fd), d.join(name)), nil
}

// Read reads name in d, at most limit bytes: a regular file with one link, never through a
// symlink (a --baseline in a directory others write).
func (d *Dir) Read(name string, limit int64) ([]byte, error) {
	fd, err := unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ELOOP) {
		return nil, &RefusedError{Path: d.join(name), Why: "it is a symlink"}
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: d.join(name), Err: err}
	}
	f := os.NewFile(uintptr(fd), d.join(name))
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, &RefusedError{Path: d.join(name), Why: "it is not a regular file"}
	}
	if st.Nlink != 1 {
		return nil, &RefusedError{Path: d.join(name), Why: fmt.Sprintf("it has %d links (a hard link to another file)", st.Nlink)}
	}
	if st.Size > limit {
		return nil, fmt.Errorf("%s: %d bytes, more than %d", d.join(name), st.Size, limit)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: more than %d bytes", d.join(name), limit)
	}
	return b, nil
}

// verified checks the file open on fd at name (see verify), and closes fd if it is refused.
func (d *Dir) verified(fd int, name string, fifo bool) (*os.File, error) {
	var st unix.Stat_t
	err := unix.Fstat(fd, &st)
	if err == nil {
		err = d.verify(name, &st, fifo)
	}
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), d.join(name)), nil
}

// Split opens path's directory (OpenDir) and returns it with the file's name in it.
func Split(path string) (*Dir, string, error) {
	name := filepath.Base(path)
	if name == "/" || name == "." || name == ".." || strings.HasSuffix(path, "/") {
		return nil, "", fmt.Errorf("%s: not a file name", path)
	}
	d, err := OpenDir(filepath.Dir(path))
	if err != nil {
		return nil, "", err
	}
	if fs := d.kernelFS(); fs != "" {
		d.Close()
		return nil, "", fmt.Errorf("%s: %s is %s, a kernel interface, not a place for files (name a file under /var/log, /tmp or a home directory)", path, filepath.Dir(path), fs)
	}
	return d, name, nil
}

// kernelFS names the kernel interface file system d is on (proc, sysfs, cgroup…), or "" for
// a file system that holds files: /proc/1/mem is a regular file with one link of root's, and
// root may open it for writing, so the checks on the file alone would let `--events
// /proc/1/mem` through.
func (d *Dir) kernelFS() string {
	var st unix.Statfs_t
	if err := unix.Fstatfs(d.fd, &st); err != nil {
		return ""
	}
	switch st.Type {
	case unix.PROC_SUPER_MAGIC:
		return "proc"
	case unix.SYSFS_MAGIC:
		return "sysfs"
	case unix.CGROUP2_SUPER_MAGIC, unix.CGROUP_SUPER_MAGIC:
		return "a cgroup file system"
	case unix.DEBUGFS_MAGIC, unix.TRACEFS_MAGIC, unix.SECURITYFS_MAGIC, unix.BPF_FS_MAGIC, unix.EFIVARFS_MAGIC, unix.PSTOREFS_MAGIC:
		return "a kernel file system"
	}
	return ""
}

// Write writes data to path as Replace does, through its directory (OpenDir).
func Write(path string, data []byte) error {
	d, name, err := Split(path)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Replace(name, data)
}

// Replacer is an io.Writer whose every Write replaces the file (Replace): the --report file,
// checked when it is made and written once, at exit, so that a run that cannot write it keeps
// the previous one whole.
type Replacer struct {
	dir  *Dir
	name string
}

// NewReplacer opens path's directory and checks the target (Check) now, before the run starts.
func NewReplacer(path string) (*Replacer, error) {
	d, name, err := Split(path)
	if err != nil {
		return nil, err
	}
	err = d.Check(name, false)
	if err == nil {
		err = d.CheckWritable()
	}
	if err != nil {
		d.Close()
		return nil, err
	}
	return &Replacer{dir: d, name: name}, nil
}

func (r *Replacer) Write(b []byte) (int, error) {
	if err := r.dir.Replace(r.name, b); err != nil {
		return 0, err
	}
	return len(b), nil
}

// Close closes the directory.
func (r *Replacer) Close() { r.dir.Close() }

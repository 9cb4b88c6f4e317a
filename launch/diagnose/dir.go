package diagnose

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

// Dir is the dump directory, opened once when cgrun starts and held for the whole run: every
// file cgrun stats, watches or removes there is looked up relative to this open directory and
// never through a symlink, so a command that can rename or replace the directory (its parent is
// the user's) cannot point cgrun, as root, at another directory's files.
type Dir struct {
	Path string // as given to --diagnose-dir; the files' paths are Path/name
	f    *os.File
	uid  uint32 // the command's user: only files it owns are removed
}

// Writer is who writes the dumps: the command's user and groups.
type Writer struct {
	UID    uint32
	Groups []uint32 // primary group first
}

// OpenDir opens path, which must be a directory (not a symlink to one), owned by root or by w,
// that w can write (what the mode bits say; ACLs are not read).
func OpenDir(path string, w Writer) (*Dir, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if err == unix.ELOOP || err == unix.ENOTDIR {
			return nil, fmt.Errorf("--diagnose-dir %s: not a directory (a symlink is not followed); give the directory itself, writable by the command's user (mkdir -p %s)", path, path)
		}
		return nil, fmt.Errorf("--diagnose-dir %s: %w; make it first, writable by the command's user (mkdir -p %s)", path, err, path)
	}
	f := os.NewFile(uintptr(fd), path)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("--diagnose-dir %s: %w", path, err)
	}
	if err := w.check(path, st); err != nil {
		f.Close()
		return nil, err
	}
	var fs unix.Statfs_t
	if err := unix.Fstatfs(fd, &fs); err == nil && fs.Flags&unix.ST_RDONLY != 0 {
		f.Close()
		return nil, fmt.Errorf("--diagnose-dir %s: on a read-only file system, so a dump could never land there; choose a directory on a writable disk", path)
	}
	return &Dir{Path: path, f: f, uid: w.UID}, nil
}

// check refuses a directory owned by someone other than root and w, or one w cannot write.
func (w Writer) check(path string, st unix.Stat_t) error {
	who := "uid " + strconv.FormatUint(uint64(w.UID), 10)
	if st.Uid != 0 && st.Uid != w.UID {
		return fmt.Errorf("--diagnose-dir %s: owned by uid %d, not by root or the command's user (%s); use a directory of root's or of that user", path, st.Uid, who)
	}
	if w.UID == 0 {
		return nil
	}
	var bits uint32
	switch {
	case st.Uid == w.UID:
		bits = st.Mode >> 6
	case slices.Contains(w.Groups, st.Gid):
		bits = st.Mode >> 3
	default:
		bits = st.Mode
	}
	if bits&3 != 3 { // write and search
		return fmt.Errorf("--diagnose-dir %s: the command's user (%s) cannot write it (mode %#o, owner %d:%d), so its dump could never land there; chown it to that user or make it writable for it", path, who, st.Mode&0o7777, st.Uid, st.Gid)
	}
	return nil
}

// Close closes the directory.
func (d *Dir) Close() {
	if d != nil {
		d.f.Close()
	}
}

// procPath is the open directory as a path that names it, whatever its name is now.
func (d *Dir) procPath() string { return "/proc/self/fd/" + strconv.Itoa(int(d.f.Fd())) }

// stat is name's size when it is a regular file in the directory (a symlink is not followed).
func (d *Dir) stat(name string) (File, bool) {
	var st unix.Stat_t
	if err := unix.Fstatat(int(d.f.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return File{}, false
	}
	return File{Path: filepath.Join(d.Path, name), Size: st.Size}, true
}

// remove removes the file at path, when it is a regular file directly in the directory, owned by
// the command's user; anything else is left alone.
func (d *Dir) remove(path string) error {
	if filepath.Dir(path) != filepath.Clean(d.Path) {
		return fmt.Errorf("remove %s: not in --diagnose-dir %s; left alone", path, d.Path)
	}
	name := filepath.Base(path)
	var st unix.Stat_t
	if err := unix.Fstatat(int(d.f.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return nil
		}
		return fmt.Errorf("remove %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Uid != d.uid {
		return fmt.Errorf("remove %s: not a regular file of uid %d (mode %#o, owner %d); left alone", path, d.uid, st.Mode, st.Uid)
	}
	if err := unix.Unlinkat(int(d.f.Fd()), name, 0); err != nil && err != unix.ENOENT {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

// OnTmpfs reports whether the directory is on tmpfs (or ramfs): a file written there is memory
// charged to the group of the process that writes it, which without swap it cannot shed.
func (d *Dir) OnTmpfs() bool {
	var fs unix.Statfs_t
	if d == nil || unix.Fstatfs(int(d.f.Fd()), &fs) != nil {
		return false
	}
	return fs.Type == unix.TMPFS_MAGIC || fs.Type == unix.RAMFS_MAGIC
}

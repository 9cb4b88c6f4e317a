package listen

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Owner is who a unix socket's file belongs to: the command's user (--user).
type Owner struct{ UID, GID uint32 }

// Set is the sockets cgrun holds open for the whole run; the zero Set holds none.
type Set struct {
	socks []socket
}

type socket struct {
	addr Addr
	file *os.File
	path string // the unix socket's file, which Close removes; "" for tcp
	// A unix socket's directory, held open (-1 or 0 for none), its name there, and the file
	// bound, which Close removes only while the name still holds it.
	parent   int
	base     string
	dev, ino uint64
}

// ErrInUse is what Bind wraps when another process already listens on an address.
var ErrInUse = errors.New("address already in use")

// Bind binds and listens on every address, in order; the sockets become fds 3, 4, ... of each
// generation. A unix socket's file gets owner (nil: cgrun's own user) and mode 0660. On error
// nothing stays bound and no socket file is left.
func Bind(addrs []Addr, owner *Owner) (*Set, error) {
	s := &Set{}
	for _, a := range addrs {
		sock, err := bind(a, owner)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.socks = append(s.socks, sock)
	}
	return s, nil
}

func bind(a Addr, owner *Owner) (socket, error) {
	if a.Network == "unix" {
		if err := clearStale(a); err != nil {
			return socket{}, err
		}
		sock, err := bindUnix(a, owner)
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				return socket{}, fmt.Errorf("--listen %s: %w: another process listens there; stop it or choose another address", a.Spec, ErrInUse)
			}
			return socket{}, fmt.Errorf("--listen %s: %w", a.Spec, err)
		}
		return sock, nil
	}
	l, err := (&net.ListenConfig{}).Listen(context.Background(), a.Network, a.Address)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return socket{}, fmt.Errorf("--listen %s: %w: another process listens there; stop it or choose another address", a.Spec, ErrInUse)
		}
		if errors.Is(err, syscall.EADDRNOTAVAIL) {
			host, _, _ := net.SplitHostPort(a.Address)
			return socket{}, fmt.Errorf("--listen %s: this machine has no address %s; give one of its own addresses, or :PORT for all of them", a.Spec, host)
		}
		return socket{}, fmt.Errorf("--listen %s: %w", a.Spec, err)
	}
	f, err := l.(*net.TCPListener).File()
	l.Close()
	if err != nil {
		return socket{}, fmt.Errorf("--listen %s: %w", a.Spec, err)
	}
	return socket{addr: a, file: f}, nil
}

// clearStale removes a socket file that nothing listens on any more (what a cgrun or server
// killed with SIGKILL leaves), and refuses a file that is not a socket or that a process serves.
func clearStale(a Addr) error {
	fi, err := os.Lstat(a.Address)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("--listen %s: %w", a.Spec, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("--listen %s: %s exists and is not a socket; remove it or choose another path", a.Spec, a.Address)
	}
	c, err := net.Dial("unix", a.Address)
	if err == nil {
		c.Close()
		return fmt.Errorf("--listen %s: %w: another process listens on %s; stop it or choose another path", a.Spec, ErrInUse, a.Address)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("--listen %s: %w", a.Spec, err)
	}
	if err := os.Remove(a.Address); err != nil {
		return fmt.Errorf("--listen %s: remove the stale socket: %w", a.Spec, err)
	}
	return nil
}

// socketUmask makes bind(2) create a unix socket's file with mode 0660: bind takes its mode from
// the umask only (fchmod on the socket's fd before bind changes the socket, not the file), so the
// file never exists with a wider mode. The umask is the process's, so it is set only around the
// bind: cgrun binds before it starts anything that creates files.
const socketUmask = 0o117

// bindUnix binds a unix socket where no other user can reach its file until it is complete:
// in a private directory (0700, root's when cgrun is root) made beside the socket's path, where
// the file is created with mode 0660 (socketUmask) and given to owner (nil: left as cgrun's
// own), and only then renamed into place. A user who may write in the socket's directory can
// swap the path for a hard link or a symlink at any moment, but the chown never reaches
// anything but the socket cgrun bound: the path is not used for it. The directory is held
// open (parent) for the run, so that Close removes the socket's file there, and only while
// it is still the one bound.
func bindUnix(a Addr, owner *Owner) (socket, error) {
	dir, base := filepath.Split(a.Address)
	parent, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		d := filepath.Clean(dir)
		return socket{}, fmt.Errorf("the directory %s does not exist; create it first (mkdir -p %s) or choose a path in a directory that exists", d, d)
	}
	if err != nil {
		return socket{}, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	private, pfd, err := privateDir(parent, base)
	if err != nil {
		unix.Close(parent)
		return socket{}, fmt.Errorf("make a private directory in %s to bind in: %w", dir, err)
	}
	defer func() {
		unix.Unlinkat(pfd, "s", 0) // left only on failure: renamed into place otherwise
		unix.Unlinkat(parent, private, unix.AT_REMOVEDIR)
		unix.Close(pfd)
	}()
	fail := func(err error) (socket, error) {
		unix.Close(parent)
		return socket{}, err
	}
	old := unix.Umask(socketUmask)
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "unix", fmt.Sprintf("/proc/self/fd/%d/s", pfd))
	unix.Umask(old)
	if err != nil {
		return fail(err)
	}
	ul := l.(*net.UnixListener)
	ul.SetUnlinkOnClose(false) // renamed into place below; Close removes it there
	f, err := ul.File()
	ul.Close()
	if err != nil {
		return fail(err)
	}
	if owner != nil {
		if err := unix.Fchownat(pfd, "s", int(owner.UID), int(owner.GID), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			f.Close()
			return fail(fmt.Errorf("chown the socket to %d:%d: %w", owner.UID, owner.GID, err))
		}
	}
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, "s", &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		f.Close()
		return fail(err)
	}
	if err := unix.Renameat(pfd, "s", parent, base); err != nil {
		f.Close()
		return fail(fmt.Errorf("move the socket into place as %s: %w", a.Address, err))
	}
	return socket{addr: a, file: f, path: a.Address, parent: parent, base: base, dev: st.Dev, ino: st.Ino}, nil
}

// privateDir makes a directory of mode 0700 named after base in the directory parent, and opens
// it (never through a symlink): its name and fd.
func privateDir(parent int, base string) (string, int, error) {
	var rnd [6]byte
	for range 10 {
		if _, err := rand.Read(rnd[:]); err != nil {
			return "", -1, err
		}
		name := fmt.Sprintf(".%s.cgrun-%x", base, rnd)
		if len(name) > 255 {
			name = fmt.Sprintf(".cgrun-bind-%x", rnd)
		}
		err := unix.Mkdirat(parent, name, 0o700)
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		if err != nil {
			return "", -1, err
		}
		fd, err := unix.Openat(parent, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			unix.Unlinkat(parent, name, unix.AT_REMOVEDIR)
			return "", -1, err
		}
		// mkdir's mode is cut by the umask: make sure no one else may enter.
		if err := unix.Fchmod(fd, 0o700); err != nil {
			unix.Close(fd)
			unix.Unlinkat(parent, name, unix.AT_REMOVEDIR)
			return "", -1, err
		}
		return name, fd, nil
	}
	return "", -1, unix.EEXIST
}

// Len is the number of sockets.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.socks)
}

// Files are the sockets' fds in cgrun, in the order of LISTEN_FDS (the child's 3, 4, ...).
func (s *Set) Files() []uintptr {
	if s == nil {
		return nil
	}
	var fds []uintptr
	for _, k := range s.socks {
		fds = append(fds, k.file.Fd())
	}
	return fds
}

// Env is env without any LISTEN_*, FPM_SOCKETS or NODE_CHANNEL_* it had, and with the variables that describe
// the sockets to a child that has them as fds 3, 4, ...: LISTEN_FDS and LISTEN_FDNAMES (the
// stub that starts the command adds LISTEN_PID, its own pid) and FPM_SOCKETS. With no sockets
// it is env unchanged.
func (s *Set) Env(env []string) []string {
	if s.Len() == 0 {
		return env
	}
	out := make([]string, 0, len(env)+3)
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PID", "FPM_SOCKETS",
			// A Node parent's IPC channel (PM2's fd 3): fd 3 is a socket now, which Node
			// would otherwise take for its channel.
			"NODE_CHANNEL_FD", "NODE_CHANNEL_SERIALIZATION_MODE":
			continue
		}
		out = append(out, kv)
	}
	var names, fpm []string
	for i, k := range s.socks {
		names = append(names, k.addr.Name())
		fpm = append(fpm, k.addr.FPMKey()+"="+strconv.Itoa(3+i))
	}
	return append(out, "LISTEN_FDS="+strconv.Itoa(len(s.socks)), "LISTEN_FDNAMES="+strings.Join(names, ":"),
		"FPM_SOCKETS="+strings.Join(fpm, ","))
}

// FPMKey is the socket as php-fpm 8.2 names it in FPM_SOCKETS, so that a pool whose listen =
// matches takes it instead of binding its own (fpm_sockets.c: fpm_sockets_hash_op builds the
// key from the bound address): the path of a unix socket; for tcp the IPv4 address and port
// (0.0.0.0:PORT for every address, which `listen = PORT` builds), or the IPv6 address and port
// without brackets (::1:9000).
func (a Addr) FPMKey() string {
	if a.Network == "unix" {
		return a.Address
	}
	host, port, _ := net.SplitHostPort(a.Address)
	if host == "" {
		return "0.0.0.0:" + port
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return a.Address
	}
	return ip.Unmap().String() + ":" + port
}

// Close closes the sockets and removes the unix sockets' files; the zero Set and nil are fine.
func (s *Set) Close() {
	if s == nil {
		return
	}
	for _, k := range s.socks {
		k.close()
	}
	s.socks = nil
}

func (k socket) close() {
	if k.file != nil {
		k.file.Close()
	}
	if k.path == "" {
		return
	}
	var st unix.Stat_t
	if unix.Fstatat(k.parent, k.base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Dev == k.dev && st.Ino == k.ino {
		_ = unix.Unlinkat(k.parent, k.base, 0)
	}
	unix.Close(k.parent)
}

package listen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
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
	}
	l, err := listenWithMode(a)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return socket{}, fmt.Errorf("--listen %s: %w: another process listens there; stop it or choose another address", a.Spec, ErrInUse)
		}
		return socket{}, fmt.Errorf("--listen %s: %w", a.Spec, err)
	}
	var f *os.File
	switch l := l.(type) {
	case *net.TCPListener:
		f, err = l.File()
	case *net.UnixListener:
		l.SetUnlinkOnClose(false) // the file stays while cgrun holds the dup; Close removes it
		f, err = l.File()
	}
	l.Close()
	sock := socket{addr: a, file: f}
	if a.Network == "unix" {
		sock.path = a.Address
	}
	if err != nil {
		sock.close()
		return socket{}, fmt.Errorf("--listen %s: %w", a.Spec, err)
	}
	if sock.path != "" {
		if err := own(sock.path, owner); err != nil {
			sock.close()
			return socket{}, fmt.Errorf("--listen %s: %w", a.Spec, err)
		}
	}
	return sock, nil
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
// file never exists with a wider mode, and nothing chmods a path afterwards, which would follow a
// symlink put in its place.
const socketUmask = 0o117

// listenWithMode listens on a; a unix socket's file is created with mode 0660 (socketUmask).
// The umask is the process's, so it is set only around the bind: cgrun binds before it starts
// anything that creates files.
func listenWithMode(a Addr) (net.Listener, error) {
	if a.Network == "unix" {
		old := unix.Umask(socketUmask)
		defer unix.Umask(old)
	}
	return (&net.ListenConfig{}).Listen(context.Background(), a.Network, a.Address)
}

// own gives a unix socket's file, made 0660 by listenWithMode, to the command's user; Lchown
// changes the path itself, never what a symlink there points at.
func own(path string, o *Owner) error {
	if o == nil {
		return nil
	}
	return os.Lchown(path, int(o.UID), int(o.GID))
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
	if k.path != "" {
		_ = unix.Unlink(k.path)
	}
}

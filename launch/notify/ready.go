package notify

// Hearing a generation say READY=1 on a datagram socket of its own (its NOTIFY_SOCKET), for
// --overlap.

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// Socket is one generation's NOTIFY_SOCKET.
type Socket struct {
	conn   *net.UnixConn
	dir    string
	sender func(pid int) bool
	ready  chan struct{}
	once   sync.Once
	done   chan struct{} // closed when the reader has returned
}

// Listen makes a socket in a fresh directory under dir that anyone may send to (the command
// may run as another user), and reads it until Close. The kernel stamps each message with its
// sender's pid (SO_PASSCRED): a message counts only when sender(pid) says that process belongs
// to the generation; any other is dropped unread, so that no other process on the host (the
// socket is listed in /proc/net/unix) can declare the generation ready.
//
// It speaks the whole of what sd_notify's senders wait for: systemd-notify (systemd 246 and
// later) follows its message with BARRIER=1 and a pipe's write end, and waits until the
// receiver closes it; every fd a message carries is closed once the message is read, so the
// socket answers barriers for as long as it is open — from the generation's first message to
// its end, not only until READY=1.
func Listen(dir string, sender func(pid int) bool) (*Socket, error) {
	d, err := os.MkdirTemp(dir, "cgrun-notify-")
	if err != nil {
		return nil, fmt.Errorf("make a directory for NOTIFY_SOCKET: %w", err)
	}
	if err := os.Chmod(d, 0o711); err != nil {
		os.RemoveAll(d)
		return nil, fmt.Errorf("make a directory for NOTIFY_SOCKET: %w", err)
	}
	path := filepath.Join(d, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		os.RemoveAll(d)
		return nil, fmt.Errorf("NOTIFY_SOCKET %s: %w", path, err)
	}
	fail := func(err error) (*Socket, error) {
		conn.Close()
		os.RemoveAll(d)
		return nil, fmt.Errorf("NOTIFY_SOCKET %s: %w", path, err)
	}
	if err := passCred(conn); err != nil {
		return fail(err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		return fail(err)
	}
	s := &Socket{conn: conn, dir: d, sender: sender, ready: make(chan struct{}), done: make(chan struct{})}
	go s.read()
	return s, nil
}

// passCred asks the kernel for each message's sender (SCM_CREDENTIALS).
func passCred(conn *net.UnixConn) error {
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("setsockopt SO_PASSCRED: %w", serr)
	}
	return nil
}

// oobSize holds the sender's credentials and a few fds: sd_notify passes at most a handful
// (BARRIER=1 one, FDSTORE=1 a few). The kernel closes what does not fit (MSG_CTRUNC).
var oobSize = unix.CmsgSpace(unix.SizeofUcred) + unix.CmsgSpace(16*4)

func (s *Socket) read() {
	defer close(s.done)
	buf := make([]byte, 4096)
	oob := make([]byte, oobSize)
	for {
		n, oobn, _, _, err := s.conn.ReadMsgUnix(buf, oob) // MSG_CMSG_CLOEXEC: Go sets it
		if err != nil {
			return // closed
		}
		pid, fds := control(oob[:oobn])
		for _, fd := range fds {
			unix.Close(fd) // the barrier's answer; cgrun keeps no fd a generation sends
		}
		if pid <= 0 || s.sender == nil || !s.sender(pid) {
			continue
		}
		if IsReady(buf[:n]) {
			s.once.Do(func() { close(s.ready) })
		}
	}
}

// control is the sender's pid (0 when the message carries none) and the fds a message carries.
func control(oob []byte) (pid int, fds []int) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, nil
	}
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_SOCKET {
			continue
		}
		switch m.Header.Type {
		case unix.SCM_CREDENTIALS:
			if c, err := unix.ParseUnixCredentials(&m); err == nil {
				pid = int(c.Pid)
			}
		case unix.SCM_RIGHTS:
			if f, err := unix.ParseUnixRights(&m); err == nil {
				fds = append(fds, f...)
			}
		}
	}
	return pid, fds
}

// IsReady reports whether an sd_notify message says READY=1: one of its lines is exactly that.
func IsReady(msg []byte) bool {
	for _, line := range bytes.Split(msg, []byte("\n")) {
		if string(line) == "READY=1" {
			return true
		}
	}
	return false
}

// Path is the socket's path, for NOTIFY_SOCKET.
func (s *Socket) Path() string { return filepath.Join(s.dir, "notify") }

// Ready is closed once READY=1 came from the generation.
func (s *Socket) Ready() <-chan struct{} { return s.ready }

// Close stops reading and removes the socket and its directory; nil is fine.
func (s *Socket) Close() {
	if s == nil {
		return
	}
	s.conn.Close()
	<-s.done
	os.RemoveAll(s.dir)
}

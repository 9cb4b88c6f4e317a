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
)

// Socket is one generation's NOTIFY_SOCKET.
type Socket struct {
	conn  *net.UnixConn
	dir   string
	ready chan struct{}
	once  sync.Once
	done  chan struct{} // closed when the reader has returned
}

// Listen makes a socket in a fresh directory under dir that anyone may send to (the command
// may run as another user), and reads it until Close.
func Listen(dir string) (*Socket, error) {
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
	if err := os.Chmod(path, 0o666); err != nil {
		conn.Close()
		os.RemoveAll(d)
		return nil, fmt.Errorf("NOTIFY_SOCKET %s: %w", path, err)
	}
	s := &Socket{conn: conn, dir: d, ready: make(chan struct{}), done: make(chan struct{})}
	go s.read()
	return s, nil
}

func (s *Socket) read() {
	defer close(s.done)
	buf := make([]byte, 4096)
	for {
		n, err := s.conn.Read(buf)
		if err != nil {
			return // closed
		}
		if IsReady(buf[:n]) {
			s.once.Do(func() { close(s.ready) })
		}
	}
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

// Ready is closed once READY=1 came.
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

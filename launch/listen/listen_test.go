package listen_test

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cgrun/cgrun/launch/listen"
	"golang.org/x/sys/unix"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		spec, network, address string
	}{
		{":3000", "tcp", ":3000"},
		{"127.0.0.1:3000", "tcp", "127.0.0.1:3000"},
		{"[::1]:3000", "tcp", "[::1]:3000"},
		{"0.0.0.0:80", "tcp", "0.0.0.0:80"},
		{"unix:/run/app.sock", "unix", "/run/app.sock"},
	} {
		a, err := listen.Parse(tc.spec)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.spec, err)
			continue
		}
		if a.Network != tc.network || a.Address != tc.address || a.Spec != tc.spec {
			t.Errorf("Parse(%q) = %+v, want %s %s", tc.spec, a, tc.network, tc.address)
		}
	}
}

func TestParseFailures(t *testing.T) {
	for _, spec := range []string{
		"", "3000", "foo", ":0", ":65536", ":http", "localhost:3000", "example.com:80",
		"::1:3000", "[fe80::1%eth0]:80", "unix:", "unix:run/app.sock", "unix:/run/", "unix:/" + strings.Repeat("a", 120),
	} {
		_, err := listen.Parse(spec)
		if err == nil {
			t.Errorf("Parse(%q): no error", spec)
			continue
		}
		if !errors.Is(err, listen.ErrAddr) || !strings.Contains(err.Error(), "--listen") {
			t.Errorf("Parse(%q) = %v: want an error naming --listen that wraps ErrAddr", spec, err)
		}
	}
}

func TestEnv(t *testing.T) {
	dir := t.TempDir()
	var addrs []listen.Addr
	for _, spec := range []string{"127.0.0.1:0", "unix:" + filepath.Join(dir, "app.sock")} {
		a, err := listen.Parse(strings.Replace(spec, ":0", ":1", 1))
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, a)
	}
	// Bind needs a free port: take one, then describe it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	addrs[0], _ = listen.Parse("127.0.0.1:" + strconv.Itoa(port))
	s, err := listen.Bind(addrs, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Len() != 2 || len(s.Files()) != 2 {
		t.Fatalf("Len %d, Files %v: want 2 sockets", s.Len(), s.Files())
	}
	have := s.Env([]string{"PATH=/bin", "LISTEN_FDS=9", "LISTEN_PID=1", "FPM_SOCKETS=x=9", "NODE_CHANNEL_FD=3", "NODE_CHANNEL_SERIALIZATION_MODE=json"})
	sock := filepath.Join(dir, "app.sock")
	want := []string{"PATH=/bin", "LISTEN_FDS=2",
		"LISTEN_FDNAMES=127.0.0.1_" + strconv.Itoa(port) + ":unix_" + sock,
		"FPM_SOCKETS=127.0.0.1:" + strconv.Itoa(port) + "=3," + sock + "=4"}
	if !slices.Equal(have, want) {
		t.Errorf("Env:\nhave %q\nwant %q", have, want)
	}
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket file %s: %v, %v: want a socket with mode 0660", sock, fi, err)
	}
	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatalf("connect to the bound socket: %v", err)
	}
	c.Close()
	s.Close()
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Close, %s: %v; want it removed", sock, err)
	}
}

func TestEnvNoSockets(t *testing.T) {
	env := []string{"PATH=/bin", "LISTEN_FDS=1"}
	var s *listen.Set
	if have := s.Env(env); !slices.Equal(have, env) {
		t.Errorf("nil Set: Env = %q, want it unchanged", have)
	}
	if s.Files() != nil || s.Len() != 0 {
		t.Errorf("nil Set: Files %v Len %d", s.Files(), s.Len())
	}
	s.Close()
}

func TestFPMKeys(t *testing.T) {
	for _, tc := range []struct{ spec, key string }{
		{":9000", "0.0.0.0:9000"}, // listen = 9000
		{"127.0.0.1:9000", "127.0.0.1:9000"},
		{"[::1]:9000", "::1:9000"},
		{"unix:/run/php/app.sock", "/run/php/app.sock"},
	} {
		a, err := listen.Parse(tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		if have := a.FPMKey(); have != tc.key {
			t.Errorf("FPMKey(%q) = %q, want %q", tc.spec, have, tc.key)
		}
	}
}

func TestBindFailuresLeaveNothing(t *testing.T) {
	dir := t.TempDir()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyUnix := filepath.Join(dir, "busy.sock")
	ul, err := net.Listen("unix", busyUnix)
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	first := filepath.Join(dir, "first.sock")
	for _, tc := range []struct {
		name, spec string
		inUse      bool
		says       string
	}{
		{"tcp port in use", busy.Addr().String(), true, "another process listens there"},
		{"unix socket served", "unix:" + busyUnix, true, "another process listens"},
		{"not a socket", "unix:" + plain, false, "is not a socket"},
		{"no such directory", "unix:" + filepath.Join(dir, "none", "a.sock"), false, "create it first (mkdir -p " + filepath.Join(dir, "none") + ")"},
		// 192.0.2.0/24 is TEST-NET-1: no machine has it.
		{"not this machine's address", "192.0.2.1:9100", false, "this machine has no address 192.0.2.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a0, _ := listen.Parse("unix:" + first)
			a1, err := listen.Parse(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			s, err := listen.Bind([]listen.Addr{a0, a1}, nil)
			if err == nil {
				s.Close()
				t.Fatalf("Bind %s: no error", tc.spec)
			}
			if errors.Is(err, listen.ErrInUse) != tc.inUse || !strings.Contains(err.Error(), tc.spec) || !strings.Contains(err.Error(), tc.says) || strings.Contains(err.Error(), "\n") {
				t.Errorf("Bind %s: %v", tc.spec, err)
			}
			if _, err := os.Lstat(first); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the first socket's file is left: %v", err)
			}
		})
	}
}

func TestBindReplacesStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stale.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close() // the file stays, nothing listens: what a SIGKILLed server leaves
	a, _ := listen.Parse("unix:" + path)
	s, err := listen.Bind([]listen.Addr{a}, nil)
	if err != nil {
		t.Fatalf("Bind over a stale socket: %v", err)
	}
	defer s.Close()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	c.Close()
}

// TestBindSocketMode: a unix socket's file is 0660 whatever cgrun's umask, straight from bind
// (no chmod of the path afterwards), and cgrun's umask is back as it was.
func TestBindSocketMode(t *testing.T) {
	for _, mask := range []int{0, 0o022, 0o077, 0o777} {
		t.Run(strconv.FormatInt(int64(mask), 8), func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "app.sock")
			a, err := listen.Parse("unix:" + sock)
			if err != nil {
				t.Fatal(err)
			}
			old := unix.Umask(mask)
			defer unix.Umask(old)
			s, err := listen.Bind([]listen.Addr{a}, nil)
			if after := unix.Umask(mask); after != mask {
				t.Errorf("umask after Bind %#o, want %#o back", after, mask)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			fi, err := os.Lstat(sock)
			if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
				t.Errorf("socket file %s: %v, %v: want a socket with mode 0660", sock, fi, err)
			}
		})
	}
}

// TestBindOwnsAndCleansUp: a unix socket's file is the owner's, 0660, from the moment its path
// exists; the private directory it was bound in is gone; Close removes the socket's file but
// not a file someone put in its place.
func TestBindOwnsAndCleansUp(t *testing.T) {
	owner := listen.Owner{UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}
	if os.Getuid() == 0 {
		owner = listen.Owner{UID: 33, GID: 33} // www-data's in Debian; any ids do
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "app.sock")
	a, err := listen.Parse("unix:" + sock)
	if err != nil {
		t.Fatal(err)
	}
	s, err := listen.Bind([]listen.Addr{a}, &owner)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(sock, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK || st.Mode&0o777 != 0o660 || st.Uid != owner.UID || st.Gid != owner.GID {
		t.Errorf("socket file %s: mode %#o uid %d gid %d (%v): want a socket, 0660, %d:%d", sock, st.Mode, st.Uid, st.Gid, err, owner.UID, owner.GID)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("%s holds %v: want only the socket (the private directory removed)", dir, ents)
	}
	s.Close()
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Close, %s: %v; want it removed", sock, err)
	}

	// Replaced while bound: the replacement stays.
	if s, err = listen.Bind([]listen.Addr{a}, &owner); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(sock); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sock, []byte("someone's"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if b, err := os.ReadFile(sock); err != nil || string(b) != "someone's" {
		t.Errorf("Close removed or changed the file put in the socket's place: %q, %v", b, err)
	}
}

// TestBindChownRace: while Bind runs 2,000 times, a racer swaps the socket's path for a hard
// link to a victim file as soon as a socket appears there; the chown to the owner never lands
// on the victim. (The guests' TestEdgeListenChownRace runs the racer as www-data against the
// real cgrun.) It needs root, to chown to another user.
func TestBindChownRace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give the socket to another user")
	}
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "app.sock")
	a, err := listen.Parse("unix:" + sock)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	swaps := make(chan int)
	go func() {
		n := 0
		link := filepath.Join(dir, ".link")
		for {
			select {
			case <-stop:
				swaps <- n
				return
			default:
			}
			if fi, err := os.Lstat(sock); err == nil && fi.Mode()&os.ModeSocket != 0 {
				if os.Link(victim, link) == nil && os.Rename(link, sock) == nil {
					n++
				}
			}
		}
	}()
	owner := &listen.Owner{UID: 33, GID: 33}
	for i := 0; i < 2000; i++ {
		if fi, err := os.Lstat(sock); err == nil && fi.Mode()&os.ModeSocket == 0 {
			os.Remove(sock)
		}
		s, err := listen.Bind([]listen.Addr{a}, owner)
		if err == nil {
			s.Close()
		}
		var st unix.Stat_t
		if err := unix.Stat(victim, &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != 0 || st.Mode&0o777 != 0o600 {
			close(stop)
			<-swaps
			t.Fatalf("round %d: the victim is uid %d mode %#o: Bind's chown or chmod landed on the hard link put in the socket's place", i, st.Uid, st.Mode&0o777)
		}
	}
	close(stop)
	n := <-swaps
	t.Logf("the racer swapped the socket %d times in 2000 binds", n)
	if n == 0 {
		t.Error("the racer never swapped the socket: the test raced nothing")
	}
}

// TestApart: an address given twice is one line at the start, not a bind that fails as if
// another process held it.
func TestApart(t *testing.T) {
	split := func(addr string) (string, string, error) {
		host, port, err := net.SplitHostPort(addr)
		if host == "" {
			host = "127.0.0.1"
		}
		return host, port, err
	}
	for _, tc := range []struct {
		listen  []string
		metrics string
		want    string // "" for accepted
	}{
		{[]string{"127.0.0.1:9600", "127.0.0.1:9600"}, "", "the same address as --listen 127.0.0.1:9600"},
		{[]string{"unix:/run/a.sock", "unix:/run/a.sock"}, "", "give each address once"},
		{[]string{"127.0.0.1:9600", "127.0.0.1:9601", "unix:/run/a.sock"}, "127.0.0.1:9602", ""},
		{[]string{"127.0.0.1:9601"}, "127.0.0.1:9601", "--metrics-addr 127.0.0.1:9601: the port of --listen 127.0.0.1:9601"},
		{[]string{":9601"}, ":9601", "the port of --listen :9601"},
		{[]string{"10.0.0.1:9601"}, "0.0.0.0:9601", "the port of --listen 10.0.0.1:9601"},
		{[]string{"10.0.0.1:9601"}, "127.0.0.1:9601", ""}, // two addresses of the machine
		{[]string{":9601"}, ":0", ""}, // any free port
	} {
		var ls []listen.Addr
		for _, s := range tc.listen {
			a, err := listen.Parse(s)
			if err != nil {
				t.Fatalf("Parse(%q): %v", s, err)
			}
			ls = append(ls, a)
		}
		err := listen.Apart(ls, tc.metrics, split)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("Apart(%q, %q) = %v, want %q", tc.listen, tc.metrics, err, tc.want)
		}
	}
}

// Package listen binds the sockets cgrun holds across its generations (--listen) and describes
// them to the command as systemd's socket activation (LISTEN_FDS) and PHP-FPM (FPM_SOCKETS) read
// them.
package listen

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Addr is one --listen address.
type Addr struct {
	Spec    string // as given: ":3000", "127.0.0.1:3000", "[::1]:3000", "unix:/run/app.sock"
	Network string // "tcp" or "unix"
	Address string // HOST:PORT for tcp (HOST empty for every address), the path for unix
}

// unixPrefix marks a unix socket's path in a --listen address.
const unixPrefix = "unix:"

// maxUnixPath is the longest path a sockaddr_un holds, less its terminating NUL.
const maxUnixPath = 107

// ErrAddr is what every Parse error wraps.
var ErrAddr = errors.New("want :PORT, HOST:PORT with an IP address as HOST, [IPv6]:PORT or unix:/absolute/path")

// Parse reads one --listen address.
func Parse(spec string) (Addr, error) {
	if path, ok := strings.CutPrefix(spec, unixPrefix); ok {
		switch {
		case !strings.HasPrefix(path, "/"):
			return Addr{}, fmt.Errorf("--listen %q: the socket's path must be absolute: %w", spec, ErrAddr)
		case len(path) > maxUnixPath:
			return Addr{}, fmt.Errorf("--listen %q: a unix socket's path takes at most %d bytes: %w", spec, maxUnixPath, ErrAddr)
		case strings.HasSuffix(path, "/"):
			return Addr{}, fmt.Errorf("--listen %q: the path names a directory: %w", spec, ErrAddr)
		}
		return Addr{Spec: spec, Network: "unix", Address: path}, nil
	}
	host, port, err := net.SplitHostPort(spec)
	if err != nil {
		return Addr{}, fmt.Errorf("--listen %q: %w", spec, ErrAddr)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return Addr{}, fmt.Errorf("--listen %q: port %q is not a number from 1 to 65535: %w", spec, port, ErrAddr)
	}
	if host != "" {
		ip, err := netip.ParseAddr(host)
		if err != nil || ip.Zone() != "" {
			return Addr{}, fmt.Errorf("--listen %q: %q is not an IP address: %w", spec, host, ErrAddr)
		}
	}
	return Addr{Spec: spec, Network: "tcp", Address: net.JoinHostPort(host, port)}, nil
}

// Name is the socket's name in LISTEN_FDNAMES: the address as given, with the ":" that the
// protocol forbids in a name turned into "_" (unix_/run/app.sock, 127.0.0.1_3000).
func (a Addr) Name() string { return strings.ReplaceAll(a.Spec, ":", "_") }

// Apart refuses an address given twice, among the --listen addresses or as --metrics-addr too
// (split by splitMetrics, which also checks it): the second bind would fail as if another
// process held the address.
func Apart(ls []Addr, metricsAddr string, splitMetrics func(string) (host, port string, err error)) error {
	seen := map[string]string{}
	for _, a := range ls {
		key := a.Network + " " + a.Address
		if first, ok := seen[key]; ok {
			return fmt.Errorf("--listen %s: the same address as --listen %s; give each address once", a.Spec, first)
		}
		seen[key] = a.Spec
	}
	if metricsAddr == "" {
		return nil
	}
	host, port, err := splitMetrics(metricsAddr)
	if err != nil {
		return err
	}
	wild := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	for _, a := range ls {
		lhost, lport, err := net.SplitHostPort(a.Address)
		if a.Network != "tcp" || err != nil || lport != port || port == "0" {
			continue
		}
		if lhost == host || wild(lhost) || wild(host) {
			return fmt.Errorf("--metrics-addr %s: the port of --listen %s; the metrics need a port of their own: choose another", metricsAddr, a.Spec)
		}
	}
	return nil
}

// Package metrics serves a running cgrun's state and its group's files as Prometheus metrics.
//
// It writes Prometheus' text format (version 0.0.4) itself rather than through client_golang:
// linked into cgrun, client_golang's package initialisation (its default registry with the Go
// and process collectors, procfs, the protobuf model) ran on every start of cgrun, metrics or
// not, and was more than half of the instructions `cgrun version` executed.
package metrics

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/launch/policy"
	"github.com/cgrun/cgrun/launch/state"
	"github.com/cgrun/cgrun/oomwatch"
	"golang.org/x/sys/unix"
)

// Collector serves the sandbox's figures to Prometheus. It reads the current
// generation's files at scrape time, so nothing is sampled between scrapes.
//
// Every series stays present once it has been seen: between two generations (a restart gap)
// the group is gone, and Prometheus treats a series that comes and goes as stale, so that
// dashboards would show holes exactly when something happens. In the gap memory.current and
// pids.current are 0 (no process holds anything), the limits are as configured, and the other
// gauges keep the last generation's values; cgrun_generation_running says which is which. A
// file the kernel lacks (memory.pressure without PSI) is never seen, so never served; before
// 5.19 the peak is the one cgrun sampled.
type Collector struct {
	snapshot func() state.State

	mu   sync.Mutex
	last map[string]float64 // by file (and PSI line), as last read from a generation's group

	current, peak, max, high, pids, generation, running, pressure, events, restarts, advice *family
}

// family is one metric: its name, help and type, and the label names after "name".
type family struct {
	name, help, kind string
	labels           []string
}

// sample is one series of a family: the values of its labels, "name" first.
type sample struct {
	f      *family
	labels []string
	v      float64
}

func NewCollector(snapshot func() state.State) *Collector {
	gauge := func(name, help string, labels ...string) *family {
		return &family{name: name, help: help, kind: "gauge", labels: labels}
	}
	counter := func(name, help string, labels ...string) *family {
		return &family{name: name, help: help, kind: "counter", labels: labels}
	}
	return &Collector{
		snapshot:   snapshot,
		last:       map[string]float64{},
		current:    gauge("cgrun_memory_current_bytes", "memory.current of the current generation's group; 0 between generations."),
		peak:       gauge("cgrun_memory_peak_bytes", "memory.peak of the current generation's group (Linux 5.19); before 5.19 the highest memory.current cgrun sampled; the last generation's between generations."),
		max:        gauge("cgrun_memory_max_bytes", "memory.max of the group; +Inf when unlimited."),
		high:       gauge("cgrun_memory_high_bytes", "memory.high of the group; +Inf when unlimited."),
		pids:       gauge("cgrun_pids_current", "pids.current: processes and threads in the group; 0 between generations."),
		generation: gauge("cgrun_generation", "The current generation: 1 for the first run, +1 for each restart."),
		running:    gauge("cgrun_generation_running", "1 while a generation runs, 0 between generations (a restart gap)."),
		pressure:   gauge("cgrun_memory_pressure_avg10_percent", "memory.pressure avg10 of the group, where the kernel has PSI.", "kind"),
		events:     counter("cgrun_memory_events_total", "memory.events counters, summed over all generations.", "event"),
		restarts:   counter("cgrun_restarts_total", "Restarts of the command, by reason.", "reason"),
		advice:     gauge("cgrun_advice_bytes", "With --advise: the memory the probe found the command needs (working_set) and the limits it advises (memory_max, memory_high); absent until the first sample.", "figure"),
	}
}

// families are the metrics the collector serves, in the order it writes them.
func (c *Collector) families() []*family {
	return []*family{c.current, c.peak, c.max, c.high, c.pids, c.generation, c.running, c.pressure, c.events, c.restarts, c.advice}
}

// collect reads the group's files and returns the series, each family's together.
func (c *Collector) collect() []sample {
	s := c.snapshot()
	dir := s.Dir()
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []sample
	gauge := func(f *family, v float64, labels ...string) {
		out = append(out, sample{f: f, labels: append([]string{s.Name}, labels...), v: v})
	}
	// read is a gauge from the group, or in a gap: 0 for what processes hold, the configured
	// value for a limit not read yet, the last value otherwise (none, where never read).
	read := func(f *family, key string, v float64, err error, labels ...string) {
		last, seen := c.last[key]
		switch {
		case err == nil:
			c.last[key] = v
			gauge(f, v, labels...)
		case key == "memory.current" || key == "pids.current":
			gauge(f, 0, labels...)
		case seen:
			gauge(f, last, labels...)
		case key == "memory.max" || key == "memory.high":
			v := math.Inf(1)
			if n := s.Limit(key); n != nil {
				v = float64(*n)
			}
			gauge(f, v, labels...)
		}
	}
	cur, err := cgroup.MemoryCurrent(dir)
	running := 0.0
	if err == nil {
		running = 1
	}
	read(c.current, "memory.current", float64(cur), err)
	// The peak: memory.peak, or before 5.19 the sampled one (LivePeak); in a gap the last one.
	if n, src := state.LivePeak(s, dir, cur); src != "" {
		read(c.peak, "memory.peak", float64(n), nil)
	} else {
		read(c.peak, "memory.peak", 0, os.ErrNotExist)
	}
	for _, l := range []struct {
		f    *family
		file string
	}{{c.max, "memory.max"}, {c.high, "memory.high"}} {
		n, ok, err := cgroup.ReadUint(dir, l.file)
		v := math.Inf(1)
		if ok {
			v = float64(n)
		}
		read(l.f, l.file, v, err)
	}
	n, _, err := cgroup.ReadUint(dir, "pids.current")
	read(c.pids, "pids.current", float64(n), err)
	gauge(c.generation, float64(s.Generation))
	gauge(c.running, running)
	p, err := oomwatch.ReadPressure(dir)
	read(c.pressure, "memory.pressure some", p.SomeAvg10, err, "some")
	read(c.pressure, "memory.pressure full", p.FullAvg10, err, "full")
	events := state.LiveEvents(s, dir)
	for _, k := range cgroup.MemoryEventNames() {
		gauge(c.events, float64(events[k]), k)
	}
	if a := s.Advice; a != nil {
		gauge(c.advice, float64(a.WorkingSet), "working_set")
		gauge(c.advice, float64(a.MemoryMax), "memory_max")
		gauge(c.advice, float64(a.MemoryHigh), "memory_high")
	}
	for _, reason := range policy.Reasons() { // the reason label's values, all present from the start
		gauge(c.restarts, float64(s.RestartsByReason[string(reason)]), string(reason))
	}
	return out
}

// WriteText writes the series in Prometheus' text format, each family once, with its HELP
// and TYPE lines.
func (c *Collector) WriteText(b *bytes.Buffer) {
	samples := c.collect()
	for _, f := range c.families() {
		header := false
		for _, s := range samples {
			if s.f != f {
				continue
			}
			if !header {
				writeHeader(b, f.name, f.help, f.kind)
				header = true
			}
			// The labels sorted by name, as client_golang wrote them: {event="oom_kill",name="w"}.
			pairs := make([][2]string, len(s.labels))
			for i, v := range s.labels {
				pairs[i] = [2]string{"name", v}
				if i > 0 {
					pairs[i][0] = f.labels[i-1]
				}
			}
			slices.SortFunc(pairs, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
			b.WriteString(f.name)
			b.WriteByte('{')
			for i, p := range pairs {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(p[0])
				b.WriteString(`="`)
				b.WriteString(escape(p[1], true))
				b.WriteByte('"')
			}
			b.WriteString("} ")
			b.WriteString(formatValue(s.v))
			b.WriteByte('\n')
		}
	}
}

// escape escapes a label value (quote) or a help text as the text format wants: backslash
// and newline, and in a label value the double quote.
func escape(s string, quote bool) string {
	if quote {
		return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
	}
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

func writeHeader(b *bytes.Buffer, name, help, kind string) {
	fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s %s\n", name, escape(help, false), name, kind)
}

// formatValue is a sample's value as the text format writes it.
func formatValue(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// writeSelf writes cgrun's own figures under the names client_golang's Go and process
// collectors give them: goroutines, threads, the Go heap, CPU time, open fds, memory.
func writeSelf(b *bytes.Buffer) {
	one := func(name, kind, help string, v float64) {
		writeHeader(b, name, help, kind)
		fmt.Fprintf(b, "%s %s\n", name, formatValue(v))
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	one("go_goroutines", "gauge", "Number of goroutines that currently exist.", float64(runtime.NumGoroutine()))
	writeHeader(b, "go_info", "Information about the Go environment.", "gauge")
	fmt.Fprintf(b, "go_info{version=%q} 1\n", runtime.Version())
	one("go_memstats_alloc_bytes", "gauge", "Number of bytes allocated in heap and currently in use.", float64(ms.HeapAlloc))
	one("go_memstats_alloc_bytes_total", "counter", "Total number of bytes allocated in heap until now, even if released already.", float64(ms.TotalAlloc))
	one("go_memstats_heap_idle_bytes", "gauge", "Number of heap bytes waiting to be used.", float64(ms.HeapIdle))
	one("go_memstats_heap_inuse_bytes", "gauge", "Number of heap bytes that are in use.", float64(ms.HeapInuse))
	one("go_memstats_heap_objects", "gauge", "Number of currently allocated objects.", float64(ms.HeapObjects))
	one("go_memstats_heap_released_bytes", "gauge", "Number of heap bytes released to OS.", float64(ms.HeapReleased))
	one("go_memstats_heap_sys_bytes", "gauge", "Number of heap bytes obtained from system.", float64(ms.HeapSys))
	one("go_memstats_mallocs_total", "counter", "Total number of heap objects allocated.", float64(ms.Mallocs))
	one("go_memstats_frees_total", "counter", "Total number of heap objects frees.", float64(ms.Frees))
	one("go_memstats_next_gc_bytes", "gauge", "Number of heap bytes when next garbage collection will take place.", float64(ms.NextGC))
	one("go_memstats_stack_inuse_bytes", "gauge", "Number of bytes obtained from system for stack allocator in non-CGO environments.", float64(ms.StackInuse))
	one("go_memstats_sys_bytes", "gauge", "Number of bytes obtained from system.", float64(ms.Sys))
	if st := procStatus(); st != nil {
		if n, err := strconv.ParseFloat(st["Threads"], 64); err == nil {
			one("go_threads", "gauge", "Number of OS threads created.", n)
		}
		for _, m := range []struct{ key, name, help string }{
			{"VmRSS", "process_resident_memory_bytes", "Resident memory size in bytes."},
			{"VmSize", "process_virtual_memory_bytes", "Virtual memory size in bytes."},
		} {
			if kb, err := strconv.ParseFloat(strings.TrimSuffix(st[m.key], " kB"), 64); err == nil {
				one(m.name, "gauge", m.help, kb*1024)
			}
		}
	}
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) == nil {
		one("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.",
			float64(ru.Utime.Nano()+ru.Stime.Nano())/1e9)
	}
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		one("process_open_fds", "gauge", "Number of open file descriptors.", float64(len(fds)))
	}
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) == nil {
		one("process_max_fds", "gauge", "Maximum number of open file descriptors.", float64(lim.Cur))
	}
}

// procStatus is /proc/self/status as "Key" -> "value"; nil where it cannot be read.
func procStatus() map[string]string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// SplitAddr checks a --metrics-addr and splits it: a missing host is 127.0.0.1, and the port
// is a number from 0 (any free port) to 65535.
func SplitAddr(addr string) (host, port string, err error) {
	host, port, err = net.SplitHostPort(addr)
	if err != nil {
		return "", "", fmt.Errorf("--metrics-addr %q: want HOST:PORT or :PORT", addr)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n > 65535 {
		return "", "", fmt.Errorf("--metrics-addr %q: port %q is not a TCP port number (want 0 to 65535, 0 for any free one)", addr, port)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return host, port, nil
}

// Serve listens on addr (a missing host means loopback) and serves /metrics until the
// process exits. It returns the address it listens on.
func Serve(addr string, c *Collector) (string, error) {
	host, port, err := SplitAddr(addr)
	if err != nil {
		return "", err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		// The same line as --listen's.
		return "", fmt.Errorf("--metrics-addr %s: address already in use: another process listens there; stop it or choose another address", addr)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "", fmt.Errorf("--metrics-addr %s: this machine has no address %s; give one of its own addresses, or :PORT for 127.0.0.1", addr, host)
	case err != nil:
		return "", fmt.Errorf("--metrics-addr %s: %w", addr, err)
	}
	conns := &connList{max: metricsConns}
	mux := http.NewServeMux()
	mux.Handle("/metrics", conns.serving(Handler(c)))
	// A scrape is one small request, sent at once: a client slow to send it or to read the
	// answer, or holding an idle connection, is cut off, and when metricsConns connections are
	// open a new one takes the place of the one that has waited longest without a request in
	// progress (connList), so that idle connections — the sandboxed command may open as many
	// as it likes on loopback — can neither pile up goroutines and fds in cgrun nor keep a
	// scrape waiting.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 10 * time.Second, MaxHeaderBytes: 8 << 10,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context { return context.WithValue(ctx, connKey{}, c) }}
	go srv.Serve(&capListener{Listener: ln, conns: conns}) //nolint:errcheck // ends with the process
	return ln.Addr().String(), nil
}

// Handler serves c's series and cgrun's own figures (go_goroutines, go_memstats_*,
// process_*) in the text format.
func Handler(c *Collector) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		var b bytes.Buffer
		c.WriteText(&b)
		writeSelf(&b)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = w.Write(b.Bytes())
	})
}

// metricsConns is how many connections the metrics endpoint keeps open at once.
const metricsConns = 16

// connKey finds a request's connection in its context.
type connKey struct{}

// connList is the metrics endpoint's open connections, in the order they began to wait (were
// accepted, or answered their last request).
type connList struct {
	mu    sync.Mutex
	max   int
	conns []*slotConn
}

// capListener accepts every connection at once, and keeps at most conns.max open: when one
// more comes, the one that has waited longest without a request in progress is closed; when
// every one is busy answering, the new one is. Accept itself never waits, so that a scrape is
// not queued behind idle connections in the kernel's accept queue.
type capListener struct {
	net.Listener
	conns *connList
}

func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		sc := &slotConn{Conn: c, list: l.conns}
		if l.conns.add(sc) {
			return sc, nil
		}
		c.Close() // every open connection is being answered: this one waits its turn again
	}
}

// add lists c, first making room by closing the longest-waiting idle connection; it reports
// false, listing nothing, when every listed connection is busy.
func (l *connList) add(c *slotConn) bool {
	l.mu.Lock()
	var evict *slotConn
	if len(l.conns) >= l.max {
		for _, o := range l.conns {
			if !o.busy {
				evict = o
				break
			}
		}
		if evict == nil {
			l.mu.Unlock()
			return false
		}
		l.removeLocked(evict)
	}
	l.conns = append(l.conns, c)
	l.mu.Unlock()
	if evict != nil {
		evict.Close()
	}
	return true
}

func (l *connList) removeLocked(c *slotConn) {
	if i := slices.Index(l.conns, c); i >= 0 {
		l.conns = slices.Delete(l.conns, i, i+1)
	}
}

// serving marks a connection busy while h answers a request on it, and, once answered, as
// waiting from then on (last in the eviction order).
func (l *connList) serving(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := r.Context().Value(connKey{}).(*slotConn)
		if c != nil {
			l.mark(c, true)
			defer l.mark(c, false)
		}
		h.ServeHTTP(w, r)
	})
}

func (l *connList) mark(c *slotConn, busy bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c.busy = busy
	if !busy && slices.Contains(l.conns, c) {
		l.removeLocked(c)
		l.conns = append(l.conns, c)
	}
}

// slotConn leaves the list once, when it is closed.
type slotConn struct {
	net.Conn
	list *connList
	busy bool // a request on it is being answered; under list.mu
	once sync.Once
}

func (c *slotConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.list.mu.Lock()
		c.list.removeLocked(c)
		c.list.mu.Unlock()
	})
	return err
}

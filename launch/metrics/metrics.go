// Package metrics serves a running cgrun's state and its group's files as Prometheus metrics.
package metrics

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/launch/policy"
	"github.com/cgrun/cgrun/launch/state"
	"github.com/cgrun/cgrun/oomwatch"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
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

	current, peak, max, high, pids, generation, running, pressure, events, restarts *prometheus.Desc
}

func NewCollector(snapshot func() state.State) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, append([]string{"name"}, labels...), nil)
	}
	return &Collector{
		snapshot:   snapshot,
		last:       map[string]float64{},
		current:    d("cgrun_memory_current_bytes", "memory.current of the current generation's group; 0 between generations."),
		peak:       d("cgrun_memory_peak_bytes", "memory.peak of the current generation's group (Linux 5.19); before 5.19 the highest memory.current cgrun sampled; the last generation's between generations."),
		max:        d("cgrun_memory_max_bytes", "memory.max of the group; +Inf when unlimited."),
		high:       d("cgrun_memory_high_bytes", "memory.high of the group; +Inf when unlimited."),
		pids:       d("cgrun_pids_current", "pids.current: processes and threads in the group; 0 between generations."),
		generation: d("cgrun_generation", "The current generation: 1 for the first run, +1 for each restart."),
		running:    d("cgrun_generation_running", "1 while a generation runs, 0 between generations (a restart gap)."),
		pressure:   d("cgrun_memory_pressure_avg10_percent", "memory.pressure avg10 of the group, where the kernel has PSI.", "kind"),
		events:     d("cgrun_memory_events_total", "memory.events counters, summed over all generations.", "event"),
		restarts:   d("cgrun_restarts_total", "Restarts of the command, by reason.", "reason"),
	}
}

func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.current, c.peak, c.max, c.high, c.pids, c.generation, c.running, c.pressure, c.events, c.restarts} {
		ch <- d
	}
}

func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.snapshot()
	dir := s.Dir()
	c.mu.Lock()
	defer c.mu.Unlock()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{s.Name}, labels...)...)
	}
	// read is a gauge from the group, or in a gap: 0 for what processes hold, the configured
	// value for a limit not read yet, the last value otherwise (none, where never read).
	read := func(d *prometheus.Desc, key string, v float64, err error, labels ...string) {
		last, seen := c.last[key]
		switch {
		case err == nil:
			c.last[key] = v
			gauge(d, v, labels...)
		case key == "memory.current" || key == "pids.current":
			gauge(d, 0, labels...)
		case seen:
			gauge(d, last, labels...)
		case key == "memory.max" || key == "memory.high":
			gauge(d, configured(s.Limits[key]), labels...)
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
	for d, file := range map[*prometheus.Desc]string{c.max: "memory.max", c.high: "memory.high"} {
		n, ok, err := cgroup.ReadUint(dir, file)
		v := math.Inf(1)
		if ok {
			v = float64(n)
		}
		read(d, file, v, err)
	}
	n, _, err := cgroup.ReadUint(dir, "pids.current")
	read(c.pids, "pids.current", float64(n), err)
	gauge(c.generation, float64(s.Generation))
	gauge(c.running, running)
	p, err := oomwatch.ReadPressure(dir)
	read(c.pressure, "memory.pressure some", p.SomeAvg10, err, "some")
	read(c.pressure, "memory.pressure full", p.FullAvg10, err, "full")
	var live map[string]uint64
	if s.Counted != s.Group {
		// Once a generation ended its counters are in Totals, while its group may still be
		// there: adding them again would count them twice, then drop (a counter reset).
		live, _ = cgroup.MemoryEvents(dir, state.Leaf(dir))
	}
	for _, k := range cgroup.MemoryEventNames() {
		ch <- prometheus.MustNewConstMetric(c.events, prometheus.CounterValue, float64(s.Totals[k]+live[k]), s.Name, k)
	}
	for _, reason := range policy.Reasons() { // the reason label's values, all present from the start
		ch <- prometheus.MustNewConstMetric(c.restarts, prometheus.CounterValue, float64(s.RestartsByReason[string(reason)]), s.Name, string(reason))
	}
}

// configured is a limit as state.State.Limits records it: bytes, or "max" (or unset) for +Inf.
func configured(v string) float64 {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return math.Inf(1)
	}
	return float64(n)
}

// serveMetrics listens on addr (a missing host means loopback) and serves /metrics until the
// process exits. It returns the address it listens on.
func Serve(addr string, c prometheus.Collector) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("--metrics-addr %q: want HOST:PORT or :PORT", addr)
	}
	if host == "" {
		host = "127.0.0.1"
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
	reg := prometheus.NewRegistry()
	// go_goroutines, go_memstats_* and process_* (open fds, RSS) of cgrun itself.
	reg.MustRegister(c, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	// A scrape is one small request: clients that are slow to send it, read the answer, or
	// that hold idle connections are cut off, and at most metricsConns are served at once, so
	// that the endpoint cannot pile up goroutines and fds in cgrun.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 8 << 10}
	go srv.Serve(&capListener{Listener: ln, slots: make(chan struct{}, metricsConns)}) //nolint:errcheck // ends with the process
	return ln.Addr().String(), nil
}

// metricsConns is how many connections the metrics endpoint serves at once; more wait in the
// kernel's accept queue.
const metricsConns = 8

// capListener accepts a connection only while fewer than cap(slots) are open.
type capListener struct {
	net.Listener
	slots chan struct{}
}

func (l *capListener) Accept() (net.Conn, error) {
	l.slots <- struct{}{}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &slotConn{Conn: c, free: func() { <-l.slots }}, nil
}

// slotConn gives its slot back once, when it is closed.
type slotConn struct {
	net.Conn
	once sync.Once
	free func()
}

func (c *slotConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.free)
	return err
}

package launch

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/oomwatch"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsCollector serves the sandbox's figures to Prometheus. It reads the current
// generation's files at scrape time, so nothing is sampled between scrapes.
type metricsCollector struct {
	snapshot func() State

	current, peak, max, high, pids, generation, pressure, events, restarts *prometheus.Desc
}

func newMetricsCollector(snapshot func() State) *metricsCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, append([]string{"name"}, labels...), nil)
	}
	return &metricsCollector{
		snapshot:   snapshot,
		current:    d("cgrun_memory_current_bytes", "memory.current of the current generation's group."),
		peak:       d("cgrun_memory_peak_bytes", "memory.peak of the current generation's group (Linux 5.19); before 5.19 the highest memory.current cgrun sampled."),
		max:        d("cgrun_memory_max_bytes", "memory.max of the group; +Inf when unlimited."),
		high:       d("cgrun_memory_high_bytes", "memory.high of the group; +Inf when unlimited."),
		pids:       d("cgrun_pids_current", "pids.current: processes and threads in the group."),
		generation: d("cgrun_generation", "The current generation: 1 for the first run, +1 for each restart."),
		pressure:   d("cgrun_memory_pressure_avg10_percent", "memory.pressure avg10 of the group, where the kernel has PSI.", "kind"),
		events:     d("cgrun_memory_events_total", "memory.events counters, summed over all generations.", "event"),
		restarts:   d("cgrun_restarts_total", "Restarts of the command, by reason.", "reason"),
	}
}

func (c *metricsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.current, c.peak, c.max, c.high, c.pids, c.generation, c.pressure, c.events, c.restarts} {
		ch <- d
	}
}

func (c *metricsCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.snapshot()
	dir := s.Dir()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{s.Name}, labels...)...)
	}
	if n, err := cgroup.MemoryCurrent(dir); err == nil {
		gauge(c.current, float64(n))
	}
	cur, _ := cgroup.MemoryCurrent(dir)
	if n, src := LivePeak(s, dir, cur); src != "" {
		gauge(c.peak, float64(n))
	}
	for d, file := range map[*prometheus.Desc]string{c.max: "memory.max", c.high: "memory.high"} {
		if n, ok, err := cgroup.ReadUint(dir, file); err == nil {
			v := math.Inf(1)
			if ok {
				v = float64(n)
			}
			gauge(d, v)
		}
	}
	if n, _, err := cgroup.ReadUint(dir, "pids.current"); err == nil {
		gauge(c.pids, float64(n))
	}
	gauge(c.generation, float64(s.Generation))
	if p, err := oomwatch.ReadPressure(dir); err == nil {
		gauge(c.pressure, p.SomeAvg10, "some")
		gauge(c.pressure, p.FullAvg10, "full")
	}
	live, _ := cgroup.MemoryEvents(dir, Leaf(dir))
	for _, k := range []string{"low", "high", "max", "oom", "oom_kill", "oom_group_kill"} {
		ch <- prometheus.MustNewConstMetric(c.events, prometheus.CounterValue, float64(s.Totals[k]+live[k]), s.Name, k)
	}
	for _, reason := range restartReasons() {
		ch <- prometheus.MustNewConstMetric(c.restarts, prometheus.CounterValue, float64(s.RestartsByReason[reason]), s.Name, reason)
	}
}

// restartReasons are the values of the reason label, all present from the start.
func restartReasons() []string {
	return []string{"oom_kill", "abort", "failure", "exit", "lifetime", "memory_above", "memory_high", "stall", "pressure", "health", "request"}
}

// serveMetrics listens on addr (a missing host means loopback) and serves /metrics until the
// process exits. It returns the address it listens on.
func serveMetrics(addr string, c prometheus.Collector) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("--metrics-addr %q: want HOST:PORT or :PORT", addr)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
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

// LivePeak is the memory peak of a running cgrun's current generation, for ps, status and
// metrics: memory.peak where the kernel has it, else the higher of the peak cgrun sampled (in
// the state) and cur, a memory.current the caller just read.
func LivePeak(s State, dir string, cur uint64) (uint64, cgroup.PeakSource) {
	if n, err := cgroup.MemoryPeak(dir); err == nil {
		return n, cgroup.PeakKernel
	}
	if _, err := os.Stat(dir); err != nil { // between two generations: no group to read
		return s.MemoryPeak, s.MemoryPeakSource
	}
	return max(s.MemoryPeak, cur), cgroup.PeakSampled
}

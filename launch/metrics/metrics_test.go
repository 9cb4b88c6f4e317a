package metrics

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cgrun/cgrun/launch/state"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// writeGroup fills dir with the files of a generation's group, as the kernel shows them.
func writeGroup(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// gather scrapes c once through Handler, parses the exposition with Prometheus' own parser
// (prometheus/common/expfmt, which fails on a malformed line), and returns series
// (name{labels}, "name" left out) -> value.
func gather(t *testing.T, c *Collector) map[string]float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	Handler(c).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("Content-Type %q", ct)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("%v\nexposition:\n%s", err, rec.Body.String())
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				if l.GetName() != "name" {
					labels = append(labels, l.GetName()+"="+l.GetValue())
				}
			}
			key := mf.GetName()
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.Gauge != nil:
				out[key] = m.Gauge.GetValue()
			case m.Counter != nil:
				out[key] = m.Counter.GetValue()
			}
		}
	}
	return out
}

var gen1Files = map[string]string{
	"memory.current":  "1048576\n",
	"memory.peak":     "4194304\n",
	"memory.max":      "67108864\n",
	"memory.high":     "max\n",
	"pids.current":    "3\n",
	"memory.events":   "low 0\nhigh 5\nmax 2\noom 1\noom_kill 1\noom_group_kill 1\n",
	"memory.pressure": "some avg10=1.50 avg60=0.00 avg300=0.00 total=10\nfull avg10=0.50 avg60=0.00 avg300=0.00 total=5\n",
}

// TestMetricsKeepSeriesAcrossRestartGaps: every series served while a generation runs is still
// served between generations, when its group is gone; counters never go down.
func TestMetricsKeepSeriesAcrossRestartGaps(t *testing.T) {
	mount := t.TempDir()
	st := state.State{Name: "w", Mount: mount, Group: "/w-1.1", Generation: 1,
		Totals: map[string]uint64{}, RestartsByReason: map[string]int{}}
	c := NewCollector(func() state.State { return st })
	writeGroup(t, filepath.Join(mount, "w-1.1"), gen1Files)

	running := gather(t, c)
	want := map[string]float64{
		"cgrun_memory_current_bytes": 1 << 20, "cgrun_memory_peak_bytes": 4 << 20, "cgrun_memory_max_bytes": 64 << 20,
		"cgrun_pids_current": 3, "cgrun_generation": 1, "cgrun_generation_running": 1,
		"cgrun_memory_pressure_avg10_percent{kind=some}": 1.5, "cgrun_memory_pressure_avg10_percent{kind=full}": 0.5,
		"cgrun_memory_events_total{event=high}": 5, "cgrun_memory_events_total{event=oom_group_kill}": 1,
	}
	for k, v := range want {
		if running[k] != v {
			t.Errorf("running: %s = %v, want %v", k, running[k], v)
		}
	}
	if h := running["cgrun_memory_high_bytes"]; h < 1e300 {
		t.Errorf("running: memory.high max is %v, want +Inf", h)
	}

	// The generation ended: its counters went into Totals while its group is still there.
	st.Totals = map[string]uint64{"high": 5, "max": 2, "oom": 1, "oom_kill": 1, "oom_group_kill": 1}
	st.Counted = st.Group
	if got := gather(t, c)["cgrun_memory_events_total{event=high}"]; got != 5 {
		t.Errorf("after the generation ended, before teardown: high events %v, want 5 (not counted twice)", got)
	}

	// The gap: the group is removed, the next one does not exist yet.
	if err := os.RemoveAll(filepath.Join(mount, "w-1.1")); err != nil {
		t.Fatal(err)
	}
	gap := gather(t, c)
	for k := range running {
		if _, ok := gap[k]; !ok {
			t.Errorf("gap: %s is missing", k)
		}
	}
	wantGap := map[string]float64{
		"cgrun_memory_current_bytes": 0, "cgrun_pids_current": 0, "cgrun_generation_running": 0,
		"cgrun_memory_peak_bytes": 4 << 20, "cgrun_memory_max_bytes": 64 << 20,
		"cgrun_memory_pressure_avg10_percent{kind=some}": 1.5, "cgrun_memory_events_total{event=high}": 5,
	}
	for k, v := range wantGap {
		if gap[k] != v {
			t.Errorf("gap: %s = %v, want %v", k, gap[k], v)
		}
	}

	// The next generation: fresh counters in a fresh group, added to Totals.
	st.Group, st.Generation = "/w-1.2", 2
	next := map[string]string{}
	for k, v := range gen1Files {
		next[k] = v
	}
	next["memory.events"] = "low 0\nhigh 1\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n"
	writeGroup(t, filepath.Join(mount, "w-1.2"), next)
	if got := gather(t, c); got["cgrun_memory_events_total{event=high}"] != 6 || got["cgrun_generation_running"] != 1 || got["cgrun_generation"] != 2 {
		t.Errorf("generation 2: high events %v running %v generation %v; want 6, 1, 2",
			got["cgrun_memory_events_total{event=high}"], got["cgrun_generation_running"], got["cgrun_generation"])
	}
}

// TestMetricsFirstScrapeInAGap: a scrape before any generation's group was read (the first
// one may fall into a gap) still has the group's gauges: 0 held, the configured limits.
func TestMetricsFirstScrapeInAGap(t *testing.T) {
	st := state.State{Name: "w", Mount: t.TempDir(), Group: "/w-1.1", Generation: 1, Totals: map[string]uint64{},
		RestartsByReason: map[string]int{}, Limits: map[string]string{"memory.max": "67108864"}}
	got := gather(t, NewCollector(func() state.State { return st }))
	for k, v := range map[string]float64{"cgrun_memory_current_bytes": 0, "cgrun_pids_current": 0, "cgrun_memory_max_bytes": 64 << 20,
		"cgrun_generation_running": 0} {
		if have, ok := got[k]; !ok || have != v {
			t.Errorf("%s = %v (present %v), want %v", k, have, ok, v)
		}
	}
	if h, ok := got["cgrun_memory_high_bytes"]; !ok || h < 1e300 {
		t.Errorf("cgrun_memory_high_bytes = %v (present %v), want +Inf (not configured)", h, ok)
	}
}

// TestMetricsKernelWithoutAFile: a file the kernel lacks (memory.pressure without PSI) is never
// served, running or not; without memory.peak (before 5.19) the peak is the sampled one.
func TestMetricsKernelWithoutAFile(t *testing.T) {
	mount := t.TempDir()
	st := state.State{Name: "w", Mount: mount, Group: "/w-1.1", Generation: 1, Totals: map[string]uint64{}, RestartsByReason: map[string]int{}}
	c := NewCollector(func() state.State { return st })
	files := map[string]string{}
	for k, v := range gen1Files {
		if k != "memory.peak" && k != "memory.pressure" {
			files[k] = v
		}
	}
	writeGroup(t, filepath.Join(mount, "w-1.1"), files)
	for _, phase := range []string{"running", "gap"} {
		got := gather(t, c)
		if _, ok := got["cgrun_memory_pressure_avg10_percent{kind=some}"]; ok {
			t.Errorf("%s: memory.pressure served, but the kernel has no such file", phase)
		}
		if phase == "running" && got["cgrun_memory_peak_bytes"] != 1<<20 {
			t.Errorf("running: cgrun_memory_peak_bytes %v, want the sampled 1M", got["cgrun_memory_peak_bytes"])
		}
		if _, ok := got["cgrun_memory_current_bytes"]; !ok {
			t.Errorf("%s: cgrun_memory_current_bytes missing", phase)
		}
		os.RemoveAll(filepath.Join(mount, "w-1.1"))
	}
}

// TestMetricsPassPromtool lints the exposition with Prometheus' own `promtool check metrics`
// (Debian package prometheus; scripts/test installs it and sets CGRUN_REQUIRE_PROMTOOL=1).
func TestMetricsPassPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CGRUN_REQUIRE_PROMTOOL") == "1" {
			t.Fatalf("promtool is required here (CGRUN_REQUIRE_PROMTOOL=1): %v", err)
		}
		t.Skipf("promtool (Debian package prometheus) is not installed: %v", err)
	}
	mount := t.TempDir()
	st := state.State{Name: "w", Mount: mount, Group: "/w-1.1", Generation: 1, Totals: map[string]uint64{}, RestartsByReason: map[string]int{}}
	writeGroup(t, filepath.Join(mount, "w-1.1"), gen1Files)
	rec := httptest.NewRecorder()
	Handler(NewCollector(func() state.State { return st })).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(rec.Body.Bytes())
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s\nexposition:\n%s", err, out, rec.Body.String())
	}
}

// TestGrafanaDashboardQueries: every query of scripts/examples/grafana-dashboard.json parses as
// PromQL (promtool check rules) and names only metrics the collector serves, so a renamed
// metric breaks this test rather than a user's dashboard.
func TestGrafanaDashboardQueries(t *testing.T) {
	b, err := os.ReadFile("../../scripts/examples/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	served := map[string]bool{}
	for _, f := range NewCollector(func() state.State { return state.State{} }).families() {
		served[f.name] = true
	}
	var rules strings.Builder
	rules.WriteString("groups:\n- name: dashboard\n  rules:\n")
	n := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, m := range regexp.MustCompile(`cgrun_[a-z_0-9]+`).FindAllString(tg.Expr, -1) {
				if !served[m] {
					t.Errorf("the dashboard queries %s, which cgrun does not serve: %s", m, tg.Expr)
				}
			}
			// Grafana's variables, as Grafana would fill them in.
			expr := strings.NewReplacer("$__rate_interval", "1m", "$name", ".*").Replace(tg.Expr)
			fmt.Fprintf(&rules, "  - record: dashboard:query%d\n    expr: '%s'\n", n, expr)
			n++
		}
	}
	if n == 0 || len(served) < 5 {
		t.Fatalf("%d queries, %d metrics served", n, len(served))
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CGRUN_REQUIRE_PROMTOOL") == "1" {
			t.Fatalf("promtool is required here (CGRUN_REQUIRE_PROMTOOL=1): %v", err)
		}
		t.Skipf("promtool is not installed; the queries' syntax is not checked: %v", err)
	}
	file := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	os.WriteFile(file, []byte(rules.String()), 0o644)
	if out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
}

// TestMetricsServerNotStarved: 64 idle connections, and as many that sent half a request
// (slowloris), against the cap of metricsConns: a scrape is still answered within a second, and
// the endpoint holds no more than metricsConns connections open.
func TestMetricsServerNotStarved(t *testing.T) {
	for _, tc := range []struct {
		name string
		sent string
	}{
		{"idle", ""},
		{"half a request", "GET /metrics HTTP/1.1\r\nHost: x\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, err := Serve("127.0.0.1:0", NewCollector(func() state.State { return state.State{Name: "cap"} }))
			if err != nil {
				t.Fatal(err)
			}
			var held []net.Conn
			defer func() {
				for _, c := range held {
					c.Close()
				}
			}()
			for i := 0; i < 64; i++ {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				held = append(held, c)
				if tc.sent != "" {
					c.Write([]byte(tc.sent))
				}
			}
			for i := 0; i < 3; i++ {
				client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
				start := time.Now()
				resp, err := client.Get("http://" + addr + "/metrics")
				if err != nil {
					t.Fatalf("scrape %d beside 64 %s connections: %v", i+1, tc.name, err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("scrape %d: %s", i+1, resp.Status)
				}
				t.Logf("scrape %d answered in %v", i+1, time.Since(start))
			}
			// The endpoint closed all but metricsConns of them: the oldest read EOF (or reset).
			closed := 0
			for _, c := range held {
				c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
				var b [1]byte
				if _, err := c.Read(b[:]); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
					closed++
				}
			}
			if closed < 64-metricsConns {
				t.Errorf("%d of 64 %s connections were closed by the endpoint, want at least %d", closed, tc.name, 64-metricsConns)
			}
		})
	}
}

// TestMetricsServeCgrunsOwnFigures: cgrun's own figures, under the names client_golang's Go and
// process collectors gave them (README names them; the soak bench reads go_goroutines).
func TestMetricsServeCgrunsOwnFigures(t *testing.T) {
	got := gather(t, NewCollector(func() state.State { return state.State{Name: "w", Mount: t.TempDir(), Group: "/w-1.1"} }))
	for _, k := range []string{"go_goroutines", "go_threads", "go_memstats_alloc_bytes", "go_memstats_sys_bytes",
		"process_resident_memory_bytes", "process_open_fds", "process_max_fds"} {
		if got[k] <= 0 {
			t.Errorf("%s = %v, want > 0", k, got[k])
		}
	}
	if _, ok := got["process_cpu_seconds_total"]; !ok {
		t.Error("process_cpu_seconds_total missing")
	}
}

// TestMetricsLabelsSortedByName: each series' labels are written sorted by name, as
// client_golang wrote them, so that what matched a line of cgrun's exposition still does.
func TestMetricsLabelsSortedByName(t *testing.T) {
	mount := t.TempDir()
	st := state.State{Name: "w", Mount: mount, Group: "/w-1.1", Generation: 1, Totals: map[string]uint64{}, RestartsByReason: map[string]int{}}
	writeGroup(t, filepath.Join(mount, "w-1.1"), gen1Files)
	rec := httptest.NewRecorder()
	Handler(NewCollector(func() state.State { return st })).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{
		`cgrun_memory_events_total{event="oom_kill",name="w"} 1` + "\n",
		`cgrun_memory_pressure_avg10_percent{kind="some",name="w"} 1.5` + "\n",
		`cgrun_restarts_total{name="w",reason="oom_kill"} 0` + "\n",
		`cgrun_memory_high_bytes{name="w"} +Inf` + "\n",
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("no line %q in\n%s", want, rec.Body.String())
		}
	}
}

// TestServeBusyPortIsOneLine: a --metrics-addr another process listens on is said as --listen
// says it, with the fix.
func TestServeBusyPortIsOneLine(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	_, err = Serve(addr, NewCollector(func() state.State { return state.State{Name: "busy"} }))
	want := "--metrics-addr " + addr + ": address already in use: another process listens there; stop it or choose another address"
	if err == nil || err.Error() != want {
		t.Errorf("err %v, want %q", err, want)
	}
}

func TestSplitAddr(t *testing.T) {
	for _, tc := range []struct{ addr, host, port, err string }{
		{":9100", "127.0.0.1", "9100", ""},
		{"0.0.0.0:9100", "0.0.0.0", "9100", ""},
		{"[::1]:0", "::1", "0", ""},
		{":99999", "", "", `port "99999" is not a TCP port number`},
		{"localhost:abc", "", "", `port "abc" is not a TCP port number`},
		{":-1", "", "", "is not a TCP port number"},
		{"nohost", "", "", "want HOST:PORT or :PORT"},
	} {
		host, port, err := SplitAddr(tc.addr)
		if host != tc.host || port != tc.port || (tc.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("SplitAddr(%q) = %q, %q, %v; want %q, %q, %q", tc.addr, host, port, err, tc.host, tc.port, tc.err)
		}
	}
}

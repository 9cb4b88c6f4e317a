package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMetricsSeriesSurviveRestartGaps scrapes a worker that exits every second and is restarted
// after a 2 s delay, ten times a second: every scrape, in the gaps too, has every series, and
// the real exposition passes `promtool check metrics` (where promtool is installed).
func TestMetricsSeriesSurviveRestartGaps(t *testing.T) {
	requireCgroup2(t)
	cmd, rep := startSandbox(t, "gap", []string{"--restart", "always", "--restart-delay", "2", "--memory-max", "64M",
		"--metrics-addr", ":0"}, "sleep", "1")
	defer func() { cmd.Process.Signal(syscall.SIGTERM); waitCode(t, cmd) }()
	b := find(psJSON(t), "gap")
	if b == nil || b.MetricsAddr == "" {
		t.Fatalf("no metrics address for gap: %+v", b)
	}
	series := []string{"cgrun_memory_current_bytes", "cgrun_memory_max_bytes", "cgrun_memory_high_bytes", "cgrun_pids_current",
		"cgrun_generation", "cgrun_generation_running", `cgrun_memory_events_total{event="oom_kill"`}
	if _, err := os.Stat(rep.Dir + "/memory.peak"); err == nil {
		series = append(series, "cgrun_memory_peak_bytes")
	}
	var gaps, scrapes int
	var last []byte
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		body := fetchMetrics(t, b.MetricsAddr)
		scrapes++
		for _, s := range series {
			if !bytes.Contains(body, []byte("\n"+s)) {
				t.Errorf("scrape %d lacks %s:\n%s", scrapes, s, grepCgrun(body))
			}
		}
		if bytes.Contains(body, []byte(`cgrun_generation_running{name="gap"} 0`)) {
			gaps++
			if !bytes.Contains(body, []byte(`cgrun_memory_current_bytes{name="gap"} 0`)) {
				t.Errorf("in a gap memory.current is not 0:\n%s", grepCgrun(body))
			}
		}
		last = body
	}
	if gaps == 0 {
		t.Errorf("none of %d scrapes fell into a restart gap; last:\n%s", scrapes, grepCgrun(last))
	}
	if !bytes.Contains(last, []byte(`cgrun_generation{name="gap"} 2`)) && !bytes.Contains(last, []byte(`cgrun_generation{name="gap"} 3`)) {
		t.Errorf("no restart seen:\n%s", grepCgrun(last))
	}
	t.Logf("%d scrapes, %d in a restart gap", scrapes, gaps)
	promtool, err := exec.LookPath("promtool")
	if err != nil && os.Getenv("CGRUN_REQUIRE_PROMTOOL") == "1" {
		t.Errorf("promtool is required here (CGRUN_REQUIRE_PROMTOOL=1): %v", err)
	}
	if err == nil {
		c := exec.Command(promtool, "check", "metrics")
		c.Stdin = bytes.NewReader(last)
		if out, err := c.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	}
}

func fetchMetrics(t *testing.T, addr string) []byte {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func grepCgrun(body []byte) string {
	var b strings.Builder
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, "cgrun_") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// TestMetricsRealPrometheusKeepsSeriesWhole: Debian's Prometheus scrapes a worker that restarts
// every ~2.5 s once a second; every scrape that reached cgrun has cgrun_memory_current_bytes,
// gaps included (a series missing from a scrape gets a stale marker, which the counts skip).
func TestMetricsRealPrometheusKeepsSeriesWhole(t *testing.T) {
	requireCgroup2(t)
	prom, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CGRUN_REQUIRE_PROMTOOL") == "1" {
			t.Fatalf("prometheus is required here (CGRUN_REQUIRE_PROMTOOL=1; Debian package prometheus): %v", err)
		}
		t.Skipf("prometheus (Debian package prometheus) is not installed: %v", err)
	}
	cmd, _ := startSandbox(t, "prom", []string{"--restart", "always", "--restart-delay", "1.5", "--metrics-addr", ":0"}, "sleep", "1")
	defer func() { cmd.Process.Signal(syscall.SIGTERM); waitCode(t, cmd) }()
	b := find(psJSON(t), "prom")
	if b == nil || b.MetricsAddr == "" {
		t.Fatalf("no metrics address: %+v", b)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	web := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	config := filepath.Join(dir, "prometheus.yml")
	os.WriteFile(config, []byte(fmt.Sprintf("global: {scrape_interval: 1s, scrape_timeout: 900ms}\n"+
		"scrape_configs: [{job_name: cgrun, static_configs: [{targets: ['%s']}]}]\n", b.MetricsAddr)), 0o644)
	p := exec.Command(prom, "--config.file="+config, "--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+web)
	var plog bytes.Buffer
	p.Stdout, p.Stderr = &plog, &plog
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { p.Process.Kill(); p.Wait() }()
	// Every query is evaluated at the one instant at: queries made one after the other at "now"
	// could each see one more scrape than the last (Prometheus scrapes on meanwhile).
	var at string
	query := func(q string) float64 {
		t.Helper()
		resp, err := http.Get("http://" + web + "/api/v1/query?query=" + url.QueryEscape(q) + "&time=" + at)
		if err != nil {
			t.Fatalf("query %s: %v\n%s", q, err, plog.String())
		}
		defer resp.Body.Close()
		var r struct {
			Data struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || len(r.Data.Result) > 1 {
			t.Fatalf("query %s: %v, %+v", q, err, r)
		}
		if len(r.Data.Result) == 0 {
			return 0 // no such series in the window
		}
		s, _ := r.Data.Result[0].Value[1].(string)
		v, _ := strconv.ParseFloat(s, 64)
		return v
	}
	// Ready, then 16 s: Prometheus applies new targets after up to 5 s, then scrapes through
	// three or four restart gaps (the queries look at the first 14 s).
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if resp, err := http.Get("http://" + web + "/-/ready"); err == nil && resp.StatusCode == 200 {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready after 60 s:\n%s", plog.String())
		}
	}
	time.Sleep(16 * time.Second)
	// 2 s back: every scrape before it is stored by now.
	at = strconv.FormatFloat(float64(time.Now().Add(-2*time.Second).UnixMilli())/1000, 'f', 3, 64)
	ups := query(`count_over_time(up{job="cgrun"}[1m])`)
	reached := query(`sum_over_time(up{job="cgrun"}[1m])`)
	current := query(`count_over_time(cgrun_memory_current_bytes[1m])`)
	gaps := query(`count_over_time((cgrun_generation_running == 0)[1m:1s])`)
	t.Logf("%v scrapes, %v reached cgrun, %v with cgrun_memory_current_bytes; %v seconds in a restart gap", ups, reached, current, gaps)
	if reached < 5 || current != reached {
		t.Errorf("cgrun_memory_current_bytes in %v of %v scrapes that reached cgrun; want all, and at least 5", current, reached)
	}
	if gaps == 0 {
		t.Errorf("no scrape fell into a restart gap")
	}
}

// TestMetricsBusyPortIsOneLine: a --metrics-addr port another process holds is one line, as
// for --listen, exit 125, and nothing left behind.
func TestMetricsBusyPortIsOneLine(t *testing.T) {
	h := requireCgroup2(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	before := groupsUnder(t, h.SelfDir())
	r := runCgrun(t, nil, []string{"--metrics-addr", ln.Addr().String()}, "exit", "0")
	want := "cgrun: --metrics-addr " + ln.Addr().String() + ": address already in use: another process listens there; stop it or choose another address\n"
	if r.code != 125 || r.stderr != want {
		t.Errorf("exit %d, stderr %q; want 125 and %q", r.code, r.stderr, want)
	}
	assertNothingLeft(t, h, before)
}

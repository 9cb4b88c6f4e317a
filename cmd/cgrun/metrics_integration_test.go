package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
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

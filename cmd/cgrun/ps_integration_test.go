package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgrun/cgrun/cgroup"
)

// cgrunCmd runs a cgrun subcommand (ps, status, stop, recycle) and returns its output.
func cgrunCmd(t *testing.T, cred *syscall.Credential, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(cgrunBin(t), args...)
	cmd.Env = append(os.Environ(), "CGRUNTEST_HELPER=1")
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Env = []string{"PATH=/usr/bin:/bin"}
	}
	return runToEnd(t, cmd)
}

// runToEnd runs cmd and returns its stdout, stderr and exit code.
func runToEnd(t *testing.T, cmd *exec.Cmd) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// startSandbox starts `cgrun run --name NAME FLAGS -- helper ARGS` and waits until the helper has
// reported (so the sandbox is up); it returns the cgrun process and the helper's report.
func startSandbox(t *testing.T, name string, flags []string, helperArgs ...string) (*exec.Cmd, helperReport) {
	t.Helper()
	cmd, out, errb := startCgrun(t, append([]string{"--name", name}, flags...), helperArgs...)
	if !out.Scan() {
		t.Fatalf("%s did not start: %s", name, errb)
	}
	rep := parseReport(t, out.Text())
	go io.Copy(io.Discard, drain(out))
	return cmd, rep
}

func drain(sc *bufio.Scanner) io.Reader {
	r, w := io.Pipe()
	go func() {
		for sc.Scan() {
		}
		w.Close()
	}()
	return r
}

func psJSON(t *testing.T) []sandbox {
	t.Helper()
	out, errs, code := cgrunCmd(t, nil, "ps", "--json")
	if code != 0 {
		t.Fatalf("cgrun ps --json: %d %s", code, errs)
	}
	var boxes []sandbox
	if err := json.Unmarshal([]byte(out), &boxes); err != nil {
		t.Fatalf("cgrun ps --json printed %q: %v", out, err)
	}
	return boxes
}

func find(boxes []sandbox, name string) *sandbox {
	for i := range boxes {
		if boxes[i].Name == name {
			return &boxes[i]
		}
	}
	return nil
}

func TestPsShowsRunningSandboxes(t *testing.T) {
	requireCgroup2(t)
	a, repA := startSandbox(t, "ps-alpha", []string{"--memory-max", "64M", "--memory-high", "48M"}, "sleep", "30")
	b, _ := startSandbox(t, "ps-beta", []string{"--memory-max", "32M"}, "sleep", "30")
	boxes := psJSON(t)
	ba, bb := find(boxes, "ps-alpha"), find(boxes, "ps-beta")
	if ba == nil || bb == nil {
		t.Fatalf("cgrun ps --json shows %+v; want ps-alpha and ps-beta", boxes)
	}
	cur, _ := cgroup.MemoryCurrent(repA.Dir)
	if ba.Pid != a.Process.Pid || bb.Pid != b.Process.Pid || ba.ChildPid != repA.Pid || ba.Generation != 1 ||
		ba.MemoryMax == nil || *ba.MemoryMax != 64<<20 || ba.MemoryHigh == nil || *ba.MemoryHigh != 48<<20 ||
		*bb.MemoryMax != 32<<20 || ba.Group != repA.Group || ba.MemoryCurrent == 0 ||
		float64(ba.MemoryCurrent) > 1.5*float64(cur) || float64(ba.MemoryCurrent) < 0.5*float64(cur) {
		t.Errorf("ps-alpha %+v (group's memory.current %d), ps-beta %+v", ba, cur, bb)
	}
	table, _, _ := cgrunCmd(t, nil, "ps")
	lines := strings.Split(strings.TrimRight(table, "\n"), "\n")
	for _, l := range lines {
		if len([]rune(l)) > 100 {
			t.Errorf("ps line is %d columns wide: %q", len([]rune(l)), l)
		}
	}
	if !strings.Contains(table, "ps-alpha") || !strings.Contains(table, "64M") || !strings.Contains(table, "48M") {
		t.Errorf("ps table:\n%s", table)
	}
	status, _, code := cgrunCmd(t, nil, "status", "ps-alpha")
	for _, want := range []string{"memory.stat", "anon ", "file ", "kernel ", "sock ", "shmem ", "pressure", "generation 1", "memory.max=64M memory.high=48M"} {
		if code != 0 || !strings.Contains(status, want) {
			t.Errorf("cgrun status lacks %q:\n%s", want, status)
		}
	}
	a.Process.Signal(syscall.SIGTERM)
	b.Process.Signal(syscall.SIGTERM)
	waitCode(t, a)
	waitCode(t, b)
	if boxes := psJSON(t); find(boxes, "ps-alpha") != nil {
		t.Errorf("ps-alpha still listed after it exited")
	}
}

func TestPsCleansStaleEntries(t *testing.T) {
	h := requireCgroup2(t)
	cmd, rep := startSandbox(t, "ps-stale", nil, "sleep", "30")
	state := filepath.Join("/run/cgrun", strconv.Itoa(cmd.Process.Pid)+".json")
	if _, err := os.Stat(state); err != nil {
		t.Fatalf("no state file: %v", err)
	}
	cmd.Process.Kill() // SIGKILL: cgrun cannot clean up after itself
	cmd.Process.Wait() // not cmd.Wait: the orphaned helper still holds cgrun's stderr pipe
	t.Cleanup(func() { // what cgrun would have removed
		cgroup.Kill(context.Background(), rep.Dir)
		cgroup.Remove(rep.Dir)
		cgroup.Remove(filepath.Join(h.SelfDir(), "cgrun-"+strconv.Itoa(cmd.Process.Pid)))
	})
	if find(psJSON(t), "ps-stale") != nil {
		t.Error("cgrun ps lists a cgrun that was SIGKILLed")
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("stale state file %s is still there (%v)", state, err)
	}
}

func TestRecycleAndStopCommands(t *testing.T) {
	requireCgroup2(t)
	cmd, _ := startSandbox(t, "ps-cycle", []string{"--restart-delay", "0"}, "sleep", "60")
	_, errs, code := cgrunCmd(t, nil, "recycle", "ps-cycle")
	if code != 0 {
		t.Fatalf("cgrun recycle: %d %s", code, errs)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if b := find(psJSON(t), "ps-cycle"); b != nil && b.Generation == 2 && b.Restarts == 1 && b.RestartsByReason["request"] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no second generation after cgrun recycle: %+v", find(psJSON(t), "ps-cycle"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Another user may neither stop nor recycle it.
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534}
	for _, verb := range []string{"stop", "recycle"} {
		_, errs, code := cgrunCmd(t, nobody, verb, "ps-cycle")
		if code != 125 || !strings.Contains(errs, "only root or that user") {
			t.Errorf("cgrun %s as nobody: exit %d, stderr %q; want 125 and a refusal", verb, code, errs)
		}
	}
	out, errs, code := cgrunCmd(t, nil, "stop", "ps-cycle")
	if code != 0 || !strings.Contains(out, "stopped ps-cycle") {
		t.Errorf("cgrun stop: exit %d, %q %q", code, out, errs)
	}
	if c := waitCode(t, cmd); c != 128+15 {
		t.Errorf("the sandbox exited %d after cgrun stop, want 143 (its child's SIGTERM)", c)
	}
	if _, errs, code := cgrunCmd(t, nil, "stop", "no-such-sandbox"); code != 125 || !strings.Contains(errs, "no running cgrun named") {
		t.Errorf("stop of a missing sandbox: %d %q", code, errs)
	}
}

// scrape reads a cgrun's /metrics into series -> value.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	metrics := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, val, _ := strings.Cut(line, " ")
		v, _ := strconv.ParseFloat(val, 64)
		metrics[name] = v
	}
	return metrics
}

func TestMetricsEndpoint(t *testing.T) {
	requireCgroup2(t)
	cmd, rep := startSandbox(t, "ps-metrics", []string{"--memory-max", "64M", "--memory-high", "56M", "--metrics-addr", ":0"}, "sleep", "30")
	defer func() { cmd.Process.Signal(syscall.SIGTERM); waitCode(t, cmd) }()
	b := find(psJSON(t), "ps-metrics")
	if b == nil || !strings.HasPrefix(b.MetricsAddr, "127.0.0.1:") {
		t.Fatalf("metrics address %+v: want one on loopback", b)
	}
	metrics := scrape(t, b.MetricsAddr)
	want := map[string]float64{
		`cgrun_memory_max_bytes{name="ps-metrics"}`:                     64 << 20,
		`cgrun_memory_high_bytes{name="ps-metrics"}`:                    56 << 20,
		`cgrun_generation{name="ps-metrics"}`:                           1,
		`cgrun_memory_events_total{event="oom_kill",name="ps-metrics"}`: 0,
		`cgrun_restarts_total{name="ps-metrics",reason="oom_kill"}`:     0,
	}
	for k, v := range want {
		if have, ok := metrics[k]; !ok || have != v {
			t.Errorf("%s = %v (present %v), want %v", k, have, ok, v)
		}
	}
	cur, _ := cgroup.MemoryCurrent(rep.Dir)
	for _, k := range []string{`cgrun_memory_current_bytes{name="ps-metrics"}`, `cgrun_memory_peak_bytes{name="ps-metrics"}`, `cgrun_pids_current{name="ps-metrics"}`} {
		if metrics[k] <= 0 {
			t.Errorf("%s = %v, want > 0", k, metrics[k])
		}
	}
	if c := metrics[`cgrun_memory_current_bytes{name="ps-metrics"}`]; c < 0.5*float64(cur) || c > 1.5*float64(cur) {
		t.Errorf("cgrun_memory_current_bytes %v, the group's memory.current %d", c, cur)
	}
}

// TestStopWaitsForTheStopTimeout: cgrun stop waits, by default, for the target's own
// --stop-timeout to pass (the group is killed then, and cgrun exits); a shorter --timeout ends
// with one line saying when the kill comes and what to do; --timeout 0 sends SIGTERM and
// returns at once.
func TestStopWaitsForTheStopTimeout(t *testing.T) {
	requireCgroup2(t)
	start := func(name, stopTimeout string, command ...string) *exec.Cmd {
		cmd := exec.Command(cgrunBin(t), append([]string{"run", "--name", name, "--stop-timeout", stopTimeout, "--"}, command...)...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill() })
		if !eventually(10*time.Second, func() bool { _, _, code := cgrunCmd(t, nil, "status", name); return code == 0 }) {
			t.Fatalf("%s: no state after 10 s", name)
		}
		return cmd
	}
	// A command deaf to SIGTERM: only the group's kill at --stop-timeout ends it.
	deaf := start("stopwait", "3s", "/bin/sh", "-c", `trap "" TERM; exec sleep 100`)
	_, errs, code := cgrunCmd(t, nil, "stop", "--timeout", "300ms", "stopwait")
	want := "cgrun: stopwait (pid " + strconv.Itoa(deaf.Process.Pid) + ") is still running 300ms after SIGTERM (it kills its command's group 3s after the signal, its --stop-timeout, and then exits); wait longer with --timeout DUR, or see 'cgrun status stopwait'\n"
	if code != 125 || errs != want {
		t.Errorf("stop --timeout 300ms: exit %d, stderr %q; want 125 and %q", code, errs, want)
	}
	began := time.Now()
	if out, errs, code := cgrunCmd(t, nil, "stop", "stopwait"); code != 0 || !strings.Contains(out, "stopped stopwait") {
		t.Errorf("stop, waiting by default: exit %d, %q %q; want 0 once the group was killed", code, out, errs)
	}
	if c := waitCode(t, deaf); c != 137 {
		t.Errorf("the run exited %d, want 137 (its group killed after --stop-timeout)", c)
	}
	t.Logf("the default stop returned after %v", time.Since(began).Round(time.Millisecond))

	quick := start("stopnow", "10s", "/bin/sleep", "100")
	if out, errs, code := cgrunCmd(t, nil, "stop", "--timeout", "0", "stopnow"); code != 0 || out != "cgrun: asked stopnow (pid "+strconv.Itoa(quick.Process.Pid)+") to stop\n" {
		t.Errorf("stop --timeout 0: exit %d, %q %q; want 0 and one line", code, out, errs)
	}
	if c := waitCode(t, quick); c != 143 {
		t.Errorf("the run exited %d after stop --timeout 0, want 143", c)
	}
}

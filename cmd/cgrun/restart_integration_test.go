package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// recycleLine is the part of a recycle or exit record these tests read.
type recycleLine struct {
	Time       string  `json:"time"`
	Event      string  `json:"event"`
	Generation int     `json:"generation"`
	Group      string  `json:"group"`
	Reason     string  `json:"reason"`
	OldPid     int     `json:"old_pid"`
	NewPid     int     `json:"new_pid"`
	Pid        int     `json:"pid"`
	Uptime     float64 `json:"uptime_seconds"`
	OldPeak    uint64  `json:"old_memory_peak"`
	OldPeakSrc string  `json:"old_memory_peak_source"`
	ExitCode   *int    `json:"exit_code"`
}

func readRecords(t *testing.T, path string) []recycleLine {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []recycleLine
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r recycleLine
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

func parseTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

// generations checks the shape every restarting run must have — each generation in a fresh
// group, started only after the previous one exited — and returns the records by kind.
func generations(t *testing.T, recs []recycleLine) (starts, exits, recycles []recycleLine) {
	t.Helper()
	groups := map[string]bool{}
	var lastExit time.Time
	for _, r := range recs {
		switch r.Event {
		case "start":
			if groups[r.Group] {
				t.Errorf("generation %d reuses group %s", r.Generation, r.Group)
			}
			groups[r.Group] = true
			if st := parseTime(t, r.Time); !lastExit.IsZero() && st.Before(lastExit) || len(starts) != len(exits) {
				t.Errorf("generation %d started at %s before the previous one exited at %s", r.Generation, r.Time, lastExit)
			}
			starts = append(starts, r)
		case "exit":
			lastExit = parseTime(t, r.Time)
			exits = append(exits, r)
		case "recycle":
			recycles = append(recycles, r)
		}
	}
	return starts, exits, recycles
}

func TestRestartOnOOMUntilTheStartLimit(t *testing.T) {
	h := requireCgroup2(t)
	before := groupsUnder(t, h.SelfDir())
	path := filepath.Join(t.TempDir(), "events.jsonl")
	// --thrash off: this is the OOM kill's restart (TestThrash* are the thrash recycle's).
	r := runCgrun(t, nil, []string{"--name", "worker", "--memory-max", "64M", "--restart", "on-oom", "--restart-delay", "0",
		"--max-restarts", "3", "--restart-window", "60s", "--thrash", "off", "--events", path}, "leak")
	if r.code != 122 {
		t.Errorf("exit %d, want 122 (start limit); stderr %q", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "gave up: 3 restarts within 1m0s") {
		t.Errorf("stderr %q lacks the give-up line", r.stderr)
	}
	// The exit summary gives the last generation's uptime and the whole run's time.
	if !regexp.MustCompile(`cgrun: worker was killed by SIGKILL after [0-9.]+m?s \(the last generation; the whole run [0-9.hms]+\); peak memory .* 3 restarts\n`).MatchString(r.stderr) {
		t.Errorf("stderr %q lacks the summary with the whole run's time", r.stderr)
	}
	starts, exits, recycles := generations(t, readRecords(t, path))
	if len(starts) != 4 || len(exits) != 4 || len(recycles) != 3 {
		t.Fatalf("%d starts, %d exits, %d recycles; want 4, 4, 3", len(starts), len(exits), len(recycles))
	}
	for i, rc := range recycles {
		if rc.Reason != "oom_kill" || rc.Generation != i+2 || rc.OldPid != exits[i].Pid || rc.NewPid != starts[i+1].Pid ||
			rc.OldPeak < 60<<20 || rc.OldPeakSrc != wantPeakSource(t) || rc.Uptime <= 0 {
			t.Errorf("recycle %+v: want reason oom_kill, generation %d, pids %d -> %d, an old peak near 64M (%s) and the uptime",
				rc, i+2, exits[i].Pid, starts[i+1].Pid, wantPeakSource(t))
		}
	}
	assertNothingLeft(t, h, before)
}

func TestRestartLifetimeWithJitterStaysInBounds(t *testing.T) {
	requireCgroup2(t)
	path := filepath.Join(t.TempDir(), "events.jsonl")
	r := runCgrun(t, nil, []string{"--max-lifetime", "1s", "--lifetime-jitter", "500ms", "--restart-delay", "0",
		"--max-restarts", "2", "--restart-window", "60s", "--events", path}, "trap")
	if r.code != 122 {
		t.Errorf("exit %d, want 122; stderr %q", r.code, r.stderr)
	}
	_, exits, recycles := generations(t, readRecords(t, path))
	for _, e := range exits {
		// The trap helper exits 0 at once on SIGTERM: a graceful recycle. The uptime is the
		// drawn lifetime (1.0-1.5s) plus the stop: the signal's delivery, the helper's exit and
		// cgrun's reap, which took 0.54s once on a loaded 5.10 guest; 1s is allowed for it.
		code := -1
		if e.ExitCode != nil {
			code = *e.ExitCode
		}
		if e.Uptime < 1.0 || e.Uptime > 1.5+1.0 || code != 0 || e.Reason != "lifetime" {
			t.Errorf("generation %d lived %.2fs, exit %d, reason %q; want 1.0-1.5s (+ stop time), exit 0, lifetime", e.Generation, e.Uptime, code, e.Reason)
		}
	}
	if len(recycles) != 2 || recycles[0].Reason != "lifetime" {
		t.Errorf("recycles %+v", recycles)
	}
}

func TestRestartSustainedMemoryIsGraceful(t *testing.T) {
	requireCgroup2(t)
	path := filepath.Join(t.TempDir(), "events.jsonl")
	// The hog is throttled at the 24M mark (memory.high is set to it) while it tries to take 40M.
	// On the recycle cgrun lifts memory.high, so the hog can handle SIGTERM and exit 0.
	r := runCgrun(t, nil, []string{"--recycle-above", "24M", "--recycle-after", "1s", "--restart-delay", "0",
		"--max-restarts", "1", "--restart-window", "60s", "--events", path}, "hog", "40")
	if r.code != 122 {
		t.Errorf("exit %d, want 122; stderr %q", r.code, r.stderr)
	}
	_, exits, recycles := generations(t, readRecords(t, path))
	if len(exits) != 2 || exits[0].Reason != "memory_above" || exits[0].ExitCode == nil || *exits[0].ExitCode != 0 {
		t.Fatalf("exits %+v: want the first recycled for memory_above, exiting 0 on its SIGTERM", exits)
	}
	if exits[0].Uptime < 1.0 || len(recycles) != 1 || recycles[0].Reason != "memory_above" {
		t.Errorf("uptime %.2fs, recycles %+v", exits[0].Uptime, recycles)
	}
}

func TestRestartFailingHealthCheckRecycles(t *testing.T) {
	requireCgroup2(t)
	for _, tc := range []struct {
		name string
		env  []string
	}{{"clone3", nil}, {"re-exec stub", []string{"CGRUN_NO_CLONE3=1"}}} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.jsonl")
			r := runCgrun(t, tc.env, []string{"--health-cmd", "test -e /nonexistent", "--health-interval", "200ms", "--health-retries", "2",
				"--health-timeout", "5s", "--restart-delay", "0", "--max-restarts", "1", "--restart-window", "60s", "--events", path}, "trap")
			if r.code != 122 {
				t.Errorf("exit %d, want 122; stderr %q", r.code, r.stderr)
			}
			if !strings.Contains(r.stderr, "health check failed 2 times in a row (last: exit status 1)") {
				t.Errorf("stderr %q lacks the reason", r.stderr)
			}
			_, exits, _ := generations(t, readRecords(t, path))
			// Two failed probes 200ms apart end a generation after about 0.4 s. On the stub
			// path each probe starts through a re-exec of cgrun, which takes 0.1–0.4 s in a
			// loaded UML guest: 2.02–2.04 s was seen there, so the bound leaves room for that.
			for _, e := range exits {
				if e.Reason != "health" || e.Uptime < 0.4 || e.Uptime > 4 {
					t.Errorf("generation %d: reason %q after %.2fs; want health after about 0.4s", e.Generation, e.Reason, e.Uptime)
				}
			}
		})
	}
}

func TestRestartHealthyCheckKeepsRunning(t *testing.T) {
	requireCgroup2(t)
	path := filepath.Join(t.TempDir(), "events.jsonl")
	r := runCgrun(t, nil, []string{"--health-cmd", "true", "--health-interval", "100ms", "--health-retries", "1",
		"--max-lifetime", "1500ms", "--restart-delay", "0", "--max-restarts", "1", "--restart-window", "60s", "--events", path}, "trap")
	if r.code != 122 {
		t.Errorf("exit %d, want 122; stderr %q", r.code, r.stderr)
	}
	_, exits, _ := generations(t, readRecords(t, path))
	if len(exits) != 2 {
		t.Fatalf("%d generations, want 2", len(exits))
	}
	for _, e := range exits {
		if e.Reason != "lifetime" {
			t.Errorf("generation %d ended for %q after %.2fs; want lifetime: the probe passes", e.Generation, e.Reason, e.Uptime)
		}
	}
}

// TestRestartBackoffGrowsAndResets: the delays cgrun announces ("restarting (failure) as
// generation N in D") double up to --restart-delay-max after short-lived generations and stay at
// --restart-delay after ones that ran --min-uptime; and each gap between an exit and the next
// start really is at least its delay. The gaps' start-up on top of the delay is not bounded
// here: on a busy guest a group's teardown and set-up take from tens of ms to most of a second.
func TestRestartBackoffGrowsAndResets(t *testing.T) {
	requireCgroup2(t)
	announced := regexp.MustCompile(`restarting \(failure\) as generation \d+ in (\S+)\n`)
	check := func(t *testing.T, flags []string, want []time.Duration, helper ...string) {
		path := filepath.Join(t.TempDir(), "events.jsonl")
		r := runCgrun(t, nil, append(flags, "--events", path), helper...)
		if r.code != 122 {
			t.Fatalf("exit %d, want 122; stderr %q", r.code, r.stderr)
		}
		var delays []time.Duration
		for _, m := range announced.FindAllStringSubmatch(r.stderr, -1) {
			d, err := time.ParseDuration(m[1])
			if err != nil {
				t.Fatalf("announced delay %q: %v", m[1], err)
			}
			delays = append(delays, d)
		}
		if !slices.Equal(delays, want) {
			t.Errorf("announced delays %v, want %v; stderr:\n%s", delays, want, r.stderr)
		}
		var gaps []time.Duration
		var lastExit time.Time
		for _, rec := range readRecords(t, path) {
			switch rec.Event {
			case "exit":
				lastExit = parseTime(t, rec.Time)
			case "start":
				if !lastExit.IsZero() {
					gaps = append(gaps, parseTime(t, rec.Time).Sub(lastExit))
				}
			}
		}
		if len(gaps) != len(want) {
			t.Fatalf("gaps %v, want %d", gaps, len(want))
		}
		for i, g := range gaps {
			if g < want[i] || g > want[i]+5*time.Second {
				t.Errorf("gap %d = %v, want %v and its start-up", i, g, want[i])
			}
		}
		t.Logf("gaps %v for delays %v", gaps, want)
	}
	base := []string{"--restart", "on-failure", "--restart-delay", "200ms", "--restart-delay-max", "800ms", "--max-restarts", "4", "--restart-window", "60s"}
	const ms = time.Millisecond
	t.Run("grows", func(t *testing.T) {
		check(t, append(base, "--min-uptime", "10s"), []time.Duration{200 * ms, 400 * ms, 800 * ms, 800 * ms}, "exit", "1")
	})
	t.Run("resets after min-uptime", func(t *testing.T) {
		// Each generation runs 400ms, longer than --min-uptime: the delay stays at its base.
		check(t, append(base, "--min-uptime", "300ms"), []time.Duration{200 * ms, 200 * ms, 200 * ms, 200 * ms}, "linger", "400", "1")
	})
}

func TestRestartStoppingWins(t *testing.T) {
	requireCgroup2(t)
	t.Run("SIGTERM during the backoff delay exits at once", func(t *testing.T) {
		cmd, _, errb := startCgrun(t, []string{"--restart", "always", "--restart-delay", "20s"}, "exit", "3")
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(errb.String(), "restarting") && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		sent := time.Now()
		cmd.Process.Signal(syscall.SIGTERM)
		// No generation runs: cgrun stops as SIGTERM asks, by dying of it (a shell shows 143).
		if code := waitCode(t, cmd); code != 128+15 {
			t.Errorf("exit %d, want 143", code)
		}
		if d := time.Since(sent); d > 2*time.Second {
			t.Errorf("cgrun took %v to exit after SIGTERM in a 20s delay", d)
		}
	})
	t.Run("SIGTERM to cgrun stops the generation and does not restart", func(t *testing.T) {
		cmd, out, errb := startCgrun(t, []string{"--restart", "always", "--restart-delay", "0"}, "trap")
		if !out.Scan() || out.Text() != "ready" {
			t.Fatalf("helper did not start: %s", errb)
		}
		cmd.Process.Signal(syscall.SIGTERM)
		if code := waitCode(t, cmd); code != 0 {
			t.Errorf("exit %d, want the helper's 0 after it handled SIGTERM", code)
		}
		if strings.Contains(errb.String(), "restarting") {
			t.Errorf("cgrun restarted after it was asked to stop: %s", errb)
		}
	})
	t.Run("the recycle signal starts a new generation", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "events.jsonl")
		cmd, out, errb := startCgrun(t, []string{"--restart-delay", "0", "--events", path}, "trap")
		if !out.Scan() || out.Text() != "ready" {
			t.Fatalf("helper did not start: %s", errb)
		}
		cmd.Process.Signal(syscall.SIGALRM)
		// The helper prints its signals: 15 (SIGTERM, the stop signal) then exits; the next
		// generation prints ready.
		for out.Scan() && out.Text() != "ready" {
		}
		cmd.Process.Signal(syscall.SIGTERM)
		if code := waitCode(t, cmd); code != 0 {
			t.Errorf("exit %d; stderr %s", code, errb)
		}
		_, _, recycles := generations(t, readRecords(t, path))
		if len(recycles) != 1 || recycles[0].Reason != "request" {
			t.Errorf("recycles %+v, want one with reason request", recycles)
		}
	})
}

func TestRestartStallIsReportedAndRecycled(t *testing.T) {
	requireCgroup2(t)
	path := filepath.Join(t.TempDir(), "events.jsonl")
	// Past memory.high with no swap the hog cannot make progress: a stall.
	r := runCgrun(t, nil, []string{"--memory-high", "16M", "--recycle-on-stall", "--stop-timeout", "2s", "--restart-delay", "0",
		"--max-restarts", "1", "--restart-window", "120s", "--events", path}, "hog", "64")
	if r.code != 122 {
		t.Errorf("exit %d, want 122; stderr %q", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "looks stalled at memory.high") {
		t.Errorf("stderr %q does not report the stall", r.stderr)
	}
	_, exits, _ := generations(t, readRecords(t, path))
	if len(exits) == 0 || exits[0].Reason != "stall" || exits[0].Uptime < 5 {
		t.Errorf("exits %+v: want the first ended for stall after at least 5s", exits)
	}
}

func TestRestartOnHighRate(t *testing.T) {
	requireCgroup2(t)
	path := filepath.Join(t.TempDir(), "events.jsonl")
	r := runCgrun(t, nil, []string{"--memory-high", "16M", "--recycle-on-high", "20/10s", "--stop-timeout", "2s", "--restart-delay", "0",
		"--max-restarts", "1", "--restart-window", "120s", "--events", path}, "hog", "64")
	if r.code != 122 {
		t.Errorf("exit %d, want 122; stderr %q", r.code, r.stderr)
	}
	_, exits, _ := generations(t, readRecords(t, path))
	if len(exits) == 0 || exits[0].Reason != "memory_high" {
		t.Errorf("exits %+v: want the first ended for memory_high", exits)
	}
}

func TestRestartBadPolicyInput(t *testing.T) {
	requireCgroup2(t)
	for _, tc := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--restart", "sometimes"}, "want never, on-oom, on-failure or always"},
		{[]string{"--stop-signal", "SIGNOPE"}, "not a signal"},
		{[]string{"--stop-timeout", "soon"}, "not a duration"},
		{[]string{"--recycle-on-high", "lots"}, "want N or N/DURATION"},
		{[]string{"--recycle-above", "64M", "--memory-high", "128M", "--memory-max", "256M"}, "below --memory-high"},
		{[]string{"--lifetime-jitter", "5s"}, "needs --max-lifetime"},
		{[]string{"--health-cmd", "true", "--health-http", "http://x/"}, "exclude each other"},
		{[]string{"--health-http", "ftp://x/"}, "http:// or https://"},
		{[]string{"--restart-delay", "5s", "--restart-delay-max", "1s"}, "below --restart-delay"},
		{[]string{"--recycle-on-pressure", "some 1s"}, "pressure trigger"},
		{[]string{"--thrash", "refaults=300/s"}, "--thrash recycles a thrashing generation and starts the next one, so it needs --restart"},
		{[]string{"--thrash", "for=1ms", "--restart", "on-oom"}, "for must be a duration of at least 100ms"},
	} {
		r := runCgrun(t, nil, tc.flags, "exit", "0")
		if r.code != 125 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 125 and one line with %q", tc.flags, r.code, r.stderr, tc.want)
		}
	}
}

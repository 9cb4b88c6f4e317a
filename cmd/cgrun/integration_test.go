package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cgrun/cgrun/cgroup"
)

// These tests run the cgrun binary as a user would, against the running kernel's cgroup v2. They
// need root and a cgroup2 hierarchy with the memory controller; scripts/test runs them inside a
// user-mode-linux guest, with CGRUN_REQUIRE_CGROUP2=1 so that they fail rather than skip there.

// requireCgroup2 returns the hierarchy, or skips the test — unless CGRUN_REQUIRE_CGROUP2=1, in
// which case a missing cgroup v2 fails it.
func requireCgroup2(t *testing.T) cgroup.Hierarchy {
	t.Helper()
	h, err := cgroup.Detect()
	if err == nil {
		var ctrls []string
		if ctrls, err = cgroup.Controllers(h.SelfDir()); err == nil && !slices.Contains(ctrls, "memory") {
			err = fmt.Errorf("no memory controller in %s", h.SelfDir())
		}
	}
	if err == nil && os.Geteuid() != 0 {
		err = errors.New("not root")
	}
	if err != nil {
		if os.Getenv("CGRUN_REQUIRE_CGROUP2") == "1" {
			t.Fatalf("cgroup v2 is required here (CGRUN_REQUIRE_CGROUP2=1): %v", err)
		}
		t.Skipf("needs root and cgroup v2 with the memory controller: %v", err)
	}
	return h
}

// cgrunBin is the binary under test: $CGRUN_BIN, or one built once for this test run.
func cgrunBin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CGRUN_BIN"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "cgrun-bin")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "cgrun")
		out, err := exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

func helperPath(t *testing.T) string {
	t.Helper()
	p, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// result is one finished cgrun.
type result struct {
	code           int
	stdout, stderr string
}

// runCgrun runs `cgrun run FLAGS -- HELPER ARGS` with env added, and waits up to a minute.
func runCgrun(t *testing.T, env []string, flags []string, helperArgs ...string) result {
	t.Helper()
	return runCgrunTerm(t, 0, env, flags, helperArgs...)
}

// runCgrunTerm is runCgrun that sends cgrun SIGTERM after term (0: never), for payloads that
// the kernel may throttle at memory.high for longer than they mean to run.
func runCgrunTerm(t *testing.T, term time.Duration, env []string, flags []string, helperArgs ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append(append([]string{"run"}, flags...), "--", helperPath(t))
	args = append(args, helperArgs...)
	cmd := exec.CommandContext(ctx, cgrunBin(t), args...)
	if term > 0 {
		timer := time.AfterFunc(term, func() { cmd.Process.Signal(syscall.SIGTERM) })
		defer timer.Stop()
	}
	cmd.Env = append(append(os.Environ(), "CGRUNTEST_HELPER=1"), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
	case err != nil:
		t.Fatalf("cgrun %v: %v", args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("cgrun %v did not finish in time; stderr:\n%s", args, errb.String())
	}
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

func parseReport(t *testing.T, stdout string) helperReport {
	t.Helper()
	for _, line := range strings.Split(stdout, "\n") {
		if strings.HasPrefix(line, "{") {
			var r helperReport
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("helper report %q: %v", line, err)
			}
			return r
		}
	}
	t.Fatalf("no helper report in stdout %q", stdout)
	return helperReport{}
}

// groupsUnder lists every group directory below dir, for before/after comparisons.
func groupsUnder(t *testing.T, dir string) []string {
	t.Helper()
	var all []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() && p != dir {
			all = append(all, p)
		}
		return nil
	})
	return all
}

// assertNothingLeft checks that cgrun left no group behind (compared with before) and that the
// given pids are gone (not even zombies).
func assertNothingLeft(t *testing.T, h cgroup.Hierarchy, before []string, pids ...int) {
	t.Helper()
	after := groupsUnder(t, h.SelfDir())
	for _, g := range after {
		if !slices.Contains(before, g) {
			t.Errorf("group left behind: %s", g)
		}
	}
	for _, pid := range pids {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			t.Errorf("process %d left behind: %s", pid, b)
		}
	}
}

func TestRunPlacesChildInGroupBeforeItRuns(t *testing.T) {
	h := requireCgroup2(t)
	for _, tc := range []struct {
		name string
		env  []string
	}{
		{"clone3", nil},
		{"re-exec stub", []string{"CGRUN_NO_CLONE3=1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := groupsUnder(t, h.SelfDir())
			r := runCgrun(t, tc.env, []string{"--name", "placed", "--memory-max", "64M"}, "report")
			if r.code != 0 {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			rep := parseReport(t, r.stdout)
			// The helper reads /proc/self/cgroup first thing in main: it must already be inside.
			if !strings.HasPrefix(filepath.Base(rep.Group), "placed-") {
				t.Errorf("helper ran in %q, want a group named placed-PID.1", rep.Group)
			}
			if rep.Files["memory.max"] != strconv.Itoa(64<<20) {
				t.Errorf("memory.max = %q, want %d", rep.Files["memory.max"], 64<<20)
			}
			if _, err := os.Stat(rep.Dir); !os.IsNotExist(err) {
				t.Errorf("payload group %s still exists after exit (stat: %v)", rep.Dir, err)
			}
			assertNothingLeft(t, h, before)
		})
	}
}

func TestRunWritesLimits(t *testing.T) {
	requireCgroup2(t)
	for _, tc := range []struct {
		name  string
		env   []string
		flags []string
		want  map[string]string
	}{
		{"all flags", nil,
			[]string{"--memory-max", "96M", "--memory-high", "80M", "--memory-low", "8M", "--memory-swap-max", "0", "--pids-max", "64"},
			map[string]string{"memory.max": "100663296", "memory.high": "83886080", "memory.low": "8388608",
				"memory.swap.max": "0", "pids.max": "64", "memory.oom.group": "1"}},
		{"max and oom-group off", nil,
			[]string{"--memory-max", "max", "--memory-high", "infinity", "--pids-max", "max", "--oom-group=false"},
			map[string]string{"memory.max": "max", "memory.high": "max", "pids.max": "max", "memory.oom.group": "0"}},
		{"from the environment", []string{"CGRUN_MEMORY_MAX=48M", "CGRUN_PIDS_MAX=32", "CGRUN_OOM_GROUP=false"}, nil,
			map[string]string{"memory.max": "50331648", "pids.max": "32", "memory.oom.group": "0"}},
		{"flag wins over environment", []string{"CGRUN_MEMORY_MAX=48M"}, []string{"--memory-max", "40M"},
			map[string]string{"memory.max": "41943040"}},
		{"fractions", nil, []string{"--memory-max", "1.5G"}, map[string]string{"memory.max": "1610612736"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCgrun(t, tc.env, tc.flags, "report")
			if r.code != 0 {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			rep := parseReport(t, r.stdout)
			for f, want := range tc.want {
				if have := rep.Files[f]; have != want {
					t.Errorf("%s = %q, want %q", f, have, want)
				}
			}
		})
	}
}

func TestRunMemoryMaxPercentOfPhysical(t *testing.T) {
	requireCgroup2(t)
	r := runCgrun(t, nil, []string{"--memory-max", "10%"}, "report")
	rep := parseReport(t, r.stdout)
	have, err := strconv.ParseUint(rep.Files["memory.max"], 10, 64)
	if err != nil {
		t.Fatalf("memory.max %q: %v", rep.Files["memory.max"], err)
	}
	want := physicalMemory() / 10
	if have > want || want-have > 4096 {
		t.Errorf("memory.max = %d, want 10%% of %d = %d (page-rounded)", have, physicalMemory(), want)
	}
}

func TestRunOOMKillIsReportedAndNeighbourUntouched(t *testing.T) {
	h := requireCgroup2(t)
	before := groupsUnder(t, h.SelfDir())
	// The neighbour runs alongside in a group of its own and must finish normally.
	neighbour := make(chan result, 1)
	go func() {
		neighbour <- runCgrun(t, nil, []string{"--name", "neighbour", "--memory-max", "64M"}, "alloc", "16", "3")
	}()

	r := runCgrun(t, nil, []string{"--name", "leaker", "--memory-max", "32M"}, "alloc", "200")
	if r.code != 128+9 {
		t.Errorf("exit %d, want 137 (SIGKILL by the OOM killer); stderr %q", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "cgrun: leaker killed by the OOM killer (memory.max 32M, peak ") {
		t.Errorf("stderr %q does not explain the OOM kill", r.stderr)
	}
	// Besides that line: at most a live memory.max line and the exit summary, all cgrun's.
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	for _, l := range lines {
		if !strings.HasPrefix(l, "cgrun: ") {
			t.Errorf("stderr line %q is not cgrun's", l)
		}
	}
	if len(lines) > 3 || !strings.HasPrefix(lines[len(lines)-1], "cgrun: leaker was killed by SIGKILL after ") {
		t.Errorf("stderr %q: want the OOM line, at most one memory.max line, then the summary", r.stderr)
	}
	nb := <-neighbour
	if nb.code != 0 {
		t.Errorf("neighbour exit %d, stderr %q; want 0", nb.code, nb.stderr)
	}
	if rep := parseReport(t, nb.stdout); rep.Events["oom_kill"] != 0 || rep.Note != "allocated 16M" {
		t.Errorf("neighbour saw %v, %q; want no OOM kill and all 16M", rep.Events, rep.Note)
	}
	assertNothingLeft(t, h, before)
}

func TestRunMemoryHighThrottlesWithoutKilling(t *testing.T) {
	requireCgroup2(t)
	// Without swap, anonymous memory past memory.high cannot be reclaimed: the allocator is
	// throttled, never killed. The helper gives up after 3 s, so the test is bounded by time.
	path := filepath.Join(t.TempDir(), "events.jsonl")
	// A throttled Go program may also stall in its runtime (GC workers are throttled too), so
	// cgrun is asked to stop it after 6 s; either way it must not have been killed by the kernel.
	r := runCgrunTerm(t, 6*time.Second, nil, []string{"--memory-high", "24M", "--stop-timeout", "1s", "--events", path}, "alloc", "64", "3", "quiet")
	if r.code != 0 && r.code != 128+15 && r.code != 128+9 {
		t.Fatalf("exit %d, want 0, or SIGTERM/SIGKILL from cgrun's stop (throttled, not OOM-killed); stderr %q", r.code, r.stderr)
	}
	exit := byKind(readEvents(t, path), "exit")
	if len(exit) != 1 {
		t.Fatalf("%d exit events, want 1", len(exit))
	}
	ev := exit[0].MemoryEvents
	if ev["high"] == 0 || ev["max"] != 0 || ev["oom_kill"] != 0 {
		t.Errorf("memory.events %v: want high > 0, no max and no oom_kill under memory.high alone", ev)
	}
}

func TestRunPidsMaxHolds(t *testing.T) {
	requireCgroup2(t)
	r := runCgrun(t, nil, []string{"--pids-max", "12"}, "forks", "30")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	var started int
	var errText string
	fmt.Sscanf(r.stdout, "started %d err", &started)
	_, errText, _ = strings.Cut(r.stdout, " err ")
	if started == 0 || started >= 12 {
		t.Errorf("started %d children under pids.max 12 (its own threads count too); want 1..11", started)
	}
	if !strings.Contains(errText, "resource temporarily unavailable") {
		t.Errorf("fork error %q, want EAGAIN", errText)
	}
}

func TestRunExitCodes(t *testing.T) {
	requireCgroup2(t)
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"exit", "0"}, 0},
		{[]string{"exit", "1"}, 1},
		{[]string{"exit", "2"}, 2},
		{[]string{"exit", "42"}, 42},
		{[]string{"exit", "125"}, 125},
		{[]string{"exit", "126"}, 126},
		{[]string{"exit", "127"}, 127},
		{[]string{"exit", "255"}, 255},
		{[]string{"kill", "15"}, 128 + 15},
		{[]string{"kill", "9"}, 128 + 9},
		{[]string{"kill", "2"}, 128 + 2},
		{[]string{"kill", "10"}, 128 + 10},
		{[]string{"kill", "6"}, 128 + 6},
		{[]string{"kill", "1"}, 128 + 1},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			if r := runCgrun(t, nil, nil, tc.args...); r.code != tc.want {
				t.Errorf("exit %d, want %d; stderr %q", r.code, tc.want, r.stderr)
			}
		})
	}
}

// startCgrun starts `cgrun run -- HELPER ARGS` and returns it with a reader of its stdout.
func startCgrun(t *testing.T, flags []string, helperArgs ...string) (*exec.Cmd, *bufio.Scanner, *bytes.Buffer) {
	t.Helper()
	args := append(append([]string{"run"}, flags...), "--", helperPath(t))
	cmd := exec.Command(cgrunBin(t), append(args, helperArgs...)...)
	cmd.Env = append(os.Environ(), "CGRUNTEST_HELPER=1")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, bufio.NewScanner(out), &errb
}

func waitCode(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				return 128 + int(ws.Signal()) // cgrun died of the signal, as a shell would show it
			}
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(30 * time.Second):
		t.Fatal("cgrun did not exit within 30 s")
	}
	return -1
}

func TestRunForwardsSignals(t *testing.T) {
	requireCgroup2(t)
	cmd, out, errb := startCgrun(t, nil, "trap")
	if !out.Scan() || out.Text() != "ready" {
		t.Fatalf("helper did not start: %q %s", out.Text(), errb)
	}
	sigs := []syscall.Signal{syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGHUP, syscall.SIGWINCH, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM}
	for _, s := range sigs {
		cmd.Process.Signal(s)
		if !out.Scan() || out.Text() != strconv.Itoa(int(s)) {
			t.Fatalf("sent %v, helper saw %q", s, out.Text())
		}
	}
	if code := waitCode(t, cmd); code != 0 {
		t.Errorf("exit %d after SIGTERM was handled, want 0; stderr %s", code, errb)
	}
}

func TestRunLeavesNothingBehind(t *testing.T) {
	h := requireCgroup2(t)
	readDaemon := func(t *testing.T, out *bufio.Scanner) (helperReport, int) {
		if !out.Scan() {
			t.Fatal("no report from helper")
		}
		rep := parseReport(t, out.Text())
		pid, err := strconv.Atoi(rep.Note)
		if err != nil {
			t.Fatalf("daemon pid %q: %v", rep.Note, err)
		}
		return rep, pid
	}
	t.Run("normal exit with a double-forked daemon", func(t *testing.T) {
		before := groupsUnder(t, h.SelfDir())
		cmd, out, errb := startCgrun(t, nil, "daemon")
		_, daemon := readDaemon(t, out)
		if code := waitCode(t, cmd); code != 0 {
			t.Fatalf("exit %d, stderr %s", code, errb)
		}
		assertNothingLeft(t, h, before, daemon)
	})
	t.Run("SIGTERM to cgrun", func(t *testing.T) {
		before := groupsUnder(t, h.SelfDir())
		cmd, out, _ := startCgrun(t, nil, "daemon", "stay")
		rep, daemon := readDaemon(t, out)
		cmd.Process.Signal(syscall.SIGTERM)
		if code := waitCode(t, cmd); code != 128+15 {
			t.Errorf("exit %d, want 143", code)
		}
		assertNothingLeft(t, h, before, daemon, rep.Pid)
	})
	t.Run("SIGKILL of the child", func(t *testing.T) {
		before := groupsUnder(t, h.SelfDir())
		cmd, out, _ := startCgrun(t, nil, "daemon", "stay")
		rep, daemon := readDaemon(t, out)
		syscall.Kill(rep.Pid, syscall.SIGKILL)
		if code := waitCode(t, cmd); code != 128+9 {
			t.Errorf("exit %d, want 137", code)
		}
		assertNothingLeft(t, h, before, daemon, rep.Pid)
	})
}

func TestRunBadInputCreatesNothing(t *testing.T) {
	h := requireCgroup2(t)
	dir := t.TempDir()
	noexec := filepath.Join(dir, "noexec")
	os.WriteFile(noexec, []byte("#!/bin/sh\n"), 0o644)
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		code int
		want string
	}{
		{"unknown flag", []string{"run", "--memroy-max", "1G", "--", "true"}, nil, 125, "unknown flag: --memroy-max"},
		{"bad size", []string{"run", "--memory-max", "12X", "--", "true"}, nil, 125, `bad size "12X"`},
		{"bad size in env", []string{"run", "--", "true"}, []string{"CGRUN_MEMORY_HIGH=lots"}, 125, "CGRUN_MEMORY_HIGH"},
		{"high above max", []string{"run", "--memory-max", "64M", "--memory-high", "128M", "--", "true"}, nil, 125, "above --memory-max"},
		{"bad name", []string{"run", "--name", "a/b", "--", "true"}, nil, 125, "--name"},
		{"no command", []string{"run", "--memory-max", "1G"}, nil, 125, "no command"},
		{"missing command", []string{"run", "--", "no-such-command-xyz"}, nil, 127, "command not found"},
		{"missing path", []string{"run", "--", "/no/such/file"}, nil, 127, "command not found"},
		{"not executable", []string{"run", "--", noexec}, nil, 126, "not executable"},
		{"a directory", []string{"run", "--", dir}, nil, 126, "is a directory"},
		{"missing parent", []string{"run", "--parent", "/no-such-parent", "--", "true"}, nil, 125, "no such group"},
		// Issue 14: values the kernel would not get as given.
		{"pids-max 0", []string{"run", "--pids-max", "0", "--", "true"}, nil, 125, "--pids-max: bad value \"0\": 0 leaves no room for the command itself"},
		{"pids-max past int64", []string{"run", "--pids-max", "9223372036854775808", "--", "true"}, nil, 125, "--pids-max: bad value \"9223372036854775808\": above the kernel's largest pids.max"},
		{"pids-max past the kernel's", []string{"run", "--pids-max", "4194305", "--", "true"}, nil, 125, "above the kernel's largest pids.max, 4194304"},
		{"unified pids.max 0", []string{"run", "--resources", writeTemp(t, dir, `{"unified":{"pids.max":"0"}}`), "--", "true"}, nil, 125, "0 leaves no room"},
		{"size that overflows", []string{"run", "--memory-max", "15.99999999999999999E", "--", "true"}, nil, 125, "--memory-max: bad size \"15.99999999999999999E\": too large"},
		{"negative size", []string{"run", "--memory-max", "-5M", "--", "true"}, nil, 125, "--memory-max: bad size \"-5M\": sizes cannot be negative"},
		{"size past 8E", []string{"run", "--memory-max", "9E", "--", "true"}, nil, 125, "--memory-max: bad size \"9E\": too large"},
		{"memory.high past 8E", []string{"run", "--memory-high", "8E", "--", "true"}, nil, 125, "--memory-high: bad size \"8E\": too large"},
		// Issue 17: a dump needs a way to take it and a place for it.
		{"diagnose without dir", []string{"run", "--diagnose-signal", "USR2", "--", "true"}, nil, 125, "need --diagnose-dir DIR"},
		{"diagnose headroom without memory-max", []string{"run", "--diagnose-signal", "USR2", "--diagnose-dir", dir, "--diagnose-headroom", "64M", "--", "true"}, nil, 125, "give --memory-max too"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := groupsUnder(t, h.SelfDir())
			cmd := exec.Command(cgrunBin(t), tc.args...)
			// An --events file that must not be created and a --report that must not be emptied:
			// every check that needs no group comes before they are opened. (A host's refusal,
			// such as a missing --parent, comes after: it needs the hierarchy.)
			files := t.TempDir()
			events, report := filepath.Join(files, "events.jsonl"), filepath.Join(files, "report.json")
			os.WriteFile(report, []byte("an earlier report\n"), 0o644)
			cmd.Env = append(os.Environ(), tc.env...)
			if tc.name != "missing parent" {
				cmd.Env = append(cmd.Env, "CGRUN_EVENTS="+events, "CGRUN_REPORT="+report)
			}
			defer func() {
				if _, err := os.Stat(events); err == nil {
					t.Errorf("--events %s was created", events)
				}
				if b, _ := os.ReadFile(report); string(b) != "an earlier report\n" {
					t.Errorf("--report %s was changed to %q", report, b)
				}
			}()
			var errb bytes.Buffer
			cmd.Stderr = &errb
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
			if code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			msg := errb.String()
			if strings.Count(msg, "\n") != 1 || !strings.HasPrefix(msg, "cgrun: ") || !strings.Contains(msg, tc.want) {
				t.Errorf("stderr %q: want one line starting with \"cgrun: \" containing %q", msg, tc.want)
			}
			assertNothingLeft(t, h, before)
		})
	}
}

func writeTemp(t *testing.T, dir, content string) string {
	t.Helper()
	f, err := os.CreateTemp(dir, "resources-*.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

func TestRunUnderParent(t *testing.T) {
	h := requireCgroup2(t)
	// As a user would: enable the controllers on the root, then make the parent group.
	if _, err := cgroup.EnableControllers(h.Mount, "memory", "pids"); err != nil {
		t.Fatal(err)
	}
	parent := filepath.Join(h.Mount, fmt.Sprintf("cgrun-test-parent-%d", os.Getpid()))
	if err := os.Mkdir(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(parent) })
	for _, p := range []string{parent, strings.TrimPrefix(parent, h.Mount)} {
		r := runCgrun(t, nil, []string{"--parent", p, "--memory-max", "32M"}, "report")
		if r.code != 0 {
			t.Fatalf("--parent %s: exit %d, stderr %q", p, r.code, r.stderr)
		}
		rep := parseReport(t, r.stdout)
		if filepath.Dir(rep.Dir) != parent { // the generation's group; the helper ran in its leaf
			t.Errorf("--parent %s: helper ran in %s, want a child of %s", p, rep.Dir, parent)
		}
		if kids, _ := cgroup.Children(parent); len(kids) != 0 {
			t.Errorf("--parent %s: left %v in the parent", p, kids)
		}
	}
}

// TestRunDiesOfTheStopSignal: when SIGTERM stops cgrun and the child dies of it, cgrun dies of
// SIGTERM too (after cleaning up), so that systemd sees a clean stop; when the child handles it
// and exits with a code, cgrun exits with that code.
func TestRunDiesOfTheStopSignal(t *testing.T) {
	h := requireCgroup2(t)
	before := groupsUnder(t, h.SelfDir())
	cmd, out, _ := startCgrun(t, nil, "sleep", "30")
	if !out.Scan() {
		t.Fatal("helper did not start")
	}
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Errorf("cgrun ended with %v (%#x), want death by SIGTERM", err, ws)
	}
	assertNothingLeft(t, h, before)
}

// TestRunNested: a cgrun inside a cgrun — a shell that starts two, as a container or a process
// manager would — puts its generations inside the outer one's group, under the outer limit.
func TestRunNested(t *testing.T) {
	h := requireCgroup2(t)
	before := groupsUnder(t, h.SelfDir())
	script := `"$0" run --name inner-a --memory-max 32M -- "$1" report & "$0" run --name inner-b -- "$1" report & wait`
	r := runCgrunArgs(t, []string{"--name", "outer", "--memory-max", "128M", "--", "/bin/sh", "-c", script, cgrunBin(t), helperPath(t)})
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	var groups []string
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		rep := parseReport(t, line)
		groups = append(groups, rep.Group)
		parent := filepath.Base(filepath.Dir(rep.Group))
		if !strings.HasPrefix(parent, "outer-") || !strings.HasPrefix(filepath.Base(rep.Group), "inner-") {
			t.Errorf("inner helper ran in %s, want outer-PID.1/inner-PID.1", rep.Group)
		}
		if strings.HasPrefix(filepath.Base(rep.Group), "inner-a") && rep.Files["memory.max"] != "33554432" {
			t.Errorf("inner-a memory.max %q", rep.Files["memory.max"])
		}
	}
	if len(groups) != 2 {
		t.Errorf("%d reports, want 2: %q", len(groups), r.stdout)
	}
	assertNothingLeft(t, h, before)
}

// TestRunNestedKillAtTheOuterLimitCountsOnce: an inner cgrun with no limit of its own, beside a
// shell in the outer's leaf, so that its group goes beside that leaf, under the outer generation
// group and its limits alone. Its command allocating past the outer --memory-max is killed there:
// one OOM kill, counted once in the outer's stream and exit event.
func TestRunNestedKillAtTheOuterLimitCountsOnce(t *testing.T) {
	h := requireCgroup2(t)
	before := groupsUnder(t, h.SelfDir())
	path := filepath.Join(t.TempDir(), "events.jsonl")
	script := `"$0" run --name inner --oom-group=false -- "$1" alloc 200; exit $?`
	r := runCgrunArgs(t, []string{"--name", "outer", "--memory-max", "48M", "--oom-group=false", "--events", path,
		"--", "/bin/sh", "-c", script, cgrunBin(t), helperPath(t)})
	if r.code != 137 {
		t.Fatalf("exit %d, want 137 (the inner command's SIGKILL, passed on); stderr %q", r.code, r.stderr)
	}
	evs := readEvents(t, path)
	var sum, count uint64
	for _, k := range byKind(evs, "oom_kill") {
		sum, count = sum+k.Delta, k.Count
	}
	if sum != 1 || count != 1 {
		t.Errorf("oom_kill events adding up to %d (count %d), want exactly 1", sum, count)
	}
	if exits := byKind(evs, "exit"); len(exits) != 1 || exits[0].OOMKills == nil || *exits[0].OOMKills != 1 {
		t.Errorf("exit events %+v, want one with oom_kills 1", exits)
	}
	if !strings.Contains(r.stderr, "inner") {
		t.Errorf("stderr %q: want the inner cgrun's lines too", r.stderr)
	}
	assertNothingLeft(t, h, before)
}

// runCgrunArgs runs `cgrun run ARGS...` as given (flags, --, the command).
func runCgrunArgs(t *testing.T, args []string) result {
	t.Helper()
	out, errs, code := cgrunCmd(t, nil, append([]string{"run"}, args...)...)
	return result{code: code, stdout: out, stderr: errs}
}

// TestRunHostErrors: the ways a host cannot give cgrun a group each get one line that says how
// to fix it, exit code 125, and leave nothing behind.
func TestRunHostErrors(t *testing.T) {
	h := requireCgroup2(t)
	t.Run("no permission", func(t *testing.T) {
		before := groupsUnder(t, h.SelfDir())
		cmd := exec.Command(cgrunBin(t), "run", "--", "/bin/true")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		cmd.Env = []string{"PATH=/usr/bin:/bin", "XDG_RUNTIME_DIR=/tmp"}
		out, err := cmd.CombinedOutput()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 125 || strings.Count(string(out), "\n") != 1 ||
			!strings.Contains(string(out), "no permission") || !strings.Contains(string(out), "Delegate=yes") ||
			!strings.Contains(string(out), "systemd-run --user --scope -p Delegate=yes") {
			t.Errorf("as nobody: %v, %q; want 125 and one line naming root, Delegate=yes and systemd-run --user --scope", err, out)
		}
		assertNothingLeft(t, h, before)
	})
	t.Run("no memory controller in the parent", func(t *testing.T) {
		if _, err := cgroup.EnableControllers(h.Mount, "memory", "pids"); err != nil {
			t.Fatal(err)
		}
		// a group that does not pass memory on to its children
		a := filepath.Join(h.Mount, fmt.Sprintf("cgrun-test-nomem-%d", os.Getpid()))
		if err := os.MkdirAll(filepath.Join(a, "b"), 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(filepath.Join(a, "b")); os.Remove(a) })
		r := runCgrun(t, nil, []string{"--parent", filepath.Join(a, "b")}, "exit", "0")
		if r.code != 125 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "memory controller is not available") {
			t.Errorf("exit %d, stderr %q; want 125 and one line about the memory controller", r.code, r.stderr)
		}
		if kids, _ := cgroup.Children(filepath.Join(a, "b")); len(kids) != 0 {
			t.Errorf("left %v behind", kids)
		}
	})
}

// TestRunWithClosedStdio: a supervisor may start cgrun with stdin (or stdout) closed; the
// command still starts, with /dev/null in their place.
func TestRunWithClosedStdio(t *testing.T) {
	requireCgroup2(t)
	cmd := exec.Command("/bin/sh", "-c", `exec "$0" run -- "$1" exit 5 <&- >&-`, cgrunBin(t), helperPath(t))
	cmd.Env = append(os.Environ(), "CGRUNTEST_HELPER=1")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 5 {
		t.Errorf("with stdin and stdout closed: %v, %q; want the command's exit 5", err, out)
	}
}

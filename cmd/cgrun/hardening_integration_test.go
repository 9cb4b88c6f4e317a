package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"golang.org/x/sys/unix"
)

// Issue 14: nothing outlives a killed cgrun, no fault wedges supervision, and root never trusts
// other users' state files. Each test here failed on the code before that issue.

// alive reports whether pid runs (a zombie does not count).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z"
}

// eventually polls cond every 20 ms until it holds or d passes.
func eventually(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); ; time.Sleep(20 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
	}
}

// guardOf is the pid of the guard of the cgrun with pid, or 0 when none runs within 2 s (cgrun
// starts it once the command has run for 20 ms).
func guardOf(t *testing.T, pid int) int {
	t.Helper()
	guard := 0
	eventually(2*time.Second, func() bool {
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			n, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", n))
			args := strings.Split(string(b), "\x00")
			if len(args) > 4 && args[1] == "__cgrun_guard" && args[4] == strconv.Itoa(pid) {
				guard = n
				return true
			}
		}
		return false
	})
	return guard
}

// exists reports whether path is there.
func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// Item 1: a SIGKILLed cgrun takes its command along, and what a killed guard could not clean
// up, the next cgrun ps or cgrun run does.
func TestKilledCgrunTakesItsCommandAlong(t *testing.T) {
	h := requireCgroup2(t)
	start := func(t *testing.T, name string) (*exec.Cmd, helperReport, string) {
		cmd, rep := startSandbox(t, name, nil, "sleep", "1000")
		t.Cleanup(func() { cgroup.Kill(context.Background(), rep.Dir); cgroup.RemoveTree(rep.Dir) })
		state := filepath.Join("/run/cgrun", strconv.Itoa(cmd.Process.Pid)+".json")
		if !exists(state) {
			t.Fatalf("no state file %s", state)
		}
		if guardOf(t, cmd.Process.Pid) == 0 {
			t.Fatal("no guard process found")
		}
		return cmd, rep, state
	}
	leaf := func(cmd *exec.Cmd) string {
		return filepath.Join(h.SelfDir(), "cgrun-"+strconv.Itoa(cmd.Process.Pid))
	}
	t.Run("the guard kills the group", func(t *testing.T) {
		before := groupsUnder(t, h.SelfDir())
		cmd, rep, state := start(t, "k1")
		cmd.Process.Kill()
		cmd.Process.Wait()
		if !eventually(2*time.Second, func() bool { return !alive(rep.Pid) && !exists(rep.Dir) }) {
			t.Fatalf("2 s after cgrun's SIGKILL: command alive %v, group %s there %v", alive(rep.Pid), rep.Dir, exists(rep.Dir))
		}
		if _, errs, code := cgrunCmd(t, nil, "ps"); code != 0 {
			t.Fatalf("cgrun ps: %d %s", code, errs)
		}
		if exists(state) || exists(leaf(cmd)) {
			t.Errorf("after cgrun ps: state %s there %v, cgrun's leaf there %v", state, exists(state), exists(leaf(cmd)))
		}
		assertNothingLeft(t, h, before, rep.Pid)
	})
	for _, next := range []string{"ps", "run"} {
		t.Run("guard killed too; the next cgrun "+next+" cleans up", func(t *testing.T) {
			before := groupsUnder(t, h.SelfDir())
			cmd, rep, state := start(t, "k2"+next)
			g := guardOf(t, cmd.Process.Pid)
			if g == 0 {
				t.Fatal("no guard process found")
			}
			syscall.Kill(g, syscall.SIGKILL)
			cmd.Process.Kill()
			cmd.Process.Wait()
			time.Sleep(200 * time.Millisecond)
			if !alive(rep.Pid) {
				t.Fatal("the command died although nothing was left to kill it (test setup)")
			}
			var code int
			var errs string
			if next == "ps" {
				_, errs, code = cgrunCmd(t, nil, "ps")
			} else {
				r := runCgrun(t, nil, []string{"--name", "k2next"}, "exit", "0")
				code, errs = r.code, r.stderr
			}
			if code != 0 {
				t.Fatalf("cgrun %s: %d %s", next, code, errs)
			}
			if alive(rep.Pid) || exists(rep.Dir) || exists(state) || exists(leaf(cmd)) {
				t.Errorf("after cgrun %s: command alive %v, group there %v, state there %v, leaf there %v",
					next, alive(rep.Pid), exists(rep.Dir), exists(state), exists(leaf(cmd)))
			}
			assertNothingLeft(t, h, before, rep.Pid)
		})
	}
}

// Item 2: a broken stdout never ends supervision.
func TestBrokenStdoutNeverEndsSupervision(t *testing.T) {
	h := requireCgroup2(t)
	before := groupsUnder(t, h.SelfDir())
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close() // the reader is gone before cgrun writes its first event
	cmd := exec.Command(cgrunBin(t), "run", "--name", "broken", "--events", "-", "--", "/bin/sleep", "1.5")
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = w, &errb
	began := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if code := waitCode(t, cmd); code != 0 || time.Since(began) < 1400*time.Millisecond {
		t.Errorf("exit %d after %v, want 0 after the command's 1.5 s; stderr %q", code, time.Since(began), errb.String())
	}
	if n := strings.Count(errb.String(), "--events"); n != 1 {
		t.Errorf("stderr %q: want one note about --events", errb.String())
	}
	assertNothingLeft(t, h, before)
}

// Item 2, stderr: a broken stderr never ends cgrun either, not even with its last line (the
// give-up of exit 122, written after supervision ended).
func TestBrokenStderrNeverEndsSupervision(t *testing.T) {
	h := requireCgroup2(t)
	before := groupsUnder(t, h.SelfDir())
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	cmd := exec.Command(cgrunBin(t), "run", "--name", "brokenerr", "--restart", "always", "--restart-delay", "0",
		"--max-restarts", "1", "--restart-window", "1m", "--", "/bin/false")
	cmd.Stderr = w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if code := waitCode(t, cmd); code != 122 {
		t.Errorf("exit %d with a broken stderr, want 122 (the restart limit; 141 is death by SIGPIPE)", code)
	}
	assertNothingLeft(t, h, before)
}

// Item 3: a probe that cannot start never blocks the supervisor.
func TestHealthProbeThatCannotStartNeverBlocks(t *testing.T) {
	h := requireCgroup2(t)
	before := groupsUnder(t, h.SelfDir())
	// Two processes fill --pids-max 2 before the first probe, one interval in: no probe can start
	// (--pids-max 1 with a probe is refused at the start).
	cmd := exec.Command(cgrunBin(t), "run", "--name", "noprobe", "--pids-max", "2", "--health-cmd", "true",
		"--health-interval", "500ms", "--health-retries", "1000000000", "--", "/bin/sh", "-c", "/bin/sleep 20 & exec /bin/sleep 20")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	time.Sleep(2 * time.Second) // three probes that cannot start
	cmd.Process.Signal(syscall.SIGTERM)
	if code := waitCode(t, cmd); code != 128+15 {
		t.Errorf("exit %d after SIGTERM, want 143; stderr %q", code, errb.String())
	}
	assertNothingLeft(t, h, before)
}

// A timed-out probe takes what its shell started along.
func TestHealthTimeoutKillsTheProbesChildren(t *testing.T) {
	requireCgroup2(t)
	cmd, rep := startSandbox(t, "probetree", []string{"--health-cmd", "/bin/sleep 7; true", "--health-interval", "200ms",
		"--health-timeout", "300ms", "--health-retries", "1000"}, "sleep", "30")
	defer func() { cmd.Process.Signal(syscall.SIGTERM); waitCode(t, cmd) }()
	time.Sleep(3 * time.Second) // several probes time out
	pids, err := cgroup.Procs(filepath.Join(rep.Dir, "main"))
	if err != nil {
		t.Fatal(err)
	}
	sleeps := 0
	for _, p := range pids {
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p)); strings.TrimSpace(string(b)) == "sleep" {
			sleeps++
		}
	}
	if sleeps > 1 { // the running probe's, at most
		t.Errorf("%d probe sleeps in the group after their probes timed out", sleeps)
	}
}

// Item 4: a --events reader that does not read never blocks cgrun.
func TestEventsReaderThatDoesNotRead(t *testing.T) {
	h := requireCgroup2(t)
	t.Run("FIFO without a reader", func(t *testing.T) {
		before := groupsUnder(t, h.SelfDir())
		fifo := filepath.Join(t.TempDir(), "events")
		if err := syscall.Mkfifo(fifo, 0o644); err != nil {
			t.Fatal(err)
		}
		r := runCgrun(t, nil, []string{"--name", "nofifo", "--events", fifo}, "linger", "300", "0")
		if r.code != 0 || !strings.Contains(r.stderr, "dropped") {
			t.Errorf("exit %d, stderr %q; want 0 and a note of the dropped events", r.code, r.stderr)
		}
		assertNothingLeft(t, h, before)
	})
	t.Run("a full pipe", func(t *testing.T) {
		before := groupsUnder(t, h.SelfDir())
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer pr.Close() // held open, never read
		unix.FcntlInt(pw.Fd(), unix.F_SETPIPE_SZ, 4096)
		cmd := exec.Command(cgrunBin(t), "run", "--name", "fullpipe", "--events", "fd:3", "--restart", "always",
			"--restart-delay", "0", "--max-restarts", "0", "--", "/bin/true")
		cmd.ExtraFiles = []*os.File{pw}
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pw.Close()
		t.Cleanup(func() { cmd.Process.Kill() })
		time.Sleep(2 * time.Second) // dozens of restarts: far more than 4 KiB of events
		cmd.Process.Signal(syscall.SIGTERM)
		began := time.Now()
		if code := waitCode(t, cmd); code != 0 && code != 128+15 || time.Since(began) > 5*time.Second {
			t.Errorf("exit %d %v after SIGTERM; stderr %q", code, time.Since(began), tail(errb.String()))
		}
		if !strings.Contains(errb.String(), "events were dropped") {
			t.Errorf("stderr %q lacks the count of dropped events", tail(errb.String()))
		}
		assertNothingLeft(t, h, before)
	})
}

func tail(s string) string {
	if len(s) > 600 {
		return "…" + s[len(s)-600:]
	}
	return s
}

// fakeUser makes /run/user/UID/cgrun as that user would, and starts a process of theirs whose
// pid and start time a state can name.
type fakeUser struct {
	uid   int
	dir   string // /run/user/UID/cgrun
	pid   int    // a live process of the user
	ticks uint64
}

func newFakeUser(t *testing.T, uid int) *fakeUser {
	t.Helper()
	run := fmt.Sprintf("/run/user/%d", uid)
	if err := os.MkdirAll(run, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(run) })
	os.Chown(run, uid, uid)
	dir := filepath.Join(run, "cgrun")
	os.Mkdir(dir, 0o755)
	os.Chown(dir, uid, uid)
	p := exec.Command("/bin/sleep", "60")
	p.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Process.Kill(); p.Wait() })
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Process.Pid))
	f := strings.Fields(string(b)[strings.LastIndexByte(string(b), ')')+1:])
	ticks, _ := strconv.ParseUint(f[19], 10, 64)
	return &fakeUser{uid: uid, dir: dir, pid: p.Process.Pid, ticks: ticks}
}

// write puts a file of the user's into their cgrun directory.
func (u *fakeUser) write(t *testing.T, name string, v any) {
	t.Helper()
	b, ok := v.([]byte)
	if !ok {
		b, _ = json.Marshal(v)
	}
	p := filepath.Join(u.dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chown(p, u.uid, u.uid)
}

// state is a state of the user's live process.
func (u *fakeUser) state(name string) map[string]any {
	return map[string]any{"name": name, "command": []string{"x"}, "pid": u.pid, "start_ticks": u.ticks, "uid": u.uid,
		"started": time.Now().Format(time.RFC3339Nano), "mount": "/sys/fs/cgroup", "generation": 1}
}

// cgrunWithin runs a cgrun subcommand as root and fails the test when it takes longer than 10 s.
func cgrunWithin(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, cgrunBin(t), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("cgrun %v did not finish in 10 s", args)
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	return out.String(), errb.String(), code
}

// Items 6-10: root's ps, status, stop and recycle read users' files without trusting them.
func TestRootDistrustsUsersStateFiles(t *testing.T) {
	requireCgroup2(t)
	t.Run("a FIFO does not hang them", func(t *testing.T) { // item 6
		u := newFakeUser(t, 1000)
		fifo := filepath.Join(u.dir, "9.json")
		if err := syscall.Mkfifo(fifo, 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chown(fifo, u.uid, u.uid)
		for _, args := range [][]string{{"ps"}, {"status", "x"}, {"stop", "x"}, {"recycle", "x"}} {
			cgrunWithin(t, args...)
		}
	})
	t.Run("a symlink to /dev/zero is not read", func(t *testing.T) { // item 7
		u := newFakeUser(t, 1000)
		link := filepath.Join(u.dir, "10.json")
		os.Symlink("/dev/zero", link)
		os.Lchown(link, u.uid, u.uid)
		if _, errs, code := cgrunWithin(t, "ps"); code != 0 {
			t.Errorf("cgrun ps: %d %s", code, errs)
		}
	})
	t.Run("a symlinked directory is not cleaned", func(t *testing.T) { // item 8
		u := newFakeUser(t, 1000)
		rootDir := t.TempDir() // root's
		victim := filepath.Join(rootDir, "4000000.json")
		b, _ := json.Marshal(map[string]any{"name": "victim", "pid": 4000000, "uid": 0, "start_ticks": 1})
		os.WriteFile(victim, b, 0o644)
		os.Remove(u.dir)
		os.Symlink(rootDir, u.dir)
		os.Lchown(u.dir, u.uid, u.uid)
		cgrunWithin(t, "ps")
		if !exists(victim) {
			t.Errorf("root's cgrun ps removed %s through the user's symlink", victim)
		}
	})
	t.Run("names and commands are printed escaped", func(t *testing.T) { // item 9
		// A valid name (an invalid one is refused before anything is listed, which would test
		// nothing), with the escapes in what a state may carry: the command, a dump's file.
		u := newFakeUser(t, 1000)
		s := u.state("plain")
		s["command"] = []string{"\x1b]0;pwned\a", "\x9b2J"}
		s["dumps"] = []map[string]any{{"generation": 1, "reason": "above", "complete": true,
			"files": []map[string]any{{"path": "/d/x\ncgrun: forged\x1b[2J", "size": 1}}}}
		u.write(t, strconv.Itoa(u.pid)+".json", s)
		for _, args := range [][]string{{"ps"}, {"ps", "--json"}, {"status", "plain"}, {"status", "plain", "--json"}} {
			out, errs, code := cgrunWithin(t, args...)
			if code != 0 || !strings.Contains(out, "plain") {
				t.Errorf("cgrun %v: %d, %q %q; want the state listed", args, code, out, errs)
			}
			if strings.ContainsAny(out, "\x1b\a\u009b") || strings.Contains(out, "\ncgrun: forged") {
				t.Errorf("cgrun %v printed control characters: %q", args, out)
			}
		}
	})
	t.Run("paths come from the live process, and root's names come first", func(t *testing.T) { // item 10
		u := newFakeUser(t, 1000)
		fake := t.TempDir()
		os.MkdirAll(filepath.Join(fake, "x"), 0o755)
		os.WriteFile(filepath.Join(fake, "x", "memory.current"), []byte("12345\n"), 0o644)
		s := u.state("worker14")
		s["mount"], s["group"], s["child_pid"] = fake, "x", u.pid
		u.write(t, strconv.Itoa(u.pid)+".json", s)
		out, errs, code := cgrunWithin(t, "status", "worker14", "--json")
		var b sandbox
		if code != 0 || json.Unmarshal([]byte(out), &b) != nil || b.MemoryCurrent == 12345 || b.Group == "x" {
			t.Errorf("status of the user's worker14: %d %s %s; read from the path the file named", code, out, errs)
		}
		cmd, _ := startSandbox(t, "worker14", nil, "sleep", "30")
		out, errs, code = cgrunWithin(t, "stop", "worker14")
		if code != 0 || !strings.Contains(out, fmt.Sprintf("stopped worker14 (pid %d)", cmd.Process.Pid)) {
			t.Errorf("root's cgrun stop worker14 beside a user's worker14: %d %q %q", code, out, errs)
		}
		waitCode(t, cmd)
		if !alive(u.pid) {
			t.Error("root's stop hit the user's process")
		}
	})
}

// Item 11: the kernel gets the pids.max that was asked for.
func TestPidsMaxReachesTheKernelAsGiven(t *testing.T) {
	requireCgroup2(t)
	for _, v := range []string{"64", "4194304"} {
		r := runCgrun(t, nil, []string{"--pids-max", v}, "report")
		if r.code != 0 {
			t.Fatalf("--pids-max %s: exit %d %s", v, r.code, r.stderr)
		}
		if have := parseReport(t, r.stdout).Files["pids.max"]; have != v {
			t.Errorf("--pids-max %s: pids.max is %q", v, have)
		}
	}
}

// A cgrun inside a cgrun whose own group limits swap must not put its generations beside that
// group, out of that limit (nestable checked only memory.max, memory.high and pids.max).
func TestNestedCgrunDoesNotEscapeItsGroupsSwapLimit(t *testing.T) {
	h := requireCgroup2(t)
	before := groupsUnder(t, h.SelfDir())
	script := `own=/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup)
echo 0 > "$own/memory.swap.max" || { echo "no memory.swap.max in $own"; exit 3; }
"$0" run --name inner -- "$1" report; echo "inner exit $?"`
	r := runCgrunArgs(t, []string{"--name", "outer", "--", "/bin/sh", "-c", script, cgrunBin(t), helperPath(t)})
	if r.code != 0 {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	for _, line := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(line, "{") {
			t.Errorf("the inner cgrun ran its command in %s, beside the group that limits swap", parseReport(t, line).Group)
		}
	}
	if !strings.Contains(r.stdout, "inner exit 125") || !strings.Contains(r.stderr, "still holds other processes") {
		t.Errorf("stdout %q, stderr %q: want the inner cgrun to refuse with exit 125", r.stdout, r.stderr)
	}
	assertNothingLeft(t, h, before)
}

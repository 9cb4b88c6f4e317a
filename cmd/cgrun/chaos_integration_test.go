package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestChaosSoak runs cgrun through rounds of random faults — SIGKILL, SIGTERM, SIGSTOP+SIGCONT
// of cgrun or of its command, a broken stdout, a stalled --events reader, a full tmpfs under
// --events and --report — and after each checks that no process of the command is left, that
// no group is left (after the next cgrun ps, where cgrun itself was SIGKILLed), that the
// generations of a restarting cgrun never overlapped, and that cgrun's exit code is one docs/exit-codes.md
// documents. CGRUNTEST_CHAOS_ROUNDS and CGRUNTEST_CHAOS_SECONDS bound it (200 rounds, 180 s);
// CGRUNTEST_CHAOS_SEED repeats a run.
func TestChaosSoak(t *testing.T) {
	h := requireCgroup2(t)
	rounds, budget := envInt("CGRUNTEST_CHAOS_ROUNDS", 200), time.Duration(envInt("CGRUNTEST_CHAOS_SECONDS", 180))*time.Second
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("CGRUNTEST_CHAOS_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (CGRUNTEST_CHAOS_SEED repeats it)", seed)
	rng := rand.New(rand.NewPCG(seed, 14))
	tmp := t.TempDir()
	full := fullTmpfs(t, filepath.Join(tmp, "full"))
	errFile := filepath.Join(tmp, "stderr")
	before := groupsUnder(t, h.SelfDir())
	faults := map[string]int{}
	unguarded := 0 // SIGKILLs of cgrun whose command only the next cgrun ps removed
	began := time.Now()
	n := 0
	for ; n < rounds && time.Since(began) < budget; n++ {
		marker := strconv.Itoa(100000 + n) // the command is /bin/sleep MARKER: found in /proc by it
		args := []string{"run", "--name", "chaos", "--stop-timeout", "1s"}
		restart := rng.IntN(3) == 0
		if restart {
			args = append(args, "--restart", "always", "--restart-delay", "0", "--max-restarts", "0")
		}
		cmd := exec.Command(cgrunBin(t))
		var events string // a regular file of events, to check the generations against
		var cleanup []func()
		readerDies, closeReader := false, func() {}
		sink := []string{"file", "broken stdout", "stalled FIFO", "full tmpfs"}[rng.IntN(4)]
		switch sink {
		case "file":
			events = filepath.Join(tmp, "events-"+marker)
			args = append(args, "--events", events, "--report", filepath.Join(tmp, "report-"+marker))
		case "broken stdout":
			r, w, _ := os.Pipe()
			r.Close()
			cmd.Stdout = w
			cleanup = append(cleanup, func() { w.Close() })
			args = append(args, "--events", "-", "--report", "-")
		case "stalled FIFO":
			fifo := filepath.Join(tmp, "fifo-"+marker)
			syscall.Mkfifo(fifo, 0o644)
			rfd, err := unix.Open(fifo, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			// Held open and never read; in half the rounds, gone once the fault is sent.
			unix.FcntlInt(uintptr(rfd), unix.F_SETPIPE_SZ, 4096)
			readerDies = rng.IntN(2) == 0
			closeReader = func() { unix.Close(rfd) }
			cleanup = append(cleanup, func() { closeReader(); os.Remove(fifo) })
			args = append(args, "--events", fifo)
		case "full tmpfs":
			args = append(args, "--events", filepath.Join(full, "events"), "--report", filepath.Join(full, "report"))
		}
		ef, _ := os.Create(errFile)
		cmd.Args = append(append([]string{cmd.Path}, args...), "--", "/bin/sleep", marker)
		cmd.Stderr = ef // a file, not a pipe: cmd.Wait must not wait for whoever else holds it
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		fail := func(format string, a ...any) {
			b, _ := os.ReadFile(errFile)
			t.Fatalf("round %d (%s, restart %v, faults so far %v): %s\ncgrun's stderr:\n%s", n, sink, restart, faults, fmt.Sprintf(format, a...), tail(string(b)))
		}
		if !eventually(5*time.Second, func() bool { return len(pidsOf(marker)) > 0 }) {
			cmd.Process.Kill()
			fail("the command did not start")
		}
		time.Sleep(time.Duration(rng.IntN(200)) * time.Millisecond)
		fault := []string{"SIGKILL cgrun", "SIGTERM cgrun", "SIGSTOP+SIGCONT cgrun", "SIGKILL command", "SIGTERM command", "SIGSTOP+SIGCONT command"}[rng.IntN(6)]
		faults[fault]++
		child := pidsOf(marker)
		switch fault {
		case "SIGKILL cgrun":
			cmd.Process.Kill()
		case "SIGTERM cgrun":
			cmd.Process.Signal(syscall.SIGTERM)
		case "SIGSTOP+SIGCONT cgrun":
			cmd.Process.Signal(syscall.SIGSTOP)
			time.Sleep(100 * time.Millisecond)
			cmd.Process.Signal(syscall.SIGCONT)
			cmd.Process.Signal(syscall.SIGTERM)
		case "SIGKILL command", "SIGTERM command", "SIGSTOP+SIGCONT command":
			sig := map[string]syscall.Signal{"SIGKILL command": syscall.SIGKILL, "SIGTERM command": syscall.SIGTERM, "SIGSTOP+SIGCONT command": syscall.SIGSTOP}[fault]
			for _, p := range child {
				syscall.Kill(p, sig)
			}
			if sig == syscall.SIGSTOP {
				time.Sleep(100 * time.Millisecond)
				for _, p := range child {
					syscall.Kill(p, syscall.SIGCONT)
				}
			}
			if restart || sig == syscall.SIGSTOP {
				time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
				cmd.Process.Signal(syscall.SIGTERM)
			}
		}
		if readerDies {
			closeReader()
			closeReader = func() {}
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		// Until cgrun has exited, never more than one generation's command at once: looked at in
		// /proc, not only in cgrun's own events.
		var err error
		most, deadline, look := 0, time.After(15*time.Second), time.NewTicker(20*time.Millisecond)
	wait:
		for {
			select {
			case err = <-done:
				break wait
			case <-look.C:
				most = max(most, len(pidsOf(marker)))
			case <-deadline:
				cmd.Process.Kill()
				fail("cgrun did not exit 15 s after %s", fault)
			}
		}
		look.Stop()
		if most > 1 {
			fail("%d commands of one cgrun ran at once after %s", most, fault)
		}
		ef.Close()
		for _, c := range cleanup {
			c()
		}
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code = 128 + int(ws.Signal())
			}
		}
		// The command's own ending (0; 137 and 143 for SIGKILL and SIGTERM) or cgrun's death of the
		// signal it was sent; never 125, cgrun's own failure.
		if !slices.Contains([]int{0, 128 + 9, 128 + 15}, code) {
			fail("exit %d after %s", code, fault)
		}
		if fault == "SIGKILL cgrun" {
			// The guard kills the command within milliseconds; where cgrun was killed before its
			// guard ran (the first milliseconds of the first generation), the next cgrun ps does.
			guarded := eventually(3*time.Second, func() bool { return len(pidsOf(marker)) == 0 })
			if _, errs, code := cgrunCmd(t, nil, "ps"); code != 0 {
				fail("cgrun ps: %d %s", code, errs)
			}
			if !guarded {
				unguarded++
			}
		}
		if _, err := os.Lstat(filepath.Join("/run/cgrun", strconv.Itoa(cmd.Process.Pid)+".json")); err == nil {
			fail("the state file of cgrun %d is left after %s", cmd.Process.Pid, fault)
		}
		if left := pidsOf(marker); len(left) > 0 {
			fail("processes of the command left after %s: %v", fault, left)
		}
		if !eventually(time.Second, func() bool { return slices.Equal(groupsUnder(t, h.SelfDir()), before) }) {
			var procs []string
			for _, g := range groupsUnder(t, h.SelfDir()) {
				b, _ := os.ReadFile(filepath.Join(g, "cgroup.procs"))
				procs = append(procs, fmt.Sprintf("%s: %q", g, b))
			}
			states, _ := filepath.Glob("/run/cgrun/*.json")
			fail("groups left after %s: %v (before: %v); states %v", fault, procs, before, states)
		}
		if events != "" {
			if err := generationsInTurn(events); err != nil {
				fail("%v", err)
			}
			os.Remove(events)
			os.Remove(filepath.Join(tmp, "report-"+marker))
		}
	}
	if n < rounds {
		t.Logf("stopped after %d of %d rounds: the %v budget is spent", n, rounds, budget)
		// A round takes about a second; far fewer rounds than that means something kept hanging
		// until a timeout, and the soak tried too little to show anything.
		if least := int(budget / (3 * time.Second)); n < least {
			t.Errorf("only %d rounds in %v (fewer than one in 3 s): rounds are hanging", n, budget)
		}
	}
	t.Logf("%d rounds in %v; faults %v; %d commands of a SIGKILLed cgrun removed by cgrun ps rather than the guard", n, time.Since(began).Round(time.Second), faults, unguarded)
	if unguarded > faults["SIGKILL cgrun"]/4 {
		t.Errorf("the guard missed %d of %d SIGKILLs of cgrun", unguarded, faults["SIGKILL cgrun"])
	}
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// pidsOf lists the live processes whose first argument is marker.
func pidsOf(marker string) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if args := strings.Split(string(b), "\x00"); len(args) > 1 && args[1] == marker && alive(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// generationsInTurn checks an events file: each generation's start follows the previous
// generation's exit, so two never ran at once.
func generationsInTurn(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return nil // cgrun was killed before it wrote any
	}
	defer f.Close()
	running := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ev struct {
			Kind       string `json:"event"`
			Generation int    `json:"generation"`
		}
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			return fmt.Errorf("%s: not JSON: %q", path, sc.Text())
		}
		switch ev.Kind {
		case "start":
			if running != 0 {
				return fmt.Errorf("%s: generation %d started while %d ran", path, ev.Generation, running)
			}
			running = ev.Generation
		case "exit":
			running = 0
		}
	}
	return nil
}

// fullTmpfs mounts a small tmpfs at dir and fills it, so that every write there fails.
func fullTmpfs(t *testing.T, dir string) string {
	t.Helper()
	os.MkdirAll(dir, 0o755)
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
		t.Fatalf("mount a tmpfs at %s: %v", dir, err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	return dir
}

// TestGenerationsInTurn checks the soak's own check on event lines as cgrun writes them.
func TestGenerationsInTurn(t *testing.T) {
	for _, tc := range []struct {
		name, lines string
		ok          bool
	}{
		{"in turn", `{"event":"start","generation":1}` + "\n" + `{"event":"exit","generation":1}` + "\n" + `{"event":"start","generation":2}` + "\n", true},
		{"a start before the exit", `{"event":"start","generation":1}` + "\n" + `{"event":"start","generation":2}` + "\n", false},
		{"not JSON", "start\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events")
			os.WriteFile(path, []byte(tc.lines), 0o644)
			if err := generationsInTurn(path); (err == nil) != tc.ok {
				t.Errorf("generationsInTurn = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

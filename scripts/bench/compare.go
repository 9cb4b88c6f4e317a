package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// compareBench is the start comparison: what one whole `cgrun run -- /bin/true` costs, from the
// fork to the reaping of cgrun, beside what the same start costs without cgrun and with
// systemd-run, each column a complete run of a process the bench forks, the columns taking turns
// (round i starts at column i) so that drift hits all alike:
//
//   - bare /bin/true;
//   - a minimal static Go binary (gonop: an empty main), what any Go program's exec and runtime
//     start cost;
//   - `cgrun version`: exec of cgrun and its package initialisation, no cgroup work;
//   - `systemd-run --scope -p MemoryMax=64M /bin/true` (under systemd, as root): a transient
//     scope asked of systemd over D-Bus with the pid, and its job waited for;
//   - `cgrun run --memory-max 64M -- /bin/true`: under systemd in a group systemd did not
//     delegate, cgrun asks for a scope over D-Bus (the "D-Bus" column); elsewhere it nests;
//   - `cgrun run --parent G --memory-max 64M -- /bin/true`, G a delegated group.
//
// With -old-cgrun (a comma-separated list), the cgrun columns run again with each of those
// binaries, in the same rounds: before and after a change, side by side. Without cgroup v2 (the development host) only the
// columns that need no group run: bare, gonop and `cgrun version`.
func compareBench(c *config) error {
	type column struct {
		name   string
		argv   []string
		d      []time.Duration // fork -> reaped
		cpu    []time.Duration // user + system time of the process and the children it reaped
		faults []time.Duration // minor page faults, the same way (a count, kept as a Duration for pct)
	}
	var cols []*column
	add := func(name string, argv ...string) *column {
		col := &column{name: name, argv: argv}
		cols = append(cols, col)
		return col
	}
	bare := add("bare /bin/true", "/bin/true")
	var gonop *column
	if _, err := os.Stat(c.gonop); err == nil {
		gonop = add("minimal static Go binary", c.gonop)
	} else {
		fmt.Printf("  (no minimal Go binary at %s: build it with go build -o %s ./scripts/bench/gonop)\n", c.gonop, c.gonop)
	}
	systemd := systemdRunning() && os.Geteuid() == 0
	var sdrun *column
	if systemd {
		if p, err := exec.LookPath("systemd-run"); err == nil {
			sdrun = add("systemd-run --scope -p MemoryMax=64M", p, "--quiet", "--scope", "-p", "MemoryMax=64M", "/bin/true")
		}
	}
	parent := c.parent
	if c.cgroup2 && parent == "" {
		p, cleanup, err := benchParent(systemd)
		if err != nil {
			return fmt.Errorf("a delegated group for --parent: %w", err)
		}
		defer cleanup()
		parent = p
	}
	type cgrunCols struct{ version, run, parent *column }
	cgrunColumns := func(bin, label string) cgrunCols {
		var cc cgrunCols
		cc.version = add(label+"version", bin, "version")
		if !c.cgroup2 {
			return cc
		}
		how := "(nested)"
		if systemd {
			how = "(D-Bus scope)"
		}
		cc.run = add(label+"run "+how, bin, "run", "--memory-max", "64M", "--", "/bin/true")
		cc.parent = add(label+"run --parent", bin, "run", "--parent", parent, "--memory-max", "64M", "--", "/bin/true")
		return cc
	}
	cur := cgrunColumns(c.cgrun, "cgrun ")
	var olds []cgrunCols
	for _, bin := range c.oldCgruns {
		olds = append(olds, cgrunColumns(bin, filepath.Base(bin)+" "))
	}

	fmt.Printf("1b. START COMPARISON: fork -> exit reaped, payload /bin/true, %d rounds after %d warm-up, columns taking turns\n", c.n, c.warmup)
	if parent != "" {
		fmt.Printf("  --parent %s\n", parent)
	}
	for i := range c.warmup + c.n {
		for k := range cols {
			col := cols[(i+k)%len(cols)]
			d, ru, err := runOnce(c, col.argv)
			if err != nil {
				return fmt.Errorf("%s: %w", col.name, err)
			}
			if i >= c.warmup {
				col.d = append(col.d, d)
				col.cpu = append(col.cpu, time.Duration(ru.Utime.Nano()+ru.Stime.Nano()))
				col.faults = append(col.faults, time.Duration(ru.Minflt))
			}
		}
	}

	ratio := func(a, b *column) string {
		if a == nil || b == nil || pct(b.d, 50) == 0 {
			return ""
		}
		return fmt.Sprintf("%.2fx", float64(pct(a.d, 50))/float64(pct(b.d, 50)))
	}
	fmt.Printf("  %-42s %11s %11s %11s %9s %9s %9s %11s %7s\n", "", "p50", "p99", "mean", "/ bare", "/ Go", "/ sd-run", "CPU mean", "faults")
	for _, col := range cols {
		fmt.Printf("  %-42s %11s %11s %11s %9s %9s %9s %11s %7d\n", col.name, ms(pct(col.d, 50)), ms(pct(col.d, 99)), ms(mean(col.d)),
			ratio(col, bare), ratio(col, gonop), ratio(col, sdrun), ms(mean(col.cpu)), int64(pct(col.faults, 50)))
	}
	fmt.Println("  CPU mean: user + system time of the process and of the children it reaped (the guard, the command);")
	fmt.Println("  faults: their minor page faults, p50 (systemd-run's scope work is done by systemd, and not counted)")
	fmt.Println("  targets: cgrun version <= 1.5x the minimal Go binary (real kernel); cgrun run via D-Bus <= 1.1x systemd-run;")
	fmt.Println("  cgrun run --parent <= systemd-run (systemd guest); --parent <= bare + 1 ms (hardware)")
	if cur.parent != nil {
		fmt.Printf("  cgrun run --parent - bare: %s p50\n", signedMs(pct(cur.parent.d, 50)-pct(bare.d, 50)))
	}
	for _, old := range olds {
		for _, p := range [][2]*column{{cur.version, old.version}, {cur.run, old.run}, {cur.parent, old.parent}} {
			if p[0] != nil && p[1] != nil {
				fmt.Printf("  %-42s %11s p50, %s p99 (%s)\n", p[0].name, signedMs(pct(p[0].d, 50)-pct(p[1].d, 50)), signedMs(pct(p[0].d, 99)-pct(p[1].d, 99)), "minus "+p[1].name)
			}
		}
	}
	if c.uml {
		fmt.Println("  UML: every exec and page fault costs 10-100x what it does on hardware; compare the columns with each other")
	}
	return nil
}

// runOnce forks and execs argv with stdin, stdout and stderr on /dev/null, and returns the time
// from the fork to its reaping and its resource usage; a run that does not exit 0 is an error.
func runOnce(c *config, argv []string) (time.Duration, unix.Rusage, error) {
	var ru unix.Rusage
	t0 := mono()
	pid, err := spawn(argv, c.env(), c.nullFd, c.nullFd, c.nullFd)
	if err != nil {
		return 0, ru, err
	}
	var ws unix.WaitStatus
	for {
		if _, err = unix.Wait4(pid, &ws, 0, &ru); err != unix.EINTR {
			break
		}
	}
	t1 := mono()
	switch {
	case err != nil:
		return 0, ru, err
	case !ws.Exited() || ws.ExitStatus() != 0:
		return 0, ru, fmt.Errorf("%s: exit status %d (signal %v); run it by hand to see why", strings.Join(argv, " "), ws.ExitStatus(), ws.Signal())
	}
	return time.Duration(t1 - t0), ru, nil
}

// systemdRunning is sd_booted(3): whether systemd is the init system.
func systemdRunning() bool {
	fi, err := os.Lstat("/run/systemd/system")
	return err == nil && fi.IsDir()
}

// benchParent makes a delegated group for `cgrun run --parent` and returns it with the function
// that removes it. Under systemd it is a transient scope delegated memory and pids holding a
// sleep (what a unit with Delegate="memory pids" gives its main process), the sleep moved into a
// leaf "keep" and the memory and pids controllers enabled for "payloads" beside it, which is
// --parent. Not Delegate=yes: a scope delegated every controller makes systemd switch cpu and io
// on in system.slice for as long as it runs, which a default host does not have, and which
// spares the other columns the work they cost there. Without
// systemd it is a group under the root of the hierarchy.
func benchParent(systemd bool) (string, func(), error) {
	const mount = "/sys/fs/cgroup"
	if !systemd {
		dir := filepath.Join(mount, "cgrun-bench-parent")
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return "", nil, err
		}
		return dir, func() { os.Remove(dir) }, nil
	}
	unit := fmt.Sprintf("cgrun-bench-parent-%d", os.Getpid())
	p, err := exec.LookPath("systemd-run")
	if err != nil {
		return "", nil, err
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return "", nil, err
	}
	defer null.Close()
	cmd := exec.Command(p, "--quiet", "--scope", "-p", "Delegate=memory pids", "--unit", unit, "/bin/sleep", "infinity")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, null, null
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	// systemd-run moves itself into the scope and then execs the sleep.
	var scope string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "cgroup"))
		comm, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "comm"))
		rel := strings.TrimSpace(strings.TrimPrefix(string(b), "0::"))
		if strings.HasSuffix(rel, "/"+unit+".scope") && strings.TrimSpace(string(comm)) == "sleep" {
			scope = filepath.Join(mount, rel)
			break
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("systemd-run --scope -p Delegate=\"memory pids\" did not start %s.scope in 10 s", unit)
		}
	}
	keep, payloads := filepath.Join(scope, "keep"), filepath.Join(scope, "payloads")
	cleanup := func() {
		os.Remove(payloads)
		stop() // systemd then stops the scope and removes its groups
		os.Remove(keep)
	}
	for _, step := range []func() error{
		func() error { return os.Mkdir(keep, 0o755) },
		func() error {
			return os.WriteFile(filepath.Join(keep, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0)
		},
		func() error {
			return os.WriteFile(filepath.Join(scope, "cgroup.subtree_control"), []byte("+memory +pids"), 0)
		},
		func() error { return os.Mkdir(payloads, 0o755) },
	} {
		if err := step(); err != nil {
			cleanup()
			return "", nil, err
		}
	}
	return payloads, cleanup, nil
}

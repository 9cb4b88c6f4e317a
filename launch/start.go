package launch

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Child is what starts the command: the program, its argv and environment, and the group it
// must run in from its first instruction.
type Child struct {
	Path     string   // resolved by LookPath
	Argv     []string // Argv[0] is the name the command sees
	Env      []string
	GroupDir string // the payload group
	// NoClone3 skips clone3 and uses the re-exec stub, as on a kernel or seccomp filter that
	// refuses clone3. The tests set it to cover that path.
	NoClone3 bool
	// Stdio are the child's fds 0, 1 and 2; nil passes on cgrun's own. A child with its own
	// stdio (a health probe) never takes the terminal's foreground.
	Stdio []uintptr
}

// EnterCommand is the hidden first argument that makes cgrun act as the re-exec stub.
const EnterCommand = "__cgrun_enter"

// Start forks and execs the command inside its group and returns its pid.
//
// It uses clone3(CLONE_INTO_CGROUP) (Linux 5.7), so the child is in the group before it runs a
// single instruction. Where clone3 is refused (ENOSYS on older kernels, EPERM or ENOSYS from
// seccomp filters such as Docker's older default profile) it falls back to re-executing cgrun
// itself as a stub that writes its own pid into the group's cgroup.procs and then execs the
// command: only cgrun's code ever runs outside the group.
//
// The child leads a process group of its own; when cgrun owns the terminal's foreground, the
// child's group takes the foreground, so ^C reaches the command once, from the terminal.
func Start(c Child) (pid int, err error) {
	gfd, err := unix.Open(c.GroupDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("open group %s: %w", c.GroupDir, err)
	}
	defer unix.Close(gfd)

	sys := &syscall.SysProcAttr{Setpgid: true}
	stdio := c.Stdio
	if stdio == nil {
		stdio = []uintptr{0, 1, 2}
		if foreground() {
			sys.Foreground, sys.Ctty = true, 0
		}
	}
	if !c.NoClone3 {
		sys.UseCgroupFD, sys.CgroupFD = true, gfd
		pid, err = syscall.ForkExec(c.Path, c.Argv, &syscall.ProcAttr{Env: c.Env, Files: stdio, Sys: sys})
		if err == nil {
			return pid, nil
		}
		if !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EPERM) {
			return 0, execError(c.Path, err)
		}
		sys.UseCgroupFD, sys.CgroupFD = false, 0
	}
	self, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("find cgrun's own binary for the re-exec stub: %w", err)
	}
	// The stub finds the group as its fd 3 and the command after "--".
	argv := append([]string{"cgrun", EnterCommand, c.Path, "--"}, c.Argv...)
	pid, err = syscall.ForkExec(self, argv, &syscall.ProcAttr{Env: c.Env, Files: append(stdio[:3:3], uintptr(gfd)), Sys: sys})
	if err != nil {
		return 0, fmt.Errorf("start re-exec stub %s: %w", self, err)
	}
	return pid, nil
}

// Enter is the re-exec stub: args are what follows EnterCommand (PATH -- ARGV...). It moves the
// process into the group open on fd 3 and execs the command; it returns only on failure.
func Enter(args []string) error {
	if len(args) < 3 || args[1] != "--" {
		return errors.New(EnterCommand + ": want PATH -- ARGV...")
	}
	path, argv := args[0], args[2:]
	procs, err := unix.Openat(3, "cgroup.procs", unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open cgroup.procs of the payload group: %w", err)
	}
	if _, err := unix.Write(procs, []byte("0")); err != nil {
		return fmt.Errorf("move into the payload group: write 0 to cgroup.procs: %w", err)
	}
	unix.Close(procs)
	unix.Close(3)
	return execError(path, unix.Exec(path, argv, os.Environ()))
}

// foreground reports whether cgrun's process group owns the terminal on stdin.
func foreground() bool {
	pgrp, err := unix.IoctlGetInt(0, unix.TIOCGPGRP)
	return err == nil && pgrp == unix.Getpgrp()
}

// reclaimForeground gives the terminal back to cgrun's process group after the child's ended.
func reclaimForeground() {
	if _, err := unix.IoctlGetInt(0, unix.TIOCGPGRP); err != nil {
		return
	}
	// tcsetpgrp from a background group raises SIGTTOU; ignore it for this one call.
	signalIgnoreTTOU()
	_ = unix.IoctlSetPointerInt(0, unix.TIOCSPGRP, unix.Getpgrp())
}

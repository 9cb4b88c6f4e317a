package proc

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/cgrun/cgrun/launch/exitcode"
	"github.com/cgrun/cgrun/launch/listen"
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
	// Cred is the user, group and supplementary groups the command runs as (--user); nil runs
	// it as cgrun's own. cgrun joins the group as itself: the group stays root's.
	Cred *syscall.Credential
	// NoNewPrivs sets no_new_privs on the child, so that no setuid or file-capability
	// binary it runs gains privileges (set with Cred unless --allow-new-privs).
	NoNewPrivs bool
	// Listen are sockets the command gets as fds 3, 4, ... (--listen). It then always starts
	// through the re-exec stub, which sets LISTEN_PID to its own pid — the command's, after
	// exec — as no code can run between Go's fork and exec.
	Listen []uintptr
	// Keep are the unix sockets' files the command may not remove (see listen.Guard); cgrun
	// sets them when it runs as root.
	Keep []string
	// Shm gives the command a /dev/shm of its own (see PrivateShm); nil leaves it the host's.
	Shm *Shm
	// ShmRefused hears why the private /dev/shm could not be made (a mount namespace refused);
	// the command then starts with the host's.
	ShmRefused func(error)
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
// With a Cred, the child switches user in the kernel's clone-and-exec path (setgroups, setgid,
// setuid, then execve): on the clone3 path it is in its group and that user before its first
// instruction; the stub joins the group as root (the group's cgroup.procs is root's) and then
// drops to the user before it execs the command.
//
// The child leads a process group of its own; when cgrun owns the terminal's foreground, the
// child's group takes the foreground, so ^C reaches the command once, from the terminal.
// With a Cred the child leads a session of its own instead (setsid), with no controlling
// terminal: a command running as another user must not stay in root's terminal session, where
// it could push input into root's shell (TIOCSTI) or take its foreground. cgrun keeps the
// terminal and forwards ^C (SIGINT) and the other signals to it.
func Start(c Child) (pid int, err error) {
	gfd, err := unix.Open(c.GroupDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("open group %s: %w", c.GroupDir, err)
	}
	defer unix.Close(gfd)

	sys := &syscall.SysProcAttr{Setpgid: true}
	if c.Cred != nil {
		sys = &syscall.SysProcAttr{Setsid: true}
	}
	stdio := c.Stdio
	if stdio == nil {
		stdio = []uintptr{0, 1, 2}
		if c.Cred == nil && foreground() {
			sys.Foreground, sys.Ctty = true, 0
		}
	}
	if len(c.Listen) > 0 {
		return startListening(c, gfd, stdio, sys)
	}
	if !c.NoClone3 {
		sys.UseCgroupFD, sys.CgroupFD, sys.Credential = true, gfd, c.Cred
		pid, err = forkExec(c.Path, c.Argv, &syscall.ProcAttr{Env: c.Env, Files: stdio, Sys: sys}, c)
		if err == nil {
			return pid, nil
		}
		if groupRefused(c, err) {
			return 0, groupError(c.GroupDir, err)
		}
		if !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EPERM) {
			return 0, execError(c.Path, err)
		}
		sys.UseCgroupFD, sys.CgroupFD, sys.Credential = false, 0, nil
	}
	self, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("find cgrun's own binary for the re-exec stub: %w", err)
	}
	// The stub finds the group as its fd 3, the user to become in --cred, and the command
	// after "--"; it inherits no_new_privs.
	argv := []string{"cgrun", EnterCommand}
	if c.Cred != nil {
		argv = append(argv, credFlag+formatCred(c.Cred))
	}
	argv = append(append(argv, c.Path, "--"), c.Argv...)
	pid, err = forkExec(self, argv, &syscall.ProcAttr{Env: c.Env, Files: append(stdio[:3:3], uintptr(gfd)), Sys: sys}, c)
	if err != nil {
		return 0, stubError(self, err)
	}
	return pid, nil
}

// groupRefused tells, from clone3's EACCES, the kernel refusing the move into the group from
// the program refusing to execute: both come back as the same errno. Without a Cred, cgrun's
// own user execs the command, so where that user may execute it, the group was refused: an
// unprivileged cgrun moves a process only where it can write cgroup.procs of the group and of
// the common ancestor of its own group and that one. (With a Cred cgrun is root, whom the
// group never refuses.)
func groupRefused(c Child, err error) bool {
	return errors.Is(err, unix.EACCES) && c.Cred == nil &&
		unix.Faccessat(unix.AT_FDCWD, c.Path, unix.X_OK, unix.AT_EACCESS) == nil
}

// groupError is cgrun's own failure (125), not the command's 126: the group was refused.
func groupError(dir string, err error) error {
	return &exitcode.Error{Code: exitcode.Failure, Err: fmt.Errorf("start the command in %s: the kernel refused to move it there (%v): cgrun's user %d must be able to write cgroup.procs of that group and of the common ancestor of its own group (%s) and that one; run cgrun from inside the delegated subtree (systemd-run --user --scope -p Delegate=yes), or as root",
		dir, err, os.Geteuid(), ownGroup())}
}

// ownGroup is cgrun's own group as /proc/self/cgroup names it, for messages.
func ownGroup() string {
	b, _ := os.ReadFile("/proc/self/cgroup")
	for _, line := range strings.Split(string(b), "\n") {
		if g, ok := strings.CutPrefix(line, "0::"); ok {
			return g
		}
	}
	return "unknown"
}

// startListening starts the stub with the sockets as fds 3, 4, ... and the group after them:
// by clone3 into the group where it can (the stub's join is then a no-op), else as Start's
// fallback does. The stub, not the kernel, becomes the --user, so that it may still join.
func startListening(c Child, gfd int, stdio []uintptr, sys *syscall.SysProcAttr) (int, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("find cgrun's own binary for the re-exec stub: %w", err)
	}
	argv := []string{"cgrun", EnterCommand, listenFlag + strconv.Itoa(len(c.Listen))}
	for _, p := range c.Keep {
		argv = append(argv, keepFlag+p)
	}
	if c.Cred != nil {
		argv = append(argv, credFlag+formatCred(c.Cred))
	}
	argv = append(append(argv, c.Path, "--"), c.Argv...)
	files := append(append(stdio[:3:3], c.Listen...), uintptr(gfd))
	if !c.NoClone3 {
		sys.UseCgroupFD, sys.CgroupFD = true, gfd
		pid, err := forkExec(self, argv, &syscall.ProcAttr{Env: c.Env, Files: files, Sys: sys}, c)
		if groupRefused(Child{Path: self}, err) {
			return 0, groupError(c.GroupDir, err)
		}
		if err == nil || !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EPERM) {
			return pid, stubError(self, err)
		}
		sys.UseCgroupFD, sys.CgroupFD = false, 0
	}
	pid, err := forkExec(self, argv, &syscall.ProcAttr{Env: c.Env, Files: files, Sys: sys}, c)
	if err != nil {
		return 0, stubError(self, err)
	}
	return pid, nil
}

// stubError is a failed start of the re-exec stub, which is cgrun's own failure (125).
func stubError(self string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, unix.EAGAIN) {
		return &exitcode.Error{Code: exitcode.Failure, Err: fmt.Errorf("cannot start the command: %s", noProcess)}
	}
	return fmt.Errorf("start re-exec stub %s: %w", self, err)
}

// forkExec is syscall.ForkExec, from a thread prepared for c when it needs one: with
// no_new_privs set (c.NoNewPrivs), and in a mount namespace of its own with the private
// /dev/shm mounted (c.Shm). Both belong to a thread and are copied to the children it forks.
// That thread is locked to a goroutine that ends without unlocking it, so the Go runtime ends
// the thread too, no other goroutine of cgrun ever runs with the flag or in that namespace,
// and the namespace — the tmpfs with it — lives exactly as long as the processes of the
// generation. (No re-exec of cgrun is needed for either: Go runs no code of ours between fork
// and exec, but the thread it forks from can be set up before.)
func forkExec(path string, argv []string, attr *syscall.ProcAttr, c Child) (int, error) {
	if !c.NoNewPrivs && c.Shm == nil {
		return syscall.ForkExec(path, argv, attr)
	}
	type result struct {
		pid int
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		if c.Shm != nil {
			if err := PrivateShm(*c.Shm); err != nil && c.ShmRefused != nil {
				c.ShmRefused(err) // the command starts with the host's /dev/shm
			}
		}
		if c.NoNewPrivs {
			if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
				done <- result{err: fmt.Errorf("set no_new_privs: %w", err)}
				return
			}
		}
		pid, err := syscall.ForkExec(path, argv, attr)
		done <- result{pid, err}
	}()
	r := <-done
	return r.pid, r.err
}

// listenFlag tells the stub how many sockets precede the group's fd: --listen=N.
const listenFlag = "--listen="

// keepFlag names a socket's file the stub keeps in place: --keep=PATH, repeatable.
const keepFlag = "--keep="

// credFlag passes the stub the user to become: --cred=UID:GID:GROUP,GROUP...
const credFlag = "--cred="

func formatCred(c *syscall.Credential) string {
	groups := make([]string, len(c.Groups))
	for i, g := range c.Groups {
		groups[i] = strconv.FormatUint(uint64(g), 10)
	}
	return fmt.Sprintf("%d:%d:%s", c.Uid, c.Gid, strings.Join(groups, ","))
}

func parseCred(s string) (*syscall.Credential, error) {
	f := strings.Split(s, ":")
	if len(f) != 3 {
		return nil, fmt.Errorf("%s%s: want UID:GID:GROUPS", credFlag, s)
	}
	var ids []uint32
	for _, v := range append(f[:2:2], strings.FieldsFunc(f[2], func(r rune) bool { return r == ',' })...) {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%s%s: %q is not an id", credFlag, s, v)
		}
		ids = append(ids, uint32(n))
	}
	return &syscall.Credential{Uid: ids[0], Gid: ids[1], Groups: ids[2:]}, nil
}

// Enter is the re-exec stub: args are what follows EnterCommand
// ([--listen=N] [--keep=PATH...] [--cred=...] PATH -- ARGV...). It moves the process into the
// group open on fd 3+N (N sockets before it, 0 without --listen), keeps the --keep files in
// place (listen.Guard), sets LISTEN_PID to its own pid when it has sockets, becomes the --cred
// user, and execs the command; it returns only on failure. It inherits the private /dev/shm
// that Start made for it, if any.
func Enter(args []string) error {
	var cred *syscall.Credential
	sockets := -1 // no --listen: no LISTEN_PID
	if len(args) > 0 && strings.HasPrefix(args[0], listenFlag) {
		n, err := strconv.Atoi(strings.TrimPrefix(args[0], listenFlag))
		if err != nil || n < 1 {
			return fmt.Errorf("%s: %q is not a number of sockets", EnterCommand, args[0])
		}
		sockets, args = n, args[1:]
	}
	var keep []string
	for len(args) > 0 && strings.HasPrefix(args[0], keepFlag) {
		keep, args = append(keep, strings.TrimPrefix(args[0], keepFlag)), args[1:]
	}
	if len(args) > 0 && strings.HasPrefix(args[0], credFlag) {
		var err error
		if cred, err = parseCred(strings.TrimPrefix(args[0], credFlag)); err != nil {
			return err
		}
		args = args[1:]
	}
	if len(args) < 3 || args[1] != "--" {
		return errors.New(EnterCommand + ": want [--listen=N] [--keep=PATH...] [--cred=UID:GID:GROUPS] PATH -- ARGV...")
	}
	path, argv := args[0], args[2:]
	group := 3 + max(sockets, 0)
	procs, err := unix.Openat(group, "cgroup.procs", unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open cgroup.procs of the payload group: %w", err)
	}
	if _, err := unix.Write(procs, []byte("0")); err != nil {
		return fmt.Errorf("move into the payload group: write 0 to cgroup.procs: %w", err)
	}
	unix.Close(procs)
	unix.Close(group)
	if cred != nil {
		// What the stub was handed is all it has; still, nothing past the sockets crosses to the
		// user, whatever a future caller passes (see CloseOnExecFrom).
		if err := CloseOnExecFrom(3 + max(sockets, 0)); err != nil {
			return err
		}
	}
	if err := listen.Guard(keep); err != nil {
		// Not fatal: where the mount namespace is refused (a container without CAP_SYS_ADMIN)
		// the command still runs; only an app that removes its socket's file takes it away.
		fmt.Fprintf(os.Stderr, "cgrun: warning: %v; the command could remove the socket's file\n", err)
	}
	if cred != nil {
		if err := becomeUser(cred); err != nil {
			return err
		}
	}
	env := os.Environ()
	if sockets > 0 {
		env = append(slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "LISTEN_PID=") }),
			"LISTEN_PID="+strconv.Itoa(os.Getpid()))
	}
	return execError(path, unix.Exec(path, argv, env))
}

// becomeUser drops the stub's root for good, in the order the kernel needs: the groups while it
// may still set them, then the gid, then the uid (which clears every capability).
//
// It changes this thread only, and locks the goroutine to it: the exec that follows runs here,
// and execve gives the new program the credentials of the thread that calls it and ends every
// other thread. Not syscall.Setgroups/Setuid and friends: they change all threads through the
// Go runtime, which signals each thread and spins until every one has answered. In a UML guest,
// after the suite's earlier tests, the stub hung that way every time (running, state R, never
// reaching exec; compare golang/go#50113); with per-thread calls the same suite passes.
func becomeUser(c *syscall.Credential) error {
	runtime.LockOSThread() // never unlocked: the command replaces this program on this thread
	groups := make([]int, len(c.Groups))
	for i, g := range c.Groups {
		groups[i] = int(g)
	}
	if err := unix.Setgroups(groups); err != nil { // x/sys: this thread only
		return fmt.Errorf("become uid %d: setgroups %v: %w", c.Uid, c.Groups, err)
	}
	if _, _, e := unix.RawSyscall(sysSetresgid, uintptr(c.Gid), uintptr(c.Gid), uintptr(c.Gid)); e != 0 {
		return fmt.Errorf("become uid %d: setresgid %d: %w", c.Uid, c.Gid, e)
	}
	if _, _, e := unix.RawSyscall(sysSetresuid, uintptr(c.Uid), uintptr(c.Uid), uintptr(c.Uid)); e != 0 {
		return fmt.Errorf("become uid %d: setresuid: %w", c.Uid, e)
	}
	return nil
}

// foreground reports whether cgrun's process group owns the terminal on stdin.
func foreground() bool {
	pgrp, err := unix.IoctlGetInt(0, unix.TIOCGPGRP)
	return err == nil && pgrp == unix.Getpgrp()
}

// ReclaimForeground gives the terminal back to cgrun's process group after the child's ended.
func ReclaimForeground() {
	if _, err := unix.IoctlGetInt(0, unix.TIOCGPGRP); err != nil {
		return
	}
	// tcsetpgrp from a background group raises SIGTTOU; ignore it for this one call.
	signal.Ignore(unix.SIGTTOU)
	_ = unix.IoctlSetPointerInt(0, unix.TIOCSPGRP, unix.Getpgrp())
}

// StartShell starts `sh -c cmd` as c says, with /dev/null as its stdio, the way the command
// itself is started (clone3 into the group, or the re-exec stub; as the --user): a health probe,
// or a --diagnose-cmd.
func StartShell(cmd string, c Child) (int, error) {
	null, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(null)
	fd := uintptr(null)
	c.Path, c.Argv, c.Stdio = "/bin/sh", []string{"sh", "-c", cmd}, []uintptr{fd, fd, fd}
	return Start(c)
}

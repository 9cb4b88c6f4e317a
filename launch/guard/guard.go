// Package guard is the process that kills and removes the groups of a cgrun that was SIGKILLed
// before it could remove them itself.
package guard

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"golang.org/x/sys/unix"
)

// Command is the hidden first argument that makes cgrun act as the guard of another cgrun.
const Command = "__cgrun_guard"

// teardownTimeout bounds how long the guard waits for a killed group to empty, as cgrun does.
const teardownTimeout = 10 * time.Second

// Guard is a small process that outlives a cgrun that is SIGKILLed (a supervisor's kill
// timeout, an operator's kill -9, the OOM killer) and then kills and removes the groups that
// cgrun left running: the command must not outlive its supervisor, or the supervisor's next
// start runs a second worker beside the orphan.
//
// It is cgrun itself, re-executed, holding the read end of a pipe whose write end only cgrun
// holds (close-on-exec: the command never inherits it). When cgrun dies, by whatever signal, the
// kernel closes the write end and the guard reads EOF. A cgrun that ends normally writes one byte
// first: the guard then exits without touching anything. The guard leads a process group of its
// own and ignores the stop signals, so that ^C at a terminal or a supervisor's kill of cgrun's
// process group does not take it along.
type Guard struct {
	pid   int
	pidfd int      // names the guard even after the supervisor's reaper took it; -1 without pidfds (Linux < 5.3)
	pipe  *os.File // the write end
}

// Start starts the guard of the generations named prefix+N under site.
func Start(site, prefix string) (*Guard, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start the guard: %w", err)
	}
	defer r.Close()
	null, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("start the guard: %w", err)
	}
	defer unix.Close(null)
	// /proc/self/exe: the binary that runs, even when a package upgrade replaced the file.
	pid, err := syscall.ForkExec("/proc/self/exe", []string{"cgrun", Command, site, prefix, strconv.Itoa(os.Getpid())},
		&syscall.ProcAttr{Env: []string{"GOMAXPROCS=1"}, Files: []uintptr{uintptr(null), uintptr(null), 2, r.Fd()},
			Sys: &syscall.SysProcAttr{Setpgid: true}})
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("start the guard: %w", err)
	}
	// Not reaped yet: the pid is still the guard's, and the pidfd names it for good.
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		pidfd = -1
	}
	return &Guard{pid: pid, pidfd: pidfd, pipe: w}, nil
}

// Release ends the guard once cgrun has cleaned up itself, and reaps it, so that no process of
// cgrun's outlives it. With a pidfd it is killed at once; without one, it is told through the
// pipe and waited for (a bounded time), since its pid may have been reaped and reused.
func (g *Guard) Release() {
	var ws unix.WaitStatus
	if g.pidfd >= 0 {
		_ = unix.PidfdSendSignal(g.pidfd, unix.SIGKILL, nil, 0)
		unix.Close(g.pidfd)
		g.pipe.Close()
		for {
			// ECHILD: the reaper took it with the command's orphans.
			if _, err := unix.Wait4(g.pid, &ws, 0, nil); !errors.Is(err, unix.EINTR) {
				return
			}
		}
	}
	_, _ = g.pipe.Write([]byte{'q'})
	g.pipe.Close()
	for deadline := time.Now().Add(time.Second); ; {
		pid, err := unix.Wait4(g.pid, &ws, unix.WNOHANG, nil)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case pid == g.pid || err != nil: // exited, or reaped already with the command's orphans
			return
		case time.Now().After(deadline):
			return // it exits on its own when it reads the byte
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Run is the guard process: args are what follows Command (SITE PREFIX PID), fd 3 is
// the pipe. It returns when cgrun ended; an error only when it could not clean up.
func Run(args []string) error {
	if len(args) != 3 {
		return errors.New(Command + ": want SITE PREFIX PID")
	}
	site, prefix, owner := args[0], args[1], args[2]
	signal.Ignore(unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT, unix.SIGPIPE, unix.SIGUSR1, unix.SIGUSR2, unix.SIGALRM, unix.SIGWINCH)
	b := make([]byte, 1)
	for {
		n, err := unix.Read(3, b)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if n == 1 {
			return nil // cgrun ended normally and removed its groups itself
		}
		break // EOF: cgrun is gone
	}
	kids, err := cgroup.Children(site)
	if err != nil {
		return fmt.Errorf("cgrun (pid %s) died; its guard cannot list %s: %w", owner, site, err)
	}
	var errs []error
	for _, k := range kids {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		dir := filepath.Join(site, k)
		ctx, cancel := context.WithTimeout(context.Background(), teardownTimeout)
		err := cgroup.Kill(ctx, dir)
		cancel()
		if err == nil {
			err = cgroup.RemoveTree(dir)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(os.Stderr, "cgrun: cgrun (pid %s) died without cleaning up; its guard killed and removed %s\n", owner, dir)
	}
	return errors.Join(errs...)
}

package launch

import (
	"os"
	"os/signal"

	"github.com/cgrun/cgrun/launch/exitcode"
	"golang.org/x/sys/unix"
)

// signals are the channels the supervisor hears signals on. Each kind has its own channel, so
// that a flood of one kind (SIGCHLD from a forking command, SIGWINCH from a terminal) cannot fill
// the buffer that a SIGTERM needs: package signal drops what does not fit, and a dropped SIGTERM
// would leave cgrun running until SIGKILL.
type signals struct {
	stop  <-chan os.Signal // SIGTERM, SIGINT
	child <-chan os.Signal // SIGCHLD: one pending is enough, proc.ReapAll collects every exited child
	other <-chan os.Signal // the other forwarded signals and the recycle signal
}

// notifySignals routes the signals cgrun forwards to the child (SIGTERM, SIGINT, SIGHUP, SIGQUIT,
// SIGUSR1, SIGUSR2, SIGWINCH; never SIGURG, which the Go runtime uses to preempt goroutines), SIGCHLD and the recycle signal to their channels.
// It is called once, before the child starts, so that no signal that arrives while it starts is
// lost.
//
// SIGPIPE is caught and never read: a write to a broken stdout or stderr then fails with EPIPE
// instead of killing cgrun (the Go runtime raises SIGPIPE for fds 1 and 2 unless it is caught,
// see os/signal), so a reader that went away never ends supervision. It is caught rather than
// ignored because an ignored SIGPIPE would be inherited by the command across exec.
func notifySignals() (signals, func()) {
	stop, child, other, pipe := make(chan os.Signal, 2), make(chan os.Signal, 1), make(chan os.Signal, 32), make(chan os.Signal, 1)
	signal.Notify(stop, unix.SIGTERM, unix.SIGINT)
	signal.Notify(child, unix.SIGCHLD)
	signal.Notify(other, exitcode.RecycleSignal, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH)
	signal.Notify(pipe, unix.SIGPIPE)
	return signals{stop: stop, child: child, other: other}, func() {
		for _, c := range []chan os.Signal{stop, child, other, pipe} {
			signal.Stop(c)
		}
	}
}

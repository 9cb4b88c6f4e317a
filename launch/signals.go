package launch

import (
	"os"
	"os/signal"

	"golang.org/x/sys/unix"
)

// forwarded lists the signals cgrun passes on to the child. SIGURG is absent on purpose: the Go
// runtime uses it to preempt goroutines, and a child must never see those.
func forwarded() []os.Signal {
	return []os.Signal{
		unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT,
		unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH,
	}
}

// recycleSignal asks cgrun for a graceful recycle of the current generation. cgrun does not
// forward it; SIGALRM is one no supervisor sends by accident (cgrun recycle NAME sends it too).
const recycleSignal = unix.SIGALRM

// notifySignals routes the forwarded signals and SIGCHLD to a channel. It is called once, before
// the child starts, so that no signal that arrives while it starts is lost.
func notifySignals() (<-chan os.Signal, func()) {
	ch := make(chan os.Signal, 32)
	signal.Notify(ch, append([]os.Signal{unix.SIGCHLD, recycleSignal}, forwarded()...)...)
	return ch, func() { signal.Stop(ch) }
}

func signalIgnoreTTOU() { signal.Ignore(unix.SIGTTOU) }

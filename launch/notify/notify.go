// Package notify is sd_notify(3) both ways: cgrun telling the systemd unit it runs in of its
// readiness, status, stopping and watchdog pings, and hearing a generation say READY=1.
package notify

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Notifier speaks sd_notify(3) to systemd for a unit with Type=notify, when cgrun is told to
// (--notify-ready): READY=1 once the first generation runs (or, with a health probe, once a
// probe first passed), STATUS= at each generation,
// STOPPING=1 at the end, and WATCHDOG=1 pings when the unit has WatchdogSec=. Without the flag
// cgrun leaves NOTIFY_SOCKET to the command, so an app that speaks sd_notify itself does (the
// unit then needs NotifyAccess=all, since the app is not the unit's main process).
type Notifier struct {
	on          bool
	waitHealthy bool // READY=1 only once a health probe passed
	ready       bool
	stop        chan struct{}
	log         io.Writer // where the first message systemd did not get is told
	warned      sync.Once // the watchdog's goroutine sends too
}

// New is a Notifier that speaks when on; with waitHealthy READY=1 waits for a passing probe.
// The first message that cannot be sent is told on log, once: without it a unit waiting for
// READY=1 only times out.
func New(on, waitHealthy bool, log io.Writer) *Notifier {
	n := &Notifier{on: on, waitHealthy: waitHealthy, stop: make(chan struct{}), log: log}
	if !on {
		return n
	}
	if every, err := daemon.SdWatchdogEnabled(false); err == nil && every > 0 {
		go n.watchdog(every / 2)
	}
	return n
}

func (n *Notifier) watchdog(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			n.send(daemon.SdNotifyWatchdog)
		case <-n.stop:
			return
		}
	}
}

// Started tells systemd that generation n runs as pid.
func (n *Notifier) Started(gen, pid int) {
	if !n.on {
		return
	}
	state := "STATUS=generation " + strconv.Itoa(gen) + " running as pid " + strconv.Itoa(pid)
	if !n.ready && !n.waitHealthy {
		state = daemon.SdNotifyReady + "\n" + state
		n.ready = true
	}
	n.send(state)
}

// Healthy tells systemd READY=1 after the first passing health probe, when that is what
// readiness waits for (an app that takes a while to listen, such as PHP-FPM).
func (n *Notifier) Healthy() {
	if n.on && !n.ready {
		n.ready = true
		n.send(daemon.SdNotifyReady)
	}
}

// Stopping tells systemd that cgrun is on its way out, and ends the watchdog pings.
func (n *Notifier) Stopping() {
	if !n.on {
		return
	}
	close(n.stop)
	n.send(daemon.SdNotifyStopping)
}

// send says state to systemd. SdNotify sends nothing, and says so, when NOTIFY_SOCKET is unset.
func (n *Notifier) send(state string) {
	sent, err := daemon.SdNotify(false, state)
	if sent {
		return
	}
	what, _, _ := strings.Cut(state, "\n")
	n.warned.Do(func() {
		if err != nil {
			fmt.Fprintf(n.log, "cgrun: warning: --notify-ready: systemd did not get %s: %v (NOTIFY_SOCKET=%s)\n", what, err, os.Getenv("NOTIFY_SOCKET"))
			return
		}
		fmt.Fprintf(n.log, "cgrun: warning: --notify-ready: NOTIFY_SOCKET is not set, so systemd hears nothing: run cgrun from a unit with Type=notify, or leave --notify-ready out\n")
	})
}

// Env is the command's environment as far as sd_notify goes: with --notify-ready the
// socket is cgrun's alone; without it the command may use it, and WATCHDOG_PID (cgrun's pid)
// is dropped so that the command's sd_watchdog_enabled() accepts WATCHDOG_USEC.
func Env(env []string, cgrunSpeaks bool) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "WATCHDOG_PID":
			continue
		case cgrunSpeaks && (k == "NOTIFY_SOCKET" || k == "WATCHDOG_USEC"):
			continue
		}
		out = append(out, kv)
	}
	return out
}

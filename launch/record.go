package launch

import (
	"fmt"
	"maps"
	"os"
	"time"

	"github.com/cgrun/cgrun/launch/metrics"
	"github.com/cgrun/cgrun/launch/state"
)

// The runner's record of itself: the state file that cgrun ps, status, stop and recycle read.

// updateState changes the recorded state and saves it.
func (r *runner) updateState(change func(*state.State)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	change(&r.state)
	r.save()
}

// noteState changes the recorded state without saving it: the next updateState writes it. A
// generation's end is noted this way, so that the file is not written twice between one
// generation's exit and the next one's start (the restart's gap); the metrics see it at once.
func (r *runner) noteState(change func(*state.State)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	change(&r.state)
}

// save writes the state file; the caller holds r.mu. A write that fails (/run full for a
// moment, a transient ENOSPC or ENOMEM) is retried once a second until one succeeds or the run
// ends, so that the run does not stay hidden from cgrun ps, status, stop and recycle; the
// warning is printed once per failing stretch, and a line says when the state is back.
func (r *runner) save() {
	if r.stateDir == "" || r.stateClosed {
		return
	}
	err := r.state.Save(r.stateDir)
	switch {
	case err != nil && !r.stateFailing:
		fmt.Fprintf(r.cfg.Log, "cgrun: warning: cannot record state in %s (cgrun ps will not show this run until it can; retrying every %v): %v\n", r.stateDir, saveRetry, err)
		r.stateFailing = true
	case err == nil && r.stateFailing:
		fmt.Fprintf(r.cfg.Log, "cgrun: %s: state recorded in %s again\n", r.name, r.stateDir)
		r.stateFailing = false
	}
	if err != nil && r.stateRetry == nil {
		r.stateRetry = time.AfterFunc(saveRetry, func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.stateRetry = nil
			r.save()
		})
	}
}

// saveRetry is how long after a failed state write the next try comes.
const saveRetry = time.Second

// removeState removes the state file at exit, after which nothing writes it again (a retry
// pending or an update from the metrics server's side).
func (r *runner) removeState() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stateClosed = true
	if r.stateRetry != nil {
		r.stateRetry.Stop()
	}
	if r.stateDir != "" {
		os.Remove(state.Path(r.stateDir, os.Getpid()))
	}
}

// snapshot is a copy of the state for the metrics server.
func (r *runner) snapshot() state.State {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.state
	s.Totals = maps.Clone(s.Totals)
	s.RestartsByReason = maps.Clone(s.RestartsByReason)
	return s
}

// initState prepares the record `cgrun ps` and the metrics read, and saves it before anything
// starts (generation 0), so that what a SIGKILLed cgrun leaves is always found by its state.
func (r *runner) initState() error {
	ticks, err := state.StartTicks(os.Getpid())
	if err != nil {
		return err
	}
	r.state = state.State{Name: r.name, Command: r.cfg.Command, Pid: os.Getpid(), StartTicks: ticks, UID: os.Geteuid(),
		Started: time.Now().Format(time.RFC3339Nano), Mount: r.h.Mount, StopTimeout: r.cfg.Policy.StopTimeout.Seconds(),
		RestartsByReason: map[string]int{}, Totals: map[string]uint64{}, Recent: []state.Event{}}
	r.state.Limits = r.cfg.Limits.Files()
	r.state.Site = r.h.Rel(r.site.Dir)
	r.state.User = stateUser(r.cfg.User)
	if dir, err := state.Dir(); err == nil {
		r.stateDir = dir
	} else if r.cfg.Verbose {
		fmt.Fprintf(r.cfg.Log, "cgrun: notice: %v; cgrun ps will not show this run\n", err)
	}
	if r.cfg.MetricsAddr != "" {
		addr, err := metrics.Serve(r.cfg.MetricsAddr, metrics.NewCollector(r.snapshot))
		if err != nil {
			return err
		}
		r.state.MetricsAddr = addr
	}
	r.updateState(func(*state.State) {})
	return nil
}

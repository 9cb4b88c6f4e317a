package launch

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cgrun/cgrun/cgroup"
)

// State is what a running cgrun records about itself in the runtime directory, so that
// `cgrun ps`, `cgrun status`, `cgrun stop` and `cgrun recycle` can find it. It is rewritten
// atomically (a temporary file renamed over it) when something worth showing happens, and removed
// when cgrun exits. Its fields are documented in README.
type State struct {
	Name       string   `json:"name"`
	Command    []string `json:"command"`
	Pid        int      `json:"pid"`         // cgrun's own pid
	StartTicks uint64   `json:"start_ticks"` // cgrun's start time in /proc/PID/stat, to tell a reused pid
	UID        int      `json:"uid"`
	Started    string   `json:"started"`
	Mount      string   `json:"mount"` // the cgroup2 mount

	Generation        int    `json:"generation"`
	ChildPid          int    `json:"child_pid"`
	Group             string `json:"group"` // the current generation's group, relative to the mount
	GenerationStarted string `json:"generation_started"`

	Limits           map[string]string `json:"limits"`
	Restarts         int               `json:"restarts"`
	RestartsByReason map[string]int    `json:"restarts_by_reason"`
	// Totals are memory.events summed over the generations that ended; add the current group's.
	Totals      map[string]uint64 `json:"totals"`
	Recent      []StateEvent      `json:"recent"`
	MetricsAddr string            `json:"metrics_addr,omitempty"`

	counted string // the ended generation's Group, whose memory.events Totals already hold
}

// StateEvent is one of the recent things shown by `cgrun status`.
type StateEvent struct {
	Time   string `json:"time"`
	Event  string `json:"event"`
	Detail string `json:"detail"`
}

// maxRecent is how many recent events a state keeps.
const maxRecent = 20

// StateDir is where this process's states live: /run/cgrun for root; for others
// $XDG_RUNTIME_DIR/cgrun, or /run/user/UID/cgrun when that runtime directory exists (a unit
// with User= gets no XDG_RUNTIME_DIR).
func StateDir() (string, error) {
	uid := os.Geteuid()
	if uid == 0 {
		return "/run/cgrun", nil
	}
	if x := os.Getenv("XDG_RUNTIME_DIR"); x != "" {
		return filepath.Join(x, "cgrun"), nil
	}
	run := fmt.Sprintf("/run/user/%d", uid)
	if fi, err := os.Stat(run); err == nil && ownedBy(fi, uid) {
		return filepath.Join(run, "cgrun"), nil
	}
	return "", fmt.Errorf("no runtime directory for uid %d (XDG_RUNTIME_DIR is unset and %s does not exist; `loginctl enable-linger` makes it)", uid, run)
}

// StateDirs are the directories `cgrun ps` reads: root's, every user's runtime directory when
// the caller is root, and the caller's own.
func StateDirs() []string {
	dirs := []string{"/run/cgrun"}
	if os.Geteuid() == 0 {
		users, _ := filepath.Glob("/run/user/*/cgrun")
		dirs = append(dirs, users...)
	}
	if d, err := StateDir(); err == nil && !slices.Contains(dirs, d) {
		dirs = append(dirs, d)
	}
	return dirs
}

func ownedBy(fi os.FileInfo, uid int) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == uid
}

// Dir is the current generation's group directory.
func (s *State) Dir() string { return filepath.Join(s.Mount, s.Group) }

// Stale reports whether the cgrun that wrote the state is gone: its pid is dead, belongs to a
// process that started at another time (the pid was reused), or to another user.
func (s *State) Stale() bool {
	ticks, err := startTicks(s.Pid)
	if err != nil || ticks != s.StartTicks {
		return true
	}
	fi, err := os.Stat(fmt.Sprintf("/proc/%d", s.Pid))
	return err != nil || !ownedBy(fi, s.UID)
}

// save writes the state to dir/PID.json atomically.
func (s *State) save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(statePath(dir, s.Pid), append(b, '\n'))
}

func (s *State) note(event, detail string) {
	s.Recent = append(s.Recent, StateEvent{Time: time.Now().Format(time.RFC3339), Event: event, Detail: detail})
	if len(s.Recent) > maxRecent {
		s.Recent = s.Recent[len(s.Recent)-maxRecent:]
	}
}

func statePath(dir string, pid int) string { return filepath.Join(dir, strconv.Itoa(pid)+".json") }

// ListStates reads every state in dirs, newest first. Stale states (their cgrun was SIGKILLed)
// are removed where the caller may, and left out.
func ListStates(dirs []string) ([]State, error) {
	var out []State
	for _, dir := range dirs {
		ents, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			path := filepath.Join(dir, e.Name())
			b, err := os.ReadFile(path)
			if err != nil {
				continue // it exited between ReadDir and here
			}
			var s State
			if err := json.Unmarshal(b, &s); err != nil || s.Pid == 0 {
				continue
			}
			// A state speaks for its writer only: one that claims another uid is ignored.
			if fi, err := os.Stat(path); err != nil || !ownedBy(fi, s.UID) {
				continue
			}
			if s.Stale() {
				_ = os.Remove(path)
				continue
			}
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Started > out[j].Started })
	return out, nil
}

// FindState picks the running cgrun named by a name or a pid.
func FindState(states []State, nameOrPid string) (State, error) {
	var hits []State
	for _, s := range states {
		if s.Name == nameOrPid || strconv.Itoa(s.Pid) == nameOrPid {
			hits = append(hits, s)
		}
	}
	switch len(hits) {
	case 0:
		return State{}, fmt.Errorf("no running cgrun named %q (see cgrun ps)", nameOrPid)
	case 1:
		return hits[0], nil
	}
	var pids []string
	for _, s := range hits {
		pids = append(pids, strconv.Itoa(s.Pid))
	}
	return State{}, fmt.Errorf("%d cgruns are named %q (pids %s): name one by its pid", len(hits), nameOrPid, strings.Join(pids, ", "))
}

// startTicks is field 22 of /proc/PID/stat: when the process started, in clock ticks since boot.
func startTicks(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces and parentheses: count from the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, &cgroup.ParseError{Path: fmt.Sprintf("/proc/%d/stat", pid), Err: errors.New("no ')'")}
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, &cgroup.ParseError{Path: fmt.Sprintf("/proc/%d/stat", pid), Err: errors.New("too few fields")}
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// updateState changes the recorded state and saves it.
func (r *runner) updateState(change func(*State)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	change(&r.state)
	r.save()
}

// noteState changes the recorded state without saving it: the next updateState writes it. A
// generation's end is noted this way, so that the file is not written twice between one
// generation's exit and the next one's start (the restart's gap); the metrics see it at once.
func (r *runner) noteState(change func(*State)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	change(&r.state)
}

func (r *runner) save() {
	if r.stateDir == "" {
		return
	}
	if err := r.state.save(r.stateDir); err != nil {
		fmt.Fprintf(r.cfg.Log, "cgrun: warning: cannot record state in %s (cgrun ps will not show it): %v\n", r.stateDir, err)
		r.stateDir = ""
	}
}

// snapshot is a copy of the state for the metrics server.
func (r *runner) snapshot() State {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.state
	s.Totals = maps.Clone(s.Totals)
	s.RestartsByReason = maps.Clone(s.RestartsByReason)
	return s
}

// initState prepares the record `cgrun ps` and the metrics read; it is saved when the first
// generation starts.
func (r *runner) initState() error {
	ticks, err := startTicks(os.Getpid())
	if err != nil {
		return err
	}
	r.state = State{Name: r.name, Command: r.cfg.Command, Pid: os.Getpid(), StartTicks: ticks, UID: os.Geteuid(),
		Started: time.Now().Format(time.RFC3339Nano), Mount: r.h.Mount,
		RestartsByReason: map[string]int{}, Totals: map[string]uint64{}, Recent: []StateEvent{}}
	r.state.Limits = limitFiles(r.cfg.Limits)
	if dir, err := StateDir(); err == nil {
		r.stateDir = dir
	} else if r.cfg.Verbose {
		fmt.Fprintf(r.cfg.Log, "cgrun: notice: %v; cgrun ps will not show this run\n", err)
	}
	if r.cfg.MetricsAddr != "" {
		addr, err := serveMetrics(r.cfg.MetricsAddr, newMetricsCollector(r.snapshot))
		if err != nil {
			return err
		}
		r.state.MetricsAddr = addr
	}
	return nil
}

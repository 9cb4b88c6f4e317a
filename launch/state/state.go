// Package state is the file a running cgrun keeps in its runtime directory, and the finding of
// running (and SIGKILLed) cgruns from those files: what cgrun ps, status, stop and recycle need.
package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/launch/advise"
	"github.com/cgrun/cgrun/launch/atomicfile"
	"github.com/cgrun/cgrun/launch/diagnose"
	"golang.org/x/sys/unix"
)

// State is what a running cgrun records about itself in the runtime directory, so that
// `cgrun ps`, `cgrun status`, `cgrun stop` and `cgrun recycle` can find it. It is rewritten
// atomically (a temporary file renamed over it) when something worth showing happens, and removed
// when cgrun exits. Its fields are documented in docs/ps-status.md.
type State struct {
	Name       string   `json:"name"`
	Command    []string `json:"command"`
	Pid        int      `json:"pid"`         // cgrun's own pid
	StartTicks uint64   `json:"start_ticks"` // cgrun's start time in /proc/PID/stat, to tell a reused pid
	UID        int      `json:"uid"`
	Started    string   `json:"started"`
	Mount      string   `json:"mount"` // the cgroup2 mount
	// StopTimeout is the run's --stop-timeout: cgrun stop waits at least that long (and a
	// little more) for it to exit.
	StopTimeout float64 `json:"stop_timeout_seconds,omitempty"`
	// Site is where the generations' groups go, relative to the mount: what a SIGKILLed cgrun
	// left there is found by it.
	Site string `json:"site,omitempty"`

	// User is who the command runs as with --user (cgrun itself stays UID); absent without.
	User *User `json:"user,omitempty"`

	Generation        int    `json:"generation"`
	ChildPid          int    `json:"child_pid"`
	Group             string `json:"group"` // the current generation's group, relative to the mount
	GenerationStarted string `json:"generation_started"`
	// MemoryPeak is the current generation's peak as cgrun sampled it, on kernels without
	// memory.peak (before 5.19); readers take the higher of it and memory.current.
	MemoryPeak       uint64            `json:"memory_peak,omitempty"`
	MemoryPeakSource cgroup.PeakSource `json:"memory_peak_source,omitempty"`
	// Next is the generation started beside this one by an --overlap recycle; absent without.
	Next *Next `json:"next,omitempty"`

	Limits           map[string]string `json:"limits"`
	Restarts         int               `json:"restarts"`
	RestartsByReason map[string]int    `json:"restarts_by_reason"`
	// Totals are memory.events summed over the generations that ended; add the current group's.
	Totals      map[string]uint64 `json:"totals"`
	Recent      []Event           `json:"recent"`
	MetricsAddr string            `json:"metrics_addr,omitempty"`

	// GenerationMemoryStart is memory.current when the current generation started: the leak's
	// pace is measured from it.
	GenerationMemoryStart uint64 `json:"generation_memory_start"`
	// Past are the last generations that ended: how long each lived, its peak, why it ended.
	Past []diagnose.Past `json:"past_generations,omitempty"`
	// Dumps are the diagnostic dumps cgrun asked for and keeps (--diagnose-keep), oldest first.
	Dumps []diagnose.Dump `json:"dumps,omitempty"`

	// Advice is what the memory probe found so far (cgrun run --advise); absent without.
	Advice *advise.Advice `json:"advice,omitempty"`

	// Counted is the ended generation's Group, whose memory.events Totals already hold: its
	// group may still be there, and must not be counted twice. Never written to the file.
	Counted string `json:"-"`
}

// Next is the generation that runs beside the current one during an --overlap recycle,
// until it is ready and the current one has stopped.
type Next struct {
	Generation int    `json:"generation"`
	ChildPid   int    `json:"child_pid"`
	Group      string `json:"group"`
}

// Event is one of the recent things shown by `cgrun status`.
type Event struct {
	Time   string `json:"time"`
	Event  string `json:"event"`
	Detail string `json:"detail"`
}

// maxRecent is how many recent events a state keeps, and maxDetail how long each one's detail
// may be (bytes): together with the dumps' brief lists they keep a state well under maxStateSize.
const (
	maxRecent = 20
	maxDetail = 1024
)

// Dir is where this process's states live: /run/cgrun for root; for others
// $XDG_RUNTIME_DIR/cgrun, or /run/user/UID/cgrun when that runtime directory exists (a unit
// with User= gets no XDG_RUNTIME_DIR). A runtime directory counts only when it is a directory
// of the caller's own, not a symlink: another user's directory must not receive the states.
func Dir() (string, error) {
	uid := os.Geteuid()
	if uid == 0 {
		return "/run/cgrun", nil
	}
	return userDir(uid, os.Getenv("XDG_RUNTIME_DIR"))
}

// userDir is Dir for a uid other than root's, with XDG_RUNTIME_DIR=x.
func userDir(uid int, x string) (string, error) {
	var why string
	if x != "" {
		if fi, err := os.Lstat(x); err == nil && fi.IsDir() && ownedBy(fi, uid) {
			return filepath.Join(x, "cgrun"), nil
		}
		why = fmt.Sprintf("XDG_RUNTIME_DIR=%s is not a directory owned by uid %d, and ", x, uid)
	} else {
		why = "XDG_RUNTIME_DIR is unset and "
	}
	run := fmt.Sprintf("/run/user/%d", uid)
	if fi, err := os.Lstat(run); err == nil && fi.IsDir() && ownedBy(fi, uid) {
		return filepath.Join(run, "cgrun"), nil
	}
	return "", fmt.Errorf("no runtime directory for uid %d (%s%s is not a directory of its own; `loginctl enable-linger` makes it)", uid, why, run)
}

// Location is a directory of states and the uid that must own it and every state in it.
type Location struct {
	Dir string
	UID int
}

// Dirs are the directories `cgrun ps` reads: root's, every user's runtime directory when
// the caller is root, and the caller's own.
func Dirs() []Location {
	dirs := []Location{{"/run/cgrun", 0}}
	if os.Geteuid() == 0 {
		users, _ := filepath.Glob("/run/user/*/cgrun")
		for _, d := range users {
			// /run/user/UID is made by systemd-logind for UID; the name says whose it is.
			if uid, err := strconv.Atoi(filepath.Base(filepath.Dir(d))); err == nil && uid > 0 {
				dirs = append(dirs, Location{d, uid})
			}
		}
	}
	if d, err := Dir(); err == nil && !slices.ContainsFunc(dirs, func(l Location) bool { return l.Dir == d }) {
		dirs = append(dirs, Location{d, os.Geteuid()})
	}
	return dirs
}

func ownedBy(fi os.FileInfo, uid int) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == uid
}

// Dir is the current generation's group directory.
func (s *State) Dir() string { return filepath.Join(s.Mount, s.Group) }

// Limit is the value the run gives file (memory.max, memory.high) in each generation's group,
// nil for max or none: what ps, status and the metrics show between generations, when there is
// no group to read.
func (s *State) Limit(file string) *uint64 {
	n, err := strconv.ParseUint(s.Limits[file], 10, 64)
	if err != nil {
		return nil
	}
	return &n
}

// Stale reports whether the cgrun that wrote the state is gone: its pid is dead, belongs to a
// process that started at another time (the pid was reused), or to another user.
func (s *State) Stale() bool {
	ticks, err := StartTicks(s.Pid)
	if err != nil || ticks != s.StartTicks {
		return true
	}
	fi, err := os.Stat(fmt.Sprintf("/proc/%d", s.Pid))
	return err != nil || !ownedBy(fi, s.UID)
}

// LiveGroup is the current generation's group, found from the running processes rather than
// from the file (whose writer may be another user): the group of the state's child, when that
// child is a child of the state's live cgrun. It is "" when there is none (between generations).
func (s *State) LiveGroup(h cgroup.Hierarchy) string {
	if s.ChildPid <= 0 || parentOf(s.ChildPid) != s.Pid || s.Stale() {
		return ""
	}
	path := fmt.Sprintf("/proc/%d/cgroup", s.ChildPid)
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	pc, err := cgroup.ParseProcCgroup(path, b)
	if err != nil || pc.Unified == "" {
		return ""
	}
	dir := h.Dir(pc.Unified)
	if dir == Leaf(filepath.Dir(dir)) { // the leaf the command starts in; the limits are on its parent
		dir = filepath.Dir(dir)
	}
	if dir == h.Mount {
		return ""
	}
	return dir
}

// parentOf is field 4 of /proc/PID/stat, or 0.
func parentOf(pid int) int {
	f, err := statFields(pid)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// Save writes the state to dir/PID.json atomically, in a directory that List reads: one of the
// caller's own, not a symlink (ownDir).
func (s *State) Save(dir string) error {
	if err := ownDir(dir); err != nil {
		return err
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(Path(dir, s.Pid), append(b, '\n'))
}

// ownDir makes dir where it is missing, readable by all whatever the umask (a umask of 077 made
// root's /run/cgrun 0700, and every other user's cgrun ps failed on it), and checks that it is
// what List reads: a directory of the caller's own, not a symlink. Otherwise the states written
// there would hide the run from cgrun ps, status and stop.
func ownDir(dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	err := unix.Mkdir(dir, 0o755)
	made := err == nil
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("make %s: %w", dir, err)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		return fmt.Errorf("%s is not a directory (a symlink is not followed), and cgrun ps reads only a directory there: remove it", dir)
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("stat %s: %w", dir, err)
	}
	if euid := os.Geteuid(); int(st.Uid) != euid {
		return fmt.Errorf("%s belongs to uid %d, and cgrun ps reads it only as uid %d's own: remove it", dir, st.Uid, euid)
	}
	if made {
		if err := unix.Fchmod(fd, 0o755); err != nil { // the open directory, never the name
			return fmt.Errorf("chmod %s: %w", dir, err)
		}
	}
	return nil
}

// Note adds one of the recent events.
func (s *State) Note(event, detail string) {
	s.Recent = append(s.Recent, Event{Time: time.Now().Format(time.RFC3339), Event: event, Detail: diagnose.Cut(detail, maxDetail)})
	if len(s.Recent) > maxRecent {
		s.Recent = s.Recent[len(s.Recent)-maxRecent:]
	}
}

// Path is the state file of the cgrun with pid in dir.
func Path(dir string, pid int) string { return filepath.Join(dir, strconv.Itoa(pid)+".json") }

// maxStateSize bounds how much of a state file is read; cgrun's own are a few KiB.
const maxStateSize = 256 << 10

// List reads every state in dirs, newest first. Stale states (their cgrun was SIGKILLed)
// are removed where the caller may, and left out; for a stale state of the caller's own, the
// groups that its cgrun left are killed and removed too.
//
// The directories belong to other users when the caller is root: a directory is opened without
// following a symlink and must be owned by its uid; a state is opened without following a
// symlink and without blocking (a FIFO), must be a regular file owned by that uid, is read up
// to maxStateSize, and must claim that uid; it is removed only through the verified directory.
func List(dirs []Location) ([]State, error) {
	h, herr := cgroup.Detect()
	var out []State
	for _, loc := range dirs {
		states, err := listDir(loc, func(s State) bool {
			return herr == nil && removeLeftovers(h, s, 5*time.Second) == nil
		})
		if err != nil {
			return nil, err
		}
		out = append(out, states...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Started > out[j].Started })
	return out, nil
}

// CleanStale removes what the caller's own SIGKILLed cgruns left behind: their groups (when
// their guard could not) and their states. `cgrun run` calls it before it starts anything, and
// gives a group that will not empty (a process stuck in the kernel) one second: the entry stays
// for a later look, and the start is not held up.
func CleanStale(h cgroup.Hierarchy) {
	dir, err := Dir()
	if err != nil {
		return
	}
	_, _ = listDir(Location{dir, os.Geteuid()}, func(s State) bool { return removeLeftovers(h, s, time.Second) == nil })
	CleanOrphanLeaves(h.SelfDir())
}

// listDir reads the states of one directory; clean is asked about each stale state of the
// caller's own, and the state is removed when it says the leftovers are gone.
func listDir(loc Location, clean func(State) bool) ([]State, error) {
	dfd, err := unix.Open(loc.Dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ELOOP), errors.Is(err, unix.ENOTDIR):
		return nil, nil // none, or a symlink that is not followed
	case errors.Is(err, unix.EACCES) && loc.UID != os.Geteuid():
		return nil, nil // another user's, kept from the caller (root's made 0700 by hand)
	case err != nil:
		return nil, fmt.Errorf("open %s: %w", loc.Dir, err)
	}
	dir := os.NewFile(uintptr(dfd), loc.Dir)
	defer dir.Close()
	var st unix.Stat_t
	if err := unix.Fstat(dfd, &st); err != nil || int(st.Uid) != loc.UID {
		return nil, nil // not that user's directory: nothing in it speaks for them
	}
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", loc.Dir, err)
	}
	euid := os.Geteuid()
	var out []State
	for _, name := range names {
		if pid, ok := tempOf(name); ok && loc.UID == euid && !alive(pid) {
			// A state half-written when its cgrun was SIGKILLed (atomicfile's temporary).
			_ = unix.Unlinkat(dfd, name, 0)
			continue
		}
		if !strings.HasSuffix(name, ".json") || strings.HasPrefix(name, ".") {
			continue
		}
		s, err := readState(dfd, name, loc.UID)
		if err != nil {
			continue // not a state cgrun wrote, or it exited between Readdirnames and here
		}
		if !s.Stale() {
			out = append(out, s)
			continue
		}
		// Only the owner's cgrun cleans up after a stale state, groups first: root leaves other
		// users' alone, since their state is all that leads that user's next look to the groups.
		if loc.UID == euid && clean(s) {
			_ = unix.Unlinkat(dfd, name, 0)
		}
	}
	return out, nil
}

// tempOf is the pid of a state's temporary file, .PID.json.cgrun-RANDOM, as Save writes it
// beside the state before renaming it over it.
func tempOf(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, ".")
	n, _, ok2 := strings.Cut(rest, ".json.cgrun-")
	pid, err := strconv.Atoi(n)
	return pid, ok && ok2 && err == nil && pid > 0 && strconv.Itoa(pid) == n
}

// alive reports whether a process with pid exists (of any user).
func alive(pid int) bool {
	return unix.Kill(pid, 0) != unix.ESRCH
}

// CleanOrphanLeaves removes the empty cgrun-PID groups in dir (cgrun's own group, where it moves
// itself before it makes anything else) whose cgrun is gone: one SIGKILLed after that move and
// before it wrote its state left a group that no state leads to. Only an empty group goes (rmdir
// refuses any other), and only one whose pid no process has.
func CleanOrphanLeaves(dir string) {
	kids, _ := cgroup.Children(dir)
	for _, k := range kids {
		n, ok := strings.CutPrefix(k, "cgrun-")
		pid, err := strconv.Atoi(n)
		if ok && err == nil && pid > 0 && strconv.Itoa(pid) == n && !alive(pid) {
			_ = cgroup.RemoveEmpty(filepath.Join(dir, k))
		}
	}
}

// readState opens name in the directory dfd and reads it as a state owned by uid.
func readState(dfd int, name string, uid int) (State, error) {
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return State{}, err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return State{}, err
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return State{}, fmt.Errorf("state %s: not a regular file", name)
	case int(st.Uid) != uid:
		return State{}, fmt.Errorf("state %s: owned by uid %d, not %d", name, st.Uid, uid)
	case st.Size > maxStateSize:
		return State{}, fmt.Errorf("state %s: %d bytes, more than a state holds", name, st.Size)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxStateSize+1))
	if err != nil {
		return State{}, err
	}
	if len(b) > maxStateSize {
		return State{}, fmt.Errorf("state %s: more than %d bytes", name, maxStateSize)
	}
	s, err := Parse(b, uid)
	if err == nil && name != strconv.Itoa(s.Pid)+".json" {
		err = fmt.Errorf("state %s: claims pid %d", name, s.Pid)
	}
	return s, err
}

// Parse reads a state file's content, written by (or claiming to be written by) uid, and
// checks what cgrun would have written: the uid, a pid, a valid name, sane counts.
func Parse(b []byte, uid int) (State, error) {
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return State{}, fmt.Errorf("not a state: %w", err)
	}
	switch {
	case s.UID != uid:
		return State{}, fmt.Errorf("state claims uid %d, written by uid %d", s.UID, uid)
	case s.Pid <= 0 || s.ChildPid < 0 || s.Generation < 0 || s.Restarts < 0:
		return State{}, errors.New("state: bad pid or count")
	}
	if err := ValidName(s.Name); err != nil {
		return State{}, fmt.Errorf("state: %w", err)
	}
	return s, nil
}

// removeLeftovers kills and removes what a stale state's cgrun left behind, when its guard could
// not (it was killed too): every generation group of that cgrun, and the leaf cgrun had moved
// itself into; it waits up to wait for each group to empty. The state is the caller's own, but only groups named
// as that cgrun names them are touched.
func removeLeftovers(h cgroup.Hierarchy, s State, wait time.Duration) error {
	prefix := fmt.Sprintf("%s-%d.", s.Name, s.Pid)
	var site string
	switch {
	case s.Site != "":
		site = h.Dir(s.Site)
	case s.Group != "" && strings.HasPrefix(filepath.Base(s.Group), prefix):
		site = filepath.Dir(h.Dir(s.Group))
	default:
		return nil // nothing cgrun named: leave it
	}
	kids, err := cgroup.Children(site)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, k := range kids {
		dir := filepath.Join(site, k)
		switch {
		case strings.HasPrefix(k, prefix):
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			err := cgroup.Kill(ctx, dir)
			cancel()
			if err == nil {
				err = cgroup.RemoveTree(dir)
			}
			errs = append(errs, err)
		case k == fmt.Sprintf("cgrun-%d", s.Pid):
			errs = append(errs, cgroup.Remove(dir)) // empty once cgrun and its guard are gone
		}
	}
	return errors.Join(errs...)
}

// Find picks the running cgrun named by a name or a pid. The caller's own cgruns come first, so
// that another user cannot shadow a name; among them, and then among the others, a pid comes
// before a name (a cgrun may be named as another's pid: --name 1033).
func Find(states []State, nameOrPid string) (State, error) {
	euid := os.Geteuid()
	for _, own := range []bool{true, false} {
		var byPid, byName []State
		for _, s := range states {
			switch {
			case (s.UID == euid) != own:
			case strconv.Itoa(s.Pid) == nameOrPid:
				byPid = append(byPid, s)
			case s.Name == nameOrPid:
				byName = append(byName, s)
			}
		}
		switch {
		case len(byPid) > 0:
			return byPid[0], nil
		case len(byName) == 1:
			return byName[0], nil
		case len(byName) > 1:
			var pids []string
			for _, s := range byName {
				pids = append(pids, strconv.Itoa(s.Pid))
			}
			return State{}, fmt.Errorf("%d cgruns are named %q (pids %s): name one by its pid", len(byName), nameOrPid, strings.Join(pids, ", "))
		}
	}
	return State{}, fmt.Errorf("no running cgrun named %q (see cgrun ps)", nameOrPid)
}

// StartTicks is field 22 of /proc/PID/stat: when the process started, in clock ticks since boot.
func StartTicks(pid int) (uint64, error) {
	f, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// statFields are the fields of /proc/PID/stat from the third (state) on.
func statFields(pid int) ([]string, error) {
	path := fmt.Sprintf("/proc/%d/stat", pid)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	// The command name (field 2) may hold spaces and parentheses: count from the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, &cgroup.ParseError{Path: path, Err: errors.New("no ')'")}
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return nil, &cgroup.ParseError{Path: path, Err: errors.New("too few fields")}
	}
	return f, nil
}

// ValidName checks a --name: it becomes part of a directory name in cgroupfs.
func ValidName(name string) error {
	ok := len(name) >= 1 && len(name) <= 64 && !strings.HasPrefix(name, "cgroup.")
	for i := 0; ok && i < len(name); i++ {
		ok = nameChar(name[i]) && (i > 0 || name[i] != '.' && name[i] != '-')
	}
	if !ok {
		return fmt.Errorf("--name %q: use 1 to 64 letters, digits and _ . @ : + -, not starting with . or -", name)
	}
	return nil
}

func nameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_.@:+-", c) >= 0
}

// DefaultName derives a group name from the command: its base name, with characters cgroupfs
// names should not carry replaced by "_".
func DefaultName(command string) string {
	base := filepath.Base(command)
	b := []byte(base)
	for i, c := range b {
		if !nameChar(c) {
			b[i] = '_'
		}
	}
	if len(b) == 0 || b[0] == '.' || b[0] == '-' {
		b = append([]byte("_"), b...)
	}
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}

// User is the --user in the state `cgrun ps` and `status` read.
type User struct {
	Name   string   `json:"name,omitempty"` // absent for a uid without a passwd entry
	UID    uint32   `json:"uid"`
	GID    uint32   `json:"gid"`
	Groups []uint32 `json:"groups"`
}

// LivePeak is the memory peak of a running cgrun's current generation, for ps, status and
// metrics: memory.peak where the kernel has it, else the higher of the peak cgrun sampled (in
// the state) and cur, a memory.current the caller just read.
func LivePeak(s State, dir string, cur uint64) (uint64, cgroup.PeakSource) {
	if n, err := cgroup.MemoryPeak(dir); err == nil {
		return n, cgroup.PeakKernel
	}
	if _, err := os.Stat(dir); err != nil { // between two generations: no group to read
		return s.MemoryPeak, s.MemoryPeakSource
	}
	return max(s.MemoryPeak, cur), cgroup.PeakSampled
}

// LiveEvents is a running cgrun's memory.events counts for ps, status and metrics: the ended
// generations' (Totals) and those of dir, the current generation's group ("" between two
// generations), unless Totals hold that group's already (Counted: it ended, and its group is
// not removed yet), which would count them twice and then drop, a counter reset.
func LiveEvents(s State, dir string) map[string]uint64 {
	var live map[string]uint64
	if dir != "" && s.Counted != s.Group {
		live, _ = cgroup.MemoryEvents(dir, Leaf(dir))
	}
	all := make(map[string]uint64)
	for _, k := range cgroup.MemoryEventNames() {
		all[k] = s.Totals[k] + live[k]
	}
	return all
}

// Leaf is the group the command starts in: a child of its generation's payload group dir,
// which carries a copy of the group's limits.
func Leaf(dir string) string { return filepath.Join(dir, "main") }

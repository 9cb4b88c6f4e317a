package oomwatch

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"time"
	"unsafe"

	"github.com/cgrun/cgrun/cgroup"
	"golang.org/x/sys/unix"
)

// Options chooses what a Watcher listens for besides the counters.
type Options struct {
	Triggers []Trigger // PSI triggers on memory.pressure

	// Children are groups under the watched one whose own memory.events wake the watcher too
	// (it then rereads the watched group's counters, which include theirs — unless cgroup2 is
	// mounted with memory_localevents, where the group's memory.events counts only its own).
	// The kernel notifies a file at most once per ~10 ms (20 ms at HZ=100) and holds the next
	// notification back until then. An OOM kill is counted in the victim's own group as well as
	// in the group whose limit was hit; where they differ, the victim's file is not kept busy by
	// that group's memory.max events and its notification comes at once. Give the leaf the
	// command runs in.
	Children []string

	// Mirror is a child that carries a copy of the group's limits (cgroup.Limits.Mirror); its
	// own high events are not counted a second time (cgroup.MemoryEvents).
	Mirror string

	// Optional are PSI triggers armed where the kernel takes them, and left out silently where
	// it does not (no PSI; before 6.5 without CAP_SYS_RESOURCE; a window the kernel refuses an
	// unprivileged process): Armed tells which, so that the caller can fall back on another
	// source of pressure, such as memory.stat's refaults (cgroup.ReadRefaults).
	Optional []Trigger
}

// Watcher listens to one group. It sleeps in epoll_wait(2) until the kernel touches one of the
// group's event files (through inotify) or a PSI trigger fires (POLLPRI), so it costs nothing
// while nothing happens. Make one with New, run it with Run, and Close it.
type Watcher struct {
	dir, group string
	epfd       int
	ino        int // inotify instance watching the counter files and cgroup.events
	wake       int // eventfd that ends Run
	files      []*counterFile
	eventsWD   int          // watch on cgroup.events
	childWDs   map[int]bool // watches on the Children's memory.events
	populated  bool         // as cgroup.events last said
	triggers   map[int]Trigger
	notice     error
	// atLimit is until when memory.events is reread every pollInterval: a max or oom event was
	// just seen, so an OOM kill may follow while the kernel holds the file's next notification
	// back (see pollInterval). pressing is when the run of such windows, each renewed before the
	// last ran out, began; past pollMost of it Run stops rereading. A run that begins within
	// pollEvery × pollMost of the last one's start keeps that start, so polling fills at most
	// 1/pollEvery of the time however a group comes and goes at its limit.
	atLimit, pressing    time.Time
	pollWindow, pollMost time.Duration
}

// While a group presses on memory.max, the kernel notifies its memory.events at most once per
// ~10 ms (cgroup_file_notify: 12 ms at HZ=250, 20 ms at HZ=100) and holds the next notification
// back to the end of that window; the OOM kill that ends the pressing comes inside it. The leaf
// the command runs in carries the limits too (cgroup.Limits.Mirror), so its memory.events is as
// busy as the group's. So for atLimitWindow after each max or oom event, Run looks at
// memory.events every pollInterval for an OOM kill instead of waiting for the held-back
// notification (killed). It costs nothing while memory is below memory.max.
//
// A group can also sit at memory.max for good — a worker streaming files through its page
// cache, which the kernel reclaims at the limit — and its max events would renew the window
// forever: 500 reads a second. So polling starts at most once per pollEvery × atLimitMost (1 s)
// and lasts atLimitMost at most; otherwise the kill is heard from the (held back) notification,
// within ~10-20 ms. An OOM kill that ends a leak's run to the limit comes within milliseconds
// of its first max event; one after a long or frequent stay at the limit costs the old delay.
const (
	pollInterval  = 2 * time.Millisecond
	atLimitWindow = 25 * time.Millisecond
	atLimitMost   = 250 * time.Millisecond
	pollEvery     = 4
)

// New opens the watches on the group at dir (group is its path in the hierarchy, for events)
// and reads every counter once, so that Run reports only what happens from now on. A kernel
// without PSI is not an error: the triggers are dropped and Notice says so.
func New(dir, group string, opts Options) (*Watcher, error) {
	w := &Watcher{dir: dir, group: group, epfd: -1, ino: -1, wake: -1, eventsWD: -1, childWDs: map[int]bool{}, triggers: map[int]Trigger{},
		pollWindow: atLimitWindow, pollMost: atLimitMost}
	if err := w.open(opts); err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

// open opens what New promised; on an error, what it opened so far is left for Close.
func (w *Watcher) open(opts Options) (err error) {
	dir := w.dir
	if w.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return fmt.Errorf("epoll_create1: %w", err)
	}
	if w.ino, err = unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK); err != nil {
		return fmt.Errorf("inotify_init1: %w", err)
	}
	if w.wake, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return fmt.Errorf("eventfd: %w", err)
	}
	for _, fd := range []int{w.ino, w.wake} {
		if err = w.add(fd, unix.EPOLLIN); err != nil {
			return err
		}
	}
	// Arm each watch before the first read, so that nothing between the two is missed.
	for _, f := range counterFiles() {
		if f.name == "memory.events" {
			f.mirror = opts.Mirror
		}
		if !exists(dir, f.name) {
			continue // memory.swap.events without swap accounting, pids.events without pids
		}
		if f.wd, err = w.watch(f.name); err != nil {
			return err
		}
		if _, err = f.read(dir); err != nil {
			return err
		}
		w.files = append(w.files, f)
	}
	if w.eventsWD, err = w.watch("cgroup.events"); err != nil {
		return err
	}
	for _, child := range opts.Children {
		if !exists(child, "memory.events") {
			continue // the memory controller is not enabled for the group's children
		}
		wd, err := w.watchPath(filepath.Join(child, "memory.events"))
		if err != nil {
			return err
		}
		w.childWDs[wd] = true
	}
	if w.populated, err = cgroup.Populated(dir); err != nil {
		return err
	}
	for _, t := range opts.Triggers {
		fd, terr := openTrigger(dir, t)
		if errors.Is(terr, ErrNoPSI) {
			w.notice = fmt.Errorf("%w (no %s; it needs Linux 4.20 with CONFIG_PSI and psi=1): pressure triggers are off, everything else works",
				ErrNoPSI, filepath.Join(dir, "memory.pressure"))
			break
		}
		if terr != nil {
			return terr
		}
		w.triggers[fd] = t
		if err = w.add(fd, unix.EPOLLPRI); err != nil {
			return err
		}
	}
	for _, t := range opts.Optional {
		if w.Armed(t) {
			continue // asked for as a trigger too: one fd, whose firings say both
		}
		fd, terr := openTrigger(dir, t)
		if terr != nil {
			continue
		}
		w.triggers[fd] = t
		if err = w.add(fd, unix.EPOLLPRI); err != nil {
			return err
		}
	}
	return nil
}

// Armed reports whether the trigger t is armed on the group's memory.pressure.
func (w *Watcher) Armed(t Trigger) bool {
	for _, a := range w.triggers {
		if a == t {
			return true
		}
	}
	return false
}

// Notice is a reason some of what was asked for cannot be watched on this kernel (ErrNoPSI),
// or nil.
func (w *Watcher) Notice() error { return w.notice }

func (w *Watcher) add(fd int, events uint32) error {
	if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: events, Fd: int32(fd)}); err != nil {
		return fmt.Errorf("epoll_ctl add fd %d: %w", fd, err)
	}
	return nil
}

func (w *Watcher) watch(name string) (int, error) {
	return w.watchPath(filepath.Join(w.dir, name))
}

func (w *Watcher) watchPath(path string) (int, error) {
	wd, err := unix.InotifyAddWatch(w.ino, path, unix.IN_MODIFY)
	if err != nil {
		return -1, fmt.Errorf("inotify_add_watch %s: %w", path, err)
	}
	return wd, nil
}

// Run calls emit for every event until ctx is done; then it reads every counter once more, so
// that what happened up to that moment is reported, and returns nil. emit runs on Run's
// goroutine. Run starts no goroutine of its own that outlives it.
func (w *Watcher) Run(ctx context.Context, emit func(Event)) error {
	stop := context.AfterFunc(ctx, w.Wake)
	defer stop()
	evs := make([]unix.EpollEvent, 8)
	buf := make([]byte, 4096)
	for {
		timeout := -1
		if w.polling(time.Now()) {
			timeout = int(pollInterval / time.Millisecond)
		}
		n, err := unix.EpollWait(w.epfd, evs, timeout)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("epoll_wait: %w", err)
		}
		// Asked again: a watcher that got no CPU for a while wakes past the window.
		if n == 0 && w.polling(time.Now()) && w.killed() {
			w.scan(w.memoryEvents(), emit)
		}
		for _, ev := range evs[:n] {
			switch fd := int(ev.Fd); {
			case fd == w.wake:
				w.scanAll(emit)
				return nil
			case fd == w.ino:
				w.scan(w.changed(buf), emit)
			case ev.Events&unix.EPOLLERR != 0:
				// The group is gone: a trigger reports POLLERR from then on. Stop listening.
				_ = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, fd, nil)
			default:
				w.pressure(w.triggers[fd], emit)
			}
		}
	}
}

// polling reports whether Run rereads memory.events at now: inside a window after a max or
// oom event, and within the run's allowance (see atLimitMost).
func (w *Watcher) polling(now time.Time) bool {
	return now.Before(w.atLimit) && now.Sub(w.pressing) < w.pollMost
}

// Wake ends Run from any goroutine.
func (w *Watcher) Wake() {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	_, _ = unix.Write(w.wake, one[:])
}

// changed drains the inotify queue and returns the watch descriptors that fired.
func (w *Watcher) changed(buf []byte) map[int]bool {
	wds := map[int]bool{}
	for {
		n, err := unix.Read(w.ino, buf)
		if err != nil || n <= 0 {
			return wds // EAGAIN: drained
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			if ev.Mask&unix.IN_MODIFY != 0 {
				wds[int(ev.Wd)] = true
			}
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
	}
}

// killed reports whether memory.events shows an OOM kill that has not been emitted yet. Between
// notifications, only a kill is worth a line at once: the max events that keep coming while
// memory presses on memory.max are left to the next notification, so polling adds no event
// lines and costs one read of one file.
func (w *Watcher) killed() bool {
	for _, f := range w.files {
		if f.name != "memory.events" {
			continue
		}
		m, err := cgroup.ReadKeyed(w.dir, f.name)
		if err != nil {
			return false
		}
		for _, k := range []string{"oom", "oom_kill", "oom_group_kill"} {
			if m[k] > f.last[k] {
				return true
			}
		}
	}
	return false
}

// memoryEvents is the watch set that makes scan reread memory.events.
func (w *Watcher) memoryEvents() map[int]bool {
	wds := map[int]bool{}
	for _, f := range w.files {
		if f.name == "memory.events" {
			wds[f.wd] = true
		}
	}
	return wds
}

func (w *Watcher) scanAll(emit func(Event)) {
	all := map[int]bool{w.eventsWD: true}
	for _, f := range w.files {
		all[f.wd] = true
	}
	w.scan(all, emit)
}

// scan rereads the files whose watches fired and emits what went up. A child's memory.events
// stands for the group's own.
func (w *Watcher) scan(wds map[int]bool, emit func(Event)) {
	now := time.Now()
	for wd := range w.childWDs {
		if wds[wd] {
			for _, f := range w.files {
				wds[f.wd] = wds[f.wd] || f.name == "memory.events"
			}
		}
	}
	var evs []Event
	var local map[string]uint64
	for _, f := range w.files {
		if !wds[f.wd] {
			continue
		}
		got, err := f.read(w.dir)
		if err != nil {
			continue // the group is being removed
		}
		if f.name == "memory.events" && len(got) > 0 {
			local = localCounts(w.dir)
			for i := range got {
				if n, ok := local[string(got[i].Kind)]; ok {
					got[i].CountLocal = &n
				}
			}
		}
		evs = append(evs, got...)
	}
	if wds[w.eventsWD] {
		if p, err := cgroup.Populated(w.dir); err == nil {
			if w.populated && !p {
				evs = append(evs, Event{Kind: Emptied})
			}
			w.populated = p
		}
	}
	if len(evs) == 0 {
		return
	}
	cur, _ := cgroup.MemoryCurrent(w.dir)
	peak, src := memoryPeak(w.dir)
	for _, ev := range evs {
		if ev.Kind == Max || ev.Kind == OOM {
			if now.After(w.atLimit) && now.Sub(w.pressing) >= pollEvery*w.pollMost {
				w.pressing = now // a new run of windows, and a new allowance of polling
			}
			w.atLimit = now.Add(w.pollWindow)
		}
		ev.Time, ev.Group, ev.MemoryCurrent, ev.MemoryPeak, ev.MemoryPeakSource = now, w.group, cur, peak, src
		emit(ev)
	}
}

func (w *Watcher) pressure(t Trigger, emit func(Event)) {
	now := time.Now()
	p, err := ReadPressure(w.dir)
	if err != nil {
		return
	}
	p.Trigger = t.String()
	cur, _ := cgroup.MemoryCurrent(w.dir)
	peak, src := memoryPeak(w.dir)
	emit(Event{Time: now, Kind: Pressure, Group: w.group, MemoryCurrent: cur, MemoryPeak: peak, MemoryPeakSource: src, Pressure: &p})
}

// memoryPeak is memory.peak with its source, or nothing on kernels before 5.19.
func memoryPeak(dir string) (uint64, cgroup.PeakSource) {
	if n, err := cgroup.MemoryPeak(dir); err == nil {
		return n, cgroup.PeakKernel
	}
	return 0, ""
}

// Close releases every fd the Watcher opened. It is safe to call more than once.
func (w *Watcher) Close() error {
	for fd := range w.triggers {
		unix.Close(fd)
	}
	w.triggers = map[int]Trigger{}
	for _, fd := range []*int{&w.epfd, &w.ino, &w.wake} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
	return nil
}

package oomwatch

import (
	"errors"
	"os"

	"github.com/cgrun/cgrun/cgroup"
)

// counterFile is one flat keyed file of counters that the kernel touches (and so wakes inotify)
// whenever a counter in it goes up. Each wake-up rereads the whole file and diffs it against the
// last read, so when the kernel coalesces notifications (at most one per file per ~10 ms) no
// increment is lost, and none is counted twice.
type counterFile struct {
	name  string          // e.g. memory.events
	kinds map[string]Kind // counter key -> event kind, in the file
	order []string        // keys in the order their events are emitted
	last  map[string]uint64
	wd    int // inotify watch descriptor
	// mirror is the child that carries a copy of the group's limits (memory.events only): its
	// own high events are not counted twice (cgroup.MemoryEvents).
	mirror string
}

// counterFiles are the files oomwatch watches, in the order it reads them on a wake-up.
func counterFiles() []*counterFile {
	return []*counterFile{
		{name: "memory.events", order: cgroup.MemoryEventNames(),
			kinds: map[string]Kind{"low": Low, "high": High, "max": Max, "oom": OOM, "oom_kill": OOMKill, "oom_group_kill": OOMGroupKill}},
		{name: "memory.swap.events", order: []string{"high", "max", "fail"},
			kinds: map[string]Kind{"high": SwapHigh, "max": SwapMax, "fail": SwapFail}},
		{name: "pids.events", order: []string{"max"}, kinds: map[string]Kind{"max": PidsMax}},
	}
}

// read rereads the file and returns, in order, each counter that went up since the last read.
func (c *counterFile) read(dir string) ([]Event, error) {
	var m map[string]uint64
	var err error
	if c.name == "memory.events" {
		m, err = cgroup.MemoryEvents(dir, c.mirror)
	} else {
		m, err = cgroup.ReadKeyed(dir, c.name)
	}
	if err != nil {
		return nil, err
	}
	// The kernel's counters only go up; a key that is missing or lower (a torn read) keeps the
	// value last seen, so that nothing is counted twice.
	var evs []Event
	if c.last == nil {
		c.last = map[string]uint64{}
	}
	for _, k := range c.order {
		now, was := m[k], c.last[k]
		if now > was {
			evs = append(evs, Event{Kind: c.kinds[k], Delta: now - was, Count: now})
			c.last[k] = now
		}
	}
	return evs, nil
}

// localCounts reads memory.events.local; nil where the kernel has none (before 5.2).
func localCounts(dir string) map[string]uint64 {
	m, err := cgroup.ReadKeyed(dir, "memory.events.local")
	if err != nil {
		return nil
	}
	return m
}

// exists reports whether the group has the file; a missing controller or an older kernel means
// it does not.
func exists(dir, name string) bool {
	_, err := os.Stat(dir + "/" + name)
	return !errors.Is(err, os.ErrNotExist)
}

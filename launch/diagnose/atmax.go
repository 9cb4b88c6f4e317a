package diagnose

import "time"

// StuckAfter is how long a dump may sit at memory.max before cgrun stops waiting for it: a
// process that writes a dump at its group's limit, without swap, thrashes (it reclaims its own
// code pages) and rarely finishes; a dump written to tmpfs is charged to the group and makes it
// worse. Waiting out --diagnose-timeout then only delays the recycle.
const StuckAfter = 5 * time.Second

// PressedEvents is how many memory.max events in a second say that a group presses on its limit
// (the kernel counts one for each charge that had to reclaim; a group that only touched the
// limit once counts a few).
const PressedEvents = 10

// AtMax tells, from one look a second at the group, how long a dump has sat at memory.max: the
// kernel counting at least PressedEvents memory.max events since the look before, with memory
// within an eighth of the limit (reclaim at the limit frees a few megabytes at a time, so a look
// may find it that far below). One look that misses does not end the stretch; two in a row do.
// The zero value is ready; feed it with Observe.
type AtMax struct {
	since     time.Time // when the current stretch at memory.max began; zero while below it
	lastCount uint64
	looked    bool
	missed    int // looks in a row that did not find the group at memory.max
}

// Observe takes one look: memory.current, memory.max (0: no limit) and memory.events' max
// count. It returns how long the group has sat at memory.max, 0 when it is not there now.
func (a *AtMax) Observe(now time.Time, current, limit, maxCount uint64) time.Duration {
	pressed := a.looked && maxCount >= a.lastCount+PressedEvents
	a.lastCount, a.looked = maxCount, true
	if limit == 0 || !pressed || current+limit/8 < limit {
		if a.missed++; a.missed >= 2 {
			a.since = time.Time{}
		}
		return 0
	}
	a.missed = 0
	if a.since.IsZero() {
		// The events since the look before: it has been there about a second already.
		a.since = now.Add(-time.Second)
	}
	return now.Sub(a.since)
}

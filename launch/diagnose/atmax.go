package diagnose

import "time"

// StuckAfter is how long a dump may sit at memory.max before cgrun stops waiting for it: a
// process that writes a dump at its group's limit, without swap, thrashes (it reclaims its own
// code pages) and rarely finishes; a dump written to tmpfs is charged to the group and makes it
// worse. Waiting out --diagnose-timeout then only delays the recycle.
const StuckAfter = 5 * time.Second

// AtMax tells, from one look a second at the group, how long a dump has sat at memory.max: its
// memory within a small margin of the limit and the kernel counting memory.max events since the
// look before. The zero value is ready; feed it with Observe.
type AtMax struct {
	since     time.Time // when the current stretch at memory.max began; zero while below it
	lastCount uint64
	looked    bool
}

// Observe takes one look: memory.current, memory.max (0: no limit) and memory.events' max
// count. It returns how long the group has sat at memory.max, 0 when it is not there now.
func (a *AtMax) Observe(now time.Time, current, limit, maxCount uint64) time.Duration {
	pressed := a.looked && maxCount > a.lastCount
	a.lastCount, a.looked = maxCount, true
	if limit == 0 || !pressed || current+max(limit/50, 256<<10) < limit {
		a.since = time.Time{}
		return 0
	}
	if a.since.IsZero() {
		// The events since the look before: it has been there about a second already.
		a.since = now.Add(-time.Second)
	}
	return now.Sub(a.since)
}

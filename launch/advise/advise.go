// Package advise finds how much memory a command needs by squeezing its group's memory.high
// toward memory.current while the group's memory pressure stays low (senpai's method, from the
// TMO paper): the decisions, one sample at a time (Prober: pure logic), the advice they add up
// to, and the Advisor that reads a group's files into samples and writes the memory.high decided.
//
// Without swap, reclaim can take only page cache (and reclaimable kernel memory): anonymous
// memory stays, so the working set is never below it. What the squeeze finds is how much of the
// page cache the command needs again: the level where reclaim starts to hurt — pages it faults
// back in (refaults), or time its tasks stall on memory (PSI) — is its working set.
package advise

import (
	"time"
)

// Source is what tells the prober that the squeeze went too far.
type Source string

const (
	PSI      Source = "psi"      // memory.pressure: the time the group's tasks stalled on memory (Linux 4.20, CONFIG_PSI)
	Refaults Source = "refaults" // memory.stat's workingset_refault counters, where the kernel has no PSI
)

// Sample is one reading of the group's files.
type Sample struct {
	At          time.Duration `json:"at"`          // since the probe began
	Current     uint64        `json:"current"`     // memory.current
	Anon        uint64        `json:"anon"`        // memory.stat anon
	Reclaimable uint64        `json:"reclaimable"` // page cache reclaim may take without swap
	Refaults    uint64        `json:"refaults"`    // pages refaulted since the group was made
	StallUS     uint64        `json:"stall_us"`    // memory.pressure some total, µs (PSI only)
}

// Config are the prober's knobs; DefaultConfig is what cgrun uses.
type Config struct {
	Source Source
	// Interval is the time between two samples; Quick the time after a squeeze, so that one
	// that went too far is undone before it costs much (a command that loops over its files
	// reads all of them again on every pass once its cache is one page short).
	Interval, Quick time.Duration
	PageSize        uint64
	// Squeeze is the part of the page cache above the floor that each step takes away before
	// the first contact with pressure; Gentle after it, near the working set.
	Squeeze, Gentle float64
	// MinStep is the smallest step that is worth a write.
	MinStep uint64
	// Stall is the stalled part of an interval (PSI) at which pressure has risen.
	Stall float64
	// Refault is the refaulted bytes in an Interval, as a part of memory.current, at which
	// pressure has risen (no PSI).
	Refault float64
	// Hold is how long memory.high stays back where it was after pressure rose, before the
	// squeeze resumes; it doubles after each contact, up to 16 times.
	Hold time.Duration
	// Calm is how long what reclaim cannot take must have stayed where it is before a squeeze:
	// a command that is still growing (starting up, loading) would be throttled at a
	// memory.high that its next allocations pass, and reclaim has nothing to give it.
	Calm time.Duration
	// Ceiling is the memory.high the group had before the probe (the user's --memory-high), or
	// 0 for none ("max"): the probe never goes above it.
	Ceiling uint64
}

func DefaultConfig(src Source, pageSize uint64, ceiling uint64) Config {
	return Config{Source: src, Interval: 500 * time.Millisecond, Quick: 100 * time.Millisecond, PageSize: pageSize,
		Squeeze: 0.2, Gentle: 0.05, MinStep: 256 << 10, Stall: 0.01, Refault: 0.005,
		Hold: 5 * time.Second, Calm: 2 * time.Second, Ceiling: ceiling}
}

// Action is what to do after a sample: write a new memory.high, or the original back, or
// nothing; and when to take the next sample.
type Action struct {
	High    uint64        `json:"high,omitempty"`    // the memory.high to write; 0 for none
	Restore bool          `json:"restore,omitempty"` // write the original memory.high back
	Why     string        `json:"why,omitempty"`     // "squeeze", "back off", "floor": for the trace
	Next    time.Duration `json:"next"`              // the time to the next sample
}

// Prober decides, one sample at a time, where to put memory.high. Make it with New.
type Prober struct {
	cfg       Config
	high      uint64 // the memory.high it last wrote; 0 while the original stands
	last      Sample
	have      bool
	holdUntil time.Duration // no squeeze before this (Sample.At)
	base      uint64        // what reclaim cannot take, when it last grew
	calmSince time.Duration // since when it has not grown past base
	est       Estimate
}

func New(cfg Config) *Prober {
	return &Prober{cfg: cfg, est: Estimate{Source: cfg.Source}}
}

// Estimate is what the probe found so far.
type Estimate struct {
	Source Source `json:"pressure_source"`
	// WorkingSet is the memory the command needed: the most of what reclaim cannot take
	// (anonymous memory, without swap), and the level one step above where the squeeze met
	// pressure, whichever is higher.
	WorkingSet uint64 `json:"working_set"`
	// Peak is the highest memory.current seen (the caller puts memory.peak in where the kernel
	// has it).
	Peak uint64 `json:"peak"`
	// Unreclaimable is the most of memory.current that reclaim could not take.
	Unreclaimable uint64 `json:"unreclaimable"`
	// Contacts are the times the squeeze met pressure and backed off.
	Contacts int `json:"contacts"`
	// Settled says whether the squeeze reached the working set (a contact, or nothing left to
	// take); before, WorkingSet is only an upper bound: the window was too short.
	Settled  bool          `json:"settled"`
	Observed time.Duration `json:"-"`
}

// Estimate is what the probe found so far.
func (p *Prober) Estimate() Estimate { return p.est }

// High is the memory.high the prober last wrote, or 0 while the original stands.
func (p *Prober) High() uint64 { return p.high }

// Step takes one sample and says what to do.
func (p *Prober) Step(s Sample) Action {
	prev, had := p.last, p.have
	p.last, p.have = s, true
	e := &p.est
	e.Observed = s.At
	e.Peak = max(e.Peak, s.Current)
	fixed := sub(s.Current, s.Reclaimable)
	e.Unreclaimable = max(e.Unreclaimable, fixed)
	e.WorkingSet = max(e.WorkingSet, e.Unreclaimable)
	if !had || fixed > p.base+max(p.cfg.MinStep, p.base/50) {
		p.base, p.calmSince = fixed, s.At
	}
	if !had {
		return Action{Next: p.cfg.Interval}
	}
	// The lowest memory.high worth writing: what reclaim cannot take, with room for what that
	// grows by in twice the interval, so that a growing command is not throttled between two
	// samples (memory.high throttles whatever reclaim cannot bring under it).
	growth := sub(fixed, sub(prev.Current, prev.Reclaimable))
	floor := fixed + max(2*growth, s.Current/50, p.cfg.MinStep)
	pressure := p.pressured(prev, s)
	if pressure == stalled {
		// Reclaim stalled it but took nothing it needed again (a file it streams): not below
		// its working set, but no further squeeze while it costs.
		return Action{Next: p.cfg.Interval}
	}
	if pressure == hurt {
		if p.high == 0 {
			return Action{Next: p.cfg.Interval} // not the probe's doing: the original stands
		}
		// The squeeze went too far: the original back at once (a small back-off may still be
		// short of what a looping reader needs, and each interval short costs it a pass), and
		// no squeeze for a while.
		e.Contacts++
		e.Settled = true
		e.WorkingSet = max(e.WorkingSet, prev.Current, s.Current)
		p.holdUntil = s.At + p.cfg.Hold<<min(e.Contacts-1, 4)
		p.high = 0
		return Action{Restore: true, Why: "back off", Next: p.cfg.Interval}
	}
	if p.high != 0 && p.high < floor {
		return p.write(floor, "floor", p.cfg.Interval) // it grew: never throttle what reclaim cannot take
	}
	if s.At < p.holdUntil || s.At-p.calmSince < p.cfg.Calm {
		return Action{Next: p.cfg.Interval}
	}
	part := p.cfg.Squeeze
	if e.Contacts > 0 {
		part = p.cfg.Gentle
	}
	step := max(uint64(part*float64(sub(s.Current, floor))), p.cfg.MinStep)
	target := sub(s.Current, step)
	if target <= floor {
		target = floor
		if s.Current <= floor+p.cfg.MinStep {
			// Nothing left to take that is worth a step: what stays is what it needs.
			e.Settled = true
		}
	}
	if p.high != 0 && target <= p.high && p.high-target < p.cfg.MinStep {
		return Action{Next: p.cfg.Interval} // already there
	}
	if target >= s.Current {
		return Action{Next: p.cfg.Interval} // nothing to squeeze
	}
	return p.write(target, "squeeze", p.cfg.Quick)
}

// What the last interval's pressure says.
const (
	calm    = iota
	stalled // PSI: its tasks stalled on reclaim, but nothing came back (refaults)
	hurt    // the squeeze took what it needed again
)

// pressured says what the group's memory pressure did over the last interval. With PSI, a
// stall counts only with refaults beside it: reclaim stalls a command that streams a file it
// never reads again too, and that page cache is not part of its working set.
func (p *Prober) pressured(prev, s Sample) int {
	dt := s.At - prev.At
	if dt <= 0 {
		return calm
	}
	refaulted := sub(s.Refaults, prev.Refaults) * p.cfg.PageSize
	switch p.cfg.Source {
	case PSI:
		stall := time.Duration(sub(s.StallUS, prev.StallUS)) * time.Microsecond
		switch {
		case float64(stall) < p.cfg.Stall*float64(dt):
			return calm
		case refaulted == 0:
			return stalled
		}
		return hurt
	default:
		// Scaled to the nominal interval: a late sample does not read as more pressure.
		per := float64(refaulted) * float64(p.cfg.Interval) / float64(dt)
		if refaulted > 0 && per >= p.cfg.Refault*float64(s.Current) {
			return hurt
		}
		return calm
	}
}

// write returns the action that puts memory.high at v, never above the ceiling.
func (p *Prober) write(v uint64, why string, next time.Duration) Action {
	if p.cfg.Ceiling != 0 && v >= p.cfg.Ceiling {
		if p.high == 0 {
			return Action{Next: next}
		}
		p.high = 0
		return Action{Restore: true, Why: why, Next: next}
	}
	p.high = v
	return Action{High: v, Why: why, Next: next}
}

func sub(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}

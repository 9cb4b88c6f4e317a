// Package advise finds how much memory a command needs by squeezing its group's memory.high
// toward memory.current while the group's memory pressure stays low (senpai's method, from the
// TMO paper): the decisions, one sample at a time, and the advice they add up to; pure logic.
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
	Source   Source
	Interval time.Duration // between two samples
	PageSize uint64
	// Squeeze is the part of the reclaimable page cache each step takes away before the first
	// contact with pressure; Gentle after it, near the working set.
	Squeeze, Gentle float64
	// MinStep is the smallest step that is worth a write.
	MinStep uint64
	// Stall is the stalled part of an interval (PSI) at which pressure has risen.
	Stall float64
	// Refault is the refaulted bytes in an interval, as a part of memory.current, at which
	// pressure has risen (no PSI).
	Refault float64
	// BackOff raises memory.high by this part of memory.current when pressure rose; Hold is how
	// many intervals it stays there before the squeeze resumes.
	BackOff float64
	Hold    int
	// Ceiling is the memory.high the group had before the probe (the user's --memory-high), or
	// 0 for none ("max"): the probe never goes above it.
	Ceiling uint64
}

func DefaultConfig(src Source, pageSize uint64, ceiling uint64) Config {
	return Config{Source: src, Interval: 500 * time.Millisecond, PageSize: pageSize,
		Squeeze: 0.2, Gentle: 0.05, MinStep: 256 << 10, Stall: 0.01, Refault: 0.005,
		BackOff: 0.1, Hold: 10, Ceiling: ceiling}
}

// Action is what to write after a sample: nothing, a new memory.high, or the original back.
type Action struct {
	High    uint64 // the memory.high to write; 0 for none
	Restore bool   // write the original memory.high back (the ceiling was reached)
	Why     string // "squeeze", "back off", "floor": for the trace
}

// Prober decides, one sample at a time, where to put memory.high. Its zero value is unusable:
// make it with New.
type Prober struct {
	cfg    Config
	high   uint64 // the memory.high it last wrote; 0 while the original stands
	last   Sample
	have   bool
	hold   int // intervals left before the squeeze resumes
	est    Estimate
	growth uint64 // how much the memory reclaim cannot take grew over the last interval
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

// Step takes one sample and says what to write.
func (p *Prober) Step(s Sample) Action {
	prev, had := p.last, p.have
	p.last, p.have = s, true
	e := &p.est
	e.Observed = s.At
	e.Peak = max(e.Peak, s.Current)
	fixed := sub(s.Current, s.Reclaimable)
	if had {
		p.growth = sub(fixed, sub(prev.Current, prev.Reclaimable))
	}
	e.Unreclaimable = max(e.Unreclaimable, fixed)
	e.WorkingSet = max(e.WorkingSet, e.Unreclaimable)
	if !had {
		return Action{}
	}
	// The lowest memory.high worth writing: what reclaim cannot take, with room for what it
	// grows by in twice the interval, so that a growing command is not throttled between two
	// samples (memory.high throttles whatever reclaim cannot bring under it).
	floor := fixed + max(2*p.growth, s.Current/50, p.cfg.MinStep)
	if p.pressured(prev, s) {
		e.Contacts++
		e.Settled = true
		e.WorkingSet = max(e.WorkingSet, prev.Current, s.Current)
		p.hold = p.cfg.Hold
		if p.high == 0 {
			return Action{} // not the probe's doing: the original stands
		}
		return p.write(max(s.Current+uint64(p.cfg.BackOff*float64(s.Current)), floor, p.high), "back off")
	}
	if p.high != 0 && p.high < floor {
		return p.write(floor, "floor") // it grew: never throttle what reclaim cannot take
	}
	if p.hold > 0 {
		p.hold--
		return Action{}
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
	if p.high != 0 && sub(p.high, target) < p.cfg.MinStep && target <= p.high {
		return Action{} // already there
	}
	if target >= s.Current && p.high == 0 {
		return Action{} // nothing to squeeze; the original stands
	}
	return p.write(target, "squeeze")
}

// pressured says whether the group's memory pressure rose over the last interval.
func (p *Prober) pressured(prev, s Sample) bool {
	dt := s.At - prev.At
	if dt <= 0 {
		return false
	}
	switch p.cfg.Source {
	case PSI:
		stalled := time.Duration(sub(s.StallUS, prev.StallUS)) * time.Microsecond
		return float64(stalled) >= p.cfg.Stall*float64(dt)
	default:
		bytes := sub(s.Refaults, prev.Refaults) * p.cfg.PageSize
		// Scaled to the nominal interval: a late sample does not read as more pressure.
		per := float64(bytes) * float64(p.cfg.Interval) / float64(dt)
		return bytes > 0 && per >= p.cfg.Refault*float64(s.Current)
	}
}

// write returns the action that puts memory.high at v, never above the ceiling.
func (p *Prober) write(v uint64, why string) Action {
	if p.cfg.Ceiling != 0 && v >= p.cfg.Ceiling || p.cfg.Ceiling == 0 && v == 0 {
		if p.high == 0 {
			return Action{}
		}
		p.high = 0
		return Action{Restore: true, Why: why}
	}
	p.high = v
	return Action{High: v, Why: why}
}

func sub(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}

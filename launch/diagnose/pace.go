package diagnose

import (
	"fmt"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/launch/policy"
)

// Pace is how fast the current generation's memory grows: from memory.current when it started
// to memory.current now, over the time between.
type Pace struct {
	GrowthBytes    int64   `json:"growth_bytes"` // memory.current now less at the start
	Seconds        float64 `json:"seconds"`
	BytesPerMinute float64 `json:"bytes_per_minute"`
	// At this pace, the seconds until memory.high and memory.max; absent when there is no such
	// limit, or memory does not grow.
	SecondsToHigh *float64 `json:"seconds_to_memory_high,omitempty"`
	SecondsToMax  *float64 `json:"seconds_to_memory_max,omitempty"`
}

// Measure works out the pace from memory.current at the start and now, elapsed apart, with
// memory.high and memory.max (nil: max). It returns nil when elapsed is not positive.
func Measure(start, now uint64, elapsed time.Duration, high, max *uint64) *Pace {
	if elapsed <= 0 {
		return nil
	}
	p := &Pace{GrowthBytes: int64(now) - int64(start), Seconds: elapsed.Seconds()}
	p.BytesPerMinute = float64(p.GrowthBytes) / elapsed.Minutes()
	until := func(limit *uint64) *float64 {
		if limit == nil || p.GrowthBytes <= 0 {
			return nil
		}
		s := 0.0
		if *limit > now {
			s = float64(*limit-now) / (p.BytesPerMinute / 60)
		}
		return &s
	}
	p.SecondsToHigh, p.SecondsToMax = until(high), until(max)
	return p
}

// String is the pace for people: "grows 2.1M/min; memory.max in ~41m".
func (p *Pace) String() string {
	if p == nil {
		return "unknown"
	}
	if p.GrowthBytes <= 0 {
		return fmt.Sprintf("not growing (%s since the generation started)", signedSize(p.GrowthBytes))
	}
	s := fmt.Sprintf("grows ~%s/min (%s in %s)", cgroup.FormatSize(uint64(p.BytesPerMinute)), cgroup.FormatSize(uint64(p.GrowthBytes)), roundDur(p.Seconds))
	if p.SecondsToHigh != nil {
		s += "; memory.high in ~" + roundDur(*p.SecondsToHigh)
	}
	if p.SecondsToMax != nil {
		s += "; memory.max in ~" + roundDur(*p.SecondsToMax)
	}
	return s
}

// Past is one generation that ended, as the pace's history shows it.
type Past struct {
	Generation int     `json:"generation"`
	Seconds    float64 `json:"lifetime_seconds"`
	Peak       uint64  `json:"memory_peak"`
	Reason     string  `json:"reason"` // "oom_kill", a recycle's reason, "exit N" or "signal SIG"
}

// MaxPast is how many ended generations the history keeps.
const MaxPast = 10

// AddPast appends p to the history, keeping the last MaxPast.
func AddPast(h []Past, p Past) []Past {
	h = append(h, p)
	if len(h) > MaxPast {
		h = h[len(h)-MaxPast:]
	}
	return h
}

// Summary says how the generations end: "OOM-killed every ~41m (peak ~512M)", from the ended
// generations that share the latest one's reason. It is "" for no history.
func Summary(h []Past) string {
	if len(h) == 0 {
		return ""
	}
	reason := h[len(h)-1].Reason
	var n int
	var secs float64
	var peak uint64
	for _, p := range h {
		if p.Reason == reason {
			n, secs, peak = n+1, secs+p.Seconds, max(peak, p.Peak)
		}
	}
	what := "ended (" + reason + ")"
	switch r := policy.Reason(reason); {
	case r == policy.OOMKill:
		what = "OOM-killed"
	case r.Recycle():
		what = "recycled (" + reason + ")"
	}
	s := fmt.Sprintf("%s every ~%s", what, roundDur(secs/float64(n)))
	if peak > 0 {
		s += fmt.Sprintf(" (peak %s)", cgroup.FormatSize(peak))
	}
	return fmt.Sprintf("%s, %d of the last %d generations", s, n, len(h))
}

func roundDur(sec float64) string {
	d := time.Duration(sec * float64(time.Second))
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Round(time.Second).Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Round(time.Minute).Minutes()))
	}
	return fmt.Sprintf("%.1f h", d.Hours())
}

func signedSize(n int64) string {
	if n < 0 {
		return "-" + cgroup.FormatSize(uint64(-n))
	}
	return "+" + cgroup.FormatSize(uint64(n))
}

package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/launch/atomicfile"
)

// ExitBaseline is cgrun's exit code when a run's memory peak exceeded its baseline by more than
// the tolerance (and the command itself succeeded).
const ExitBaseline = 121

// Baseline is a recorded memory profile of a run, the --record-baseline file. A later run
// given it with --baseline fails when its peak exceeds Peak by more than the tolerance.
type Baseline struct {
	Version      int      `json:"version"` // 1
	Name         string   `json:"name"`
	Command      []string `json:"command"`
	Recorded     string   `json:"recorded"`
	MemoryPeak   uint64   `json:"memory_peak"`   // bytes
	MemorySteady uint64   `json:"memory_steady"` // bytes: median memory.current, sampled once a second
	// MemoryPeakSource says how MemoryPeak was measured: "memory.peak", or "sampled" on a
	// kernel before 5.19 (absent from baselines recorded before cgrun sampled).
	MemoryPeakSource cgroup.PeakSource `json:"memory_peak_source,omitempty"`
}

// BaselineCheck is the comparison in the report.
type BaselineCheck struct {
	File         string  `json:"file"`
	MemoryPeak   uint64  `json:"memory_peak"`   // the baseline's
	TolerancePct float64 `json:"tolerance_pct"` // e.g. 5
	Allowed      uint64  `json:"allowed"`       // the largest peak that passes
	Exceeded     bool    `json:"exceeded"`
}

// LoadBaseline reads a --baseline file.
// It is read through its directory, never through a symlink or a hard link (atomicfile.Dir.Read).
func LoadBaseline(path string) (*Baseline, error) {
	d, name, err := atomicfile.Split(path)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	b, err := d.Read(name, maxBaselineSize)
	if err != nil {
		return nil, err
	}
	var bl Baseline
	if err := json.Unmarshal(b, &bl); err != nil {
		return nil, fmt.Errorf("%s: not a cgrun baseline: %w", path, err)
	}
	if bl.Version != 1 || bl.MemoryPeak == 0 {
		return nil, fmt.Errorf("%s: not a cgrun baseline (want version 1 with a memory_peak; record one with --record-baseline)", path)
	}
	return &bl, nil
}

// maxBaselineSize bounds how much of a --baseline file is read; cgrun's are a few hundred bytes.
const maxBaselineSize = 1 << 20

// Check compares a peak with the baseline.
func (bl *Baseline) Check(file string, peak uint64, tolerancePct float64) BaselineCheck {
	allowed := uint64(float64(bl.MemoryPeak) * (1 + tolerancePct/100))
	return BaselineCheck{File: file, MemoryPeak: bl.MemoryPeak, TolerancePct: tolerancePct, Allowed: allowed, Exceeded: peak > allowed}
}

// WriteBaseline records rep as a baseline at path, atomically (a temporary file renamed).
func WriteBaseline(path string, rep *Report) error {
	if rep.MemoryPeak == nil || *rep.MemoryPeak == 0 {
		return errors.New(ErrNoPeak)
	}
	bl := Baseline{Version: 1, Name: rep.Name, Command: rep.Command, Recorded: time.Now().Format(time.RFC3339),
		MemoryPeak: *rep.MemoryPeak, MemorySteady: *rep.MemoryPeak, MemoryPeakSource: rep.MemoryPeakSource}
	if rep.MemorySteady != nil {
		bl.MemorySteady = *rep.MemorySteady
	}
	b, err := json.MarshalIndent(bl, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(b, '\n'))
}

// ErrNoPeak is why a baseline can be neither recorded nor checked: no peak was measured (no
// memory.peak before Linux 5.19, and not one memory.current sample while the command ran, as
// for a command that ends within cgrun's first sampling interval).
const ErrNoPeak = "cannot record or check a baseline: no memory peak was measured (memory.peak needs Linux 5.19; before it cgrun samples memory.current every 100ms, and the command ended before the first sample)"

// Line is the one line for a failed baseline check.
func (c BaselineCheck) Line(name string, peak uint64) string {
	over := 100 * (float64(peak)/float64(c.MemoryPeak) - 1)
	return fmt.Sprintf("%s peaked at %s, %.1f%% over the baseline %s in %s (tolerance %g%%, allowed up to %s)",
		name, cgroup.FormatSize(peak), over, cgroup.FormatSize(c.MemoryPeak), c.File, c.TolerancePct, cgroup.FormatSize(c.Allowed))
}

// maxSamples bounds the memory.current samples kept for the steady-state median: 1 MiB, 36
// hours at one a second before the first thinning.
const maxSamples = 1 << 17

// Samples keeps memory.current once a second for the median, in bounded memory: when it holds
// maxSamples it keeps every other one and from then on takes one in two, so every stretch of a
// long run weighs the same in the median.
type Samples struct {
	vals    []uint64
	every   int // keep one in every this many offered
	offered int
}

// Add offers one sample.
func (s *Samples) Add(v uint64) {
	s.every = max(s.every, 1)
	s.offered++
	if s.offered%s.every != 0 {
		return
	}
	s.vals = append(s.vals, v)
	if len(s.vals) >= maxSamples {
		kept := s.vals[:0]
		for i := 1; i < len(s.vals); i += 2 {
			kept = append(kept, s.vals[i])
		}
		s.vals = kept
		s.every *= 2
	}
}

// Values are the samples kept, oldest first.
func (s *Samples) Values() []uint64 { return s.vals }

// Package diagnose takes a diagnostic dump of a worker before cgrun recycles it for memory: it
// gives the worker room, waits for the dump's files, keeps the newest dumps, and works out how
// fast a generation's memory grows.
package diagnose

import (
	"errors"
	"fmt"
	"os"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// Config is what --diagnose-* asked for. The zero value takes no dump.
type Config struct {
	Signal   unix.Signal   // sent to the child to ask for a dump; 0 for none
	Cmd      string        // a shell command run in the group to take a dump; "" for none
	Dir      string        // where the dump's files land
	Timeout  time.Duration // the longest wait for a dump before the generation is stopped anyway
	Headroom uint64        // raise memory.max by at most this much for the dump; 0 for none
	Keep     int           // how many of cgrun's dumps to keep; 0 keeps all
	Above    uint64        // dump, without recycling, when memory first crosses this; 0 for none
	Interval time.Duration // at most one Above dump per this, across generations
}

// Defaults for the flags.
const (
	DefaultTimeout  = 60 * time.Second
	DefaultKeep     = 3
	DefaultInterval = time.Hour
	// Quiet is how long the dump directory must see no writes, after a file was closed, for the
	// dump to count as complete.
	Quiet = time.Second
)

// Enabled reports whether a dump is configured.
func (c Config) Enabled() bool { return c.Signal != 0 || c.Cmd != "" }

// Validate checks the combination of flags; its errors name the flag and how to fix it.
func (c Config) Validate() error {
	switch {
	case c.Signal != 0 && c.Cmd != "":
		return errors.New("--diagnose-signal and --diagnose-cmd: give one of them")
	case !c.Enabled() && (c.Dir != "" || c.Headroom != 0 || c.Above != 0):
		return errors.New("--diagnose-dir, --diagnose-headroom and --diagnose-above need --diagnose-signal or --diagnose-cmd to take the dump")
	case !c.Enabled():
		return nil
	case c.Dir == "":
		return errors.New("--diagnose-signal and --diagnose-cmd need --diagnose-dir DIR: where the dump lands, and where cgrun waits for it")
	case c.Timeout <= 0:
		return fmt.Errorf("--diagnose-timeout %v: want a duration above 0, e.g. 60s", c.Timeout)
	case c.Keep < 0:
		return fmt.Errorf("--diagnose-keep %d: want 0 (keep all) or more", c.Keep)
	}
	if fi, err := os.Stat(c.Dir); err == nil && !fi.IsDir() {
		return fmt.Errorf("--diagnose-dir %s: a file, not a directory; name a directory, writable by the command's user", c.Dir)
	} else if err != nil {
		return fmt.Errorf("--diagnose-dir %s: not a directory; make it first, writable by the command's user (mkdir -p %s)", c.Dir, c.Dir)
	}
	return nil
}

// File is one file a dump wrote.
type File struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
}

// Dump is one dump cgrun asked for, as the recycle event and `cgrun status` show it.
type Dump struct {
	Time       string  `json:"time"` // when it was asked for
	Generation int     `json:"generation"`
	Reason     string  `json:"reason"` // the recycle's reason, or "above" for --diagnose-above
	Files      []File  `json:"files"`
	Seconds    float64 `json:"seconds"`  // how long cgrun waited for it
	Complete   bool    `json:"complete"` // false: --diagnose-timeout passed (or the child ended) first
	// MemoryMax is what memory.max was raised to for the dump; 0 when it was not.
	MemoryMax uint64 `json:"memory_max_raised_to,omitempty"`
	Note      string `json:"note,omitempty"` // what cgrun did to make room, in words
	// FilesLeftOut is how many of the dump's files this copy does not list (Brief): the state
	// file's copy lists at most BriefFiles; 0 (absent) where every file is listed.
	FilesLeftOut int `json:"files_left_out,omitempty"`
}

// BriefFiles and BriefPath bound what the state file lists of a dump: a command that writes
// 700 files with long names into --diagnose-dir must not grow the state past what cgrun ps,
// status, stop and recycle read (256 KiB), or it would hide the run from root.
const (
	BriefFiles = 20
	BriefPath  = 256 // bytes; a longer path is cut, ending in "…"
)

// Brief is d with at most BriefFiles files, each path at most BriefPath bytes, and the number
// of files left out.
func (d Dump) Brief() Dump {
	b := d
	b.Files = nil
	for _, f := range d.Files[:min(len(d.Files), BriefFiles)] {
		b.Files = append(b.Files, File{Path: Cut(f.Path, BriefPath), Size: f.Size})
	}
	b.FilesLeftOut = d.FilesLeftOut + max(0, len(d.Files)-BriefFiles)
	return b
}

// Cut is s cut to at most n bytes on a UTF-8 boundary, ending in "…" when it was cut.
func Cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	n -= len("…")
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// Prune keeps the newest keep dumps (0 keeps all) and removes the files of the older ones from
// dir (see Dir.remove: only the user's regular files, never through a symlink). It returns the
// dumps kept, and the files it could not remove, with why.
func Prune(dir *Dir, dumps []Dump, keep int) ([]Dump, []error) {
	if keep <= 0 || len(dumps) <= keep {
		return dumps, nil
	}
	var errs []error
	for _, d := range dumps[:len(dumps)-keep] {
		for _, f := range d.Files {
			if err := dir.remove(f.Path); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return append([]Dump(nil), dumps[len(dumps)-keep:]...), errs
}

// Limiter allows one --diagnose-above dump per interval, across generations.
type Limiter struct {
	Interval time.Duration
	last     time.Time
}

// Allow reports whether a dump may be taken at now, and if so counts it.
func (l *Limiter) Allow(now time.Time) bool {
	if !l.last.IsZero() && now.Sub(l.last) < l.Interval {
		return false
	}
	l.last = now
	return true
}

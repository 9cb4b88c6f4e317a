// Package place decides where a run's groups go — under --parent, in cgrun's own group, beside
// it, in the delegated unit group, or in a systemd scope asked for over D-Bus — and readies it.
package place

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cgrun/cgrun/cgroup"
)

// Site picks where payload groups go (under --parent when parent is not "", with the
// controllers ctrls on; name and command name and describe a scope), readies it, and returns
// the hierarchy as cgrun sees it afterwards:
//
//   - --parent: under that group;
//   - under systemd, in a group systemd did not delegate (PM2 or supervisord started by
//     systemd, a login shell): in a transient scope delegated cgrun's controllers that cgrun asks systemd for
//     over D-Bus — cgrun never writes on a group systemd owns;
//   - under systemd in a leaf of a delegated unit group (DelegateSubgroup=): in the unit group;
//   - otherwise — a unit with Delegate=yes, a container, a host without systemd: nested in
//     cgrun's own group (Nest).
func Site(h cgroup.Hierarchy, parent string, ctrls []string, name string, command []string) (*cgroup.Site, cgroup.Hierarchy, error) {
	own := h.SelfDir()
	switch plan := Plan(h, parent, cgroup.SystemdRunning()); plan.Kind {
	case Parent:
		s, err := cgroup.Under(h, parent, ctrls...)
		return s, h, err
	case Adopt:
		s, err := cgroup.Adopt(plan.Dir, ctrls...)
		return s, h, err
	case Scope:
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		unit := fmt.Sprintf("cgrun-%s-%d.scope", unitName(name), os.Getpid())
		desc := "cgrun: " + shortCommand(command)
		if err := cgroup.StartScope(ctx, unit, desc, os.Getpid(), ctrls); err != nil {
			return nil, h, fmt.Errorf("%s is systemd's and not delegated, so cgrun asked for a scope of its own: %w; "+
				"run cgrun in a unit with Delegate=yes, or give it a group with --parent", own, err)
		}
		var err error
		if h, err = cgroup.Detect(); err != nil {
			return nil, h, err
		}
	}
	s, err := cgroup.Nest(h, fmt.Sprintf("cgrun-%d", os.Getpid()), ctrls...)
	if errors.Is(err, cgroup.ErrGroupBusy) && Nestable(h, ctrls) {
		// cgrun shares its group with other processes — a shell or a process manager that
		// another cgrun runs — whose parent is ready for groups and whose own group sets no
		// limits that a sibling group would escape: make generations beside that group.
		s, err = cgroup.Adopt(filepath.Dir(own), ctrls...)
	}
	return s, h, err
}

// Nestable reports whether generations may go into the parent of cgrun's own (busy) group: the
// parent has the controllers on for its children, and each limit of the own group — memory,
// swap, pids, cpu, io or the cpuset — is either none or the parent's own (the copy that an outer cgrun's
// leaf carries, cgroup.Limits.Mirror), so that a sibling group escapes nothing. A limit file that
// is missing belongs to a controller that is off for the own group, which then limits nothing.
func Nestable(h cgroup.Hierarchy, ctrls []string) bool {
	own := h.SelfDir()
	if own == h.Mount {
		return false
	}
	parent := filepath.Dir(own)
	on, err := cgroup.SubtreeControl(parent)
	if err != nil {
		return false
	}
	for _, c := range ctrls {
		if !slices.Contains(on, c) {
			return false
		}
	}
	for _, f := range []struct {
		name, none string
		required   bool // cgrun's own controllers: the file must be there
	}{
		{"memory.max", "max", true},
		{"memory.high", "max", true},
		{"pids.max", "max", true},
		{"memory.swap.max", "max", false},
		{"cpu.max", "max", false},  // "max 100000": no quota, whatever the period
		{"io.max", "", false},      // one line per limited device; empty when none is
		{"cpuset.cpus", "", false}, // empty: the parent's; a sibling is bound by the parent's alone
		{"cpuset.mems", "", false},
	} {
		v, err := cgroup.ReadFile(own, f.name)
		switch {
		case errors.Is(err, os.ErrNotExist) && !f.required:
		case err != nil:
			return false
		case f.name == "cpu.max" && strings.HasPrefix(v, "max "), v == f.none:
		default:
			if pv, err := cgroup.ReadFile(parent, f.name); err != nil || pv != v {
				return false
			}
		}
	}
	return true
}

// Kind is one of the ways Site readies a site; see Site.
type Kind string

const (
	Parent Kind = "parent" // under --parent
	Adopt  Kind = "adopt"  // the delegated unit group above cgrun's own (DelegateSubgroup=)
	Scope  Kind = "scope"  // a transient delegated scope asked of systemd, then nested there
	Nest   Kind = "nest"   // nested in cgrun's own group
)

// Placement is where Site will put the payload groups, decided before anything is written.
type Placement struct {
	Kind Kind
	Dir  string // the site; for Scope the group cgrun leaves for its scope
}

// Plan is Site's decision, without I/O beyond reading the delegation marks: `cgrun check`
// shows it. systemd says whether systemd is the init system (cgroup.SystemdRunning).
func Plan(h cgroup.Hierarchy, parent string, systemd bool) Placement {
	own := h.SelfDir()
	switch {
	case parent != "":
		dir, err := cgroup.ParentDir(h, parent)
		if err != nil {
			dir = parent
		}
		return Placement{Kind: Parent, Dir: dir}
	case !systemd || cgroup.Delegated(own):
		return Placement{Kind: Nest, Dir: own}
	case own != h.Mount && cgroup.Delegated(filepath.Dir(own)):
		return Placement{Kind: Adopt, Dir: filepath.Dir(own)}
	}
	return Placement{Kind: Scope, Dir: own}
}

// unitName makes name fit in a systemd unit name: letters, digits, ":", "_", "." and "-".
func unitName(name string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(":_.-", r) {
			return r
		}
		return '_'
	}, name)
}

// shortCommand is the command line, cut to fit a unit description. D-Bus refuses a string that
// is not valid UTF-8, and an argument may be anything: invalid bytes become U+FFFD, and the cut
// falls between characters.
func shortCommand(argv []string) string {
	s := strings.ToValidUTF8(strings.Join(argv, " "), "\uFFFD")
	if len(s) <= 200 {
		return s
	}
	cut := 199
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

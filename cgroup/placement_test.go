package cgroup_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cgrun/cgrun/cgroup"
)

// TestUnderRefusesWhatIsNoGroup: a --parent that is no group is one line whose fix would work:
// mkdir for a missing group, never for a file (/sys/fs/cgroup/cgroup.procs).
func TestUnderRefusesWhatIsNoGroup(t *testing.T) {
	mount := t.TempDir()
	if err := os.WriteFile(filepath.Join(mount, "cgroup.procs"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	h := cgroup.Hierarchy{Mount: mount, Self: "/"}
	for _, tc := range []struct{ parent, want string }{
		{"/cgroup.procs", "is a file, not a group"},
		{filepath.Join(mount, "cgroup.procs"), "is a file, not a group"},
		{"/missing", "no such group"},
		{"/a/../b", `must not contain ".."`},
	} {
		_, err := cgroup.Under(h, tc.parent)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Under(%q) = %v, want %q", tc.parent, err, tc.want)
		}
		if strings.Contains(tc.want, "file") && strings.Contains(err.Error(), "mkdir") {
			t.Errorf("Under(%q) = %v: mkdir would not help", tc.parent, err)
		}
	}
	if _, err := cgroup.Under(h, "/missing"); !errors.Is(err, cgroup.ErrNoSuchParent) || !strings.Contains(err.Error(), "mkdir "+filepath.Join(mount, "missing")) {
		t.Errorf("a missing group: %v, want ErrNoSuchParent and the mkdir that makes it", err)
	}
}

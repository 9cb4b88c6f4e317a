package cgroup_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cgrun/cgrun/cgroup"
)

// TestHolds: a pid in the group or in any group below it is held; one elsewhere is not.
func TestHolds(t *testing.T) {
	dir := t.TempDir()
	for sub, procs := range map[string]string{"": "10\n11\n", "main": "12\n", "main/deep": "13\n", "../outside": "14\n"} {
		d := filepath.Join(dir, "group", sub)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(procs), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	group := filepath.Join(dir, "group")
	for _, tc := range []struct {
		pid  int
		want bool
	}{
		{10, true}, {11, true}, {12, true}, {13, true}, // success
		{14, false}, {1, false}, {0, false}, // no-op: elsewhere
	} {
		have, err := cgroup.Holds(group, tc.pid)
		if err != nil || have != tc.want {
			t.Errorf("Holds(%d) = %v, %v; want %v", tc.pid, have, err, tc.want)
		}
	}
	if _, err := cgroup.Holds(filepath.Join(dir, "gone"), 10); err == nil { // failure
		t.Error("Holds of a group that does not exist: no error")
	}
}

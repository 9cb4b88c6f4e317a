package cgroup_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cgrun/cgrun/cgroup"
)

func TestReadRefaults(t *testing.T) {
	for _, tc := range []struct {
		name, stat string
		want       cgroup.Refaults
	}{
		// success
		{"6.1: anon and file added", "anon 100\nfile 200\nworkingset_refault_anon 3\nworkingset_refault_file 40\nworkingset_activate_anon 1\nworkingset_activate_file 20\nworkingset_restore_anon 0\nworkingset_restore_file 7\nworkingset_nodereclaim 9\n",
			cgroup.Refaults{Refault: 43, Activate: 21, Restore: 7}},
		{"5.8: file only, one key each", "file 200\nworkingset_refault 40\nworkingset_activate 20\nworkingset_restore 5\n",
			cgroup.Refaults{Refault: 40, Activate: 20, Restore: 5}},
		// no-op
		{"before 5.8: no restore", "workingset_refault 40\nworkingset_activate 20\n", cgroup.Refaults{Refault: 40, Activate: 20}},
		{"no working-set keys", "anon 1\nfile 2\n", cgroup.Refaults{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "memory.stat"), []byte(tc.stat), 0o644); err != nil {
				t.Fatal(err)
			}
			have, err := cgroup.ReadRefaults(dir)
			if err != nil {
				t.Fatal(err)
			}
			if have != tc.want {
				t.Errorf("ReadRefaults = %+v, want %+v", have, tc.want)
			}
		})
	}
	// failure
	t.Run("no memory.stat", func(t *testing.T) {
		if _, err := cgroup.ReadRefaults(t.TempDir()); err == nil {
			t.Error("ReadRefaults of a group without memory.stat: no error")
		}
	})
	t.Run("a torn read grows by nothing", func(t *testing.T) {
		now, prev := cgroup.Refaults{Refault: 10, Activate: 3, Restore: 1}, cgroup.Refaults{Refault: 12, Activate: 1, Restore: 1}
		if have, want := now.Since(prev), (cgroup.Refaults{Activate: 2}); have != want {
			t.Errorf("Since = %+v, want %+v", have, want)
		}
	})
}

package cgroup

import (
	"slices"
	"testing"

	godbus "github.com/godbus/dbus/v5"
)

// TestScopeDelegatesOnlyWhatCgrunUses: the scope is asked for with DelegateControllers naming
// cgrun's controllers (a scope delegated every controller makes systemd switch cpu and io on in
// its slice and apply every sibling's settings again); Delegate=yes only for an old manager.
func TestScopeDelegatesOnlyWhatCgrunUses(t *testing.T) {
	for _, tc := range []struct {
		name     string
		delegate godbus.Variant
		want     string
	}{
		{"controllers", godbus.MakeVariant([]string{"memory", "pids"}), "DelegateControllers"},
		{"an old manager", godbus.MakeVariant(true), "Delegate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var names []string
			for _, p := range scopeProperties("cgrun: true", 42, tc.delegate) {
				names = append(names, p.Name)
				if p.Name == tc.want && p.Value.String() != tc.delegate.String() {
					t.Errorf("%s = %s, want %s", p.Name, p.Value, tc.delegate)
				}
			}
			if want := []string{"Description", "PIDs", tc.want, "CollectMode"}; !slices.Equal(names, want) {
				t.Errorf("properties %v, want %v", names, want)
			}
		})
	}
}

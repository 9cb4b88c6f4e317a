package launch

import "testing"

func TestOverlapReason(t *testing.T) {
	for _, tc := range []struct {
		reason string
		want   bool
	}{
		// a generation that still serves
		{"lifetime", true}, {"memory_above", true}, {"memory_high", true}, {"pressure", true}, {"request", true},
		// one that no longer does, or is gone
		{"health", false}, {"stall", false}, {"oom_kill", false}, {"abort", false}, {"failure", false}, {"exit", false}, {"", false},
	} {
		if have := overlapReason(tc.reason); have != tc.want {
			t.Errorf("overlapReason(%q) = %v, want %v", tc.reason, have, tc.want)
		}
	}
}

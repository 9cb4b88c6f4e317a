package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/cgrun/cgrun/launch/advise"
)

// TestAdviceOnlyFromSamples: a command that ended before the probe's first sample (`advise --
// true`, `-- sleep 0.3`) gets no advice and exit 125, not the smallest limit as its advice.
func TestAdviceOnlyFromSamples(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  *advise.Advice
		code int
		out  string
	}{
		{"none handed over", nil, 125, ""},
		{"ended at once", &advise.Advice{MemoryMax: 2 << 20, Peak: 344 << 10, ObservedSeconds: 0.002}, 125, ""},
		{"ended before the first sample", &advise.Advice{MemoryMax: 2 << 20, Peak: 1 << 20, ObservedSeconds: 0.3}, 125, ""},
		{"sampled", &advise.Advice{MemoryMax: 10 << 20, MemoryHigh: 9 << 20, WorkingSet: 7 << 20, Peak: 8 << 20, ObservedSeconds: 2}, 3, "advice: --memory-max 10M"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			a := &advice{stdout: &out}
			if tc.got != nil {
				a.done(*tc.got, false)
			}
			code := a.exitCode(3, &errb)
			if code != tc.code || !strings.HasPrefix(out.String(), tc.out) || (tc.out == "") != (out.Len() == 0) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d and %q", code, out.String(), errb.String(), tc.code, tc.out)
			}
			if code == 125 && !strings.Contains(errb.String(), "ended before cgrun could observe it") {
				t.Errorf("stderr %q; want it to say why there is no advice", errb.String())
			}
		})
	}
}

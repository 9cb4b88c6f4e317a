package report

import "testing"

// TestSamplesStayBoundedAndEven offers more samples than fit: the count stays under maxSamples,
// and every stretch of the run keeps the same share (here: the first and second half of the
// offered values weigh the same in what is kept).
func TestSamplesStayBoundedAndEven(t *testing.T) {
	for _, n := range []int{10, maxSamples - 1, maxSamples, 3*maxSamples + 17, 5 * maxSamples} {
		var s Samples
		for i := range n {
			s.Add(uint64(i))
		}
		if len(s.vals) >= maxSamples || len(s.vals) == 0 {
			t.Errorf("%d offered: %d kept, want 1 to %d", n, len(s.vals), maxSamples-1)
		}
		if n < maxSamples && len(s.vals) != n {
			t.Errorf("%d offered: %d kept, want all", n, len(s.vals))
		}
		firstHalf := 0
		for i, v := range s.vals {
			if v < uint64(n/2) {
				firstHalf++
			}
			if i > 0 && v <= s.vals[i-1] {
				t.Fatalf("%d offered: kept samples out of order at %d", n, i)
			}
		}
		if d := 2*firstHalf - len(s.vals); d < -2 || d > 2 {
			t.Errorf("%d offered: %d of %d kept come from the first half; want half", n, firstHalf, len(s.vals))
		}
	}
}

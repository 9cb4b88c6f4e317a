package launch

import (
	"strings"
	"testing"
	"time"

	"github.com/cgrun/cgrun/launch/policy"
	"golang.org/x/sys/unix"
)

// Sequences of the adapter: what reaches it while another step is under way.

// docs/recycling.md: "Stopping wins: SIGTERM or SIGINT to cgrun ... never restarts it — also
// when the signal arrives during a restart delay, which ends at once." A SIGTERM that reached
// cgrun while the ended generation was torn down waits in its channel when the delay begins;
// with --restart-delay 0 the delay's timer is ready too, and the select picks either: half the
// time the next generation starts (and is then stopped).
func TestStopBeforeAZeroRestartDelay(t *testing.T) {
	p := onOOM()
	p.RestartDelay, p.MaxRestarts = 0, 0
	started := 0
	const runs = 64
	for i := 0; i < runs; i++ {
		r, _, stop, _ := testRunner(p)
		stop <- unix.SIGTERM
		why, code, raise, err := r.step(oomKilled(1, time.Now(), time.Second), nil)
		if why != "" {
			started++
			continue
		}
		if code != 137 || raise != unix.SIGTERM || err != nil {
			t.Fatalf("have %d, %v, %v; want the run ended with 137 and SIGTERM", code, raise, err)
		}
	}
	if started > 0 {
		t.Errorf("a SIGTERM waiting when a zero restart delay began: the next generation started in %d of %d runs; want none", started, runs)
	}
}

// --max-lifetime "recycle[s] each generation after this long" (docs/recycling.md). A generation
// that an --overlap recycle started beside the one before has run since it began; its lifetime
// timer starts only when it takes over, so it lives on for as long as the overlap took (up to
// --ready-timeout plus the old one's --stop-timeout): begun 2.5s before it took over, it is
// recycled 3s after the takeover, saying "lifetime of 6s reached".
func TestTakenOverGenerationLifetimeCountsFromItsStart(t *testing.T) {
	p := policy.DefaultPolicy()
	p.Overlap, p.MaxLifetime = true, 3*time.Second
	h := superviseGeneration(t, &Config{Policy: p}, 2, 2500*time.Millisecond, "/bin/sleep", "60")
	select {
	case out := <-h.done:
		if out.recycled != policy.Lifetime {
			t.Errorf("outcome %+v; want recycled for its lifetime", out)
		}
		// Recycled within 1.5 s of the takeover, not 3 s after it, is the point; the uptime the
		// line gives rounds to 3s or, on a loaded guest, 4s.
		if l := h.log.String(); !strings.Contains(l, "lifetime of 3s reached") && !strings.Contains(l, "lifetime of 4s reached") {
			t.Errorf("log %q; want the lifetime of 3s (or 4s, rounded, on a slow machine)", l)
		}
	case <-time.After(1500 * time.Millisecond):
		h.stop <- unix.SIGTERM
		h.wait(t)
		t.Errorf("a generation begun 2.5s before it took over, --max-lifetime 3s: not recycled 4s after it began; log %q", h.log.String())
	}
}

package launch

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/launch/core"
	"github.com/cgrun/cgrun/launch/eventlog"
	"github.com/cgrun/cgrun/launch/internal/lockedbuf"
	"github.com/cgrun/cgrun/launch/policy"
)

// TestThrashAdapter carries out the thrash verdicts on the host, the group a directory with the
// files the adapter reads and writes: the refault sample is read from memory.current and
// memory.stat; a verdict asking for samples starts them (the first read at once) and one that
// does not stops them; a verdict of thrashing stops them, is recorded on the stream, and kills
// the group at once.
func TestThrashAdapter(t *testing.T) {
	p := policy.DefaultPolicy()
	p.Restart = policy.RestartOnOOM
	r, _, _, _ := testRunner(p)
	var log, stream lockedbuf.Buffer // the event log's timer writes to both
	r.cfg.Log = &log
	r.cfg.Limits = cgroup.Limits{MemoryMax: cgroup.Bytes(64 << 20)}
	r.core = core.New("app", p, r.cfg.Limits, r.cfg.Diagnose)
	r.log = eventlog.New("app", r.cfg.Limits, &stream, &log)
	dir := t.TempDir()
	for name, text := range map[string]string{
		"memory.current": "66060288\n", // 63 MiB: near memory.max
		"memory.stat":    "file 4194304\nshmem 0\nfile_mapped 1048576\npgscan 100\npgsteal 90\nworkingset_refault_file 40\nworkingset_activate_file 30\n",
		"cgroup.kill":    "",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err := readThrashSample(dir, time.Now())
	if err != nil || s.Current != 63<<20 || s.Cache != 4<<20 || s.Mapped != 1<<20 || s.Scan != 100 || s.Steal != 90 ||
		s.Refaults != (cgroup.Refaults{Refault: 40, Activate: 30}) {
		t.Fatalf("readThrashSample: %+v, %v", s, err)
	}

	g := &generation{Gen: core.Gen{Number: 1}, run: r, dir: dir, peak: cgroup.NewPeakMeter(dir)}
	g.thrash = policy.NewThrashWatch(p.Thrash, r.cfg.Limits, false)
	r.core.Watch(&g.Gen)
	defer g.stopTimers()
	g.thrashed(policy.ThrashVerdict{Sample: true}, time.Now())
	if g.thrashTick == nil {
		t.Fatal("near memory.max: the refault samples did not start")
	}
	g.thrashed(policy.ThrashVerdict{}, time.Now())
	if g.thrashTick != nil {
		t.Fatal("below memory.max: the refault samples did not stop")
	}
	g.thrashed(policy.ThrashVerdict{Sample: true}, time.Now())
	g.thrashed(policy.ThrashVerdict{Thrash: true, Why: "thrashing: 900 refaults/s for 2s", Source: "memory.stat", Rate: 900}, time.Now())
	if g.thrashTick != nil || g.Recycled != policy.Thrashing {
		t.Errorf("after the verdict: samples %v, recycled %q; want them stopped and a thrash recycle", g.thrashTick, g.Recycled)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "cgroup.kill")); string(b) != "1" {
		t.Errorf("cgroup.kill holds %q: want the group killed (1)", b)
	}
	r.log.Close()
	if !strings.Contains(stream.String(), `"event":"thrash"`) || !strings.Contains(stream.String(), `"refaults_per_second":900`) ||
		!strings.Contains(stream.String(), `"memory_current":66060288`) {
		t.Errorf("stream %q: want the thrash record with its rate and memory.current (63M)", stream.String())
	}
	if want := "cgrun: app: recycling generation 1: thrashing: 900 refaults/s for 2s; killing its group"; !strings.Contains(log.String(), want) {
		t.Errorf("log %q: want %q", log.String(), want)
	}
}

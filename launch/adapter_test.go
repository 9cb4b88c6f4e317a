package launch

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/launch/core"
	"github.com/cgrun/cgrun/launch/diagnose"
	"github.com/cgrun/cgrun/launch/exitcode"
	"github.com/cgrun/cgrun/launch/policy"
	"github.com/cgrun/cgrun/oomwatch"
	"golang.org/x/sys/unix"
)

// The adapters carry out what the core decides. These tests drive them on the host with
// signals fed into their channels and a plain child process: no group, no state file.

// testRunner is a runner with policy p, its log in a buffer, and signal channels the test
// feeds.
func testRunner(p policy.Policy) (*runner, *bytes.Buffer, chan os.Signal, chan os.Signal) {
	log := &bytes.Buffer{}
	stop, other := make(chan os.Signal, 2), make(chan os.Signal, 4)
	cfg := &Config{Name: "app", Policy: p, Log: log}
	return &runner{cfg: cfg, name: "app", sigs: signals{stop: stop, other: other},
		core: core.New("app", p, cgroup.Limits{}, diagnose.Config{})}, log, stop, other
}

func TestRunnerStep(t *testing.T) {
	t.Run("the delay passes: the next generation starts", func(t *testing.T) {
		r, log, _, _ := testRunner(onOOM())
		why, _, raise, err := r.step(oomKilled(1, time.Now(), time.Second), nil)
		if why != policy.OOMKill || raise != 0 || err != nil {
			t.Errorf("have %q, %v, %v; want oom_kill", why, raise, err)
		}
		if want := "cgrun: app: restarting (oom_kill) as generation 2 in 100ms\n"; log.String() != want {
			t.Errorf("log %q, want %q", log, want)
		}
	})
	t.Run("the recycle signal cuts the delay short", func(t *testing.T) {
		p := onOOM()
		p.RestartDelay, p.RestartDelayMax = time.Hour, time.Hour
		r, _, _, other := testRunner(p)
		other <- unix.SIGHUP
		other <- exitcode.RecycleSignal
		if why, _, _, _ := r.step(oomKilled(1, time.Now(), time.Second), nil); why != policy.OOMKill {
			t.Errorf("have %q, want oom_kill", why)
		}
	})
	t.Run("SIGTERM during the delay: no new generation, cgrun dies of it", func(t *testing.T) {
		p := onOOM()
		p.RestartDelay, p.RestartDelayMax = time.Hour, time.Hour
		r, _, stop, _ := testRunner(p)
		stop <- unix.SIGTERM
		why, code, raise, err := r.step(oomKilled(1, time.Now(), time.Second), nil)
		if why != "" || code != 137 || raise != unix.SIGTERM || err != nil {
			t.Errorf("have %q, %d, %v, %v; want the run ended with 137 and SIGTERM", why, code, raise, err)
		}
	})
	t.Run("the start limit: exit 122", func(t *testing.T) {
		p := onOOM()
		p.MaxRestarts, p.RestartDelay = 1, 0
		r, _, _, _ := testRunner(p)
		r.step(oomKilled(1, time.Now(), time.Second), nil)
		why, code, _, err := r.step(oomKilled(2, time.Now(), time.Second), nil)
		if why != "" || code != exitcode.StartLimit || err == nil {
			t.Errorf("have %q, %d, %v; want exit %d", why, code, err, exitcode.StartLimit)
		}
	})
}

// sleeping starts a child that sleeps until it is signalled, and returns how it ended.
func sleeping(t *testing.T) (*exec.Cmd, <-chan unix.WaitStatus) {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sleep: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	done := make(chan unix.WaitStatus, 1)
	go func() {
		_ = cmd.Wait()
		done <- unix.WaitStatus(cmd.ProcessState.Sys().(syscall.WaitStatus))
	}()
	return cmd, done
}

func TestGenerationStep(t *testing.T) {
	t.Run("SIGTERM is forwarded and arms the stop timer", func(t *testing.T) {
		r, _, _, _ := testRunner(policy.DefaultPolicy())
		cmd, done := sleeping(t)
		g := &generation{Gen: core.Gen{Number: 1}, run: r, pid: cmd.Process.Pid}
		g.step(core.EvSignal{Sig: unix.SIGTERM})
		defer g.stopTimers()
		if ws := <-done; !ws.Signaled() || ws.Signal() != unix.SIGTERM {
			t.Errorf("child ended %v, want SIGTERM", ws)
		}
		if g.stopTimer == nil || g.StopAsked != unix.SIGTERM {
			t.Errorf("stop timer %v, stopAsked %v; want armed, SIGTERM", g.stopTimer, g.StopAsked)
		}
	})
	t.Run("a recycle sends the stop signal and says so", func(t *testing.T) {
		p := policy.DefaultPolicy()
		p.StopSignal = unix.SIGINT
		r, log, _, _ := testRunner(p)
		cmd, done := sleeping(t)
		g := &generation{Gen: core.Gen{Number: 3}, run: r, pid: cmd.Process.Pid}
		r.core.Watch(&g.Gen)
		g.step(core.EvLifetime{Uptime: time.Minute})
		defer g.stopTimers()
		if ws := <-done; !ws.Signaled() || ws.Signal() != unix.SIGINT {
			t.Errorf("child ended %v, want SIGINT", ws)
		}
		if want := "cgrun: app: recycling generation 3: lifetime of 1m0s reached; sending SIGINT (group killed after 10s)\n"; log.String() != want {
			t.Errorf("log %q, want %q", log, want)
		}
		if g.Recycled != policy.Lifetime || g.stopTimer == nil {
			t.Errorf("recycled %q, stop timer %v; want lifetime, armed", g.Recycled, g.stopTimer)
		}
	})
	t.Run("--recycle-above: the look a second starts and stops", func(t *testing.T) {
		p := policy.DefaultPolicy()
		p.RecycleAbove = cgroup.Limit{Set: true, Value: 100 << 20}
		r, _, _, _ := testRunner(p)
		g := &generation{Gen: core.Gen{Number: 1}, run: r}
		r.core.Watch(&g.Gen)
		g.step(core.EvAboveTick{Now: time.Now(), Current: 0}) // not watching yet: nothing to stop
		g.step(atMark(p))
		if g.aboveTimer == nil {
			t.Fatal("the --recycle-above ticker did not start")
		}
		g.step(core.EvAboveTick{Now: time.Now(), Current: 0})
		if g.aboveTimer != nil {
			t.Error("the --recycle-above ticker runs on below the mark")
		}
	})
	t.Run("a trigger's recycle: the stop signal; a second one while it stops changes nothing", func(t *testing.T) {
		r, log, _, _ := testRunner(policy.DefaultPolicy())
		cmd, done := sleeping(t)
		g := &generation{Gen: core.Gen{Number: 2}, run: r, pid: cmd.Process.Pid}
		r.core.Watch(&g.Gen)
		g.recycle(policy.Health, "health check failed 3 times in a row (last: exit status 1)")
		g.recycle(policy.MemoryAbove, "memory at 120M held at or above 100M for 1m0s")
		defer g.stopTimers()
		if ws := <-done; !ws.Signaled() || ws.Signal() != unix.SIGTERM {
			t.Errorf("child ended %v, want SIGTERM", ws)
		}
		if want := "cgrun: app: recycling generation 2: health check failed 3 times in a row (last: exit status 1); sending SIGTERM (group killed after 10s)\n"; log.String() != want {
			t.Errorf("log %q, want %q", log, want)
		}
		if g.Recycled != policy.Health {
			t.Errorf("recycled %q, want health", g.Recycled)
		}
	})
	t.Run("a baseline's once-a-second sample reads memory.current", func(t *testing.T) {
		r, _, _, _ := testRunner(policy.DefaultPolicy())
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "memory.current"), []byte("52428800\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		g := &generation{Gen: core.Gen{Number: 1}, run: r, dir: dir, peak: cgroup.NewPeakMeter(dir)}
		g.sampleSteady()
		if v := r.steady.Values(); len(v) != 1 || v[0] != 50<<20 {
			t.Errorf("samples %v, want [50M]", v)
		}
	})
}

// atMark is a memory.high event at policy p's --recycle-above mark.
func atMark(p policy.Policy) core.EvMemory {
	return core.EvMemory{Event: oomwatch.Event{Time: time.Now(), Kind: oomwatch.High, Count: 1, MemoryCurrent: p.RecycleAbove.Value}}
}

// onOOM is the policy of --restart on-oom.
func onOOM() policy.Policy {
	p := policy.DefaultPolicy()
	p.Restart = policy.RestartOnOOM
	return p
}

// oomKilled is the end of generation n, which the OOM killer took after uptime.
func oomKilled(n int, at time.Time, uptime time.Duration) core.EvExited {
	return core.EvExited{Now: at, Number: n, Last: n, Status: unix.WaitStatus(unix.SIGKILL), Uptime: uptime, OOMKills: 1}
}

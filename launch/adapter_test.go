package launch

import (
	"bytes"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/launch/diagnose"
	"github.com/cgrun/cgrun/launch/policy"
	"github.com/cgrun/cgrun/launch/proc"
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
		core: newCore("app", p, cgroup.Limits{}, diagnose.Config{})}, log, stop, other
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
		other <- proc.RecycleSignal
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
		if why != "" || code != proc.ExitStartLimit || err == nil {
			t.Errorf("have %q, %d, %v; want exit %d", why, code, err, proc.ExitStartLimit)
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
		g := &generation{genState: genState{number: 1}, run: r, pid: cmd.Process.Pid}
		g.step(evSignal{unix.SIGTERM})
		defer g.stopTimers()
		if ws := <-done; !ws.Signaled() || ws.Signal() != unix.SIGTERM {
			t.Errorf("child ended %v, want SIGTERM", ws)
		}
		if g.stopTimer == nil || g.stopAsked != unix.SIGTERM {
			t.Errorf("stop timer %v, stopAsked %v; want armed, SIGTERM", g.stopTimer, g.stopAsked)
		}
	})
	t.Run("a recycle sends the stop signal and says so", func(t *testing.T) {
		p := policy.DefaultPolicy()
		p.StopSignal = unix.SIGINT
		r, log, _, _ := testRunner(p)
		cmd, done := sleeping(t)
		g := &generation{genState: genState{number: 3}, run: r, pid: cmd.Process.Pid}
		r.core.watch(&g.genState)
		g.step(evLifetime{time.Minute})
		defer g.stopTimers()
		if ws := <-done; !ws.Signaled() || ws.Signal() != unix.SIGINT {
			t.Errorf("child ended %v, want SIGINT", ws)
		}
		if want := "cgrun: app: recycling generation 3: lifetime of 1m0s reached; sending SIGINT (group killed after 10s)\n"; log.String() != want {
			t.Errorf("log %q, want %q", log, want)
		}
		if g.recycled != policy.Lifetime || g.stopTimer == nil {
			t.Errorf("recycled %q, stop timer %v; want lifetime, armed", g.recycled, g.stopTimer)
		}
	})
	t.Run("--recycle-above: the look a second starts and stops", func(t *testing.T) {
		p := policy.DefaultPolicy()
		p.RecycleAbove = cgroup.Limit{Set: true, Value: 100 << 20}
		r, _, _, _ := testRunner(p)
		g := &generation{genState: genState{number: 1}, run: r}
		r.core.watch(&g.genState)
		g.step(evAboveTick{time.Now(), 0}) // not watching yet: nothing to stop
		g.step(atMark(p))
		if g.aboveTimer == nil {
			t.Fatal("the --recycle-above ticker did not start")
		}
		g.step(evAboveTick{time.Now(), 0})
		if g.aboveTimer != nil {
			t.Error("the --recycle-above ticker runs on below the mark")
		}
	})
}

// atMark is a memory.high event at policy p's --recycle-above mark.
func atMark(p policy.Policy) evMemory {
	return evMemory{oomwatch.Event{Time: time.Now(), Kind: oomwatch.High, Count: 1, MemoryCurrent: p.RecycleAbove.Value}}
}

package launch

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/launch/diagnose"
	"github.com/cgrun/cgrun/launch/exitcode"
	"github.com/cgrun/cgrun/launch/internal/lockedbuf"
	"github.com/cgrun/cgrun/launch/policy"
	"github.com/cgrun/cgrun/launch/state"
	"golang.org/x/sys/unix"
)

func TestValidate(t *testing.T) {
	t.Run("what follows from the config is filled in", func(t *testing.T) {
		p := policy.DefaultPolicy()
		p.RecycleAbove = cgroup.Bytes(100 << 20)
		cfg := Config{Command: []string{"true"}, Policy: p}
		if err := Validate(&cfg); err != nil {
			t.Fatal(err)
		}
		if cfg.Name != "true" || !filepath.IsAbs(cfg.path) || cfg.Limits.MemoryHigh != p.RecycleAbove {
			t.Errorf("name %q, path %q, memory.high %v; want the command's name, its path, memory.high at --recycle-above", cfg.Name, cfg.path, cfg.Limits.MemoryHigh)
		}
	})
	dumps := t.TempDir()
	for _, c := range []struct {
		name string
		cfg  func(*Config)
		want string
		code int
	}{
		{"no command", func(c *Config) { c.Command = nil }, "no command given: cgrun run [flags] -- COMMAND [ARG...]", exitcode.Failure},
		{"a name with a slash", func(c *Config) { c.Name = "a/b" }, `--name "a/b": use 1 to 64 letters`, exitcode.Failure},
		{"advise with --recycle-on-high", func(c *Config) { c.Advise = &Advise{}; c.Policy.RecycleOnHigh = 3 },
			"--recycle-on-high cannot be combined with advise: the probe squeezes memory.high and would set it off; leave --recycle-on-high out while advising", exitcode.Failure},
		{"advise with --recycle-above", func(c *Config) { c.Advise = &Advise{}; c.Policy.RecycleAbove = cgroup.Bytes(1 << 30) }, "--recycle-above cannot be combined with advise", exitcode.Failure},
		{"advise with --recycle-on-stall", func(c *Config) { c.Advise = &Advise{}; c.Policy.RecycleStall = true }, "--recycle-on-stall cannot be combined with advise", exitcode.Failure},
		{"advise --for below 0", func(c *Config) { c.Advise = &Advise{For: -time.Second} }, "--for must not be negative", exitcode.Failure},
		{"--diagnose-headroom without --memory-max", func(c *Config) {
			c.Diagnose = diagnose.Config{Signal: unix.SIGUSR1, Dir: dumps, Timeout: time.Second, Headroom: 1 << 20}
		}, "--diagnose-headroom raises memory.max for the dump: give --memory-max too", exitcode.Failure},
		{"--diagnose-dir not a directory", func(c *Config) {
			c.Diagnose = diagnose.Config{Signal: unix.SIGUSR1, Dir: filepath.Join(dumps, "none"), Timeout: time.Second}
		}, "--diagnose-dir " + filepath.Join(dumps, "none") + ": not a directory", exitcode.Failure},
		{"a command not found", func(c *Config) { c.Command = []string{"cgrun-no-such-command"} }, "cgrun-no-such-command", 127},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := Config{Command: []string{"true"}, Policy: policy.DefaultPolicy()}
			c.cfg(&cfg)
			err := Validate(&cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v; want one containing %q", err, c.want)
			}
			if code := exitcode.Of(err); code != c.code {
				t.Errorf("exit code %d; want %d", code, c.code)
			}
		})
	}
}

// The state file: written on each update into the state directory, a failed write said once and
// retried, removed at exit and never written again.
func TestStateFile(t *testing.T) {
	dir := t.TempDir()
	log := &lockedbuf.Buffer{}
	r := &runner{cfg: &Config{Log: log}, name: "app", stateDir: dir,
		state: state.State{Name: "app", Pid: os.Getpid(), RestartsByReason: map[string]int{}, Totals: map[string]uint64{"oom_kill": 1}}}
	path := state.Path(dir, os.Getpid())
	r.updateState(func(s *state.State) { s.Generation = 2 })
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("no state file after an update: %v", err)
	}
	snap := r.snapshot()
	snap.Totals["oom_kill"] = 9 // the metrics' copy is their own
	if snap.Generation != 2 || r.state.Totals["oom_kill"] != 1 {
		t.Errorf("snapshot %+v; state's totals %v", snap, r.state.Totals)
	}

	// A write that fails: a file stands where the directory would be made.
	blocker := filepath.Join(dir, "blocker")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	r.stateDir = filepath.Join(blocker, "state")
	r.mu.Unlock()
	r.updateState(func(*state.State) {})
	r.updateState(func(*state.State) {})
	if n := strings.Count(log.String(), "cgrun: warning: cannot record state in "+r.stateDir); n != 1 {
		t.Errorf("log %q; want the warning once", log)
	}
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(log.String(), "cgrun: app: state recorded in "+r.stateDir+" again\n"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no retry succeeded; log %q", log)
		}
	}
	r.removeState()
	r.updateState(func(*state.State) {})
	if _, err := os.Stat(state.Path(r.stateDir, os.Getpid())); !os.IsNotExist(err) {
		t.Errorf("state file after removeState: %v", err)
	}
}

package launch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"golang.org/x/sys/unix"
)

// Config is one `cgrun run`.
type Config struct {
	Command  []string // the command and its arguments
	Env      []string // the command's environment
	Name     string   // names the payload group and cgrun's messages; default: the command's base name
	Limits   cgroup.Limits
	Parent   string    // --parent: nest under this group instead of cgrun's own
	NoClone3 bool      // start through the re-exec stub even where clone3 works
	Log      io.Writer // where cgrun's own lines go (stderr)
}

// teardownTimeout bounds how long cgrun waits for a killed group to empty.
const teardownTimeout = 10 * time.Second

// Run starts the command in a fresh group, supervises it until it exits, removes every trace of
// it, and returns the exit code a shell would show for it. An error means cgrun itself failed;
// Code(err) is the exit code for it.
func Run(cfg Config) (int, error) {
	if len(cfg.Command) == 0 {
		return ExitFailure, errors.New("no command given: cgrun run [flags] -- COMMAND [ARG...]")
	}
	name := cfg.Name
	if name == "" {
		name = DefaultName(cfg.Command[0])
	}
	if err := ValidName(name); err != nil {
		return ExitFailure, err
	}
	if err := cfg.Limits.Validate(); err != nil {
		return ExitFailure, err
	}
	path, err := LookPath(cfg.Command[0])
	if err != nil {
		return Code(err), err
	}
	h, err := cgroup.Detect()
	if err != nil {
		return ExitFailure, err
	}
	site, err := place(h, cfg.Parent)
	if err != nil {
		return ExitFailure, err
	}
	g := &generation{name: name, dir: filepath.Join(site.Dir, fmt.Sprintf("%s-%d.%d", name, os.Getpid(), 1))}
	code, err := g.run(h, cfg, path)
	if rerr := site.Release(); rerr != nil {
		fmt.Fprintf(cfg.Log, "cgrun: warning: %v\n", rerr)
	}
	return code, err
}

// place picks where payload groups go: under --parent when given, else in cgrun's own group.
func place(h cgroup.Hierarchy, parent string) (*cgroup.Site, error) {
	if parent != "" {
		return cgroup.Under(h, parent)
	}
	return cgroup.Nest(h, fmt.Sprintf("cgrun-%d", os.Getpid()))
}

// generation is one run of the command in one fresh group.
type generation struct {
	name string
	dir  string
}

func (g *generation) run(h cgroup.Hierarchy, cfg Config, path string) (int, error) {
	if err := cgroup.Create(g.dir); err != nil {
		return ExitFailure, err
	}
	defer func() {
		if err := g.teardown(); err != nil {
			fmt.Fprintf(cfg.Log, "cgrun: warning: %v\n", err)
		}
	}()
	if err := cfg.Limits.Apply(g.dir, h); err != nil {
		return ExitFailure, err
	}
	if err := setSubreaper(); err != nil {
		return ExitFailure, fmt.Errorf("become a subreaper: %w", err)
	}
	sigs, stop := notifySignals()
	defer stop()
	pid, err := Start(Child{Path: path, Argv: cfg.Command, Env: cfg.Env, GroupDir: g.dir, NoClone3: cfg.NoClone3})
	if err != nil {
		return Code(err), err
	}
	ws := supervise(pid, sigs)
	reclaimForeground()
	g.explain(ws, cfg.Limits, cfg.Log)
	return StatusCode(ws), nil
}

// supervise forwards signals to the child and reaps until the child has exited.
func supervise(pid int, sigs <-chan os.Signal) unix.WaitStatus {
	// The child may have exited before SIGCHLD was noticed; look once first.
	if ws, done := reap(pid); done {
		return ws
	}
	for sig := range sigs {
		switch sig {
		case unix.SIGCHLD:
			if ws, done := reap(pid); done {
				return ws
			}
		default:
			_ = unix.Kill(pid, sig.(unix.Signal)) // ESRCH: it is exiting; SIGCHLD follows
		}
	}
	panic("unreachable: the signal channel is never closed")
}

// explain says on log why the child died when the kernel's OOM killer was involved.
func (g *generation) explain(ws unix.WaitStatus, l cgroup.Limits, log io.Writer) {
	ev, err := cgroup.ReadMemoryEvents(g.dir)
	if err != nil || ev.OOMKill == 0 {
		return
	}
	max := "max"
	if m, err := cgroup.MemoryMax(g.dir); err == nil {
		max = m.Human()
	}
	peak := "unknown"
	if p, err := cgroup.MemoryPeak(g.dir); err == nil {
		peak = cgroup.FormatSize(p)
	}
	if ws.Signaled() && ws.Signal() == unix.SIGKILL {
		fmt.Fprintf(log, "cgrun: %s killed by the OOM killer (memory.max %s, peak %s)\n", g.name, max, peak)
		return
	}
	fmt.Fprintf(log, "cgrun: the OOM killer killed %d process(es) in %s's group (memory.max %s, peak %s)\n", ev.OOMKill, g.name, max, peak)
}

// teardown kills whatever is left in the group, waits until it is empty, reaps the orphans that
// came back to cgrun, and removes the group.
func (g *generation) teardown() error {
	ctx, cancel := context.WithTimeout(context.Background(), teardownTimeout)
	defer cancel()
	kerr := cgroup.Kill(ctx, g.dir)
	reap(0)
	if kerr != nil {
		return fmt.Errorf("kill what is left in %s: %w", g.dir, kerr)
	}
	return cgroup.Remove(g.dir)
}

// ValidName checks a --name: it becomes part of a directory name in cgroupfs.
func ValidName(name string) error {
	ok := len(name) >= 1 && len(name) <= 64 && !strings.HasPrefix(name, "cgroup.")
	for i := 0; ok && i < len(name); i++ {
		ok = nameChar(name[i]) && (i > 0 || name[i] != '.' && name[i] != '-')
	}
	if !ok {
		return fmt.Errorf("--name %q: use 1 to 64 letters, digits and _ . @ : + -, not starting with . or -", name)
	}
	return nil
}

func nameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_.@:+-", c) >= 0
}

// DefaultName derives a group name from the command: its base name, with characters cgroupfs
// names should not carry replaced by "_".
func DefaultName(command string) string {
	base := filepath.Base(command)
	b := []byte(base)
	for i, c := range b {
		if !nameChar(c) {
			b[i] = '_'
		}
	}
	if len(b) == 0 || b[0] == '.' || b[0] == '-' {
		b = append([]byte("_"), b...)
	}
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}

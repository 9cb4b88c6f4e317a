package launch

import (
	"fmt"
	"os"

	"github.com/cgrun/cgrun/launch/proc"
)

// shmRefused says, once per run, that a generation starts with the host's /dev/shm because the
// kernel refused its own (root in a container without CAP_SYS_ADMIN).
func (r *runner) shmRefused(err error) {
	r.shmOnce.Do(func() {
		fmt.Fprintf(r.cfg.Log, "cgrun: warning: %v; the command shares the host's %s, where what it leaves outlives the generation and its memory limit (--shared-shm: meant so)\n", err, proc.ShmDir)
	})
}

// privateShm is the /dev/shm each generation gets: a private tmpfs sized by --memory-max
// (tmpfs's default, half of RAM, without one) when cgrun is root, as mounting it needs; nil,
// the host's, with --shared-shm, where the host has no /dev/shm, or when cgrun is not root —
// then cgrun says once that what the command leaves there outlives it.
func privateShm(cfg Config) *proc.Shm {
	if cfg.SharedShm {
		return nil
	}
	if fi, err := os.Stat(proc.ShmDir); err != nil || !fi.IsDir() {
		return nil
	}
	if os.Geteuid() != 0 {
		fmt.Fprintf(cfg.Log, "cgrun: notice: the command shares the host's %s: only root can give it a private one; what it leaves there outlives the run and its memory limit (--shared-shm: meant so)\n", proc.ShmDir)
		return nil
	}
	shm := &proc.Shm{}
	if m := cfg.Limits.MemoryMax; m.Set && !m.Max {
		shm.Size = m.Value
	}
	return shm
}

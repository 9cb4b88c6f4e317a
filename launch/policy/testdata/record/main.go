// Command record samples a group every 50 ms for the thrash traces (see ../record.sh):
//
//	ms memory.current memory.max max-events refault activate restore some_us full_us oom_kill anon file pgscan pgsteal file_mapped shmem
//
// until the group is empty, an OOM kill, or SECONDS have passed.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/oomwatch"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: record GROUP SECONDS FILE")
		os.Exit(2)
	}
	dir := os.Args[1]
	secs, err := strconv.Atoi(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	f, err := os.Create(os.Args[3])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	w := bufio.NewWriter(f)
	start := time.Now()
	for tick := time.NewTicker(50 * time.Millisecond); time.Since(start) < time.Duration(secs)*time.Second; <-tick.C {
		cur, err := cgroup.MemoryCurrent(dir)
		if err != nil {
			break
		}
		max, _, _ := cgroup.ReadUint(dir, "memory.max")
		ev, _ := cgroup.ReadKeyed(dir, "memory.events")
		stat, _ := cgroup.MemoryStatKeys(dir)
		r := cgroup.RefaultsOf(stat)
		p, _ := oomwatch.ReadPressure(dir)
		fmt.Fprintf(w, "%d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d\n", time.Since(start).Milliseconds(), cur, max, ev["max"],
			r.Refault, r.Activate, r.Restore, p.SomeTotalUS, p.FullTotalUS, ev["oom_kill"], stat["anon"], stat["file"], stat["pgscan"], stat["pgsteal"], stat["file_mapped"], stat["shmem"])
		if ev["oom_kill"] > 0 {
			break
		}
		if ok, err := cgroup.Populated(dir); err != nil || !ok {
			break
		}
	}
	w.Flush()
	f.Close()
}

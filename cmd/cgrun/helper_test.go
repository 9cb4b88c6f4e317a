package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgrun/cgrun/cgroup"
)

// The test binary doubles as the payload of the integration tests: with CGRUNTEST_HELPER=1 it
// runs one of the helpers below instead of the tests. (cgrun strips CGRUN_* variables from the
// child's environment, hence the different prefix.)
func TestMain(m *testing.M) {
	if os.Getenv("CGRUNTEST_HELPER") == "1" {
		os.Exit(helper(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// helperReport is what a helper prints about the group it runs in, as one JSON line.
type helperReport struct {
	Pid    int               `json:"pid"`
	Group  string            `json:"group"` // as in /proc/self/cgroup
	Dir    string            `json:"dir"`
	Files  map[string]string `json:"files"`
	Events map[string]uint64 `json:"events"`
	Note   string            `json:"note,omitempty"`
}

func reportSelf(note string) {
	r := helperReport{Pid: os.Getpid(), Files: map[string]string{}, Note: note}
	if h, err := cgroup.Detect(); err == nil {
		r.Group, r.Dir = h.Self, h.SelfDir()
		// cgrun starts the command in the leaf "main" of its generation's group, which holds
		// the limits: report that group.
		if filepath.Base(r.Dir) == "main" {
			r.Group, r.Dir = filepath.Dir(r.Group), filepath.Dir(r.Dir)
		}
		for _, f := range []string{"memory.max", "memory.high", "memory.low", "memory.swap.max", "memory.oom.group", "pids.max", "memory.peak", "memory.min", "cpu.max", "cpu.weight"} {
			r.Files[f], _ = cgroup.ReadFile(r.Dir, f)
		}
		r.Events, _ = cgroup.ReadKeyed(r.Dir, "memory.events")
	}
	b, _ := json.Marshal(r)
	fmt.Printf("%s\n", b)
}

// ownFiles are the files of its own group that runtimes read to size themselves.
func ownFiles() []string {
	return []string{"memory.max", "memory.high", "memory.swap.max", "pids.max", "cpu.max", "cpu.weight", "memory.oom.group"}
}

func helper(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "helper: no mode")
		return 2
	}
	arg := func(i int) int {
		n, _ := strconv.Atoi(args[i])
		return n
	}
	switch args[0] {
	case "report": // print the group and its settings
		reportSelf("")
		return 0
	case "own": // print the files of the group it runs in, as a runtime reads them, and GOMAXPROCS
		h, err := cgroup.Detect()
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper own:", err)
			return 3
		}
		files := map[string]string{"group": h.Self, "gomaxprocs": strconv.Itoa(runtime.GOMAXPROCS(0))}
		for _, f := range ownFiles() {
			files[f], _ = cgroup.ReadFile(h.SelfDir(), f)
		}
		b, _ := json.Marshal(files)
		fmt.Printf("%s\n", b)
		return 0
	case "exit": // exit N
		return arg(1)
	case "holdalloc": // holdalloc MB MS: touch MB, print RssAnon in KiB, hold it MS milliseconds
		b := make([]byte, arg(1)<<20)
		for j := 0; j < len(b); j += 4096 {
			b[j] = 1
		}
		fmt.Println(rssAnon())
		time.Sleep(time.Duration(arg(2)) * time.Millisecond)
		b[0] = 2
		return 0
	case "spike": // spike MB HOLD SLEEP: touch MB, print RssAnon in KiB, hold it HOLD ms, give it back to the kernel, print "freed", sleep SLEEP ms
		b := make([]byte, arg(1)<<20)
		for j := 0; j < len(b); j += 4096 {
			b[j] = 1
		}
		fmt.Println(rssAnon())
		time.Sleep(time.Duration(arg(2)) * time.Millisecond)
		b[0] = 2
		b = nil
		debug.FreeOSMemory()
		fmt.Println("freed")
		time.Sleep(time.Duration(arg(3)) * time.Millisecond)
		return 0
	case "spread": // spread K MB: K children hold MB each at the same time; print their RssAnon sum
		self, _ := os.Executable()
		var cmds []*exec.Cmd
		var outs []*strings.Builder
		for i := 0; i < arg(1); i++ {
			c := exec.Command(self, "holdalloc", args[2], "3000")
			var out strings.Builder
			c.Stdout, c.Stderr = &out, os.Stderr
			if err := c.Start(); err != nil {
				fmt.Fprintln(os.Stderr, "helper spread:", err)
				return 3
			}
			cmds, outs = append(cmds, c), append(outs, &out)
		}
		sum := rssAnon()
		for i, c := range cmds {
			c.Wait()
			n, _ := strconv.Atoi(strings.TrimSpace(outs[i].String()))
			sum += n
		}
		fmt.Printf("anon_sum_kib %d\n", sum)
		return 0
	case "linger": // linger MS CODE: sleep MS milliseconds, then exit CODE
		time.Sleep(time.Duration(arg(1)) * time.Millisecond)
		return arg(2)
	case "kill": // die of signal N (through a shell: the Go runtime catches some signals itself)
		err := syscall.Exec("/bin/sh", []string{"sh", "-c", "kill -" + args[1] + " $$; sleep 5"}, os.Environ())
		fmt.Fprintln(os.Stderr, "helper kill:", err)
		return 99
	case "alloc": // alloc MB [SECONDS [quiet]]: touch MB (stop after SECONDS), report (unless quiet), exit 0
		deadline := time.Now().Add(time.Hour)
		if len(args) > 2 {
			deadline = time.Now().Add(time.Duration(arg(2)) * time.Second)
		}
		// The deadline is checked on every page: past memory.high each page fault may be
		// throttled for up to 2 s (the kernel's cap), so a test stays bounded in time.
		var keep [][]byte
		pages := 0
		for i := 0; i < arg(1) && time.Now().Before(deadline); i++ {
			b := make([]byte, 1<<20)
			for j := 0; j < len(b) && time.Now().Before(deadline); j += 4096 {
				b[j] = 1
				pages++
			}
			keep = append(keep, b)
		}
		if len(args) > 3 && args[3] == "quiet" {
			// Past memory.high every further charge is throttled, reporting included: leave.
			return 0
		}
		reportSelf(fmt.Sprintf("allocated %dM", pages*4096>>20))
		return 0
	case "leak": // allocate 4 MB every 10 ms, forever
		var keep [][]byte
		for {
			b := make([]byte, 4<<20)
			for j := 0; j < len(b); j += 4096 {
				b[j] = 1
			}
			keep = append(keep, b)
			time.Sleep(10 * time.Millisecond)
		}
	case "drip": // drip MB MS: print "ready", then touch MB more every MS milliseconds, forever
		// By the clock, not by ticks: on a busy guest a late tick is caught up, so that it has
		// touched MB for every MS since "ready" whatever the scheduler did.
		fmt.Println("ready")
		var keep [][]byte
		start, every := time.Now(), time.Duration(arg(2))*time.Millisecond
		for {
			for len(keep) <= int(time.Since(start)/every) {
				b := make([]byte, arg(1)<<20)
				for j := 0; j < len(b); j += 4096 {
					b[j] = 1
				}
				keep = append(keep, b)
			}
			time.Sleep(every - time.Since(start)%every)
		}
	case "hog": // hog MB: touch up to MB (throttled or not), and exit 0 on SIGTERM
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM)
		go func() {
			var keep [][]byte
			for i := 0; i < arg(1); i++ {
				b := make([]byte, 1<<20)
				for j := 0; j < len(b); j += 4096 {
					b[j] = 1
				}
				keep = append(keep, b)
			}
			select {}
		}()
		<-ch
		return 0
	case "trap": // print each forwarded signal's number; exit 0 on SIGTERM
		ch := make(chan os.Signal, 16)
		signal.Notify(ch, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGHUP, syscall.SIGWINCH, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM)
		fmt.Println("ready")
		for s := range ch {
			fmt.Println(int(s.(syscall.Signal)))
			if s == syscall.SIGTERM {
				return 0
			}
		}
	case "sleep": // report, then sleep N seconds
		reportSelf("")
		time.Sleep(time.Duration(arg(1)) * time.Second)
		return 0
	case "daemon": // double-fork a setsid daemon, print its pid, and exit 0 (or sleep with "stay")
		if os.Getenv("CGRUNTEST_DAEMON") == "1" {
			time.Sleep(time.Hour)
			return 0
		}
		self, _ := os.Executable()
		c := exec.Command("/bin/sh", "-c", `setsid "$0" daemon </dev/null >/dev/null 2>&1 & echo $!`, self)
		c.Env = append(os.Environ(), "CGRUNTEST_DAEMON=1")
		out, err := c.Output()
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper daemon:", err)
			return 3
		}
		reportSelf(strings.TrimSpace(string(out)))
		if len(args) > 1 && args[1] == "stay" {
			time.Sleep(time.Hour)
		}
		return 0
	case "forks": // start N sleeping children; print how many started; kill them
		var started []*exec.Cmd
		var lastErr error
		for i := 0; i < arg(1); i++ {
			c := exec.Command("/bin/sleep", "30")
			if err := c.Start(); err != nil {
				lastErr = err
				continue
			}
			started = append(started, c)
		}
		fmt.Printf("started %d err %v\n", len(started), lastErr)
		for _, c := range started {
			c.Process.Kill()
			c.Wait()
		}
		return 0
	case "work": // work HOT_MB COLD_MB ONCE_FILE HOT_FILE SECONDS: see work
		return work(args[1:])
	case "serve": // serve DELAY_MS ready|file|never LOG: see serve
		return serve(arg(1), args[2], args[3])
	}
	fmt.Fprintln(os.Stderr, "helper: unknown mode", args[0])
	return 2
}

// rssAnon is this process's resident anonymous memory in KiB: what it allocated itself, without
// the program's file pages that several processes share.
func rssAnon() int {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "RssAnon:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}

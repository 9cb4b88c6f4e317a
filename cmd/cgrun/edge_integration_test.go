package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgrun/cgrun/launch/listen"
	"golang.org/x/sys/unix"
)

// The edge tests (issue 23, round two of the --user boundary): what the sandboxed command, or
// another user on the host, can do to cgrun's sockets, its /dev/shm and its metrics endpoint.

// asUser is the prefix that runs a command as www-data (uid 33) or nobody (65534), without
// supplementary groups.
func asUser(uid int) []string {
	return []string{"setpriv", "--reuid", strconv.Itoa(uid), "--regid", strconv.Itoa(uid), "--clear-groups"}
}

// python3OrFail is Debian's python3, which www-data can run (pyenv's shims are root's).
func python3OrFail(t *testing.T) string {
	t.Helper()
	const py = "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		t.Fatalf("python3 is needed (Debian's package python3): %v", err)
	}
	return py
}

// setSysctl writes value into a /proc/sys file of the guest for the test, and puts the old one back.
func setSysctl(t *testing.T, file, value string) {
	t.Helper()
	old, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(value), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.WriteFile(file, old, 0o644) })
}

// raceSocketPy is the racer of TestEdgeListenChownRace, run as www-data: woken by inotify
// whenever a file appears in DIR (a socket bound there, or one renamed into place), it swaps
// DIR/app.sock, when that is a socket, for a hard link to DIR/victim (root's); on SIGTERM it
// prints how many swaps it made. Woken, not spinning: on the guest's one CPU the kernel runs
// the woken racer at once, inside cgrun's window between bind and chown.
const raceSocketPy = `
import ctypes, os, signal, stat, sys
d = sys.argv[1]
sock, link, victim = d + '/app.sock', d + '/.link', d + '/victim'
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init1(0)
IN_CREATE, IN_MOVED_TO, IN_ATTRIB = 0x100, 0x80, 0x4
if fd < 0 or libc.inotify_add_watch(fd, d.encode(), IN_CREATE | IN_MOVED_TO | IN_ATTRIB) < 0:
    sys.exit('inotify: errno %d' % ctypes.get_errno())
n = 0
signal.signal(signal.SIGTERM, lambda *a: (print(n, flush=True), os._exit(0)))
print('racing', flush=True)
while True:
    os.read(fd, 65536)
    try:
        if stat.S_ISSOCK(os.lstat(sock).st_mode):
            os.link(victim, link)
            os.rename(link, sock)
            n += 1
    except OSError:
        pass
`

// TestEdgeListenChownRace: a www-data racer that swaps the fresh --listen socket for a hard link
// to a root file, in a directory www-data owns, never gets that file chowned to it (or its
// mode changed): over 1,000 binds by listen.Bind, the code cgrun runs (milliseconds each), and
// then 20 runs of the real cgrun run --user www-data --listen (a second or so each in UML).
func TestEdgeListenChownRace(t *testing.T) {
	requireCgroup2(t)
	py := python3OrFail(t)
	// A hard link to another user's file needs fs.protected_hardlinks=0: the kernel's default,
	// which hosts without Debian's sysctl settings keep.
	setSysctl(t, "/proc/sys/fs/protected_hardlinks", "0")
	dir, err := os.MkdirTemp("", "cgrun-edge-race-") // on the guest's tmpfs: www-data's own files
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chown(dir, 33, 33); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("root's\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	racer := exec.Command(asUser(33)[0], append(asUser(33)[1:], py, "-c", raceSocketPy, dir)...)
	out, err := racer.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	racer.Stderr = os.Stderr
	if err := racer.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { racer.Process.Kill(); racer.Wait() }()
	lines := bufio.NewScanner(out)
	if !lines.Scan() || lines.Text() != "racing" {
		t.Fatalf("the racer did not start: %q", lines.Text())
	}
	sock := filepath.Join(dir, "app.sock")
	clearLink := func() {
		if fi, err := os.Lstat(sock); err == nil && fi.Mode()&os.ModeSocket == 0 {
			os.Remove(sock) // the racer's link from the round before: cgrun refuses a non-socket
		}
	}
	check := func(round string, said string) {
		t.Helper()
		var st unix.Stat_t
		if err := unix.Stat(victim, &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != 0 || st.Gid != 0 || st.Mode&0o7777 != 0o600 {
			t.Fatalf("%s: the racer's hard link made cgrun change root's file %s to uid %d gid %d mode %#o (want 0 0 0600) %s",
				round, victim, st.Uid, st.Gid, st.Mode&0o7777, said)
		}
	}
	a, err := listen.Parse("unix:" + sock)
	if err != nil {
		t.Fatal(err)
	}
	bound := 0
	for i := 1; i <= 1000; i++ {
		clearLink()
		if s, err := listen.Bind([]listen.Addr{a}, &listen.Owner{UID: 33, GID: 33}); err == nil {
			bound++
			s.Close()
		}
		check(fmt.Sprintf("bind %d", i), "")
	}
	codes := map[int]int{}
	for i := 1; i <= 20; i++ {
		clearLink()
		r := runWith(t, nil, nil, "run", "--name", "edge-race", "--user", "www-data", "--listen", "unix:"+sock, "--", "/bin/true")
		codes[r.code]++
		check(fmt.Sprintf("cgrun run %d", i), "; cgrun said "+strconv.Quote(r.stderr))
	}
	racer.Process.Signal(syscall.SIGTERM)
	swaps := -1
	if lines.Scan() {
		swaps, _ = strconv.Atoi(lines.Text())
	}
	t.Logf("1000 binds (%d bound), 20 runs of cgrun (exit codes %v); the racer swapped the socket %d times", bound, codes, swaps)
	if swaps < 100 {
		t.Errorf("the racer swapped the socket %d times: the test raced too little", swaps)
	}
	if codes[0] == 0 || bound < 500 {
		t.Errorf("%d binds of 1000 succeeded, and no run of cgrun ran its command (exit codes %v)", bound, codes)
	}
}

// meminfoShmem is /proc/meminfo's Shmem: the host's shared memory (every tmpfs) in bytes.
func meminfoShmem(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "Shmem:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no Shmem line in /proc/meminfo")
	return 0
}

// hostShm lists the host's /dev/shm.
func hostShm(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir("/dev/shm")
	if err != nil {
		t.Fatalf("the guest has no /dev/shm: %v", err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// shmSettles waits up to 5 s for the host's Shmem to come back within slack of before; it
// returns the last value.
func shmSettles(t *testing.T, before, slack int64) int64 {
	t.Helper()
	var now int64
	eventually(5*time.Second, func() bool { now = meminfoShmem(t); return now-before < slack })
	return now
}

// TestEdgeShmDiesWithGeneration: seven generations under --memory-max 32M each write 24M to
// /dev/shm and fail; afterwards the host's /dev/shm has no new file and its shared memory is
// where it was (before: 168M left outside every limit). With --shared-shm the file stays in
// the host's /dev/shm, as it did before.
func TestEdgeShmDiesWithGeneration(t *testing.T) {
	h := requireCgroup2(t)
	groups := groupsUnder(t, h.SelfDir())
	names, shmem := hostShm(t), meminfoShmem(t)
	defer func() { // what the command left in the host's /dev/shm, where it could
		for _, n := range hostShm(t) {
			if !slices.Contains(names, n) {
				os.Remove("/dev/shm/" + n)
			}
		}
	}()
	script := `dd if=/dev/zero of=/dev/shm/cgrun-edge-$$ bs=1M count=24 2>/dev/null || echo "dd: $?"; exit 3`
	r := runWith(t, nil, nil, "run", "--name", "edge-shm", "--memory-max", "32M", "--restart", "always",
		"--max-restarts", "6", "--restart-delay", "0", "--", "sh", "-c", script)
	if strings.Contains(r.stdout, "dd:") || !strings.Contains(r.stderr, "generation 7") || !strings.Contains(r.stderr, "exited with status 3") {
		t.Fatalf("exit %d, stdout %q: want 7 generations that wrote 24M each and exited 3; cgrun said:\n%s", r.code, r.stdout, r.stderr)
	}
	after := shmSettles(t, shmem, 16<<20)
	if left := slices.DeleteFunc(hostShm(t), func(n string) bool { return slices.Contains(names, n) }); len(left) > 0 {
		t.Errorf("files left in the host's /dev/shm: %v", left)
	}
	if after-shmem >= 16<<20 {
		t.Errorf("the host's shared memory grew by %dM over 7 generations that wrote 24M each to /dev/shm: want it freed with each generation", (after-shmem)>>20)
	}
	assertNothingLeft(t, h, groups)

	// --shared-shm: the host's /dev/shm, as before.
	r = runWith(t, nil, nil, "run", "--name", "edge-shm-shared", "--shared-shm", "--memory-max", "32M", "--", "sh", "-c",
		`dd if=/dev/zero of=/dev/shm/cgrun-edge-shared bs=1M count=4 2>/dev/null; exit 3`)
	defer os.Remove("/dev/shm/cgrun-edge-shared")
	if fi, err := os.Stat("/dev/shm/cgrun-edge-shared"); r.code != 3 || err != nil || fi.Size() != 4<<20 {
		t.Errorf("--shared-shm: exit %d, the host's /dev/shm/cgrun-edge-shared: %v, %v; want the 4M file there; cgrun said:\n%s", r.code, fi, err, r.stderr)
	}
}

// TestEdgeShmIsLimited: a generation cannot keep more in its /dev/shm than --memory-max: the
// tmpfs is that large, and its pages are the group's.
func TestEdgeShmIsLimited(t *testing.T) {
	requireCgroup2(t)
	shmem := meminfoShmem(t)
	defer os.Remove("/dev/shm/big") // where the command could leave it in the host's
	r := runWith(t, nil, nil, "run", "--name", "edge-shm-limit", "--memory-max", "32M", "--", "sh", "-c",
		`dd if=/dev/zero of=/dev/shm/big bs=1M count=64 2>/dev/null; echo "size=$(stat -c %s /dev/shm/big)"; df -k /dev/shm | tail -1`)
	var size int64 = -1
	for _, line := range strings.Split(r.stdout, "\n") {
		if v, ok := strings.CutPrefix(line, "size="); ok {
			size, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	t.Logf("exit %d; stdout %q", r.code, r.stdout)
	switch {
	case r.code == 0 && (size < 0 || size > 32<<20):
		t.Errorf("the command kept %d bytes in /dev/shm under --memory-max 32M; stdout %q", size, r.stdout)
	case r.code != 0 && !strings.Contains(r.stderr, "OOM"):
		t.Errorf("exit %d, not an OOM kill; stdout %q, cgrun said:\n%s", r.code, r.stdout, r.stderr)
	}
	if after := shmSettles(t, shmem, 8<<20); after-shmem >= 8<<20 {
		t.Errorf("the host's shared memory grew by %dM", (after-shmem)>>20)
	}
}

// shmWriterPy is a POSIX shared-memory writer as Chromium's and puppeteer's are: shm_open (Python's
// multiprocessing.shared_memory) of NAME, SIZE MiB written through mmap, and left behind as a
// crashed browser leaves it (no unlink; the resource tracker is told to forget it). It prints
// the segment's path, whether it is in the host's /dev/shm, and its group's memory.stat shmem.
const shmWriterPy = `
import os, sys
from multiprocessing import shared_memory, resource_tracker
name, mb = sys.argv[1], int(sys.argv[2])
m = shared_memory.SharedMemory(name=name, create=True, size=mb << 20)
m.buf[:] = b'x' * (mb << 20)
resource_tracker.unregister(m._name, 'shared_memory')
group = '/sys/fs/cgroup' + open('/proc/self/cgroup').read().split('::', 1)[1].strip()
stat = dict(l.split() for l in open(group + '/memory.stat'))
print('uid=%d exists=%s shmem=%s' % (os.getuid(), os.path.exists('/dev/shm/' + name), stat['shmem']), flush=True)
os._exit(0)
`

// TestEdgeShmPosixWriter: a POSIX shared-memory writer, as root and as www-data: its segment is
// charged to its group (memory.stat shmem), and gone from everywhere once the run ends.
func TestEdgeShmPosixWriter(t *testing.T) {
	h := requireCgroup2(t)
	py := python3OrFail(t)
	for _, tc := range []struct {
		name  string
		flags []string
		uid   string
	}{
		{"root", nil, "0"},
		{"user", []string{"--user", "www-data"}, "33"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			groups := groupsUnder(t, h.SelfDir())
			shmem := meminfoShmem(t)
			seg := "cgrun-edge-py-" + tc.name
			args := append(append([]string{"run", "--name", "edge-shm-py", "--memory-max", "64M"}, tc.flags...), "--", py, "-c", shmWriterPy, seg, "16")
			r := runWith(t, nil, nil, args...)
			f := userFacts(strings.ReplaceAll(strings.TrimSpace(r.stdout), " ", "\n"))
			charged, _ := strconv.ParseInt(f["shmem"], 10, 64)
			// memory.stat is flushed from per-CPU counters in batches: 5.10 showed 16K short.
			if r.code != 0 || f["uid"] != tc.uid || f["exists"] != "True" || charged < 15<<20 {
				t.Fatalf("exit %d, stdout %q: want uid %s, the segment in its /dev/shm, and 16M of shmem in its group; cgrun said:\n%s", r.code, r.stdout, tc.uid, r.stderr)
			}
			if _, err := os.Stat("/dev/shm/" + seg); err == nil {
				os.Remove("/dev/shm/" + seg)
				t.Errorf("the segment %s outlived the run in the host's /dev/shm", seg)
			}
			if after := shmSettles(t, shmem, 8<<20); after-shmem >= 8<<20 {
				t.Errorf("the host's shared memory grew by %dM", (after-shmem)>>20)
			}
			assertNothingLeft(t, h, groups)
		})
	}
}

// TestEdgeShmRefusedWarnsOnce: root without CAP_SYS_ADMIN (as in a container) cannot make a
// mount namespace: cgrun says so once for the run, and its generations run with the host's
// /dev/shm.
func TestEdgeShmRefusedWarnsOnce(t *testing.T) {
	requireCgroup2(t)
	defer os.Remove("/dev/shm/cgrun-edge-refused")
	r := runWith(t, []string{"setpriv", "--bounding-set", "-sys_admin", "--inh-caps", "-sys_admin"}, nil,
		"run", "--name", "edge-shm-refused", "--memory-max", "32M", "--restart", "on-failure", "--max-restarts", "1", "--",
		"sh", "-c", `echo x >>/dev/shm/cgrun-edge-refused; exit 3`)
	b, err := os.ReadFile("/dev/shm/cgrun-edge-refused")
	if err != nil || string(b) != "x\nx\n" {
		t.Errorf("the host's /dev/shm/cgrun-edge-refused holds %q (%v): want a line from each of the 2 generations", b, err)
	}
	if n := strings.Count(r.stderr, "warning: private /dev/shm: unshare the mount namespace: operation not permitted"); n != 1 || !strings.Contains(r.stderr, "generation 2") {
		t.Errorf("exit %d: want one warning for the run and 2 generations; cgrun said:\n%s", r.code, r.stderr)
	}
}

// nextOf waits for `cgrun ps --json` to show a next generation of the sandbox named name, and
// returns its command's pid.
func nextOf(t *testing.T, name string) int {
	t.Helper()
	var pid int
	if !eventually(15*time.Second, func() bool {
		out, err := exec.Command(cgrunBin(t), "ps", "--json").Output()
		var boxes []struct {
			Name string `json:"name"`
			Next *struct {
				ChildPid int `json:"child_pid"`
			} `json:"next"`
		}
		if err != nil || json.Unmarshal(out, &boxes) != nil {
			return false
		}
		for _, b := range boxes {
			if b.Name == name && b.Next != nil && b.Next.ChildPid > 0 {
				pid = b.Next.ChildPid
				return true
			}
		}
		return false
	}) {
		t.Fatalf("cgrun ps never showed a next generation of %s", name)
	}
	return pid
}

// environOf is the NOTIFY_SOCKET in process pid's environment.
func notifySocketOf(t *testing.T, pid int) string {
	t.Helper()
	var sock string
	eventually(5*time.Second, func() bool {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		for _, kv := range strings.Split(string(b), "\x00") {
			if v, ok := strings.CutPrefix(kv, "NOTIFY_SOCKET="); ok {
				sock = v
			}
		}
		return sock != ""
	})
	if sock == "" {
		t.Fatalf("process %d has no NOTIFY_SOCKET", pid)
	}
	return sock
}

// TestEdgeOverlapStrangerCannotReady: nobody, who can find the next generation's NOTIFY_SOCKET
// (it is listed in /proc/net/unix, and anyone may send to it), sends READY=1 to it — as
// itself and claiming the next generation's pid — and the overlap goes on until
// --ready-timeout, as for a generation that never said it.
func TestEdgeOverlapStrangerCannotReady(t *testing.T) {
	requireCgroup2(t)
	log := filepath.Join(t.TempDir(), "serve.log")
	cmd, _, errb := startServe(t, []string{"--overlap", "--ready-timeout", "4s", "--name", "edge-stranger"}, "0", "never", log)
	cmd.Process.Signal(syscall.SIGALRM)
	next := nextOf(t, "edge-stranger")
	sock := notifySocketOf(t, next)
	for _, extra := range [][]string{nil, {"--pid=" + strconv.Itoa(next)}} {
		argv := append(append(asUser(65534), "env", "NOTIFY_SOCKET="+sock, "systemd-notify", "--ready"), extra...)
		out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		t.Logf("nobody: systemd-notify --ready %v: %v %s", extra, err, bytes.TrimSpace(out))
	}
	if !eventually(30*time.Second, func() bool {
		return strings.Contains(errb.String(), "giving up the overlap") || strings.Contains(errb.String(), "generation 2 is ready")
	}) {
		t.Fatalf("the overlap never ended; cgrun said:\n%s", errb.String())
	}
	cmd.Process.Signal(syscall.SIGTERM)
	waitCode(t, cmd)
	if strings.Contains(errb.String(), "generation 2 is ready") || !strings.Contains(errb.String(), "giving up the overlap with generation 2: not ready after --ready-timeout 4s") {
		t.Errorf("nobody's READY=1 ended the overlap, or it did not end at --ready-timeout; cgrun said:\n%s", errb.String())
	}
}

// nodeNotifyJS is README's recipe for an app without an sd_notify library: once it listens on
// the --listen socket it runs systemd-notify --ready, synchronously, as a NestJS app's
// bootstrap does (a failing systemd-notify throws, and the app dies of it).
const nodeNotifyJS = `
const http = require('http');
const { execFileSync } = require('child_process');
const server = http.createServer((req, res) => res.end(String(process.pid)));
server.listen({fd: 3}, () => {
  if (process.env.NOTIFY_SOCKET) execFileSync('systemd-notify', ['--ready'], {stdio: 'inherit'});
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
`

// TestEdgeOverlapSystemdNotifyNode: a Node app run as www-data under --overlap says READY=1
// through the real systemd-notify (which then waits on BARRIER=1 for cgrun to close its fd):
// three takeovers, each clean — no app dies after its takeover, nothing restarts as a failure.
func TestEdgeOverlapSystemdNotifyNode(t *testing.T) {
	requireCgroup2(t)
	node := nodeOrFail(t)
	if _, err := exec.LookPath("systemd-notify"); err != nil {
		t.Fatalf("systemd-notify is needed (Debian's package systemd): %v", err)
	}
	js := filepath.Join(sharedDir(t), "app.js")
	if err := os.WriteFile(js, []byte(nodeNotifyJS), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	cmd := exec.Command(cgrunBin(t), "run", "--name", "edge-node", "--user", "www-data", "--overlap", "--ready-timeout", "30s",
		"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--restart-delay", "0", "--max-restarts", "0", "--", node, js)
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &errb, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	waitAnswers(t, url, &errb)
	answer := func() string {
		r, err := oneShot.Get(url)
		if err != nil {
			return ""
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return string(b)
	}
	for n := 2; n <= 4; n++ {
		cmd.Process.Signal(syscall.SIGALRM)
		took := fmt.Sprintf("generation %d (pid ", n)
		if !eventually(60*time.Second, func() bool {
			s := errb.String()
			i := strings.Index(s, took)
			return i >= 0 && strings.Contains(s[i:], "took over")
		}) {
			t.Fatalf("generation %d never took over; cgrun said:\n%s", n, errb.String())
		}
		// The new generation serves on, a while after its takeover (the crash came at once).
		time.Sleep(time.Second)
		if a := answer(); a == "" {
			t.Fatalf("no answer after generation %d took over; cgrun said:\n%s", n, errb.String())
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	waitCode(t, cmd)
	s := errb.String()
	for n := 2; n <= 4; n++ {
		if !strings.Contains(s, fmt.Sprintf("generation %d is ready after", n)) {
			t.Errorf("generation %d was not ready by its READY=1", n)
		}
	}
	if strings.Contains(s, "failure") || strings.Contains(s, "giving up") || strings.Contains(s, "Failed to") || strings.Contains(s, "generation 5") {
		t.Errorf("a takeover was not clean (systemd-notify failed, the app died, or a generation restarted); cgrun said:\n%s", s)
	}
}

// TestEdgeMetricsIdleConnections: 64 idle connections to the metrics endpoint (what the
// sandboxed command can open on loopback) and as many that sent half a request: every scrape
// is still answered, the median of three within a second.
func TestEdgeMetricsIdleConnections(t *testing.T) {
	requireCgroup2(t)
	cmd, _ := startSandbox(t, "edge-metrics", []string{"--metrics-addr", "127.0.0.1:0"}, "sleep", "120")
	defer func() { cmd.Process.Signal(syscall.SIGTERM); waitCode(t, cmd) }()
	b := find(psJSON(t), "edge-metrics")
	if b == nil || b.MetricsAddr == "" {
		t.Fatalf("no metrics address for edge-metrics: %+v", b)
	}
	fetchMetrics(t, b.MetricsAddr) // Prometheus scrapes all along: the first scrape's set-up is not what is measured
	for _, sent := range []string{"", "GET /metrics HTTP/1.1\r\nHost: x\r\n"} {
		var held []net.Conn
		for i := 0; i < 64; i++ {
			c, err := net.Dial("tcp", b.MetricsAddr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write([]byte(sent))
			held = append(held, c)
		}
		// Held, not just opened: the guest's one CPU has accepted them all (and closed the
		// oldest 48) before the scrapes come, as when a command holds them between scrapes.
		time.Sleep(500 * time.Millisecond)
		// Each scrape must be answered (before, none was: the 8 slots went to the idle
		// connections for up to 60 s each), and the median of three within a second; a single
		// scrape may take longer on a loaded host, so it is allowed 3 s.
		client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		var took []time.Duration
		for i := 1; i <= 3; i++ {
			start := time.Now()
			resp, err := client.Get("http://" + b.MetricsAddr + "/metrics")
			if err != nil {
				t.Fatalf("scrape %d beside 64 connections that sent %q: %v", i, sent, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			took = append(took, time.Since(start))
			if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`cgrun_generation{name="edge-metrics"} 1`)) {
				t.Errorf("scrape %d: %s\n%s", i, resp.Status, grepCgrun(body))
			}
			t.Logf("scrape %d beside 64 connections that sent %q: %v", i, sent, took[i-1])
		}
		slices.Sort(took)
		if took[1] > time.Second {
			t.Errorf("scrapes beside 64 connections that sent %q took %v: want the median within 1 s", sent, took)
		}
		for _, c := range held {
			c.Close()
		}
	}
}

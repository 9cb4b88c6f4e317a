package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The --listen tests (issue 18): cgrun holds the sockets, so recycles refuse no connection.

// nodeServerJS is an HTTP server that answers its pid. It takes fd 3 when LISTEN_FDS is set (the
// one line an app changes for --listen) — after checking LISTEN_PID as socket-activation
// libraries do — and binds 127.0.0.1:PORT itself otherwise. On SIGTERM it stops accepting and
// exits once its requests are answered, as a well-behaved server does. GET /oom allocates until
// the kernel kills it.
const nodeServerJS = `
const http = require('http');
const fds = process.env.LISTEN_FDS;
if (fds && process.env.LISTEN_PID !== String(process.pid)) {
  console.error('LISTEN_PID ' + process.env.LISTEN_PID + ' is not my pid ' + process.pid);
  process.exit(3);
}
const keep = [];
const server = http.createServer((req, res) => {
  if (req.url === '/oom') { for (;;) keep.push(Buffer.alloc(1 << 20, 1)); }
  res.end(String(process.pid));
});
server.listen(fds ? {fd: 3} : {port: +process.argv[2], host: '127.0.0.1'});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
`

// freePort is a TCP port on 127.0.0.1 that nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen on loopback (is lo up in the guest?): %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// loadStats is what a load client saw.
type loadStats struct {
	mu      sync.Mutex
	ok      int
	refused int
	failed  int // any other error
	errs    []string
	pids    map[string]int // answers by the pid that gave them
	last    string         // the pid of the latest answer
	wait    func()         // returns once every client has stopped
}

func (s *loadStats) add(pid string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err == nil:
		s.ok++
		s.pids[pid]++
		s.last = pid
	case errors.Is(err, syscall.ECONNREFUSED):
		s.refused++
	default:
		s.failed++
		if len(s.errs) < 5 {
			s.errs = append(s.errs, fmt.Sprintf("%d: %v", time.Now().UnixNano(), err))
		}
	}
}

func (s *loadStats) lastPid() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// load sends requests to url from workers clients, each on a new connection, until ctx ends.
func load(ctx context.Context, url string, workers int) *loadStats {
	s := &loadStats{pids: map[string]int{}}
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		var local string // the port of the worker's latest connection, for its errors
		client := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
				if err == nil {
					local = c.LocalAddr().String()
				}
				return c, err
			}}}
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				resp, err := client.Get(url)
				var body []byte
				if err == nil {
					body, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				if ctx.Err() != nil && err != nil {
					return
				}
				if err != nil {
					err = fmt.Errorf("from %s: %w", local, err)
				}
				s.add(string(body), err)
				if err != nil {
					time.Sleep(time.Millisecond) // a refused connect returns at once: do not spin
				}
			}
		}()
	}
	s.wait = wg.Wait
	return s
}

// recycleNode runs a Node server under cgrun with flags, recycles it n times under load (each
// recycle once the previous generation answers), stops it, and returns what the client saw.
func recycleNode(t *testing.T, node string, flags []string, port, n int) *loadStats {
	t.Helper()
	js := filepath.Join(t.TempDir(), "server.js")
	if err := os.WriteFile(js, []byte(nodeServerJS), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append(append([]string{"run", "--max-restarts", "0", "--restart-delay", "0", "--stop-timeout", "10s"}, flags...), "--", node, js, strconv.Itoa(port))
	cmd := exec.Command(cgrunBin(t), args...)
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &errb, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	// The first generation answers before the load starts: refusals before it are no recycle's.
	waitAnswers(t, url, &errb)
	ctx, cancel := context.WithCancel(context.Background())
	stats := load(ctx, url, 4)
	for i := 0; i < n; i++ {
		before := ""
		if !eventually(30*time.Second, func() bool { before = stats.lastPid(); return before != "" }) {
			break
		}
		cmd.Process.Signal(syscall.SIGALRM)
		if !eventually(30*time.Second, func() bool { p := stats.lastPid(); return p != "" && p != before }) {
			cancel()
			t.Fatalf("recycle %d: no new generation answered within 30 s; cgrun said:\n%s", i+1, errb.String())
		}
	}
	cancel()
	stats.wait()
	cmd.Process.Signal(syscall.SIGTERM)
	if code := waitCode(t, cmd); code != 0 && code != 128+int(syscall.SIGTERM) {
		t.Errorf("cgrun exited %d; it said:\n%s", code, errb.String())
	}
	if got := len(stats.pids); got < n+1 {
		t.Errorf("answers came from %d generations, want %d: %v", got, n+1, stats.pids)
	}
	return stats
}

func TestListenNodeRecyclesRefuseNothing(t *testing.T) {
	requireCgroup2(t)
	node := nodeOrFail(t)
	const recycles = 10
	// The control: Node binds the port itself, so each recycle closes it for a while.
	port := freePort(t)
	control := recycleNode(t, node, nil, port, recycles)
	t.Logf("without --listen: %d answered, %d refused, %d failed", control.ok, control.refused, control.failed)
	if control.refused == 0 {
		t.Errorf("without --listen no connection was refused over %d recycles: the test cannot tell --listen's effect", recycles)
	}
	port = freePort(t)
	held := recycleNode(t, node, []string{"--listen", fmt.Sprintf("127.0.0.1:%d", port)}, port, recycles)
	t.Logf("with --listen: %d answered, %d refused, %d failed %v", held.ok, held.refused, held.failed, held.errs)
	if held.refused != 0 || held.failed != 0 {
		t.Errorf("with --listen over %d recycles: %d refused, %d failed (%v); want none", recycles, held.refused, held.failed, held.errs)
	}
}

// TestListenEnvironment: the command gets the sockets as fds 3 and 4, and LISTEN_PID is its own
// pid, on both start paths and as a --user; nothing else of cgrun's reaches it.
func TestListenEnvironment(t *testing.T) {
	requireCgroup2(t)
	sock := filepath.Join(t.TempDir(), "app.sock")
	os.Chmod(filepath.Dir(sock), 0o755) // the --user stats the socket's file
	os.Chmod(filepath.Dir(filepath.Dir(sock)), 0o755)
	port := freePort(t)
	script := `echo "pid=$$ LISTEN_PID=$LISTEN_PID LISTEN_FDS=$LISTEN_FDS LISTEN_FDNAMES=$LISTEN_FDNAMES FPM_SOCKETS=$FPM_SOCKETS"; ` +
		`ls -l /proc/$$/fd | sed -n 's/.* \([0-9]*\) -> /fd \1 /p'; stat -c 'owner=%u:%g mode=%a' ` + sock
	for _, tc := range []struct {
		name  string
		env   []string
		flags []string
		owner string
	}{
		{"clone3", nil, nil, "0:0"},
		{"re-exec stub", []string{"CGRUN_NO_CLONE3=1"}, nil, "0:0"},
		{"as a user", nil, []string{"--user", "65534:65534"}, "65534:65534"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"run", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--listen", "unix:" + sock}, tc.flags...)
			args = append(args, "--", "/bin/sh", "-c", script)
			cmd := exec.Command(cgrunBin(t), args...)
			cmd.Env = append(append(os.Environ(), "LISTEN_FDS=7", "LISTEN_PID=1"), tc.env...)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("cgrun: %v\n%s", err, out)
			}
			var pid string
			fds := map[string]string{}
			for _, line := range strings.Split(string(out), "\n") {
				if f := strings.Fields(line); len(f) == 3 && f[0] == "fd" {
					fds[f[1]] = f[2]
				} else if len(f) > 0 && strings.HasPrefix(f[0], "pid=") {
					pid = strings.TrimPrefix(f[0], "pid=")
				}
			}
			want := fmt.Sprintf("pid=%s LISTEN_PID=%s LISTEN_FDS=2 LISTEN_FDNAMES=127.0.0.1_%d:unix_%s FPM_SOCKETS=127.0.0.1:%d=3,%s=4",
				pid, pid, port, sock, port, sock)
			if pid == "" || !strings.Contains(string(out), want) {
				t.Errorf("output:\n%s\nwant the line %q", out, want)
			}
			if !strings.HasPrefix(fds["3"], "socket:") || !strings.HasPrefix(fds["4"], "socket:") {
				t.Errorf("fds 3 and 4 are %q and %q, want the two sockets", fds["3"], fds["4"])
			}
			for fd, what := range fds {
				if n, _ := strconv.Atoi(fd); n > 4 && !strings.Contains(what, "/proc/") {
					t.Errorf("fd %s (%s) reached the command: only 0-4 should", fd, what)
				}
			}
			if !strings.Contains(string(out), "owner="+tc.owner+" mode=660") {
				t.Errorf("socket file: want owner %s, mode 660 in:\n%s", tc.owner, out)
			}
			if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("cgrun left %s: %v", sock, err)
			}
		})
	}
}

// TestListenBadInputCreatesNothing: a bad address or a busy one is one line, exit 125, and no
// group, socket or process is left.
func TestListenBadInputCreatesNothing(t *testing.T) {
	h := requireCgroup2(t)
	dir := t.TempDir()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyUnix := filepath.Join(dir, "busy.sock")
	bl, err := net.Listen("unix", busyUnix)
	if err != nil {
		t.Fatal(err)
	}
	defer bl.Close()
	first := filepath.Join(dir, "first.sock")
	for _, tc := range []struct {
		name, addr, want string
	}{
		{"no port", "127.0.0.1", `--listen "127.0.0.1": want :PORT`},
		{"port 0", ":0", `port "0" is not a number from 1 to 65535`},
		{"host name", "localhost:3000", `"localhost" is not an IP address`},
		{"relative path", "unix:app.sock", "the socket's path must be absolute"},
		{"port in use", busy.Addr().String(), "address already in use: another process listens there"},
		{"socket in use", "unix:" + busyUnix, "another process listens on " + busyUnix},
		{"no directory", "unix:" + filepath.Join(dir, "none", "a.sock"), "does not exist; create it first (mkdir -p " + filepath.Join(dir, "none") + ")"},
		{"address not here", "192.0.2.1:3000", "this machine has no address 192.0.2.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := groupsUnder(t, h.SelfDir())
			events := filepath.Join(dir, "events.jsonl") // made before the sockets are bound: gone again
			cmd := exec.Command(cgrunBin(t), "run", "--events", events, "--listen", "unix:"+first, "--listen", tc.addr, "--", "/bin/sleep", "30")
			var errb bytes.Buffer
			cmd.Stderr = &errb
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
			if code != 125 {
				t.Errorf("exit %d, want 125", code)
			}
			msg := errb.String()
			if strings.Count(msg, "\n") != 1 || !strings.HasPrefix(msg, "cgrun: ") || !strings.Contains(msg, tc.want) {
				t.Errorf("stderr %q: want one line starting with \"cgrun: \" containing %q", msg, tc.want)
			}
			if _, err := os.Lstat(first); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the first --listen's socket file is left: %v", err)
			}
			if _, err := os.Lstat(events); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the --events file is left: %v", err)
			}
			assertNothingLeft(t, h, before)
		})
	}
}

// TestListenFdsNeverReachProbes: a health probe gets neither the sockets nor LISTEN_*.
func TestListenFdsNeverReachProbes(t *testing.T) {
	requireCgroup2(t)
	seen := filepath.Join(t.TempDir(), "probe")
	probe := `{ env | grep -E '^(LISTEN_|FPM_SOCKETS)'; for f in /proc/$$/fd/*; do echo "fd ${f##*/} $(readlink $f)"; done; } > ` + seen + `.tmp; mv ` + seen + `.tmp ` + seen
	port := freePort(t)
	r := runCgrunTerm(t, 3*time.Second, nil, []string{"--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--health-cmd", probe, "--health-interval", "200ms"}, "linger", "20000", "0")
	b, err := os.ReadFile(seen)
	if err != nil {
		t.Fatalf("the probe never ran: %v; cgrun said:\n%s", err, r.stderr)
	}
	if strings.Contains(string(b), "socket:") || strings.Contains(string(b), "LISTEN_") || strings.Contains(string(b), "FPM_SOCKETS") {
		t.Errorf("the probe saw the sockets:\n%s", b)
	}
	if !strings.Contains(string(b), "fd 0 ") {
		t.Errorf("the probe's fd list is empty:\n%s", b)
	}
}

// TestListenSocketSurvivesOOMKill: a generation killed by the OOM killer does not close the
// socket: requests sent while the next generation starts wait and are answered by it.
func TestListenSocketSurvivesOOMKill(t *testing.T) {
	requireCgroup2(t)
	node := nodeOrFail(t)
	js := filepath.Join(t.TempDir(), "server.js")
	if err := os.WriteFile(js, []byte(nodeServerJS), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	cmd := exec.Command(cgrunBin(t), "run", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--memory-max", "128M",
		"--restart", "on-oom", "--restart-delay", "0", "--thrash", "off", "--", node, js) // the OOM kill itself, not a thrash recycle
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &errb, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(path string) (string, error) {
		resp, err := client.Get(url + path)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	var first string
	var err error
	if !eventually(30*time.Second, func() bool { first, err = get(""); return err == nil }) {
		t.Fatalf("first request: %v; cgrun said:\n%s", err, errb.String())
	}
	if _, err := get("oom"); err == nil {
		t.Fatal("GET /oom was answered: the generation was not OOM-killed")
	}
	for i := range 20 { // sent while the killed generation is torn down and the next starts
		pid, err := get("")
		if err != nil {
			t.Fatalf("request %d after the OOM kill: %v; cgrun said:\n%s", i, err, errb.String())
		}
		if pid == first {
			t.Fatalf("request %d answered by the OOM-killed generation's pid %s", i, pid)
		}
	}
	if !strings.Contains(errb.String(), "killed by the OOM killer") {
		t.Errorf("cgrun did not report the OOM kill:\n%s", errb.String())
	}
}

// fpmOrFail returns php-fpm 8.2 and cgi-fcgi, failing where the harness requires them.
func fpmOrFail(t *testing.T) (fpm, cgiFcgi string) {
	t.Helper()
	fpm, err := exec.LookPath("php-fpm8.2")
	if err != nil {
		fpm, err = exec.LookPath("/usr/sbin/php-fpm8.2")
	}
	if err == nil {
		cgiFcgi, err = exec.LookPath("cgi-fcgi")
	}
	if err != nil {
		if os.Getenv("CGRUN_REQUIRE_CGROUP2") == "1" {
			t.Fatalf("this test needs php-fpm8.2 and cgi-fcgi (scripts/demo.d/install puts them in): %v", err)
		}
		t.Skipf("needs php-fpm8.2 and cgi-fcgi: %v", err)
	}
	return fpm, cgiFcgi
}

// TestListenPHPFPMRecyclesFailNothing: php-fpm takes cgrun's unix socket through FPM_SOCKETS
// (its pool's listen = names it; nothing else changes) and is recycled while cgi-fcgi requests
// run: none fails, and the socket's file outlives every php-fpm, which unlinks it when it exits.
func TestListenPHPFPMRecyclesFailNothing(t *testing.T) {
	requireCgroup2(t)
	fpm, cgiFcgi := fpmOrFail(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o755) // the pool's user reads the script
	os.Chmod(filepath.Dir(dir), 0o755)
	sock, script, conf := filepath.Join(dir, "fpm.sock"), filepath.Join(dir, "pid.php"), filepath.Join(dir, "fpm.conf")
	os.WriteFile(script, []byte("<?php usleep(20000); echo 'ok ', getmypid(), \"\\n\";\n"), 0o644)
	os.WriteFile(conf, []byte("[global]\nerror_log = /proc/self/fd/2\ndaemonize = no\nprocess_control_timeout = 10s\n[www]\nuser = nobody\ngroup = nogroup\nlisten = "+sock+
		"\npm = static\npm.max_children = 3\n"), 0o644)
	cmd := exec.Command(cgrunBin(t), "run", "--listen", "unix:"+sock, "--stop-signal", "SIGQUIT", "--restart-delay", "0",
		"--max-restarts", "0", "--", fpm, "-F", "-y", conf)
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &errb, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	request := func() (string, error) {
		c := exec.Command(cgiFcgi, "-bind", "-connect", sock)
		c.Env = []string{"SCRIPT_FILENAME=" + script, "SCRIPT_NAME=/pid.php", "REQUEST_METHOD=GET"}
		out, err := c.CombinedOutput()
		i := strings.Index(string(out), "ok ")
		if err != nil || i < 0 {
			return "", fmt.Errorf("cgi-fcgi: %v: %q", err, out)
		}
		return strings.TrimSpace(string(out[i+3:])), nil
	}
	var err error
	if !eventually(30*time.Second, func() bool { _, err = request(); return err == nil }) {
		t.Fatalf("php-fpm never answered: %v; cgrun said:\n%s", err, errb.String())
	}
	var mu sync.Mutex
	seen := map[string]bool{}
	var ok, failed int
	var fails []string
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				pid, err := request()
				mu.Lock()
				if err != nil {
					failed++
					fails = append(fails, err.Error())
				} else {
					ok++
					seen[pid] = true
				}
				mu.Unlock()
			}
		}()
	}
	const recycles = 5
	for i := range recycles {
		mu.Lock()
		before, answered := maps.Clone(seen), ok
		mu.Unlock()
		cmd.Process.Signal(syscall.SIGALRM)
		fresh := func() bool { // a new worker answered, and a few requests overlapped the recycle
			mu.Lock()
			defer mu.Unlock()
			for p := range seen {
				if !before[p] && ok >= answered+4 {
					return true
				}
			}
			return false
		}
		if !eventually(30*time.Second, fresh) {
			cancel()
			wg.Wait()
			t.Fatalf("recycle %d: no new worker answered within 30 s; cgrun said:\n%s", i+1, errb.String())
		}
	}
	cancel()
	wg.Wait()
	t.Logf("%d requests answered, %d failed over %d recycles", ok, failed, recycles)
	if failed > 0 {
		t.Errorf("%d requests failed: %q", failed, fails[:min(len(fails), 5)])
	}
	if _, err := os.Stat(sock); err != nil {
		t.Errorf("the socket's file after the recycles: %v", err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	waitCode(t, cmd)
	if !strings.Contains(errb.String(), "using inherited socket") {
		t.Errorf("php-fpm did not say it used the inherited socket:\n%s", errb.String())
	}
}

// serve is the helper of the --overlap tests: an HTTP server on the --listen socket (fd 3) that
// answers its pid; after delayMs it says READY=1 on NOTIFY_SOCKET (how "ready"), or makes the
// file LOG.ready.PID (how "file"), or neither (how "never"); it stops serving and exits 0 on SIGTERM. It appends "start", "ready" and "term"
// lines with its pid and the time in nanoseconds to the file log.
func serve(delayMs int, how, log string) int {
	note := func(what string) {
		f, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err == nil {
			fmt.Fprintf(f, "%s %d %d\n", what, os.Getpid(), time.Now().UnixNano())
			f.Close()
		}
	}
	note("start")
	if os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) || os.Getenv("LISTEN_FDS") != "1" {
		fmt.Fprintln(os.Stderr, "helper serve: no --listen socket")
		return 3
	}
	l, err := net.FileListener(os.NewFile(3, "listen"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper serve:", err)
		return 3
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	var conns sync.WaitGroup // the connections it accepted and has not closed
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, os.Getpid())
	}), ConnState: func(c net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			conns.Add(1)
		case http.StateClosed, http.StateHijacked:
			conns.Done()
		}
	}}
	time.Sleep(time.Duration(delayMs) * time.Millisecond)
	served := make(chan struct{})
	go func() { srv.Serve(l); close(served) }()
	if how == "file" { // for a --health-cmd: LOG.ready.PID
		note("ready")
		os.WriteFile(fmt.Sprintf("%s.ready.%d", log, os.Getpid()), nil, 0o644)
	}
	if sock := os.Getenv("NOTIFY_SOCKET"); how == "ready" && sock != "" {
		note("ready") // before: cgrun may stop the old generation at once
		if c, err := net.Dial("unixgram", sock); err == nil {
			c.Write([]byte("READY=1"))
			c.Close()
		}
	}
	<-term
	note("term")
	// Stop accepting, and answer every connection accepted so far (each closes after its
	// answer: the clients ask so). Not Shutdown: in a loaded guest it closed a connection that
	// it had accepted but not read from yet, and its client saw EOF.
	l.Close()
	<-served
	conns.Wait()
	return 0
}

// serveLog reads serve's lines: what -> pid -> time.
func serveLog(t *testing.T, path string) map[string]map[string]int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]int64{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		if out[f[0]] == nil {
			out[f[0]] = map[string]int64{}
		}
		out[f[0]][f[1]], _ = strconv.ParseInt(f[2], 10, 64)
	}
	return out
}

// oneShot is a client that closes each connection after its answer, as the load clients do,
// so that a server stopping gracefully is not kept waiting by an idle one.
// waitAnswers waits up to 30 s for the server on url to answer a request, or fails the test
// with what cgrun said.
func waitAnswers(t *testing.T, url string, said *bytes.Buffer) {
	t.Helper()
	if !eventually(30*time.Second, func() bool {
		r, err := oneShot.Get(url)
		if err == nil {
			r.Body.Close()
		}
		return err == nil
	}) {
		t.Fatalf("the server never answered on %s; cgrun said:\n%s", url, said.String())
	}
}

var oneShot = &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// startServe runs serve under cgrun with --listen and flags, and waits until it answers.
func startServe(t *testing.T, flags []string, serveArgs ...string) (cmd *exec.Cmd, url string, errb *bytes.Buffer) {
	t.Helper()
	port := freePort(t)
	url = fmt.Sprintf("http://127.0.0.1:%d/", port)
	args := append([]string{"run", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--restart-delay", "0"}, flags...)
	cmd = exec.Command(cgrunBin(t), append(append(args, "--", helperPath(t), "serve"), serveArgs...)...)
	cmd.Env = append(os.Environ(), "CGRUNTEST_HELPER=1")
	errb = &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = errb, errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitAnswers(t, url, errb)
	return cmd, url, errb
}

// TestOverlapOldStopsOnlyWhenNewIsReady: with --overlap a recycle starts the next generation
// first; the old one gets its stop signal only after the new one said READY=1; meanwhile
// cgrun ps shows both; no request fails.
func TestOverlapOldStopsOnlyWhenNewIsReady(t *testing.T) {
	requireCgroup2(t)
	log := filepath.Join(t.TempDir(), "serve.log")
	cmd, url, errb := startServe(t, []string{"--overlap", "--ready-timeout", "30s", "--name", "overlap-ready"}, "1500", "ready", log)
	ctx, cancel := context.WithCancel(context.Background())
	stats := load(ctx, url, 2)
	first := ""
	eventually(10*time.Second, func() bool { first = stats.lastPid(); return first != "" })
	cmd.Process.Signal(syscall.SIGALRM)
	var ps []struct {
		Generation int `json:"generation"`
		Next       *struct {
			Generation int    `json:"generation"`
			Group      string `json:"group"`
		} `json:"next"`
	}
	both := eventually(10*time.Second, func() bool {
		out, err := exec.Command(cgrunBin(t), "ps", "--json").Output()
		if err != nil || json.Unmarshal(out, &ps) != nil {
			return false
		}
		for _, b := range ps {
			if b.Next != nil && b.Generation == 1 && b.Next.Generation == 2 && b.Next.Group != "" {
				return true
			}
		}
		return false
	})
	if !both {
		t.Errorf("cgrun ps never showed generation 2 beside generation 1: %+v", ps)
	}
	if !eventually(30*time.Second, func() bool {
		p := stats.lastPid()
		return p != first && p != "" && strings.Contains(errb.String(), "took over")
	}) {
		t.Fatalf("the new generation never answered and took over; cgrun said:\n%s", errb.String())
	}
	cancel()
	stats.wait()
	cmd.Process.Signal(syscall.SIGTERM)
	waitCode(t, cmd)
	l := serveLog(t, log)
	second := stats.lastPid()
	if l["ready"][second] == 0 || l["term"][first] == 0 || l["start"][second] == 0 {
		t.Fatalf("serve log %v: want generation 1 (pid %s) stopped and generation 2 (pid %s) started and ready; cgrun said:\n%s", l, first, second, errb.String())
	}
	if l["start"][second] > l["term"][first] || l["ready"][second] > l["term"][first] {
		t.Errorf("generation 1 was stopped %v after generation 2 started and %v after it was ready: want both after",
			time.Duration(l["term"][first]-l["start"][second]), time.Duration(l["term"][first]-l["ready"][second]))
	}
	if stats.refused+stats.failed != 0 {
		t.Errorf("%d refused and %d failed requests across the overlapped recycle: %v; serve log %v", stats.refused, stats.failed, stats.errs, l)
	}
	if !strings.Contains(errb.String(), "generation 2 is ready after") || !strings.Contains(errb.String(), "generation 2 (pid "+second+") took over (request)") {
		t.Errorf("cgrun did not say generation 2 became ready and took over:\n%s", errb.String())
	}
}

// TestOverlapNeverReadyFallsBack: a next generation that never says READY=1 is removed at
// --ready-timeout, and the recycle goes on as without --overlap.
func TestOverlapNeverReadyFallsBack(t *testing.T) {
	requireCgroup2(t)
	log := filepath.Join(t.TempDir(), "serve.log")
	cmd, url, errb := startServe(t, []string{"--overlap", "--ready-timeout", "1s"}, "0", "never", log)
	r, err := oneShot.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	first := string(b)
	sent := time.Now()
	cmd.Process.Signal(syscall.SIGALRM)
	var third string
	if !eventually(30*time.Second, func() bool {
		r, err := oneShot.Get(url)
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		third = string(b)
		return third != first && strings.Contains(errb.String(), "restarting (request) as generation 3 in")
	}) {
		t.Fatalf("no new generation after the fallback; cgrun said:\n%s", errb.String())
	}
	cmd.Process.Signal(syscall.SIGTERM)
	waitCode(t, cmd)
	if !strings.Contains(errb.String(), "giving up the overlap with generation 2: not ready after --ready-timeout 1s") {
		t.Errorf("cgrun did not say it gave up the overlap:\n%s", errb.String())
	}
	l := serveLog(t, log)
	if len(l["start"]) != 3 {
		t.Errorf("serve started %d times, want 3 (generations 1, 2 removed at the timeout, 3): %v", len(l["start"]), l["start"])
	}
	if term := l["term"][first]; term == 0 || time.Duration(term-sent.UnixNano()) < time.Second {
		t.Errorf("generation 1 was stopped %v after the recycle was asked, want at least the --ready-timeout of 1s", time.Duration(term-sent.UnixNano()))
	}
}

// TestOverlapReadyByHealthCmd: without sd_notify, a --health-cmd run in the new generation's
// group tells cgrun it is ready; the old one stops only after that.
func TestOverlapReadyByHealthCmd(t *testing.T) {
	requireCgroup2(t)
	log := filepath.Join(t.TempDir(), "serve.log")
	// The probe runs in the generation's leaf: ready when a process there made its file.
	probe := `for p in $(cat "/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup)/cgroup.procs"); do [ -e ` + log + `.ready.$p ] && exit 0; done; exit 1`
	cmd, url, errb := startServe(t, []string{"--overlap", "--health-cmd", probe, "--health-interval", "1s"}, "1500", "file", log)
	first := ""
	eventually(10*time.Second, func() bool {
		r, err := oneShot.Get(url)
		if err == nil {
			b, _ := io.ReadAll(r.Body)
			r.Body.Close()
			first = string(b)
		}
		return first != ""
	})
	cmd.Process.Signal(syscall.SIGALRM)
	if !eventually(30*time.Second, func() bool { return strings.Contains(errb.String(), "took over") }) {
		t.Fatalf("the next generation never took over; cgrun said:\n%s", errb.String())
	}
	cmd.Process.Signal(syscall.SIGTERM)
	waitCode(t, cmd)
	l := serveLog(t, log)
	var second string
	for pid := range l["start"] {
		if pid != first {
			second = pid
		}
	}
	if l["ready"][second] == 0 || l["term"][first] == 0 {
		t.Fatalf("serve log %v: want generation 1 (pid %s) stopped and generation 2 (pid %s) ready; cgrun said:\n%s", l, first, second, errb.String())
	}
	if l["term"][first] < l["ready"][second] {
		t.Errorf("generation 1 was stopped %v before generation 2 was ready", time.Duration(l["ready"][second]-l["term"][first]))
	}
	if !strings.Contains(errb.String(), "generation 2 is ready after") {
		t.Errorf("cgrun did not say generation 2 became ready:\n%s", errb.String())
	}
}

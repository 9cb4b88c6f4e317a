package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The listen bench (issue 18): a load client on loopback against a Node HTTP server that cgrun
// recycles over and over, without --listen, with it, and with --listen --overlap; beside them a
// run with --listen and no recycle, the latency the others are compared with. It needs Node
// (node on PATH); -only listen runs it.

// listenServerJS takes fd 3 when LISTEN_FDS is set, and binds the port itself otherwise; once
// it listens it says READY=1 through systemd-notify (Node has no datagram sockets of its own);
// on SIGTERM it stops accepting and exits once its requests are answered.
const listenServerJS = `
const http = require('http');
const fds = process.env.LISTEN_FDS;
const server = http.createServer((req, res) => res.end(String(process.pid)));
server.listen(fds ? {fd: 3} : {port: +process.argv[2], host: '127.0.0.1'}, () => {
  if (process.env.NOTIFY_SOCKET) require('child_process').execFile('systemd-notify', ['--ready'], () => {});
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
`

// request is one request of the load client.
type request struct {
	start, end time.Time
	refused    bool
	err        error
	pid        string
}

// listenRun is one column: what the client saw, and when each recycle began and ended (the
// signal, and the first answer of the next generation).
type listenRun struct {
	name     string
	reqs     []request
	recycles [][2]time.Time
	err      error
}

func listenBench(c *config) error {
	node, err := exec.LookPath("node")
	if err != nil {
		return fmt.Errorf("the listen bench needs Node: %w", err)
	}
	dir, err := os.MkdirTemp("", "cgrun-bench-listen")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	js := filepath.Join(dir, "server.js")
	if err := os.WriteFile(js, []byte(listenServerJS), 0o644); err != nil {
		return err
	}
	const workers = 4
	fmt.Printf("Recycling a Node HTTP server %d times under load (%d clients on loopback, one connection per request)\n", c.cycles, workers)
	fmt.Println("  requests that overlap a recycle: sent between the recycle signal and the next generation's first answer")
	cols := []struct {
		name     string
		flags    []string
		recycles int
	}{
		{"--listen, no recycle", []string{"--listen"}, 0},
		{"(a) no --listen", nil, c.cycles},
		{"(b) --listen", []string{"--listen"}, c.cycles},
		{"(c) --listen --overlap", []string{"--listen", "--overlap", "--ready-timeout", "30s"}, c.cycles},
	}
	var base time.Duration
	fmt.Printf("  %-24s %9s %8s %7s %9s %12s %12s %12s\n", "", "requests", "refused", "failed", "overlap", "p50 overlap", "p99 overlap", "p99 all")
	for _, col := range cols {
		r := runListen(c, node, js, col.name, col.flags, col.recycles, workers)
		if r.err != nil {
			fmt.Printf("  %-24s FAILED: %v\n", col.name, r.err)
			continue
		}
		var all, over []time.Duration
		refused, failed := 0, 0
		for _, q := range r.reqs {
			switch {
			case q.refused:
				refused++
			case q.err != nil:
				failed++
			default:
				all = append(all, q.end.Sub(q.start))
				for _, w := range r.recycles {
					if q.end.After(w[0]) && q.start.Before(w[1]) {
						over = append(over, q.end.Sub(q.start))
						break
					}
				}
			}
		}
		if col.recycles == 0 {
			base = pct(all, 99)
			fmt.Printf("  %-24s %9d %8d %7d %9s %12s %12s %12s\n", col.name, len(r.reqs), refused, failed, "-", "-", "-", ms(pct(all, 99)))
			continue
		}
		fmt.Printf("  %-24s %9d %8d %7d %9d %12s %12s %12s\n", col.name, len(r.reqs), refused, failed, len(over), ms(pct(over, 50)), ms(pct(over, 99)), ms(pct(all, 99)))
	}
	fmt.Printf("  (p99 of the run without recycles: %s; (d) PM2 fork mode: not measured, PM2 is not in this guest)\n", ms(base))
	return nil
}

// runListen runs one column: cgrun with flags (--listen gets the port) around the server,
// recycled n times under load.
func runListen(c *config, node, js, name string, flags []string, n, workers int) listenRun {
	r := listenRun{name: name}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		r.err = fmt.Errorf("find a free port (is lo up?): %w", err)
		return r
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	args := []string{"run", "--name", "bench-listen", "--restart-delay", "0", "--max-restarts", "0"}
	for _, f := range flags {
		args = append(args, f)
		if f == "--listen" {
			args = append(args, fmt.Sprintf("127.0.0.1:%d", port))
		}
	}
	if c.parent != "" {
		args = append(args, "--parent", c.parent)
	}
	args = append(args, "--", node, js, fmt.Sprint(port))
	cmd := exec.Command(c.cgrun, args...)
	cmd.Env = c.baseEnv
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		r.err = err
		return r
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func() request {
		q := request{start: time.Now()}
		resp, err := client.Get(url)
		if err == nil {
			var b []byte
			b, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			q.pid = string(b)
		}
		q.end, q.err, q.refused = time.Now(), err, errors.Is(err, syscall.ECONNREFUSED)
		return q
	}
	deadline := time.Now().Add(30 * time.Second)
	for get().err != nil {
		if time.Now().After(deadline) {
			r.err = fmt.Errorf("the server never answered; cgrun said: %s", out.String())
			return r
		}
		time.Sleep(20 * time.Millisecond)
	}
	var mu sync.Mutex
	last := ""
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				q := get()
				if ctx.Err() != nil && q.err != nil {
					return
				}
				mu.Lock()
				r.reqs = append(r.reqs, q)
				if q.err == nil {
					last = q.pid
				}
				mu.Unlock()
				if q.err != nil {
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	lastPid := func() string { mu.Lock(); defer mu.Unlock(); return last }
	time.Sleep(2 * time.Second) // steady state first
	for i := 0; i < n && r.err == nil; i++ {
		before := lastPid()
		signal := time.Now()
		cmd.Process.Signal(syscall.SIGALRM)
		for lastPid() == before {
			if time.Since(signal) > 60*time.Second {
				r.err = fmt.Errorf("recycle %d: no new generation answered in 60 s; cgrun said: %s", i+1, out.String())
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		r.recycles = append(r.recycles, [2]time.Time{signal, time.Now()})
		time.Sleep(time.Second) // the next recycle starts from a steady state
	}
	if n == 0 {
		time.Sleep(10 * time.Second)
	}
	cancel()
	wg.Wait()
	return r
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The advise tests of real servers under load: a Node server and php-fpm. Each is run three
// times under the same load: briefly without a limit (the naive peak: it reads its file once at
// the start), under cgrun advise, and under the advised limits (no OOM kill, no failed request).
// The first run also leaves the server's own code in the page cache, charged to a group that is
// gone, as on a host where it ran before. (With php-fpm advised first, on 6.1 without PSI, the
// squeeze's first step met refaults — of its code, most likely — at 96M, and advised 126M
// against a 123M peak: docs/advise.md lists it among the method's limits.) What each needs is read while it is advised:
// the anonymous memory of its group (without swap it all stays), from cgrun status.

// nodeAdviseJS keeps 32M of buffers and touches a part of them on each request; at start it
// reads the file in argv[3] once, through a 1M buffer (page cache it never needs again).
const nodeAdviseJS = `
const http = require('http'), fs = require('fs');
const fd = fs.openSync(process.argv[3], 'r'), chunk = Buffer.alloc(1 << 20);
while (fs.readSync(fd, chunk, 0, chunk.length, null) > 0) {}
const keep = [];
for (let i = 0; i < 32; i++) keep.push(Buffer.alloc(1 << 20, i));
let n = 0;
const server = http.createServer((req, res) => {
  const b = keep[n++ % keep.length];
  for (let j = 0; j < b.length; j += 4096) b[j]++;
  res.end(String(process.pid));
});
server.listen({port: +process.argv[2], host: '127.0.0.1'});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
`

// serverRun is one run of a server under cgrun while clients load it.
type serverRun struct {
	code         int
	stdout, said string
	ok, failed   int
	fails        []string
	maxAnon      uint64 // the most anonymous memory status showed in its group
}

// loadServer starts `cgrun ARGS...` (a server named name), waits until request succeeds, loads
// it with three clients for d, then stops the load and, unless the run ends by itself (advise
// --for), the server: requests cut short by the server's own stop are no failures.
func loadServer(t *testing.T, name string, args []string, request func() error, d time.Duration, ends bool) serverRun {
	t.Helper()
	cmd := exec.Command(cgrunBin(t), args...)
	var out, said bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &said
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var err error
	if !eventually(30*time.Second, func() bool { err = request(); return err == nil }) {
		t.Fatalf("%s never answered: %v; cgrun said:\n%s", name, err, said.String())
	}
	var r serverRun
	var mu sync.Mutex
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	began := time.Now()
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				err := request()
				if ctx.Err() != nil {
					return // the end of the run may cut a request short
				}
				mu.Lock()
				if err != nil {
					r.failed++
					r.fails = append(r.fails, fmt.Sprintf("%.1fs: %v", time.Since(began).Seconds(), err))
				} else {
					r.ok++
				}
				mu.Unlock()
			}
		}()
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	timer := time.NewTimer(d)
	defer timer.Stop()
	stop := func() {
		cancel()
		wg.Wait()
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var werr error
wait:
	for {
		select {
		case werr = <-exited:
			break wait
		case <-timer.C:
			stop()
			if !ends {
				cmd.Process.Signal(syscall.SIGTERM)
			}
		case <-tick.C:
			if s, _, code := cgrunCmd(t, nil, "status", name, "--json"); code == 0 {
				var box sandbox
				if json.Unmarshal([]byte(s), &box) == nil {
					r.maxAnon = max(r.maxAnon, box.MemoryStat["anon"])
				}
			}
		}
	}
	stop()
	r.code = 0
	if ee, ok := werr.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	}
	r.stdout, r.said = out.String(), said.String()
	return r
}

// checkServerAdvice runs the three runs of a server and checks the advice.
// files are the files it reads once, taken out of the page cache before each run.
func checkServerAdvice(t *testing.T, name string, argv, flags, files []string, request func() error) {
	h := requireCgroup2(t)
	before := groupsUnder(t, h.SelfDir())
	dir := t.TempDir()
	run := func(extra ...string) []string {
		for _, f := range files {
			dropCache(f)
		}
		return append(append(append(extra, "--name", name), flags...), append([]string{"--"}, argv...)...)
	}
	rep := filepath.Join(dir, "free.json")
	free := loadServer(t, name, run("run", "--report", rep), request, 4*time.Second, false)
	naive := readReport(t, rep).MemoryPeak
	// The window is 20 s from cgrun's start, the load 13 s from the server's first answer.
	adv := loadServer(t, name, run("advise", "--for", "20s", "--json"), request, 13*time.Second, true)
	if adv.code != 0 {
		t.Fatalf("advise: exit %d: %s", adv.code, adv.said)
	}
	a := parseAdvice(t, adv.stdout)
	rep2 := filepath.Join(dir, "limited.json")
	lim := loadServer(t, name, run("run", "--report", rep2, "--memory-max", strconv.FormatUint(a.MemoryMax, 10), "--memory-high", strconv.FormatUint(a.MemoryHigh, 10)), request, 6*time.Second, false)
	limRep := readReport(t, rep2)
	assertNothingLeft(t, h, before)
	t.Logf("naive peak %dM; anonymous memory while advised up to %dM; advice %+v; requests: free %d ok %d failed, advised %d/%d, limited %d/%d",
		naive>>20, adv.maxAnon>>20, a, free.ok, free.failed, adv.ok, adv.failed, lim.ok, lim.failed)
	switch {
	case !a.Settled:
		t.Errorf("the probe never reached the working set in 20 s: %+v", a)
	case adv.maxAnon == 0 || a.MemoryMax < adv.maxAnon || a.WorkingSet < adv.maxAnon*9/10:
		t.Errorf("advised memory.max %dM, working set %dM: want at least the anonymous memory it held, %dM", a.MemoryMax>>20, a.WorkingSet>>20, adv.maxAnon>>20)
	case float64(a.MemoryMax) > 0.75*float64(naive):
		t.Errorf("advised memory.max %dM is not well below the naive peak %dM (want at most 75%% of it)", a.MemoryMax>>20, naive>>20)
	}
	if adv.failed > 0 || lim.failed > 0 || lim.ok == 0 || limRep.OOMKills != 0 {
		t.Errorf("failed requests: %d advised, %d under the advice (%d answered), %d OOM kills under the advice; want none: %q %q\n%s",
			adv.failed, lim.failed, lim.ok, limRep.OOMKills, adv.fails[:min(3, len(adv.fails))], lim.fails[:min(3, len(lim.fails))], lim.said)
	}
}

// TestAdviseNodeServerUnderLoad: a Node server that keeps 32M of buffers and read a 96M file
// once at start, under four clients.
func TestAdviseNodeServerUnderLoad(t *testing.T) {
	requireCgroup2(t)
	node := nodeOrFail(t)
	js := filepath.Join(t.TempDir(), "server.js")
	if err := os.WriteFile(js, []byte(nodeAdviseJS), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	request := func() error {
		r, err := oneShot.Get(url)
		if err != nil {
			return err
		}
		defer r.Body.Close()
		_, err = io.ReadAll(r.Body)
		return err
	}
	big := diskFile(t, 96)
	checkServerAdvice(t, "node-advise", []string{node, js, strconv.Itoa(port), big}, []string{"--stop-timeout", "10s"}, []string{big}, request)
}

// TestAdvisePHPFPMUnderLoad: php-fpm with three workers, one of which read a 96M file once
// (the first request), under three cgi-fcgi clients.
func TestAdvisePHPFPMUnderLoad(t *testing.T) {
	requireCgroup2(t)
	fpm, cgiFcgi := fpmOrFail(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o755) // the pool's user reads the scripts
	os.Chmod(filepath.Dir(dir), 0o755)
	big := diskFile(t, 96)
	os.Chmod(filepath.Dir(big), 0o755)
	sock, script, conf := filepath.Join(dir, "fpm.sock"), filepath.Join(dir, "work.php"), filepath.Join(dir, "fpm.conf")
	os.WriteFile(script, []byte(`<?php
if (!file_exists('`+dir+`/read')) { touch('`+dir+`/read'); $f = fopen('`+big+`', 'r'); while (!feof($f)) fread($f, 1 << 20); fclose($f); }
$a = str_repeat('x', 4 << 20); usleep(5000); echo 'ok ', getmypid(), "\n";
`), 0o644)
	os.Chmod(dir, 0o777) // the pool's user (nobody) marks the file read once
	os.WriteFile(conf, []byte("[global]\nerror_log = /proc/self/fd/2\ndaemonize = no\nprocess_control_timeout = 10s\n[www]\nuser = nobody\ngroup = nogroup\nlisten = "+sock+
		"\npm = static\npm.max_children = 3\n"), 0o644)
	request := func() error {
		c := exec.Command(cgiFcgi, "-bind", "-connect", sock)
		c.Env = []string{"SCRIPT_FILENAME=" + script, "SCRIPT_NAME=/work.php", "REQUEST_METHOD=GET"}
		out, err := c.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "ok ") {
			return fmt.Errorf("cgi-fcgi: %v: %q", err, out)
		}
		return nil
	}
	// Each run reads the file once again: a fresh marker, and the file out of the page cache.
	checkServerAdvice(t, "fpm-advise", []string{"/bin/sh", "-c", `rm -f "$0/read"; exec "$1" -F -y "$2"`, dir, fpm, conf},
		[]string{"--stop-signal", "SIGQUIT"}, []string{big}, request)
}

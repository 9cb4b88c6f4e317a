package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestRunFlagsFromEnvironment(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		env     []string
		wantMax string
		wantOOM bool
		wantErr string
	}{
		{"flag only", []string{"--memory-max", "1G"}, nil, "1G", true, ""},
		{"env only", nil, []string{"CGRUN_MEMORY_MAX=2G"}, "2G", true, ""},
		{"flag wins", []string{"--memory-max", "1G"}, []string{"CGRUN_MEMORY_MAX=2G"}, "1G", true, ""},
		{"bool from env", nil, []string{"CGRUN_OOM_GROUP=false"}, "", false, ""},
		{"last env entry wins", nil, []string{"CGRUN_MEMORY_MAX=1G", "CGRUN_MEMORY_MAX=3G"}, "3G", true, ""},
		{"bad bool in env", nil, []string{"CGRUN_OOM_GROUP=perhaps"}, "", true, "CGRUN_OOM_GROUP"},
		{"unrelated env", nil, []string{"MEMORY_MAX=5G", "CGRUN_HELP=1"}, "", true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f runFlags
			fs := newRunFlagSet(&f)
			if err := fs.Parse(append(tc.args, "--", "true")); err != nil {
				t.Fatal(err)
			}
			_, err := applyEnv(fs, tc.env)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			max := fs.Lookup("memory-max").Value.String()
			if err != nil || max != tc.wantMax || f.oomGroup != tc.wantOOM || (tc.wantMax != "") != f.limits.MemoryMax.Set {
				t.Errorf("memory-max %q (set %v) oom-group %v err %v; want %q %v", max, f.limits.MemoryMax.Set, f.oomGroup, err, tc.wantMax, tc.wantOOM)
			}
		})
	}
}

func TestEnvNameCoversEveryFlag(t *testing.T) {
	var f runFlags
	fs := newRunFlagSet(&f)
	want := map[string]string{"memory-max": "CGRUN_MEMORY_MAX", "memory-swap-max": "CGRUN_MEMORY_SWAP_MAX", "pids-max": "CGRUN_PIDS_MAX", "oom-group": "CGRUN_OOM_GROUP"}
	for flag, env := range want {
		if fs.Lookup(flag) == nil {
			t.Errorf("no flag --%s", flag)
		}
		if have := envName(flag); have != env {
			t.Errorf("envName(%q) = %q, want %q", flag, have, env)
		}
	}
}

func TestChildEnvDropsCgrunVariables(t *testing.T) {
	have := childEnv([]string{"PATH=/bin", "CGRUN_MEMORY_MAX=1G", "CGRUNX=1", "HOME=/root"})
	if strings.Join(have, " ") != "PATH=/bin CGRUNX=1 HOME=/root" {
		t.Errorf("childEnv = %v", have)
	}
}

func TestCommandLineFailures(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 125, "Usage"},
		{[]string{"frobnicate"}, 125, `unknown command "frobnicate"; try 'cgrun help'`},
		{[]string{"version", "extra"}, 125, `cgrun: version: unexpected argument "extra"; usage: cgrun version`},
		{[]string{"help", "stop", "extra"}, 125, `cgrun: help: unexpected argument "extra"; usage: cgrun help [COMMAND]`},
		{[]string{"stauts", "web"}, 125, `unknown command "stauts" (did you mean status?)`},
		{[]string{"--memory-max=1G", "--", "true"}, 125, `unknown command "--memory-max=1G" (--memory-max is a flag of run: cgrun run --memory-max ... -- COMMAND)`},
		{[]string{"stop", "web", "--timout", "5s"}, 125, "cgrun: stop: unknown flag: --timout (did you mean --timeout?); usage: cgrun stop"},
		{[]string{"check", "--parent", "../../etc"}, 125, `cgrun: check: --parent "../../etc": must not contain ".."`},
		{[]string{"check", "--jsn"}, 125, "cgrun: check: unknown flag: --jsn (did you mean --json?); see 'cgrun check --help'"},
		{[]string{"run", "--memroy-max", "1G", "--", "true"}, 125, "unknown flag: --memroy-max (did you mean --memory-max?); see 'cgrun run --help'"},
		{[]string{"run"}, 125, "no command given"},
		{[]string{"run", "--nope", "--", "true"}, 125, "unknown flag: --nope"},
		{[]string{"run", "--memory-max", "lots", "--", "true"}, 125, `--memory-max: bad size "lots"`},
		{[]string{"run", "--pids-max", "-3", "--", "true"}, 125, `--pids-max: bad value "-3"`},
		{[]string{"run", "--memory-max", "9E", "--", "true"}, 125, `--memory-max: bad size "9E": too large: the kernel takes sizes below 8E; use max for no limit`},
		{[]string{"run", "--cpu-weight", "0", "--", "true"}, 125, `--cpu-weight: bad value "0"`},
		{[]string{"run", "--recycle-above", "100", "--", "true"}, 125, `--recycle-above 100 is too small`},
		{[]string{"run", "--memory-high", "2G", "--memory-max", "1G", "--", "true"}, 125, "--memory-high 2G is above --memory-max 1G"},
		{[]string{"run", "--name", "../x", "--", "true"}, 125, "--name"},
		{[]string{"run", "--", "no-such-command-xyz"}, 127, "command not found"},
		{[]string{"run", "--diagnose-dir", "/tmp", "--", "true"}, 125, "need --diagnose-signal or --diagnose-cmd"},
		{[]string{"run", "--diagnose-signal", "USR2", "--", "true"}, 125, "need --diagnose-dir DIR"},
		{[]string{"run", "--diagnose-signal", "USR2", "--diagnose-cmd", "x", "--diagnose-dir", "/tmp", "--", "true"}, 125, "give one of them"},
		{[]string{"run", "--diagnose-signal", "USR2", "--diagnose-dir", "/no/such/dir", "--", "true"}, 125, "--diagnose-dir /no/such/dir: not a directory"},
		{[]string{"run", "--diagnose-signal", "USR2", "--diagnose-dir", "/tmp", "--diagnose-headroom", "64M", "--", "true"}, 125, "give --memory-max too"},
		{[]string{"run", "--diagnose-signal", "SIGFOO", "--diagnose-dir", "/tmp", "--", "true"}, 125, `--diagnose-signal: "SIGFOO" is not a signal`},
		{[]string{"run", "--diagnose-signal", "USR2", "--diagnose-dir", "/tmp", "--diagnose-above", "lots", "--", "true"}, 125, `--diagnose-above "lots": want a size`},
		{[]string{"run", "--health-http", "http://127.0.0.1:99999/", "--", "true"}, 125, "port 99999 is not a TCP port"},
		{[]string{"run", "--max-restarts", "3", "--restart-window", "0", "--", "true"}, 125, "--restart-window 0 counts no restart"},
		{[]string{"run", "--pids-max", "1", "--health-cmd", "true", "--", "true"}, 125, "--pids-max 1 leaves no room for --health-cmd, which runs in the group beside the command and counts too: give 2 or more"},
		{[]string{"run", "--pids-max", "1", "--diagnose-cmd", "true", "--diagnose-dir", "/tmp", "--", "true"}, 125, "--pids-max 1 leaves no room for --diagnose-cmd"},
		{[]string{"run", "--resources", "/dev/zero", "--", "true"}, 125, "--resources /dev/zero: not a regular file (a character device)"},
		{[]string{"run", "--resources", "/no/such/r.json", "--", "true"}, 125, "--resources /no/such/r.json: no such file; give the path"},
		{[]string{"run", "--baseline", "/no/such/b.json", "--", "true"}, 125, "--baseline /no/such/b.json: no such file; record one first"},
		{[]string{"run", "--record-baseline", "/no/such/b.json", "--", "true"}, 125, "--record-baseline /no/such/b.json: the directory /no/such does not exist; create it first (mkdir -p /no/such)"},
		{[]string{"run", "--record-baseline", "/etc/passwd/b.json", "--", "true"}, 125, "--record-baseline: open directory /etc/passwd: not a directory"},
		{[]string{"run", "--events", "/proc/self/status", "--", "true"}, 125, "--events: /proc/self/status: /proc/self is proc, a kernel interface"},
		{[]string{"run", "--report", "/proc/r.json", "--", "true"}, 125, "--report: /proc/r.json: /proc is proc, a kernel interface"},
		{[]string{"run", "--events", "/tmp/same.json", "--report", "/tmp/./same.json", "--", "true"}, 125, "--events and --report name the same file"},
		{[]string{"run", "--metrics-addr", ":99999", "--", "true"}, 125, `--metrics-addr ":99999": port "99999" is not a TCP port number`},
		{[]string{"run", "--listen", "127.0.0.1:9600", "--listen", "127.0.0.1:9600", "--", "true"}, 125, "give each address once"},
		{[]string{"run", "--listen", "127.0.0.1:9601", "--metrics-addr", "127.0.0.1:9601", "--", "true"}, 125, "the metrics need a port of their own"},
		{[]string{"advise", "--for", "abc", "--", "true"}, 125, "see 'cgrun advise --help'"},
	} {
		var out, errb bytes.Buffer
		code := cgrun(tc.args, []string{"PATH=/usr/bin:/bin"}, &out, &errb)
		if code != tc.code || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("cgrun %q = %d, stderr %q; want %d and %q", tc.args, code, errb.String(), tc.code, tc.want)
		}
	}
}

// TestTypedFlagErrors: a typed flag's bad value is one line naming where it came from — the
// flag or its variable — in the words docs/limits.md shows.
func TestTypedFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"--memory-high", "lots"}, nil, `cgrun: --memory-high: bad size "lots"`},
		{nil, []string{"CGRUN_MEMORY_MAX=lots"}, `cgrun: CGRUN_MEMORY_MAX: bad size "lots"`},
		{[]string{"--cpu-max", "fast"}, nil, "cgrun: --cpu-max: "},
		{[]string{"--cpu-weight", "0"}, nil, "cgrun: --cpu-weight: "},
		{[]string{"--stop-signal", "SIGNOPE"}, nil, `cgrun: --stop-signal: "SIGNOPE" is not a signal name or number`},
		{nil, []string{"CGRUN_STOP_SIGNAL=99"}, `cgrun: CGRUN_STOP_SIGNAL: "99" is not a signal name or number`},
		{[]string{"--restart", "sometimes"}, nil, `cgrun: --restart "sometimes": want never, on-oom, on-failure or always`},
		{[]string{"--recycle-on-high", "x/10s"}, nil, `cgrun: --recycle-on-high "x/10s": want N or N/DURATION, e.g. 200 or 200/10s`},
		{[]string{"--recycle-on-high", "200/never"}, nil, `cgrun: --recycle-on-high "200/never": bad window: want e.g. 200/10s`},
		{nil, []string{"CGRUN_RECYCLE_ON_HIGH=0"}, `cgrun: CGRUN_RECYCLE_ON_HIGH "0": want N or N/DURATION`},
		{[]string{"--baseline-tolerance", "lots"}, nil, `cgrun: --baseline-tolerance "lots": want a percentage such as 5%`},
		{[]string{"--pressure", "some"}, nil, `cgrun: --pressure: pressure trigger "some"`},
		{[]string{"--recycle-on-pressure", "full 1s/1ms"}, nil, `cgrun: --recycle-on-pressure: pressure trigger "full 1s/1ms"`},
		{[]string{"--recycle-above", "lots"}, nil, `cgrun: --recycle-above: bad size "lots"`},
		{[]string{"--thrash", "sometimes"}, nil, `cgrun: --thrash "sometimes": "sometimes" is neither off, on nor KEY=VALUE`},
		{nil, []string{"CGRUN_THRASH=refaults=0/s"}, `cgrun: CGRUN_THRASH "refaults=0/s": refaults must be a number`},
		{nil, []string{"CGRUN_RESTART=bogus"}, `cgrun: CGRUN_RESTART "bogus": want never, on-oom, on-failure or always`},
		{nil, []string{"CGRUN_NAME=a/b"}, `cgrun: CGRUN_NAME "a/b": `},
		{nil, []string{"CGRUN_LISTEN=nohost"}, `cgrun: CGRUN_LISTEN "nohost": `},
		{[]string{"--name", "a/b"}, []string{"CGRUN_RESTART=always"}, `cgrun: --name "a/b": `},
	} {
		var out, errb bytes.Buffer
		code := cgrun(append(append([]string{"run"}, tc.args...), "--", "true"), append([]string{"PATH=/usr/bin:/bin"}, tc.env...), &out, &errb)
		if code != 125 || !strings.HasPrefix(errb.String(), tc.want) || strings.Count(errb.String(), "\n") != 1 {
			t.Errorf("cgrun run %q with %q = %d, stderr %q; want 125 and one line starting %q", tc.args, tc.env, code, errb.String(), tc.want)
		}
	}
}

func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"--help"}, {"run", "--help"}, {"help", "run"}, {"version"}} {
		var out, errb bytes.Buffer
		if code := cgrun(args, nil, &out, &errb); code != 0 || out.Len() == 0 || errb.Len() != 0 {
			t.Errorf("cgrun %q = %d, stdout %d bytes, stderr %q", args, code, out.Len(), errb.String())
		}
	}
	var out bytes.Buffer
	cgrun([]string{"run", "--help"}, nil, &out, &out)
	for _, want := range []string{"--memory-max", "--memory-high", "--memory-swap-max", "--memory-low", "--pids-max", "--name", "--parent", "--oom-group", "Examples:", "CGRUN_MEMORY_MAX"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("run --help lacks %q", want)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"10": 10 * time.Second, "1.5": 1500 * time.Millisecond, "500ms": 500 * time.Millisecond, "0": 0} {
		if have, err := parseDuration(in); err != nil || have != want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", in, have, err, want)
		}
	}
	for in, why := range map[string]string{"1e300": "too long", "1e10": "too long", "9223372037": "too long", "1e400": "too long",
		"9999999999h": "too long", "2562048h": "too long", "1h30": "not a duration",
		"-1": "not a duration", "NaN": "not a duration", "-1e300": "not a duration", "soon": "not a duration", "-5s": "not a duration"} {
		if have, err := parseDuration(in); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("parseDuration(%q) = %v, %v; want an error saying %q", in, have, err, why)
		}
	}
}

// TestOutputInAMissingDirectory: --events and --report in a directory that does not exist say
// which directory to create; other open errors stay as the kernel gave them.
func TestOutputInAMissingDirectory(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "missing", "sub", "x.jsonl")
	want := target + ": the directory " + filepath.Dir(target) + " does not exist; create it first (mkdir -p " + filepath.Dir(target) + ") or name a file in a directory that exists"
	if _, _, _, err := openEvents(target, nil); err == nil || err.Error() != want {
		t.Errorf("openEvents: %v, want %q", err, want)
	}
	if _, _, err := openReport(target, nil); err == nil || err.Error() != want {
		t.Errorf("openReport: %v, want %q", err, want)
	}
	// A directory in the place of the file: not a missing directory.
	if _, _, _, err := openEvents(dir, nil); err == nil || strings.Contains(err.Error(), "does not exist") {
		t.Errorf("openEvents of a directory: %v", err)
	}
}

// TestEventsFdOpenForReading: fd:N open for reading only is refused at the start, not found out
// at the first event.
func TestEventsFdOpenForReading(t *testing.T) {
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	target := "fd:" + strconv.Itoa(int(f.Fd()))
	if _, _, _, err := openEvents(target, nil); err == nil || !strings.Contains(err.Error(), "is open for reading only") {
		t.Errorf("openEvents(%s) of a read-only fd: %v", target, err)
	}
	w, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The stream takes the fd as its own (*os.File): it gets one nobody else closes. Given w's
	// own fd, the two *os.File would close it twice, the second time (a finalizer's) when the
	// number belongs to another test's pipe.
	fd, err := unix.Dup(int(w.Fd()))
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	ev, _, _, err := openEvents("fd:"+strconv.Itoa(fd), nil)
	if err != nil {
		unix.Close(fd)
		t.Fatalf("openEvents of a writable fd: %v", err)
	}
	ev.(*os.File).Close()
}

// TestSameFile: two names of one file are told by their path or their directory, never by
// following the names: a symlink and a hard link planted at them (the boundary racer's) are
// refused as links when opened, not as the same file.
func TestSameFile(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	alias := filepath.Join(t.TempDir(), "alias")
	for _, err := range []error{os.Symlink(dir, alias), os.Symlink(victim, filepath.Join(dir, "report.json")), os.Link(victim, filepath.Join(dir, "events.jsonl"))} {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{filepath.Join(dir, "x.json"), filepath.Join(dir, ".", "x.json"), true},
		{filepath.Join(dir, "x.json"), filepath.Join(alias, "x.json"), true},
		{filepath.Join(dir, "report.json"), filepath.Join(dir, "events.jsonl"), false},
		{filepath.Join(dir, "x.json"), filepath.Join(dir, "y.json"), false},
	} {
		if have := sameFile(tc.a, tc.b); have != tc.same {
			t.Errorf("sameFile(%s, %s) = %v, want %v", tc.a, tc.b, have, tc.same)
		}
	}
}

// TestEventsFileOfAFailedStartIsRemoved: an --events file the start created is removed when the
// start then fails (it is empty); one that was there before, or that has lines, stays.
func TestEventsFileOfAFailedStartIsRemoved(t *testing.T) {
	dir := t.TempDir()
	fresh := filepath.Join(dir, "fresh.jsonl")
	_, closeIt, unmake, err := openEvents(fresh, nil)
	if err != nil {
		t.Fatal(err)
	}
	unmake()
	closeIt()
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		t.Errorf("the events file the failed start created: %v, want it gone", err)
	}

	old := filepath.Join(dir, "old.jsonl")
	if err := os.WriteFile(old, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, closeIt, unmake, err = openEvents(old, nil)
	if err != nil {
		t.Fatal(err)
	}
	unmake()
	closeIt()
	if _, err := os.Stat(old); err != nil {
		t.Errorf("an events file that was there before the failed start: %v, want it kept", err)
	}

	written := filepath.Join(dir, "written.jsonl")
	w, closeIt, unmake, err := openEvents(written, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "{\"event\":\"start\"}\n")
	unmake()
	closeIt()
	if b, err := os.ReadFile(written); err != nil || len(b) == 0 {
		t.Errorf("an events file with lines: %q, %v; want it kept", b, err)
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Issue 23 (part A): root's fds, the files root writes for a run, the state file and cgrun's own
// stderr stop at the --user boundary. Each test here failed on the code before that issue,
// except where its comment says otherwise.

// rootFiles are the fds a root shell hands cgrun in the repro, as fds 5 and 6: a file
// only root may read (the secret, a stand-in for /etc/shadow), and one only root may write. The
// directory is traversable, the files 0600.
type rootFiles struct {
	secret, writable string
	content          string
	files            []*os.File // fds 3, 4 (/dev/null), 5 (secret, read), 6 (writable, append)
}

func openRootFiles(t *testing.T) *rootFiles {
	t.Helper()
	dir := t.TempDir()
	r := &rootFiles{secret: filepath.Join(dir, "secret"), writable: filepath.Join(dir, "root-only"),
		content: fmt.Sprintf("SECRET-%d", time.Now().UnixNano())}
	if err := os.WriteFile(r.secret, []byte(r.content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(r.writable, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, o := range []struct {
		path string
		flag int
	}{{os.DevNull, os.O_RDONLY}, {os.DevNull, os.O_RDONLY}, {r.secret, os.O_RDONLY}, {r.writable, os.O_WRONLY | os.O_APPEND}} {
		f, err := os.OpenFile(o.path, o.flag, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		r.files = append(r.files, f)
	}
	return r
}

// fdProbe prints open5/open6 for each of fds 5 and 6 that is open in the shell that runs it, and
// tries to read the one and write the other, as the repro does.
const fdProbe = `for fd in 5 6; do if (: <&$fd) 2>/dev/null; then echo "open$fd"; fi; done; cat 2>/dev/null <&5; echo pwned 2>/dev/null >&6; echo checked`

// runHanding runs cgrun with env added and files as its fds 3, 4, ..., and waits up to a minute.
func runHanding(t *testing.T, files []*os.File, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(cgrunBin(t), args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.ExtraFiles = files
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(time.Minute, func() { cmd.Process.Kill() })
	defer timer.Stop()
	err := cmd.Wait()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("cgrun %v: %v", args, err)
	}
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// TestBoundaryNoRootFdReachesTheUser (item 1): fds root handed cgrun reach neither the --user
// command, nor its health probe, nor its --diagnose-cmd — on the clone3 path, the re-exec stub's
// and with --listen. Without --user they pass, as through exec, nice or systemd-run --scope
// (docs/security.md): that test passed before too.
func TestBoundaryNoRootFdReachesTheUser(t *testing.T) {
	h := requireCgroup2(t)
	for _, tc := range []struct {
		name   string
		env    []string
		listen bool
		user   bool
	}{
		{"clone3", nil, false, true},
		{"stub", []string{"CGRUN_NO_CLONE3=1"}, false, true},
		{"listen", nil, true, true},
		{"listen, stub", []string{"CGRUN_NO_CLONE3=1"}, true, true},
		{"without --user", nil, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rf := openRootFiles(t)
			dir := sharedDir(t)
			dumps := filepath.Join(dir, "dumps")
			if err := os.Mkdir(dumps, 0o755); err != nil {
				t.Fatal(err)
			}
			if tc.user {
				os.Chown(dumps, 33, 33)
			}
			args := []string{"run", "--name", "fds", "--memory-max", "64M",
				"--health-cmd", "{ " + fdProbe + "; } >>" + filepath.Join(dir, "probe.out"), "--health-interval", "200ms",
				"--diagnose-above", "1M", "--diagnose-cmd", "{ " + fdProbe + `; } >"$CGRUN_DUMP_DIR/fds.out"`,
				"--diagnose-dir", dumps, "--diagnose-timeout", "5s"}
			if tc.user {
				args = append(args, "--user", "www-data")
			}
			if tc.listen {
				args = append(args, "--listen", "unix:"+filepath.Join(dir, "sock"))
			}
			// The command holds 4M (over --diagnose-above) for long enough for a dump and probes.
			args = append(args, "--", "/bin/sh", "-c", fdProbe+`; x=$(head -c 4000000 /dev/zero | tr '\0' a); sleep 3`)
			before := groupsUnder(t, h.SelfDir())
			r := runHanding(t, rf.files, tc.env, args...)
			if r.code != 0 {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			probe, _ := os.ReadFile(filepath.Join(dir, "probe.out"))
			dump, _ := os.ReadFile(filepath.Join(dumps, "fds.out"))
			written, _ := os.ReadFile(rf.writable)
			t.Logf("probe %q, dump %q", probe, dump)
			for _, o := range []struct{ who, out string }{{"the command", r.stdout}, {"the health probe", string(probe)}, {"--diagnose-cmd", string(dump)}} {
				if !strings.Contains(o.out, "checked") {
					t.Errorf("%s did not run: %q (stderr %q)", o.who, o.out, r.stderr)
					continue
				}
				leaked := strings.Contains(o.out, "open5") || strings.Contains(o.out, "open6") || strings.Contains(o.out, rf.content)
				if tc.user && leaked {
					t.Errorf("%s as www-data had root's fds: %q", o.who, o.out)
				}
				if !tc.user && !leaked {
					t.Errorf("%s without --user lost the fds it was handed: %q", o.who, o.out)
				}
			}
			if tc.user && len(written) != 0 {
				t.Errorf("www-data wrote root's file through fd 6: %q", written)
			}
			assertNothingLeft(t, h, before)
		})
	}
}

// withHardlinks lets every user hard-link a file it does not own for the test (Debian's default
// fs.protected_hardlinks=1 forbids it), as on a host that turned the protection off.
func withHardlinks(t *testing.T) {
	t.Helper()
	const knob = "/proc/sys/fs/protected_hardlinks"
	old, err := os.ReadFile(knob)
	if err != nil {
		t.Fatalf("%s: %v", knob, err)
	}
	if err := os.WriteFile(knob, []byte("0"), 0o644); err != nil {
		t.Fatalf("%s: %v", knob, err)
	}
	t.Cleanup(func() { os.WriteFile(knob, old, 0o644) })
}

// victim is a file of root's, 0600, in a directory others may traverse (so that a hard link to it
// can be made), with what it must still hold at the end.
type victim struct{ path, content string }

func newVictim(t *testing.T) victim {
	t.Helper()
	dir, err := os.MkdirTemp("", "cgrun-victim-") // t.TempDir's parent is 0700: no way in for a link
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	// A valid baseline (of 1 TiB): read through a link as --baseline, it would pass, not fail
	// to parse, so that only the refusal of the link makes that case exit 125.
	v := victim{filepath.Join(dir, "victim"), `{"version":1,"name":"root's own","command":["/bin/true"],"recorded":"2026-01-01T00:00:00Z","memory_peak":1099511627776,"memory_steady":1}` + "\n"}
	if err := os.WriteFile(v.path, []byte(v.content), 0o600); err != nil {
		t.Fatal(err)
	}
	return v
}

func (v victim) check(t *testing.T, when string) {
	t.Helper()
	b, err := os.ReadFile(v.path)
	fi, serr := os.Stat(v.path)
	if err != nil || serr != nil || string(b) != v.content || fi.Mode().Perm() != 0o600 || fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Fatalf("%s: root's victim file is now %q (%v), mode %v (%v)", when, b, err, fi.Mode(), serr)
	}
}

// TestBoundaryFilesRefuseLinks (item 2): --report, --events, --record-baseline and --baseline
// that are a symlink or a hard link to root's file in a directory the user can write are refused
// (125, one line), and nothing is made, truncated, appended to or chmodded.
func TestBoundaryFilesRefuseLinks(t *testing.T) {
	h := requireCgroup2(t)
	withHardlinks(t)
	for _, flag := range []string{"--report", "--events", "--record-baseline", "--baseline"} {
		for _, link := range []string{"symlink", "hard link"} {
			t.Run(flag+" "+link, func(t *testing.T) {
				v := newVictim(t)
				dir := sharedDir(t)
				at := filepath.Join(dir, "out.json")
				var err error
				if link == "symlink" {
					err = os.Symlink(v.path, at)
				} else {
					err = os.Link(v.path, at)
				}
				if err != nil {
					t.Fatal(err)
				}
				before := groupsUnder(t, h.SelfDir())
				r := runWith(t, nil, nil, "run", "--user", "www-data", flag, at, "--", "/bin/true")
				if r.code != 125 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, at) {
					t.Errorf("exit %d, stderr %q; want 125 and one line naming %s", r.code, r.stderr, at)
				}
				v.check(t, "after the run")
				assertNothingLeft(t, h, before)
			})
		}
	}
}

// TestBoundaryRacerNeverReachesRootsFile (item 2): a racer of www-data's swaps symlinks and hard
// links to root's file in and out of the directory of --report, --events and --record-baseline,
// and renames cgrun's fresh files for symlinks, while root runs cgrun 120 times: the file stays
// as it was. (Before: the atomic writer's chmod by name made it 0644, and --report truncated it.)
func TestBoundaryRacerNeverReachesRootsFile(t *testing.T) {
	requireCgroup2(t)
	withHardlinks(t)
	v := newVictim(t)
	dir := sharedDir(t)
	// Every other round the racer also plants links at the names themselves, every other turn of
	// its loop (so that a link may come between cgrun's check and its write); in the rounds
	// between, it removes them, so that cgrun gets to write its files while they are raced.
	plant := filepath.Join(dir, "plant")
	racer := exec.Command("setpriv", "--reuid=33", "--regid=33", "--clear-groups", "--", "/bin/sh", "-c", `
d=$1 v=$2 n=0
while :; do
	for f in "$d"/.*cgrun-*; do
		[ -e "$f" ] && mv -f "$f" "$d/stolen" 2>/dev/null && ln -sf "$v" "$f" 2>/dev/null
	done
	n=$((n+1))
	if [ -e "$d/plant" ] && [ $((n % 2)) -eq 0 ]; then
		ln -sf "$v" "$d/report.json" 2>/dev/null; ln -f "$v" "$d/events.jsonl" 2>/dev/null; ln -sf "$v" "$d/baseline.json" 2>/dev/null
	else
		rm -f "$d/report.json" "$d/events.jsonl" "$d/baseline.json" "$d/stolen"
	fi
done`, "sh", dir, v.path)
	if err := racer.Start(); err != nil {
		t.Fatalf("setpriv (util-linux) is needed: %v", err)
	}
	t.Cleanup(func() { racer.Process.Kill(); racer.Wait() })
	const rounds = 120 // about 0.4 s each
	ran, refused := 0, 0
	for round := 0; round < rounds; round++ {
		if round%2 == 0 {
			os.WriteFile(plant, nil, 0o644)
		} else {
			os.Remove(plant)
			time.Sleep(50 * time.Millisecond) // a turn of the racer's loop removes the links it planted
		}
		r := runWith(t, nil, nil, "run", "--user", "www-data", "--report", filepath.Join(dir, "report.json"),
			"--events", filepath.Join(dir, "events.jsonl"), "--record-baseline", filepath.Join(dir, "baseline.json"),
			"--", "/bin/sleep", "0.3") // long enough for a sampled peak (no memory.peak before 5.19)
		switch r.code {
		case 0:
			ran++
		case 125:
			refused++
			// At the start, or at the end (the baseline, after a warning about the report).
			for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
				if !strings.Contains(line, "cgrun writes only a regular file") {
					t.Fatalf("round %d: exit 125 for another reason than a planted link: %q", round, r.stderr)
				}
			}
		default:
			t.Fatalf("round %d: exit %d, stderr %q", round, r.code, r.stderr)
		}
		v.check(t, fmt.Sprintf("round %d", round))
	}
	t.Logf("%d rounds: %d ran, %d refused a planted link", rounds, ran, refused)
	if ran < 20 { // most of the 60 rounds without planted links; the share varies with the load
		t.Errorf("only %d rounds got to write their files: the writer was hardly raced", ran)
	}
}

// TestBoundaryReportKeptWhenItCannotBeWritten (also seen): --report is written beside and
// renamed at exit, so a run whose report cannot be written (its file system is full) leaves the
// previous one whole. Before, it was truncated at the start.
func TestBoundaryReportKeptWhenItCannotBeWritten(t *testing.T) {
	requireCgroup2(t)
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	report := filepath.Join(dir, "report.json")
	if r := runWith(t, nil, nil, "run", "--report", report, "--", "/bin/true"); r.code != 0 {
		t.Fatalf("first run: exit %d, %q", r.code, r.stderr)
	}
	first, err := os.ReadFile(report)
	if err != nil || !json.Valid(first) {
		t.Fatalf("first report %q: %v", first, err)
	}
	// While a run goes on, the previous report is whole (it was truncated at the start before).
	cmd := exec.Command(cgrunBin(t), "run", "--report", report, "--", "/bin/sleep", "2")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	during, _ := os.ReadFile(report)
	if code := waitCode(t, cmd); code != 0 || !bytes.Equal(during, first) {
		t.Errorf("during a run (exit %d) the report was %q; want the previous one whole", code, during)
	}
	first, _ = os.ReadFile(report)
	// Fill the rest of the file system: the next report has no room.
	exec.Command("dd", "if=/dev/zero", "of="+filepath.Join(dir, "fill"), "bs=4k").Run()
	r := runWith(t, nil, nil, "run", "--report", report, "--", "/bin/true")
	if r.code != 0 || !strings.Contains(r.stderr, "--report") {
		t.Errorf("second run: exit %d, stderr %q; want 0 and a warning about --report", r.code, r.stderr)
	}
	if b, _ := os.ReadFile(report); !bytes.Equal(b, first) {
		t.Errorf("the previous report is now %q; want it whole", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("%s holds %d entries; want the report and the filler, no file left beside", dir, len(ents))
	}
}

// TestBoundaryDumpNamesStayInBounds (items 6 and 7): a --user command whose dump writes 700 files
// with long names, one of them with a newline and ESC in it, neither hides the run from root's
// ps, status and stop (the state lists 20 and says how many more), nor forges or floods a line
// of cgrun's stderr.
func TestBoundaryDumpNamesStayInBounds(t *testing.T) {
	h := requireCgroup2(t)
	dumps := filepath.Join(sharedDir(t), "dumps")
	if err := os.Mkdir(dumps, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chown(dumps, 33, 33)
	const forged = "cgrun: dumpnames killed by the OOM killer (memory.max 1M, peak 2M)"
	// Made beside, then moved in at once: in a guest, making 700 files one by one takes longer
	// than the quiet moment after which cgrun takes a dump as complete.
	make700 := `s=$CGRUN_DUMP_DIR/../stage; mkdir "$s" && cd "$s" || exit 1; ` +
		`seq -f %0240g 0 699 | xargs touch; ` +
		`: >"$(printf 'x\n` + forged + `\033[2J')"; mv ./* "$CGRUN_DUMP_DIR"/`
	before := groupsUnder(t, h.SelfDir())
	cmd := exec.Command(cgrunBin(t), "run", "--name", "dumpnames", "--user", "www-data", "--diagnose-above", "1M",
		"--diagnose-cmd", make700, "--diagnose-dir", dumps, "--diagnose-timeout", "30s",
		"--", "/bin/sh", "-c", `x=$(head -c 4000000 /dev/zero | tr '\0' a); sleep 120`)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var s sandbox
	listed := eventually(60*time.Second, func() bool {
		out, _, code := cgrunWithin(t, "status", "dumpnames", "--json")
		s = sandbox{}
		return code == 0 && json.Unmarshal([]byte(out), &s) == nil && len(s.Dumps) > 0
	})
	if !listed {
		out, errs, code := cgrunWithin(t, "status", "dumpnames")
		t.Fatalf("status never showed the dump: %d %q %q; cgrun's stderr %q", code, out, errs, shortened(errb.String()))
	}
	if d := s.Dumps[0]; len(d.Files) != 20 || d.FilesLeftOut != 681 {
		t.Errorf("the state lists %d files and %d left out; want 20 and 681; cgrun's stderr %q", len(d.Files), d.FilesLeftOut, shortened(errb.String()))
	}
	if out, _, code := cgrunWithin(t, "status", "dumpnames"); code != 0 || !strings.Contains(out, "and 681 more") || strings.ContainsAny(out, "\x1b") {
		t.Errorf("cgrun status: %d %q; want the dump's files in brief, escaped", code, shortened(out))
	}
	if out, _, code := cgrunWithin(t, "ps"); code != 0 || !strings.Contains(out, "dumpnames") {
		t.Errorf("cgrun ps: %d %q; want the run listed", code, out)
	}
	if out, errs, code := cgrunWithin(t, "stop", "dumpnames"); code != 0 {
		t.Errorf("cgrun stop: %d %q %q", code, out, errs)
	}
	waitCode(t, cmd)
	for _, line := range strings.Split(errb.String(), "\n") {
		if strings.HasPrefix(line, forged) || strings.ContainsAny(line, "\x1b") || len(line) > 4200 {
			t.Errorf("cgrun's stderr has a forged, escaping or unbounded line (%d bytes): %q", len(line), shortened(line))
		}
	}
	assertNothingLeft(t, h, before)
}

func shortened(s string) string {
	if len(s) > 600 {
		return s[:300] + fmt.Sprintf("…(%d bytes)…", len(s)-600) + s[len(s)-300:]
	}
	return s
}

// TestBoundaryStateWriteIsRetried (item 9): while /run/cgrun is full the run is not listed; once
// there is room again it is, without a new event; and at exit no state file is left. The run
// and its ps have a mount namespace of their own, with a 16k tmpfs on /run/cgrun.
func TestBoundaryStateWriteIsRetried(t *testing.T) {
	requireCgroup2(t)
	script := `set -u
mkdir -p /run/cgrun && mount -t tmpfs -o size=16k tmpfs /run/cgrun || exit 3
dd if=/dev/zero of=/run/cgrun/fill bs=1k 2>/dev/null
"$1" run --name statefull -- /bin/sleep 12 2>"$2" &
sleep 1.5
echo "full: $("$1" ps | grep -c statefull)"
rm /run/cgrun/fill
n=0 # the retry comes within a second; a loaded guest gets up to 9
while [ $n -lt 18 ] && [ "$("$1" ps | grep -c statefull)" = 0 ]; do sleep 0.5; n=$((n+1)); done
echo "room: $("$1" ps | grep -c statefull)"
wait $!
echo "exit: $?"
echo "left: $(ls -A /run/cgrun | wc -l)"
`
	errFile := filepath.Join(t.TempDir(), "stderr")
	out, err := exec.Command("unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script, "sh", cgrunBin(t), errFile).CombinedOutput()
	stderr, _ := os.ReadFile(errFile)
	if err != nil {
		t.Fatalf("%v: %s; cgrun's stderr %q", err, out, stderr)
	}
	for _, want := range []string{"full: 0", "room: 1", "exit: 0", "left: 0"} {
		if !strings.Contains(string(out), want+"\n") {
			t.Errorf("want %q in %q; cgrun's stderr %q", want, out, stderr)
		}
	}
	if n := strings.Count(string(stderr), "cannot record state"); n != 1 {
		t.Errorf("%d warnings about the state in %q, want one", n, stderr)
	}
}

// TestBoundaryGroupRefusedIsNotCannotExecute (also seen): an unprivileged cgrun given a group
// delegated to it, started from a group it cannot write, is refused the move into it by the
// kernel (clone3: EACCES). That is cgrun's failure (125), with a line saying why — not "cannot
// execute" (126) for a command that runs.
func TestBoundaryGroupRefusedIsNotCannotExecute(t *testing.T) {
	h := requireCgroup2(t)
	deleg := filepath.Join(h.Mount, "cgrun-test-deleg-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(deleg, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		kids, _ := os.ReadDir(deleg)
		for _, k := range kids {
			if k.IsDir() {
				os.Remove(filepath.Join(deleg, k.Name()))
			}
		}
		os.Remove(deleg)
	})
	for _, f := range []string{"", "cgroup.procs", "cgroup.subtree_control", "cgroup.threads"} {
		if err := os.Chown(filepath.Join(deleg, f), 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	nobody := []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"}
	r := runWith(t, nobody, []string{"XDG_RUNTIME_DIR="}, "run", "--parent", deleg, "--", "/bin/true")
	if r.code != 125 || strings.Contains(r.stderr, "cannot execute") || !strings.Contains(r.stderr, "refused to move it") {
		t.Errorf("exit %d, stderr %q; want 125 and the group named as the refusal", r.code, r.stderr)
	}
	if kids := groupsUnder(t, deleg); len(kids) != 0 {
		t.Errorf("left behind: %v", kids)
	}
}

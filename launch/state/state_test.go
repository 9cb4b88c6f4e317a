package state

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/launch/diagnose"
)

// ownState is a state of a live process of this user, a child the test starts: it is listed,
// not stale. Not the test's own pid: under qemu-user (the arm64 run) /proc/self/stat is
// emulated, and its start time differs from one emulated thread to the next.
func ownState(t *testing.T, name string) State {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	pid := cmd.Process.Pid
	ticks, err := StartTicks(pid)
	if err != nil {
		t.Fatal(err)
	}
	return State{Name: name, Pid: pid, StartTicks: ticks, UID: os.Geteuid(), Started: time.Now().Format(time.RFC3339Nano)}
}

func writeState(t *testing.T, dir string, s State) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, fmt.Sprintf("%d.json", s.Pid))
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// listWithin lists dir, and fails the test when that blocks (a FIFO opened for reading).
func listWithin(t *testing.T, loc Location) []State {
	t.Helper()
	type res struct {
		s   []State
		err error
	}
	done := make(chan res, 1)
	go func() {
		s, err := listDir(loc, func(State) bool { return true })
		done <- res{s, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("listDir(%s): %v", loc.Dir, r.err)
		}
		return r.s
	case <-time.After(5 * time.Second):
		t.Fatalf("listDir(%s) blocked", loc.Dir)
	}
	return nil
}

func TestListStatesRefusesWhatCgrunDidNotWrite(t *testing.T) {
	uid := os.Geteuid()
	success := []struct {
		name  string
		setup func(t *testing.T, dir string)
	}{
		{"a state of a live cgrun", func(t *testing.T, dir string) { writeState(t, dir, ownState(t, "live")) }},
	}
	for _, tc := range success {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(t, dir)
			if got := listWithin(t, Location{dir, uid}); len(got) != 1 || got[0].Name != "live" {
				t.Errorf("listed %+v, want the one live state", got)
			}
		})
	}
	failure := []struct {
		name  string
		setup func(t *testing.T, dir string) string // returns the location's directory
	}{
		{"a FIFO", func(t *testing.T, dir string) string {
			if err := syscall.Mkfifo(filepath.Join(dir, fmt.Sprintf("%d.json", os.Getpid())), 0o644); err != nil {
				t.Fatal(err)
			}
			return dir
		}},
		{"a symlink to /dev/zero", func(t *testing.T, dir string) string {
			if err := os.Symlink("/dev/zero", filepath.Join(dir, fmt.Sprintf("%d.json", os.Getpid()))); err != nil {
				t.Fatal(err)
			}
			return dir
		}},
		{"a symlink to a real state", func(t *testing.T, dir string) string {
			other := t.TempDir()
			p := writeState(t, other, ownState(t, "elsewhere"))
			if err := os.Symlink(p, filepath.Join(dir, filepath.Base(p))); err != nil {
				t.Fatal(err)
			}
			return dir
		}},
		{"a directory that is a symlink", func(t *testing.T, dir string) string {
			real := t.TempDir()
			writeState(t, real, ownState(t, "behind-link"))
			link := filepath.Join(dir, "cgrun")
			if err := os.Symlink(real, link); err != nil {
				t.Fatal(err)
			}
			return link
		}},
		{"a file larger than a state", func(t *testing.T, dir string) string {
			s := ownState(t, "big")
			s.Command = []string{strings.Repeat("x", maxStateSize)}
			writeState(t, dir, s)
			return dir
		}},
		{"a state that claims another uid", func(t *testing.T, dir string) string {
			s := ownState(t, "claims")
			s.UID = uid + 1
			writeState(t, dir, s)
			return dir
		}},
		{"a state named for another pid", func(t *testing.T, dir string) string {
			p := writeState(t, dir, ownState(t, "renamed"))
			if err := os.Rename(p, filepath.Join(dir, "1.json")); err != nil {
				t.Fatal(err)
			}
			return dir
		}},
		{"a name with terminal escapes", func(t *testing.T, dir string) string {
			writeState(t, dir, ownState(t, "\x1b]0;pwned\a\x1b[2J"))
			return dir
		}},
	}
	for _, tc := range failure {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.setup(t, t.TempDir())
			if got := listWithin(t, Location{dir, uid}); len(got) != 0 {
				t.Errorf("listed %+v, want nothing", got)
			}
		})
	}
	t.Run("a directory of another uid", func(t *testing.T) {
		dir := t.TempDir()
		writeState(t, dir, ownState(t, "mine"))
		if got := listWithin(t, Location{dir, uid + 1}); len(got) != 0 {
			t.Errorf("listed %+v from a directory that uid %d does not own", got, uid+1)
		}
	})
}

func TestListStatesRemovesOnlyVerifiedStaleStates(t *testing.T) {
	dir := t.TempDir()
	stale := ownState(t, "gone")
	stale.StartTicks++ // the pid's process started at another time: the writer is gone
	p := writeState(t, dir, stale)
	fifo := filepath.Join(dir, "7.json")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	listWithin(t, Location{dir, os.Geteuid()})
	if _, err := os.Lstat(p); !os.IsNotExist(err) {
		t.Errorf("stale state %s is still there (%v)", p, err)
	}
	if _, err := os.Lstat(fifo); err != nil {
		t.Errorf("%s, which is no state, was removed: %v", fifo, err)
	}
}

// Root reads other users' directories but leaves their stale states alone: only the owner's
// cgrun removes one, after its groups, and the state is what leads it to them.
func TestListStatesLeavesOtherUsersStaleStates(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to make another user's directory and state (CI runs it as root)")
	}
	const other = 4242
	dir := t.TempDir()
	stale := ownState(t, "theirs")
	stale.UID = other
	stale.StartTicks++ // the writer is gone
	p := writeState(t, dir, stale)
	for _, f := range []string{dir, p} {
		if err := os.Chown(f, other, other); err != nil {
			t.Fatal(err)
		}
	}
	listWithin(t, Location{dir, other})
	if _, err := os.Lstat(p); err != nil {
		t.Errorf("root removed uid %d's stale state %s: %v", other, p, err)
	}
}

func TestFindStatePrefersOwnSandboxes(t *testing.T) {
	own := State{Name: "worker", Pid: 10, UID: os.Geteuid()}
	other := State{Name: "worker", Pid: 11, UID: os.Geteuid() + 1000}
	named10 := State{Name: "10", Pid: 13, UID: own.UID} // named as the other's pid
	for _, tc := range []struct {
		name   string
		arg    string
		states []State
		want   int // pid; 0: an error
	}{
		{"own shadows another user's", "worker", []State{other, own}, 10},
		{"another user's alone", "worker", []State{other}, 11},
		{"by pid", "11", []State{other, own}, 11},
		{"two of the caller's own", "worker", []State{own, {Name: "worker", Pid: 12, UID: own.UID}}, 0},
		{"a pid before a name", "10", []State{named10, own}, 10},
		{"the caller's own name before another user's pid", "11", []State{other, {Name: "11", Pid: 14, UID: own.UID}}, 14},
		{"none", "nothing", []State{own, other}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			arg := tc.arg
			s, err := Find(tc.states, arg)
			if s.Pid != tc.want || (tc.want == 0) != (err != nil) {
				t.Errorf("Find(%q) = pid %d, %v; want pid %d", arg, s.Pid, err, tc.want)
			}
		})
	}
}

func TestStateDirChecksXDGRuntimeDir(t *testing.T) {
	uid := os.Geteuid() // t.TempDir's owner
	own := t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(own, link); err != nil {
		t.Fatal(err)
	}
	if d, err := userDir(uid, own); err != nil || d != filepath.Join(own, "cgrun") {
		t.Errorf("userDir(%d, %s) = %q, %v", uid, own, d, err)
	}
	for _, tc := range []struct {
		uid int
		xdg string
	}{{uid, link}, {uid + 1, own}, {uid, "/nonexistent"}, {uid, filepath.Join(own, "file")}} {
		os.WriteFile(filepath.Join(own, "file"), nil, 0o600)
		if d, err := userDir(tc.uid, tc.xdg); err == nil && strings.HasPrefix(d, tc.xdg) {
			t.Errorf("userDir(%d, %s) = %q: not the caller's own directory", tc.uid, tc.xdg, d)
		}
	}
}

// FuzzParse checks that the state reader never panics, and that whatever it accepts is a
// state cgrun could have written: the claimed uid, a pid, a valid name.
func FuzzParse(f *testing.F) {
	b, _ := json.Marshal(State{Name: "worker", Command: []string{"node", "w.js"}, Pid: 42, UID: 1000, Generation: 2, ChildPid: 43})
	f.Add(b, 1000)
	f.Add([]byte(`{"name":"\u001b]0;x\u0007","pid":1,"uid":0}`), 0)
	f.Add([]byte(`{"name":"a","pid":-1,"uid":0,"recent":[{"time":1}]}`), 0)
	f.Add([]byte(`[]`), 0)
	f.Fuzz(func(t *testing.T, b []byte, uid int) {
		s, err := Parse(b, uid)
		if err != nil {
			return
		}
		if s.UID != uid || s.Pid <= 0 || ValidName(s.Name) != nil {
			t.Fatalf("Parse(%q, %d) accepted %+v", b, uid, s)
		}
	})
}

// TestStateWithHugeDumpsStaysReadable: ten dumps of 700 files with 4000-byte names, in brief as
// the state lists them, and twenty long recent events make a state that cgrun ps still reads.
func TestStateWithHugeDumpsStaysReadable(t *testing.T) {
	s := State{Name: "big", Pid: 1, UID: os.Geteuid()}
	for i := 0; i < 10; i++ {
		d := diagnose.Dump{Generation: i}
		for j := 0; j < 700; j++ {
			d.Files = append(d.Files, diagnose.File{Path: "/dumps/" + strings.Repeat("x", 4000), Size: 1})
		}
		s.Dumps = append(s.Dumps, d.Brief())
		s.Note("dump", strings.Repeat("y", 100000))
	}
	for i := 0; i < 30; i++ {
		s.Note("dump", strings.Repeat("z", 100000))
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > maxStateSize/2 {
		t.Errorf("state is %d bytes; want it well under the readers' %d", len(b), maxStateSize)
	}
	if n := s.Dumps[0].FilesLeftOut; n != 700-diagnose.BriefFiles {
		t.Errorf("files_left_out %d, want %d", n, 700-diagnose.BriefFiles)
	}
	if _, err := Parse(b, os.Geteuid()); err != nil {
		t.Errorf("Parse: %v", err)
	}
}

// TestLiveEvents: the run's memory.events counts as ps, status and metrics show them, one rule
// for all three: the ended generations' totals, plus the running group's unless the totals hold
// it already.
func TestLiveEvents(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "memory.events"), []byte("low 0\nhigh 5\nmax 2\noom 1\noom_kill 1\noom_group_kill 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	totals := map[string]uint64{"high": 10, "oom_kill": 3}
	for _, tc := range []struct {
		name           string
		dir            string
		group, counted string
		want           map[string]uint64
	}{
		{"between generations", "", "/a-1.2", "/a-1.1", map[string]uint64{"high": 10, "oom_kill": 3}},
		{"running", dir, "/a-1.2", "/a-1.1", map[string]uint64{"high": 15, "max": 2, "oom": 1, "oom_kill": 4}},
		{"ended, its group not yet removed", dir, "/a-1.2", "/a-1.2", map[string]uint64{"high": 10, "oom_kill": 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := LiveEvents(State{Totals: totals, Group: tc.group, Counted: tc.counted}, tc.dir)
			for _, k := range cgroup.MemoryEventNames() {
				if got[k] != tc.want[k] {
					t.Errorf("%s = %d, want %d (all: %v)", k, got[k], tc.want[k], got)
				}
			}
		})
	}
}

// TestSaveMakesADirectoryPsReads: the state directory is made readable by all whatever the
// umask (077 made root's 0700, and every other user's cgrun ps failed on it); one made by hand
// keeps its mode; one that cgrun ps would not read (a symlink, another user's) is refused with a
// line that says what to do, rather than written to where no ps looks.
func TestSaveMakesADirectoryPsReads(t *testing.T) {
	s := State{Name: "app", Pid: os.Getpid()}
	root := t.TempDir()

	old := syscall.Umask(0o077)
	made := filepath.Join(root, "made")
	err := s.Save(made)
	syscall.Umask(old)
	if fi, serr := os.Stat(made); err != nil || serr != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("made under umask 077: %v, %v; want mode 0755", err, fi)
	}

	private := filepath.Join(root, "private")
	if err := os.Mkdir(private, 0o700); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(private); s.Save(private) != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("a 0700 directory made by hand: mode %v; want it kept, and the state written", fi.Mode())
	}

	link := filepath.Join(root, "link")
	if err := os.Symlink(made, link); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(link); err == nil || !strings.Contains(err.Error(), link+" is not a directory (a symlink is not followed)") {
		t.Errorf("Save through a symlink: %v", err)
	}

	if os.Geteuid() == 0 { // a directory of another user's can be made only by root
		other := filepath.Join(root, "other")
		if err := os.Mkdir(other, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(other, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if err := s.Save(other); err == nil || !strings.Contains(err.Error(), other+" belongs to uid 65534") {
			t.Errorf("Save into another user's directory: %v", err)
		}
		if _, err := os.Stat(Path(other, s.Pid)); err == nil {
			t.Errorf("a state was written into another user's directory")
		}
	}
}

// deadPid is a pid no process has.
func deadPid(t *testing.T) int {
	t.Helper()
	for pid := 4194000; pid > 4190000; pid-- {
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			return pid
		}
	}
	t.Fatal("no free pid found")
	return 0
}

// TestCleanOrphanLeaves: what a cgrun SIGKILLed between moving itself into cgrun-PID and writing
// its state leaves — that empty group, a half-written state — is removed by the next look; a
// live cgrun's, a busy group and anything not named so stay.
func TestCleanOrphanLeaves(t *testing.T) {
	dead, live := deadPid(t), os.Getpid()
	own := t.TempDir() // directories stand in for groups: rmdir treats them alike
	for _, d := range []string{
		fmt.Sprintf("cgrun-%d", dead), fmt.Sprintf("cgrun-%d", live), "cgrun-x", fmt.Sprintf("app-%d.1", dead),
		fmt.Sprintf("cgrun-%d/busy", dead+1),
	} {
		if err := os.MkdirAll(filepath.Join(own, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	CleanOrphanLeaves(own)
	kids, _ := os.ReadDir(own)
	var left []string
	for _, k := range kids {
		left = append(left, k.Name())
	}
	want := []string{fmt.Sprintf("app-%d.1", dead), fmt.Sprintf("cgrun-%d", dead+1), fmt.Sprintf("cgrun-%d", live), "cgrun-x"}
	sort.Strings(want)
	if strings.Join(left, " ") != strings.Join(want, " ") {
		t.Errorf("left %q, want %q", left, want)
	}

	states := t.TempDir()
	deadTemp, liveTemp := fmt.Sprintf(".%d.json.cgrun-1a2b", dead), fmt.Sprintf(".%d.json.cgrun-3c4d", live)
	for _, name := range []string{deadTemp, liveTemp, ".notes"} {
		if err := os.WriteFile(filepath.Join(states, name), []byte("{"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := listDir(Location{states, os.Geteuid()}, func(State) bool { return true }); err != nil {
		t.Fatal(err)
	}
	for name, kept := range map[string]bool{deadTemp: false, liveTemp: true, ".notes": true} {
		if _, err := os.Stat(filepath.Join(states, name)); (err == nil) != kept {
			t.Errorf("%s: kept %v, want %v", name, err == nil, kept)
		}
	}
}

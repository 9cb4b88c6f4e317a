package diagnose_test

import (
	"os"
	"testing"
	"time"

	"github.com/cgrun/cgrun/launch/diagnose"
	"golang.org/x/sys/unix"
)

// TestOnTmpfs: a directory on tmpfs (/dev/shm) is told apart from one on a disk.
func TestOnTmpfs(t *testing.T) {
	w := diagnose.Writer{UID: uint32(os.Geteuid()), Groups: []uint32{uint32(os.Getegid())}}
	checked := 0
	for _, tc := range []struct {
		parent string
		want   bool
	}{
		{"/dev/shm", true},
		{"/var/tmp", false},
	} {
		var st unix.Statfs_t
		if err := unix.Statfs(tc.parent, &st); err != nil || (st.Type == unix.TMPFS_MAGIC) != tc.want {
			t.Logf("%s is not what this test needs here (statfs type %#x, %v)", tc.parent, st.Type, err)
			continue
		}
		dir, err := os.MkdirTemp(tc.parent, "cgrun-ontmpfs")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		d, err := diagnose.OpenDir(dir, w)
		if err != nil {
			t.Fatal(err)
		}
		if got := d.OnTmpfs(); got != tc.want {
			t.Errorf("%s: OnTmpfs %v, want %v", dir, got, tc.want)
		}
		d.Close()
		checked++
	}
	if checked < 2 {
		t.Skipf("checked %d of the two cases: this machine lacks a tmpfs /dev/shm or a disk /var/tmp", checked)
	}
}

// TestAtMax: a group counts as sitting at memory.max only while it is within the margin of the
// limit and the kernel counts max events between two looks; the stretch ends when either stops.
func TestAtMax(t *testing.T) {
	const limit = 100 << 20
	t0 := time.Unix(1000, 0)
	var a diagnose.AtMax
	for i, tc := range []struct {
		current, limit, count uint64
		want                  time.Duration
	}{
		{limit, limit, 10, 0},                       // the first look: nothing to compare with
		{limit, limit, 15, time.Second},             // events since: at max for about a second
		{limit - 1<<20, limit, 30, 2 * time.Second}, // within 2%
		{limit, limit, 60, 3 * time.Second},
		{limit, limit, 60, 0},           // no events since: not pressing
		{limit, limit, 61, time.Second}, // a new stretch
		{limit / 2, limit, 90, 0},       // far below
		{limit, 0, 91, 0},               // no limit
	} {
		if got := a.Observe(t0.Add(time.Duration(i)*time.Second), tc.current, tc.limit, tc.count); got != tc.want {
			t.Errorf("look %d: %v, want %v", i, got, tc.want)
		}
	}
}

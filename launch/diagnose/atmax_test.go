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

// TestAtMax: a group counts as sitting at memory.max only while the kernel counts at least
// PressedEvents max events between two looks and its memory is within an eighth of the limit;
// one look that misses does not end the stretch, two in a row do.
func TestAtMax(t *testing.T) {
	const limit = 96 << 20
	t0 := time.Unix(1000, 0)
	var a diagnose.AtMax
	for i, tc := range []struct {
		current, limit, count uint64
		want                  time.Duration
	}{
		{limit, limit, 10, 0},                         // the first look: nothing to compare with
		{limit, limit, 100, time.Second},              // events since: at max for about a second
		{limit - 10<<20, limit, 200, 2 * time.Second}, // reclaim just freed 10M: within an eighth
		{limit, limit, 300, 3 * time.Second},
		{limit, limit, 305, 0},               // a few events only: not pressing now...
		{limit, limit, 400, 5 * time.Second}, // ...but one miss does not end the stretch
		{limit / 2, limit, 500, 0},           // far below
		{limit / 2, limit, 600, 0},           // twice: the stretch ends
		{limit, limit, 700, time.Second},     // a new one
		{limit, 0, 800, 0},                   // no limit
	} {
		if got := a.Observe(t0.Add(time.Duration(i)*time.Second), tc.current, tc.limit, tc.count); got != tc.want {
			t.Errorf("look %d: %v, want %v", i, got, tc.want)
		}
	}
}

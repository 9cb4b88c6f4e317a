package cgroup_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"unsafe"

	"github.com/cgrun/cgrun/cgroup"
	"golang.org/x/sys/unix"
)

// controlFiles are the files a fake group holds: writeFile opens without O_CREAT, as cgroupfs
// has every file already.
var controlFiles = []string{"cpu.weight", "cpu.max", "memory.swap.max", "memory.low", "memory.high",
	"memory.max", "pids.max", "memory.oom.group", "memory.min", "memory.zswap.max"}

// fakeGroup is a temporary directory holding empty files named as a group's; writes returns
// what was written into them since, "file=content" in the order of the writes (inotify's
// IN_CLOSE_WRITE, one a write, in order).
func fakeGroup(t *testing.T, files ...string) (dir string, writes func() []string) {
	t.Helper()
	dir = t.TempDir()
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CLOSE_WRITE); err != nil {
		t.Fatal(err)
	}
	return dir, func() []string {
		var have []string
		buf := make([]byte, 64<<10)
		n, _ := unix.Read(fd, buf) // EAGAIN: nothing was written
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := string(bytes.TrimRight(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)], "\x00"))
			off += unix.SizeofInotifyEvent + int(ev.Len)
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			have = append(have, name+"="+string(b))
		}
		return have
	}
}

func TestSetters(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(dir string) error
		want string
	}{
		// success
		{"memory.high", func(d string) error { return cgroup.SetMemoryHigh(d, cgroup.Bytes(48<<20)) }, "memory.high=50331648"},
		{"memory.high max", func(d string) error { return cgroup.SetMemoryHigh(d, cgroup.Unlimited) }, "memory.high=max"},
		{"memory.max", func(d string) error { return cgroup.SetMemoryMax(d, cgroup.Bytes(64<<20)) }, "memory.max=67108864"},
		{"memory.max max", func(d string) error { return cgroup.SetMemoryMax(d, cgroup.Unlimited) }, "memory.max=max"},
		{"memory.low", func(d string) error { return cgroup.SetMemoryLow(d, cgroup.Bytes(1<<20)) }, "memory.low=1048576"},
		{"memory.swap.max", func(d string) error { return cgroup.SetMemorySwapMax(d, cgroup.Bytes(0)) }, "memory.swap.max=0"},
		{"memory.oom.group on", func(d string) error { return cgroup.SetMemoryOOMGroup(d, true) }, "memory.oom.group=1"},
		{"memory.oom.group off", func(d string) error { return cgroup.SetMemoryOOMGroup(d, false) }, "memory.oom.group=0"},
		{"pids.max", func(d string) error { return cgroup.SetPidsMax(d, cgroup.Bytes(100)) }, "pids.max=100"},
		{"pids.max max", func(d string) error { return cgroup.SetPidsMax(d, cgroup.Unlimited) }, "pids.max=max"},
		{"cpu.max", func(d string) error { return cgroup.SetCPUMax(d, cgroup.CPUMax{Quota: 50000}) }, "cpu.max=50000 100000"},
		{"cpu.weight", func(d string) error { return cgroup.SetCPUWeight(d, 200) }, "cpu.weight=200"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, writes := fakeGroup(t, controlFiles...)
			if err := tc.set(dir); err != nil {
				t.Fatal(err)
			}
			if have := writes(); !slices.Equal(have, []string{tc.want}) {
				t.Errorf("wrote %q, want %q", have, tc.want)
			}
		})
	}
	// failure: the error names the file and the value
	dir, _ := fakeGroup(t)
	var we *cgroup.WriteError
	err := cgroup.SetMemoryHigh(dir, cgroup.Bytes(4096))
	if !errors.As(err, &we) || we.Path != filepath.Join(dir, "memory.high") || we.Value != "4096" || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("SetMemoryHigh into a group without memory.high: %v", err)
	}
}

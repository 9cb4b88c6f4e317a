package cgroup_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/cgrun/cgrun/cgroup"
)

const (
	unifiedMountinfo = `22 1 0:21 / / rw,relatime - ext4 /dev/vda rw
25 22 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
30 25 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`
	hybridMountinfo = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
`
	readOnlyMountinfo = `30 25 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup rw
`
	// A container without a cgroup namespace that sees only its own subtree, bind-mounted.
	subtreeMountinfo = `40 30 0:26 /docker/abc /sys/fs/cgroup rw,relatime - cgroup2 cgroup rw
`
	spacedMountinfo = `30 25 0:26 / /mnt/cg\040two rw,relatime - cgroup2 cgroup2 rw
`
)

func TestFindHierarchy(t *testing.T) {
	success := []struct {
		name, mountinfo, proc string
		want                  cgroup.Hierarchy
	}{
		{"unified", unifiedMountinfo, "0::/system.slice/app.service\n",
			cgroup.Hierarchy{Mount: "/sys/fs/cgroup", Self: "/system.slice/app.service"}},
		{"root group", unifiedMountinfo, "0::/\n", cgroup.Hierarchy{Mount: "/sys/fs/cgroup", Self: "/"}},
		{"subtree mount", subtreeMountinfo, "0::/docker/abc/init\n", cgroup.Hierarchy{Mount: "/sys/fs/cgroup", Self: "/init"}},
		{"escaped mount point", spacedMountinfo, "0::/a\n", cgroup.Hierarchy{Mount: "/mnt/cg two", Self: "/a"}},
		{"hybrid with memory on v2", hybridMountinfo[:len(hybridMountinfo)-len("35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n")],
			"1:name=systemd:/\n0::/user.slice\n", cgroup.Hierarchy{Mount: "/sys/fs/cgroup/unified", Self: "/user.slice"}},
	}
	for _, tc := range success {
		t.Run(tc.name, func(t *testing.T) {
			have, err := find(t, tc.mountinfo, tc.proc)
			if err != nil || have != tc.want {
				t.Errorf("have %+v, %v; want %+v", have, err, tc.want)
			}
		})
	}
	failure := []struct {
		name, mountinfo, proc string
		want                  error
	}{
		{"hybrid with memory on v1", hybridMountinfo, "4:memory:/x\n0::/\n", cgroup.ErrMemoryOnV1},
		{"v1 only", "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n", "4:memory:/\n", cgroup.ErrMemoryOnV1},
		{"no 0:: line", unifiedMountinfo, "1:name=systemd:/\n", cgroup.ErrNoCgroup2},
		{"no cgroup2 mount", "22 1 0:21 / / rw - ext4 /dev/vda rw\n", "0::/\n", cgroup.ErrNoCgroup2},
		{"group outside the mount", subtreeMountinfo, "0::/other\n", cgroup.ErrNoCgroup2},
		{"read-only", readOnlyMountinfo, "0::/\n", cgroup.ErrReadOnly},
	}
	for _, tc := range failure {
		t.Run(tc.name, func(t *testing.T) {
			_, err := find(t, tc.mountinfo, tc.proc)
			var he *cgroup.HostError
			if !errors.Is(err, tc.want) || !errors.As(err, &he) || he.Fix == "" {
				t.Errorf("err %v; want %v with a fix", err, tc.want)
			}
		})
	}
}

func TestHybridErrorNamesKernelParameter(t *testing.T) {
	_, err := find(t, hybridMountinfo, "4:memory:/\n0::/\n")
	if err == nil || !strings.Contains(err.Error(), "systemd.unified_cgroup_hierarchy=1") {
		t.Errorf("err %v does not name systemd.unified_cgroup_hierarchy=1", err)
	}
}

func find(t *testing.T, mountinfo, proc string) (cgroup.Hierarchy, error) {
	t.Helper()
	mounts, err := cgroup.ParseMountInfo("mountinfo", []byte(mountinfo))
	if err != nil {
		t.Fatalf("ParseMountInfo: %v", err)
	}
	pc, err := cgroup.ParseProcCgroup("cgroup", []byte(proc))
	if err != nil {
		t.Fatalf("ParseProcCgroup: %v", err)
	}
	return cgroup.FindHierarchy(mounts, pc)
}

func TestParseMountInfoRejects(t *testing.T) {
	for _, in := range []string{"garbage\n", "1 2 3 - x\n", "1 2 0:1 / /x rw - \n"} {
		var pe *cgroup.ParseError
		if _, err := cgroup.ParseMountInfo("mi", []byte(in)); !errors.As(err, &pe) {
			t.Errorf("ParseMountInfo(%q) = %v, want a *ParseError", in, err)
		}
	}
}

func TestParseProcCgroup(t *testing.T) {
	pc, err := cgroup.ParseProcCgroup("c", []byte("12:memory:/a\n3:cpu,cpuacct:/b\n1:name=systemd:/c:d\n0::/e:f\n"))
	if err != nil {
		t.Fatal(err)
	}
	if pc.Unified != "/e:f" || pc.V1["memory"] != "/a" || pc.V1["cpuacct"] != "/b" || pc.V1["name=systemd"] != "/c:d" {
		t.Errorf("parsed %+v", pc)
	}
	for _, in := range []string{"junk\n", "0::relative\n", ":memory:/x\n"} {
		var pe *cgroup.ParseError
		if _, err := cgroup.ParseProcCgroup("c", []byte(in)); !errors.As(err, &pe) {
			t.Errorf("ParseProcCgroup(%q) = %v, want a *ParseError", in, err)
		}
	}
}

func FuzzParseMountInfo(f *testing.F) {
	f.Add(unifiedMountinfo)
	f.Add(hybridMountinfo)
	f.Add(spacedMountinfo)
	f.Fuzz(func(t *testing.T, s string) {
		mounts, err := cgroup.ParseMountInfo("mi", []byte(s))
		if err != nil {
			return
		}
		for _, m := range mounts {
			if m.FSType == "" {
				t.Fatalf("accepted a mount with no type: %+v", m)
			}
		}
	})
}

func FuzzParseProcCgroup(f *testing.F) {
	f.Add("0::/a/b\n")
	f.Add("4:memory:/x\n0::/\n")
	f.Fuzz(func(t *testing.T, s string) {
		pc, err := cgroup.ParseProcCgroup("c", []byte(s))
		if err == nil && pc.Unified != "" && pc.Unified[0] != '/' {
			t.Fatalf("accepted a relative path %q", pc.Unified)
		}
	})
}

package cgroup

import (
	"fmt"
	"os"
	"path"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Hierarchy is the cgroup v2 hierarchy as this process sees it.
type Hierarchy struct {
	Mount string // where cgroup2 is mounted, e.g. /sys/fs/cgroup
	Self  string // this process's group, relative to the hierarchy's root, e.g. /system.slice/x.service
}

// Dir is the directory of the group at rel (a path as in /proc/self/cgroup).
func (h Hierarchy) Dir(rel string) string { return filepath.Join(h.Mount, filepath.Clean("/"+rel)) }

// SelfDir is the directory of this process's own group.
func (h Hierarchy) SelfDir() string { return h.Dir(h.Self) }

// Rel is the path of dir relative to the hierarchy's root, as /proc/PID/cgroup shows it.
func (h Hierarchy) Rel(dir string) string {
	r, err := filepath.Rel(h.Mount, dir)
	if err != nil || r == "." {
		return "/"
	}
	return "/" + r
}

// Detect finds the cgroup2 mount in /proc/self/mountinfo, checks it with statfs(2) and reads this
// process's group from /proc/self/cgroup. Each failure is a *HostError that says how to fix it.
func Detect() (Hierarchy, error) {
	h, err := DetectFrom(os.ReadFile)
	if err != nil {
		return Hierarchy{}, err
	}
	var st unix.Statfs_t
	if err := unix.Statfs(h.Mount, &st); err != nil {
		return Hierarchy{}, fmt.Errorf("statfs %s: %w", h.Mount, err)
	}
	if st.Type != unix.CGROUP2_SUPER_MAGIC {
		return Hierarchy{}, &HostError{Err: ErrNoCgroup2, Path: h.Mount,
			What: fmt.Sprintf("%s is listed as cgroup2 in %s but statfs says filesystem type %#x", h.Mount, mountInfoPath, st.Type),
			Fix:  "mount cgroup2 there: mount -t cgroup2 none " + h.Mount}
	}
	return h, nil
}

// The files Detect reads.
const mountInfoPath, procCgroupPath = "/proc/self/mountinfo", "/proc/self/cgroup"

// DetectFrom is Detect without the statfs check, reading the two files with read: os.ReadFile,
// or, for cgrun check --root, the same files under a copy of another host's /proc.
func DetectFrom(read func(path string) ([]byte, error)) (Hierarchy, error) {
	mi, err := read(mountInfoPath)
	if err != nil {
		return Hierarchy{}, fmt.Errorf("read %s: %w", mountInfoPath, err)
	}
	mounts, err := ParseMountInfo(mountInfoPath, mi)
	if err != nil {
		return Hierarchy{}, err
	}
	pcb, err := read(procCgroupPath)
	if err != nil {
		return Hierarchy{}, fmt.Errorf("read %s: %w", procCgroupPath, err)
	}
	pc, err := ParseProcCgroup(procCgroupPath, pcb)
	if err != nil {
		return Hierarchy{}, err
	}
	return FindHierarchy(mounts, pc)
}

// FindHierarchy picks the cgroup2 mount that holds this process's group; it is Detect without I/O.
func FindHierarchy(mounts []Mount, pc ProcCgroup) (Hierarchy, error) {
	if _, ok := pc.V1["memory"]; ok {
		return Hierarchy{}, &HostError{Err: ErrMemoryOnV1, Path: "/proc/self/cgroup",
			What: "this host binds the memory controller to cgroup v1 (a legacy or hybrid layout), so cgroup v2 cannot limit memory",
			Fix:  "boot with systemd.unified_cgroup_hierarchy=1 on the kernel command line (or use a distribution release that defaults to cgroup v2)"}
	}
	if pc.Unified == "" {
		return Hierarchy{}, &HostError{Err: ErrNoCgroup2, Path: "/proc/self/cgroup",
			What: "this process is in no cgroup v2 hierarchy (no 0:: line in /proc/self/cgroup)",
			Fix:  "boot with systemd.unified_cgroup_hierarchy=1, or mount one: mount -t cgroup2 none /sys/fs/cgroup"}
	}
	var best *Mount
	for i := range mounts {
		m := &mounts[i]
		if m.FSType != "cgroup2" {
			continue
		}
		// The mount shows the subtree below m.Root; this process's group must lie inside it.
		if !within(pc.Unified, m.Root) {
			continue
		}
		if best == nil || len(m.Root) > len(best.Root) {
			best = m
		}
	}
	if best == nil {
		return Hierarchy{}, &HostError{Err: ErrNoCgroup2, Path: "/proc/self/mountinfo",
			What: "no cgroup2 filesystem is mounted",
			Fix:  "mount it (mount -t cgroup2 none /sys/fs/cgroup) or boot with systemd.unified_cgroup_hierarchy=1"}
	}
	rel := "/"
	if best.Root != "/" {
		rel = "/" + trimSlash(pc.Unified[len(best.Root):])
	} else {
		rel = path.Clean(pc.Unified)
	}
	if best.ReadOnly() {
		return Hierarchy{}, readOnlyError(best.MountPoint)
	}
	return Hierarchy{Mount: best.MountPoint, Self: rel}, nil
}

func within(p, root string) bool {
	if root == "/" {
		return true
	}
	return p == root || len(p) > len(root) && p[:len(root)] == root && p[len(root)] == '/'
}

func trimSlash(s string) string {
	for len(s) > 0 && s[0] == '/' {
		s = s[1:]
	}
	return s
}

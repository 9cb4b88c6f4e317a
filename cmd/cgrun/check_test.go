package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// A hybrid host whose memory controller is on cgroup v1 (this is the development host's
// /proc/self/mountinfo and /proc/self/cgroup, cut to the cgroup lines).
const (
	hybridMountinfo = `23 1 0:21 / / rw,relatime - overlay overlay rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
	hybridCgroup = `9:name=systemd:/
8:pids:/
4:memory:/process_api/22edafcb4170ce293962cfa6f6da6c69
1:cpu:/
0::/
`
	unifiedMountinfo = `23 1 0:21 / / rw,relatime - ext4 /dev/sda1 rw
30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`
	swapsOff = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
	swapsOn  = swapsOff + "/swapfile                               file\t\t2097148\t\t0\t\t-2\n"
)

// fixtureHost writes files (path relative to the root: content) into a fresh root.
func fixtureHost(t *testing.T, files map[string]string) hostView {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return hostView{root: root, pid: 4242, release: "6.1.0-18-amd64", machine: "x86_64"}
}

// v2Files is a unified host where this process is in own, whose group has the given
// controllers, with PSI and the per-group files of a 6.1 kernel.
func v2Files(own, controllers string) map[string]string {
	g := "sys/fs/cgroup" + own + "/"
	return map[string]string{
		"proc/self/mountinfo":              unifiedMountinfo,
		"proc/self/cgroup":                 "0::" + own + "\n",
		"proc/swaps":                       swapsOff,
		"proc/pressure/memory":             "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
		"sys/fs/cgroup/cgroup.controllers": "cpuset cpu io memory hugetlb pids rdma misc",
		g + "cgroup.controllers":           controllers,
		g + "cgroup.subtree_control":       "",
		g + "cgroup.procs":                 "4242\n",
		g + "cgroup.kill":                  "",
		g + "memory.peak":                  "0",
		g + "memory.events":                "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n",
		g + "memory.pressure":              "",
		g + "memory.swap.max":              "max",
	}
}

func with(m map[string]string, kv ...string) map[string]string {
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "\x00delete" {
			delete(m, kv[i])
			continue
		}
		m[kv[i]] = kv[i+1]
	}
	return m
}

func TestCheckHost(t *testing.T) {
	const del = "\x00delete"
	for _, tc := range []struct {
		name    string
		files   map[string]string
		set     func(*testing.T, *hostView)
		parent  string
		works   bool
		want    []string // substrings of the text output, in any order
		wantNot []string
	}{
		// success
		{name: "container at the namespace root, no systemd", files: v2Files("/", "cpu memory pids"), works: true,
			want: []string{"ok    cgroup      cgroup v2 (unified) at /sys/fs/cgroup; this process is in /", "ok    access      running as root",
				"memory and pids available in /", "its groups nest in this process's group / (no systemd here)", "ok    PSI"}},
		{name: "delegated service under systemd", files: v2Files("/system.slice/app.service", "memory pids"), works: true,
			set: func(t *testing.T, v *hostView) {
				v.systemd, v.systemdVersion = true, nil // a delegated group needs no D-Bus
				delegate(t, v.path("/sys/fs/cgroup/system.slice/app.service"))
			},
			want: []string{"memory and pids available in /system.slice/app.service (no cpu: --cpu-max and --cpu-weight cannot work)",
				"nest in this process's group /system.slice/app.service"}},
		{name: "login shell under systemd: a scope over D-Bus", files: v2Files("/user.slice/user-0.slice/session-1.scope", "memory pids"), works: true,
			set:  func(t *testing.T, v *hostView) { v.systemd = true },
			want: []string{"ok    systemd     systemd 252; the system manager answers over D-Bus", "ok    controllers memory and pids available in /\n", "asks the systemd system manager for a scope"}},
		{name: "hybrid host with memory on cgroup v2", files: with(v2Files("/", "memory pids"),
			"proc/self/mountinfo", unifiedMountinfo+"40 31 0:37 / /sys/fs/cgroup/net_cls rw,relatime - cgroup cgroup rw,net_cls\n"), works: true,
			want: []string{"hybrid: cgroup v2, with net_cls on cgroup v1"}},
		{name: "swap without swap accounting", files: with(v2Files("/app", "memory pids"), "proc/swaps", swapsOn, "sys/fs/cgroup/app/memory.swap.max", del), works: true,
			want: []string{"warn  swap        on (2G)", "swapaccount=1"}},
		{name: "swap on", files: with(v2Files("/app", "memory pids"), "proc/swaps", swapsOn), works: true,
			want: []string{"info  swap        on (2G)", "--memory-swap-max 0"}, wantNot: []string{"swapaccount"}},
		{name: "5.10 without PSI", files: with(v2Files("/app", "memory pids"), "proc/pressure/memory", del, "sys/fs/cgroup/app/memory.pressure", del,
			"sys/fs/cgroup/app/memory.peak", del, "sys/fs/cgroup/app/memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n"),
			set: func(t *testing.T, v *hostView) { v.release = "5.10.0-28-amd64" }, works: true,
			want: []string{"ok    feature     cgroup.kill (cgroup.kill, Linux 5.14)", "warn  feature     no oom_group_kill (memory.events oom_group_kill, Linux 5.17)",
				"warn  feature     no memory.peak (memory.peak, Linux 5.19)", "warn  PSI         no /proc/pressure/memory", "CONFIG_PSI=y"}},
		// RHEL 9 backports by minor release: what the group shows counts, not the version.
		{name: "5.14 with backported memory.peak and oom_group_kill", files: v2Files("/app", "memory pids"),
			set: func(t *testing.T, v *hostView) { v.release = "5.14.0-427.13.1.el9_4.x86_64" }, works: true,
			want: []string{"ok    feature     oom_group_kill (memory.events oom_group_kill, Linux 5.17)", "ok    feature     memory.peak (memory.peak, Linux 5.19)"}},
		// No memory controller in this process's group (--parent names one that has it): its
		// lack of memory files says nothing of the kernel.
		{name: "own group without the memory controller", files: with(v2Files("/app", "pids"), "sys/fs/cgroup/app/memory.pressure", del,
			"sys/fs/cgroup/app/memory.peak", del, "sys/fs/cgroup/app/memory.events", del), works: false,
			want: []string{"ok    feature     memory.peak (Linux 5.19; judged from the kernel version only)",
				"ok    feature     oom_group_kill (Linux 5.17; judged from the kernel version only)", "ok    PSI"},
			wantNot: []string{"no memory.peak", "no memory.pressure in groups"}},
		{name: "OpenVZ container", files: with(v2Files("/", "memory pids"), "proc/vz/veinfo", ""), works: true,
			want: []string{"info  guest       an OpenVZ/Virtuozzo container"}},
		{name: "LXC container", files: with(v2Files("/", "memory pids"), "run/systemd/container", "lxc\n"), works: true,
			want: []string{"info  guest       a lxc container"}},
		{name: "busy group beside a ready parent", files: with(v2Files("/apps/shell", "memory pids"), "sys/fs/cgroup/apps/shell/cgroup.procs", "17\n4242\n",
			"sys/fs/cgroup/apps/cgroup.subtree_control", "memory pids", "sys/fs/cgroup/apps/shell/memory.max", "max",
			"sys/fs/cgroup/apps/shell/memory.high", "max", "sys/fs/cgroup/apps/shell/pids.max", "max"), works: true,
			want: []string{"info  group       /apps/shell holds 1 other processes; cgrun makes its groups beside it, in /apps"}},
		{name: "--parent", files: with(v2Files("/", "memory pids"), "sys/fs/cgroup/apps/cgroup.controllers", "memory pids",
			"sys/fs/cgroup/apps/cgroup.procs", ""), parent: "/sys/fs/cgroup/apps", works: true,
			want: []string{"its groups go under --parent /apps"}},
		// failure
		// A busy group whose parent is not ready for groups beside it: launch's place gets
		// ErrGroupBusy from cgroup.Nest, so cgrun run fails, and check says so with exit 1.
		{name: "busy group", files: with(v2Files("/apps/shell", "memory pids"), "sys/fs/cgroup/apps/shell/cgroup.procs", "17\n4242\n"),
			want: []string{"FAIL  group       /apps/shell holds 1 other processes (this shell?), and its parent /apps is not ready for groups beside it; cgrun run started from here fails",
				"cgrun run cannot work here"}},
		{name: "hybrid host with memory on cgroup v1", files: map[string]string{"proc/self/mountinfo": hybridMountinfo, "proc/self/cgroup": hybridCgroup, "proc/swaps": swapsOff},
			want: []string{"FAIL  cgroup      this host binds the memory controller to cgroup v1", "(on cgroup v1: cpu memory pids)",
				"systemd.unified_cgroup_hierarchy=1", "cgrun run cannot work here"}},
		// Memory on cgroup v1: every other line is still there, and what cannot be looked at
		// in a group is said to be judged from the kernel version.
		{name: "cgroup v1 host: the other lines still come", files: map[string]string{"proc/self/mountinfo": hybridMountinfo, "proc/self/cgroup": hybridCgroup,
			"proc/swaps": swapsOff, "proc/pressure/memory": "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"},
			set: func(t *testing.T, v *hostView) { v.systemd = true },
			want: []string{"ok    access      running as root", "ok    systemd     systemd 252; the system manager answers over D-Bus",
				"ok    feature     CLONE_INTO_CGROUP (Linux 5.7; judged from the kernel version only)",
				"ok    feature     cgroup.kill (Linux 5.14; judged from the kernel version only)",
				"ok    feature     memory.peak (Linux 5.19; judged from the kernel version only)",
				"ok    PSI         pressure stall information (/proc/pressure/memory; memory.pressure in groups judged from the kernel version only, Linux 5.2)",
				"info  swap        off"},
			wantNot: []string{"guest", "ask the provider"}},
		{name: "cgroup v1 host as a user, D-Bus unreachable", files: map[string]string{"proc/self/mountinfo": hybridMountinfo, "proc/self/cgroup": hybridCgroup},
			set: func(t *testing.T, v *hostView) {
				v.systemd, v.euid = true, 1000
				v.systemdVersion = func(bool) (string, error) {
					return "", errors.New("dial unix /run/user/1000/bus: no such file or directory")
				}
			},
			want: []string{"info  access      as uid 1000 (not root): whether this user may make groups cannot be told until cgroup v2 works",
				"info  systemd     running, but the user manager cannot be reached over D-Bus (dial unix /run/user/1000/bus: no such file or directory)",
				"warn  PSI         no /proc/pressure/memory"}},
		{name: "cgroup v1 host without systemd", files: map[string]string{"proc/self/mountinfo": hybridMountinfo, "proc/self/cgroup": hybridCgroup},
			want: []string{"info  systemd     not running (PID 1 is not systemd)", "ok    access      running as root"}},
		{name: "cgroup v1 in an LXC container: the host's kernel command line", files: map[string]string{"proc/self/mountinfo": hybridMountinfo,
			"proc/self/cgroup": hybridCgroup, "run/systemd/container": "lxc\n"},
			want: []string{"FAIL  cgroup      this host binds the memory controller to cgroup v1",
				"fix: this is a lxc container: its cgroup layout is the host's, set by the host's kernel command line", "ask the provider to boot the host with systemd.unified_cgroup_hierarchy=1"},
			wantNot: []string{"fix: boot with"}},
		{name: "cgroup v1 in an OpenVZ container: the host's kernel command line", files: map[string]string{"proc/self/mountinfo": hybridMountinfo,
			"proc/self/cgroup": hybridCgroup, "proc/vz/veinfo": ""},
			want: []string{"fix: this is an OpenVZ/Virtuozzo container: its cgroup layout is the host's", "ask the provider"}},
		{name: "no cgroup2 mounted", files: map[string]string{"proc/self/mountinfo": "23 1 0:21 / / rw - ext4 /dev/sda1 rw\n", "proc/self/cgroup": "0::/\n"},
			want: []string{"FAIL  cgroup      no cgroup2 filesystem is mounted"}},
		{name: "read-only cgroupfs", files: with(v2Files("/", "memory pids"), "proc/self/mountinfo", strings.Replace(unifiedMountinfo, "noexec,relatime", "noexec,relatime,ro", 1)),
			want: []string{"FAIL  cgroup      the cgroup filesystem at /sys/fs/cgroup is read-only", "--cgroupns=private"}},
		{name: "no memory controller", files: v2Files("/app", "cpu pids"),
			want: []string{"FAIL  controllers /app has no memory controller", "Delegate=yes"}},
		{name: "scope, but D-Bus cannot be reached", files: v2Files("/user.slice/user-1000.slice/session-1.scope", "memory pids"),
			set: func(t *testing.T, v *hostView) {
				v.systemd, v.euid = true, 1000
				v.systemdVersion = func(bool) (string, error) {
					return "", errors.New("dial unix /run/user/1000/bus: no such file or directory")
				}
			},
			want: []string{"FAIL  systemd     this group /user.slice/user-1000.slice/session-1.scope is systemd's and not delegated, and the systemd user manager cannot be reached",
				"loginctl enable-linger 1000", "info  access      as uid 1000 (not root): without a scope from the user manager"}},
		{name: "--parent that does not exist", files: v2Files("/", "memory pids"), parent: "/apps",
			want: []string{"FAIL  parent      --parent /apps: no such group; fix: create it first", "ok    access      running as root", "info  systemd     not running"}},
		{name: "--parent that does not exist, as a user", files: v2Files("/", "memory pids"), parent: "/apps",
			set:  func(t *testing.T, v *hostView) { v.euid = 1000 },
			want: []string{"info  access      as uid 1000 (not root): whether this user may make groups cannot be told until the --parent group exists"}},
		{name: "a user's shell under its user manager", files: with(v2Files("/user.slice/user-1000.slice/user@1000.service/app.slice/x.service", "memory pids"),
			"sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/cgroup.controllers", "cpu memory pids"),
			set: func(t *testing.T, v *hostView) { v.systemd, v.euid = true, 1000 }, works: true,
			want: []string{"ok    systemd     systemd 252; the user manager answers", "ok    controllers memory and pids available in /user.slice/user-1000.slice/user@1000.service\n",
				"as uid 1000 (not root), cgrun asks the systemd user manager for a scope"}},
		{name: "kernel too old", files: v2Files("/", "memory pids"), set: func(t *testing.T, v *hostView) { v.release = "4.4.0" },
			want: []string{"FAIL  kernel      Linux 4.4.0 (x86_64): the cgroup v2 memory and pids controllers came with 4.5"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := fixtureHost(t, tc.files)
			v.systemdVersion = func(bool) (string, error) { return "252", nil }
			if tc.set != nil {
				tc.set(t, &v)
			}
			r := checkHost(v, tc.parent)
			var out bytes.Buffer
			writeCheck(&out, r)
			if r.Works != tc.works {
				t.Errorf("works %v, want %v:\n%s", r.Works, tc.works, out.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range tc.wantNot {
				if strings.Contains(out.String(), w) {
					t.Errorf("output has %q:\n%s", w, out.String())
				}
			}
			for _, name := range []string{"access", "systemd", "feature", "PSI"} { // whatever else fails
				if !slices.ContainsFunc(r.Items, func(it checkItem) bool { return it.Name == name }) {
					t.Errorf("no %s line:\n%s", name, out.String())
				}
			}
			if strings.Contains(out.String(), v.root) {
				t.Errorf("output shows the fixture's root %s:\n%s", v.root, out.String())
			}
			if n := strings.Count(out.String(), "\n"); n != len(r.Items)+1 {
				t.Errorf("%d lines for %d items: want one line each and the verdict", n, len(r.Items))
			}
		})
	}
}

// delegate marks dir as systemd marks a delegated group (user.delegate, as a user manager does;
// trusted.delegate needs CAP_SYS_ADMIN).
func delegate(t *testing.T, dir string) {
	t.Helper()
	if err := unix.Setxattr(dir, "user.delegate", []byte("1"), 0); err != nil {
		t.Skipf("cannot set user.delegate on %s: %v", dir, err)
	}
}

func TestParseKernelVersion(t *testing.T) {
	for _, tc := range []struct {
		release      string
		major, minor int
		ok           bool
	}{
		{"6.1.0-18-amd64", 6, 1, true},
		{"5.10.0", 5, 10, true},
		{"6.18.44-fc-v595", 6, 18, true},
		{"5.4", 5, 4, true},
		{"6.12rc1", 6, 12, true},
		{"", 0, 0, false},
		{"linux", 0, 0, false},
	} {
		k, ok := parseKernelVersion(tc.release)
		if ok != tc.ok || k.major != tc.major || k.minor != tc.minor {
			t.Errorf("%q: %d.%d %v, want %d.%d %v", tc.release, k.major, k.minor, ok, tc.major, tc.minor, tc.ok)
		}
	}
}

// TestCheckCommandOnThisHost runs the real check on whatever host runs the tests: its exit code
// agrees with its verdict, --json says the same, and a bad flag is a usage error.
func TestCheckCommandOnThisHost(t *testing.T) {
	var out, errb bytes.Buffer
	code := cgrun([]string{"check"}, os.Environ(), &out, &errb)
	text := out.String()
	lines := strings.Split(strings.TrimSpace(text), "\n")
	last := lines[len(lines)-1]
	switch {
	case code == 0 && strings.HasPrefix(last, "cgrun run can work here: "):
	case code == 1 && last == "cgrun run cannot work here: fix the lines marked FAIL" && strings.Contains(text, "\nFAIL  "):
	default:
		t.Fatalf("exit %d with verdict %q:\n%s%s", code, last, text, errb.String())
	}
	out.Reset()
	jcode := cgrun([]string{"check", "--json"}, os.Environ(), &out, &errb)
	var r checkResult
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("--json: %v: %s", err, out.String())
	}
	if jcode != code || r.Works != (code == 0) || len(r.Items) != len(lines)-1 {
		t.Errorf("--json: exit %d works %v with %d items; text: exit %d with %d lines", jcode, r.Works, len(r.Items), code, len(lines))
	}
	t.Logf("this host:\n%s", text)
	errb.Reset()
	if code := cgrun([]string{"check", "--bogus"}, nil, &out, &errb); code != 125 || strings.Count(errb.String(), "\n") != 1 {
		t.Errorf("bad flag: exit %d, stderr %q; want 125 and one line", code, errb.String())
	}
}

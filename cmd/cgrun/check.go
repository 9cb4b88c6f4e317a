package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/launch/exitcode"
	"github.com/cgrun/cgrun/launch/place"
	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"
)

const checkUsage = `Usage: cgrun check [--json] [--parent GROUP]

Says what this host offers and what 'cgrun run' will do here, one line per item, with the fix
where something is missing. It only reads (and asks systemd's version over D-Bus): safe on any
host. Exit status: 0 when 'cgrun run' can work here, 1 when it cannot (the lines marked FAIL say
why), 125 for a usage error.

Flags:
%s`

// Exit codes of `cgrun check`.
const (
	checkWorks    = 0
	checkCannot   = 1
	checkBadUsage = exitcode.Failure
)

// Status of one check item.
const (
	statusOK   = "ok"
	statusInfo = "info"
	statusWarn = "warn" // cgrun works, with less
	statusFail = "fail" // cgrun run cannot work here until it is fixed
)

// checkItem is one line of `cgrun check`.
type checkItem struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// checkResult is the whole answer; --json prints it as it is.
type checkResult struct {
	Works bool        `json:"works"`
	Place string      `json:"place,omitempty"` // where cgrun run would make its groups
	Items []checkItem `json:"items"`
}

func (r *checkResult) add(name, status, detail, fix string) {
	r.Items = append(r.Items, checkItem{Name: name, Status: status, Detail: detail, Fix: fix})
}

// hostView is what check looks at. On a real host root is "" and the other fields come from
// the running system; tests point root at a directory of fixture files.
type hostView struct {
	root    string // prefix of every path read
	euid    int
	pid     int
	release string // uname -r
	machine string // uname -m
	systemd bool   // systemd is the init system (cgroup.SystemdRunning)
	// systemdVersion asks the systemd manager (the user's when user is true) for its version
	// over D-Bus; an error says it cannot be reached.
	systemdVersion func(user bool) (string, error)
}

func (v hostView) path(p string) string { return filepath.Join(v.root, p) }

func (v hostView) exists(p string) bool {
	_, err := os.Stat(v.path(p))
	return err == nil
}

func (v hostView) read(p string) (string, error) {
	b, err := os.ReadFile(v.path(p))
	return strings.TrimSpace(string(b)), err
}

func realHost() hostView {
	var u unix.Utsname
	_ = unix.Uname(&u)
	return hostView{
		euid:           os.Geteuid(),
		pid:            os.Getpid(),
		release:        unix.ByteSliceToString(u.Release[:]),
		machine:        unix.ByteSliceToString(u.Machine[:]),
		systemd:        cgroup.SystemdRunning(),
		systemdVersion: systemdVersion,
	}
}

// systemdVersion reads the Version property of the systemd manager over D-Bus: it proves the bus
// is reachable, as cgrun run needs it to ask for a scope.
func systemdVersion(user bool) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	connect := sddbus.NewSystemConnectionContext
	if user {
		connect = sddbus.NewUserConnectionContext
	}
	conn, err := connect(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	v, err := conn.GetManagerProperty("Version")
	return strings.Trim(v, `"`), err
}

func newCheckFlagSet() (fs *pflag.FlagSet, asJSON *bool, parent *string) {
	fs = pflag.NewFlagSet("cgrun check", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	asJSON = fs.Bool("json", false, "print the result as one JSON object")
	parent = fs.String("parent", "", "check the `GROUP` that 'cgrun run --parent GROUP' would use")
	return fs, asJSON, parent
}

func checkCommand(args []string, stdout, stderr io.Writer) int {
	fs, asJSON, parent := newCheckFlagSet()
	help := fs.BoolP("help", "h", false, "show this help")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		if err == nil {
			err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
		}
		err = unknownFlag(fs, err)
		fmt.Fprintf(stderr, "cgrun: check: %v; see 'cgrun check --help'\n", err)
		return checkBadUsage
	}
	if *help {
		fmt.Fprintf(stdout, checkUsage, fs.FlagUsagesWrapped(100))
		return 0
	}
	if err := cgroup.ParentName(*parent); err != nil {
		fmt.Fprintf(stderr, "cgrun: check: %v\n", err) // as cgrun run --parent says it
		return checkBadUsage
	}
	r := checkHost(realHost(), *parent)
	if *asJSON {
		b, _ := json.MarshalIndent(r, "", "  ")
		fmt.Fprintf(stdout, "%s\n", b)
	} else {
		writeCheck(stdout, r)
	}
	if !r.Works {
		return checkCannot
	}
	return checkWorks
}

func writeCheck(w io.Writer, r checkResult) {
	for _, it := range r.Items {
		status := it.Status
		if status == statusFail {
			status = "FAIL" // the line to look for
		}
		line := fmt.Sprintf("%-4s  %-11s %s", status, it.Name, it.Detail)
		if it.Fix != "" {
			line += "; fix: " + it.Fix
		}
		fmt.Fprintln(w, line)
	}
	if r.Works {
		fmt.Fprintf(w, "cgrun run can work here: %s\n", r.Place)
	} else {
		fmt.Fprintln(w, "cgrun run cannot work here: fix the lines marked FAIL")
	}
}

// checkHost looks at the host in the order a reader would ask: which kernel, which cgroup
// layout, who runs cgrun, where the groups would go, and what the kernel offers there. Every
// item is reported even when an earlier one fails, so that one run shows everything to fix.
func checkHost(v hostView, parent string) checkResult {
	var r checkResult
	ver := checkKernel(&r, v)
	guest := checkGuest(&r, v)
	h, ok := checkHierarchy(&r, v, guest)
	checkSwap(&r, v, h, ok)
	if ok {
		checkSite(&r, v, h, parent)
		checkFeatures(&r, v, h, ver)
	} else {
		checkSystemd(&r, v, "cgrun needs it for a scope once cgroup v2 works, unless it runs in a unit with Delegate=yes")
		checkAccessUnknown(&r, v, "cgroup v2 works")
		checkFeatures(&r, v, cgroup.Hierarchy{}, ver)
	}
	r.Works = !slices.ContainsFunc(r.Items, func(it checkItem) bool { return it.Status == statusFail })
	if !r.Works {
		r.Place = ""
	}
	return r
}

// who names the user cgrun runs as.
func (v hostView) who() string {
	if v.euid == 0 {
		return "root"
	}
	return fmt.Sprintf("uid %d (not root)", v.euid)
}

// checkAccessUnknown is the access line where no group can be looked at until something else is
// fixed (until: "cgroup v2 works").
func checkAccessUnknown(r *checkResult, v hostView, until string) {
	if v.euid == 0 {
		r.add("access", statusOK, "running as root", "")
		return
	}
	r.add("access", statusInfo, fmt.Sprintf("as %s: whether this user may make groups cannot be told until %s", v.who(), until),
		"then run as root, in a systemd unit with Delegate=yes, or under `systemd-run --user --scope -p Delegate=yes cgrun run ...`")
}

// checkSystemd is the systemd line where cgrun would not ask systemd for a scope (checkScope
// covers the place where it would): whether systemd runs and answers over D-Bus; why is what
// that means here.
func checkSystemd(r *checkResult, v hostView, why string) {
	if !v.systemd {
		r.add("systemd", statusInfo, "not running (PID 1 is not systemd): cgrun makes its groups itself, without D-Bus", "")
		return
	}
	user := v.euid != 0
	bus := "system"
	if user {
		bus = "user"
	}
	if v.systemdVersion == nil {
		r.add("systemd", statusInfo, fmt.Sprintf("running; the %s manager was not asked over D-Bus: %s", bus, why), "")
		return
	}
	ver, err := v.systemdVersion(user)
	if err != nil {
		r.add("systemd", statusInfo, fmt.Sprintf("running, but the %s manager cannot be reached over D-Bus (%v): %s", bus, err, why), "")
		return
	}
	r.add("systemd", statusOK, fmt.Sprintf("systemd %s; the %s manager answers over D-Bus (%s)", ver, bus, why), "")
}

// kernelVersion is a kernel release's major and minor number: "6.1.0-18-amd64" is {6, 1}.
type kernelVersion struct{ major, minor int }

func parseKernelVersion(release string) (kernelVersion, bool) {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return kernelVersion{}, false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor := parts[1]
	if i := strings.IndexFunc(minor, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		minor = minor[:i]
	}
	mn, err2 := strconv.Atoi(minor)
	if err1 != nil || err2 != nil {
		return kernelVersion{}, false
	}
	return kernelVersion{major, mn}, true
}

func (k kernelVersion) atLeast(major, minor int) bool {
	return k.major > major || k.major == major && k.minor >= minor
}

func checkKernel(r *checkResult, v hostView) kernelVersion {
	k, ok := parseKernelVersion(v.release)
	switch {
	case !ok:
		r.add("kernel", statusWarn, fmt.Sprintf("release %q: cannot tell the version; features are judged by their files only", v.release), "")
	case !k.atLeast(4, 5):
		r.add("kernel", statusFail, fmt.Sprintf("Linux %s (%s): the cgroup v2 memory and pids controllers came with 4.5", v.release, v.machine),
			"upgrade the kernel (5.19 or later has every feature below)")
	default:
		r.add("kernel", statusOK, fmt.Sprintf("Linux %s (%s)", v.release, v.machine), "")
	}
	return k
}

// checkGuest names the kind of guest this is, where cgroups are not the guest's own, and
// returns it as the guest line says it ("" for none).
func checkGuest(r *checkResult, v hostView) string {
	if v.exists("/proc/vz") && !v.exists("/proc/bc") {
		// OpenVZ and Virtuozzo containers have /proc/vz; only their host has /proc/bc.
		r.add("guest", statusInfo, "an OpenVZ/Virtuozzo container: the host's kernel and its cgroup setup decide what cgrun can do", "")
		return "an OpenVZ/Virtuozzo container"
	}
	kind := ""
	if s, err := v.read("/run/systemd/container"); err == nil && s != "" {
		kind = s // systemd's own detection, written by systemd in a container
	} else if env, err := os.ReadFile(v.path("/proc/1/environ")); err == nil {
		for _, kv := range strings.Split(string(env), "\x00") {
			if c, ok := strings.CutPrefix(kv, "container="); ok && c != "" {
				kind = c
			}
		}
	}
	switch {
	case kind == "" && v.exists("/.dockerenv"):
		kind = "docker"
	case kind == "" && v.exists("/run/.containerenv"):
		kind = "podman"
	}
	if kind == "" {
		return ""
	}
	r.add("guest", statusInfo, fmt.Sprintf("a %s container: cgrun nests in the group the runtime gave it", kind), "")
	return fmt.Sprintf("a %s container", kind)
}

// checkHierarchy finds the cgroup v2 hierarchy as cgroup.Detect does. The Hierarchy it returns
// has the view's root in front of its mount, so that files are read from the view. In a guest
// (checkGuest) the cgroup version is the host's choice, so the fix for cgroup v1 says so.
func checkHierarchy(r *checkResult, v hostView, guest string) (cgroup.Hierarchy, bool) {
	const miPath = "/proc/self/mountinfo"
	var h cgroup.Hierarchy
	var err error
	var v1 []string
	if v.root == "" {
		h, err = cgroup.Detect()
	} else {
		h, err = cgroup.DetectFrom(func(p string) ([]byte, error) { return os.ReadFile(v.path(p)) })
	}
	if mi, rerr := os.ReadFile(v.path(miPath)); rerr == nil {
		mounts, _ := cgroup.ParseMountInfo(miPath, mi)
		for _, m := range mounts {
			if m.FSType != "cgroup" {
				continue
			}
			for _, o := range m.Super { // rw,memory or rw,name=systemd
				if o != "rw" && o != "ro" && !strings.Contains(o, "=") {
					v1 = append(v1, o)
				}
			}
		}
	}
	if err != nil {
		var he *cgroup.HostError
		if errors.As(err, &he) {
			what := he.What
			if len(v1) > 0 {
				what += fmt.Sprintf(" (on cgroup v1: %s)", strings.Join(v1, " "))
			}
			fix := he.Fix
			if guest != "" && errors.Is(err, cgroup.ErrMemoryOnV1) {
				fix = fmt.Sprintf("this is %s: its cgroup layout is the host's, set by the host's kernel command line, which the guest cannot change; "+
					"ask the provider to boot the host with systemd.unified_cgroup_hierarchy=1, or move to a VM (KVM) with a kernel of its own", guest)
			}
			r.add("cgroup", statusFail, what, fix)
		} else {
			r.add("cgroup", statusFail, err.Error(), "")
		}
		return h, false
	}
	layout := "cgroup v2 (unified)"
	if len(v1) > 0 {
		layout = fmt.Sprintf("hybrid: cgroup v2, with %s on cgroup v1", strings.Join(v1, " "))
	}
	r.add("cgroup", statusOK, fmt.Sprintf("%s at %s; this process is in %s", layout, h.Mount, h.Self), "")
	h.Mount = v.path(h.Mount)
	return h, true
}

// checkSite says where cgrun run would make its groups (place.Plan), whether it may write
// there, and whether the memory and pids controllers are available there.
func checkSite(r *checkResult, v hostView, h cgroup.Hierarchy, parent string) {
	show := func(dir string) string { return h.Rel(dir) }
	who := v.who()
	if mount := strings.TrimPrefix(h.Mount, v.root); v.root != "" && strings.HasPrefix(parent, mount+"/") {
		parent = v.path(parent) // a fixture: the group lies under the view's root
	}
	plan := place.Plan(h, parent, v.systemd)
	own := h.SelfDir()
	var site string // the group whose children cgrun makes
	switch plan.Kind {
	case place.Parent:
		site = plan.Dir
		checkSystemd(r, v, "not needed here: cgrun makes its groups itself under --parent")
		if _, err := os.Stat(filepath.Join(site, "cgroup.procs")); err != nil {
			r.add("parent", statusFail, fmt.Sprintf("--parent %s: no such group", show(site)), "create it first, or leave --parent out")
			checkAccessUnknown(r, v, "the --parent group exists")
			return
		}
		r.Place = fmt.Sprintf("its groups go under --parent %s", show(site))
	case place.Adopt:
		site = plan.Dir
		checkSystemd(r, v, "not needed here: systemd delegated this unit's group, so cgrun makes its groups itself")
		r.Place = fmt.Sprintf("its groups go beside this process's leaf, in the delegated unit group %s", show(site))
	case place.Nest:
		site = own
		why := "no systemd here"
		if v.systemd {
			why = "this group is delegated (Delegate=yes)"
		}
		checkSystemd(r, v, "not needed here: systemd delegated this group, so cgrun makes its groups itself")
		r.Place = fmt.Sprintf("its groups nest in this process's group %s (%s)", show(own), why)
	case place.Scope:
		checkScope(r, v, h, who)
		return
	}
	if !checkWritable(r, v, h, site, who) {
		return
	}
	checkControllers(r, site, show(site))
	if plan.Kind == place.Nest {
		checkBusy(r, v, h, own)
	}
}

// checkScope covers a group systemd owns and did not delegate: cgrun run asks systemd for a
// delegated scope over D-Bus, on the system bus as root and the user's bus otherwise.
func checkScope(r *checkResult, v hostView, h cgroup.Hierarchy, who string) {
	user := v.euid != 0
	bus := "system"
	if user {
		bus = "user"
	}
	ver, err := "", errors.New("not asked")
	if v.systemdVersion != nil {
		ver, err = v.systemdVersion(user)
	}
	if err != nil {
		fix := "start cgrun in a unit with Delegate=yes, or give it a group of its own with --parent"
		if user {
			fix = "log in through a session that starts systemd --user (loginctl enable-linger " + strconv.Itoa(v.euid) +
				"), set XDG_RUNTIME_DIR, or run as root / in a unit with Delegate=yes"
		}
		r.add("systemd", statusFail, fmt.Sprintf("this group %s is systemd's and not delegated, and the systemd %s manager cannot be reached over D-Bus (%v)",
			h.Rel(h.SelfDir()), bus, err), fix)
		if user {
			r.add("access", statusInfo, fmt.Sprintf("as %s: without a scope from the user manager, no group this user may write", who), "")
		} else {
			r.add("access", statusOK, "running as root", "")
		}
		return
	}
	r.add("systemd", statusOK, fmt.Sprintf("systemd %s; the %s manager answers over D-Bus, so cgrun can ask it for a delegated scope", ver, bus), "")
	if user {
		r.add("access", statusOK, fmt.Sprintf("as %s: the scope the user manager makes is delegated to this user", who), "")
	} else {
		r.add("access", statusOK, "running as root", "")
	}
	r.Place = fmt.Sprintf("as %s, cgrun asks the systemd %s manager for a scope delegated the controllers it uses (this group %s is systemd's) and nests its groups there",
		who, bus, h.Rel(h.SelfDir()))
	// The scope gets the controllers its manager may hand out: all of them for the system
	// manager, those user@UID.service was delegated for a user's.
	dir := h.Mount
	if user {
		dir = filepath.Join(h.Mount, "user.slice", fmt.Sprintf("user-%d.slice", v.euid), fmt.Sprintf("user@%d.service", v.euid))
	}
	checkControllers(r, dir, h.Rel(dir))
}

// checkWritable reports whether this user may make groups in site and enable controllers on it.
func checkWritable(r *checkResult, v hostView, h cgroup.Hierarchy, site, who string) bool {
	ok := v.euid == 0 ||
		unix.Access(site, unix.W_OK) == nil && unix.Access(filepath.Join(site, "cgroup.subtree_control"), unix.W_OK) == nil
	switch {
	case !ok:
		r.add("access", statusFail, fmt.Sprintf("as %s, no permission to make groups in %s", who, h.Rel(site)),
			"run as root, in a systemd unit with Delegate=yes, or under `systemd-run --user --scope -p Delegate=yes cgrun run ...`")
		return false
	case v.euid == 0:
		r.add("access", statusOK, "running as root", "")
	case cgroup.Delegated(site):
		r.add("access", statusOK, fmt.Sprintf("as %s, in %s, which systemd delegated", who, h.Rel(site)), "")
	default:
		r.add("access", statusOK, fmt.Sprintf("as %s, %s is writable (delegated)", who, h.Rel(site)), "")
	}
	return true
}

// checkControllers says whether the memory and pids controllers are available to dir's children.
func checkControllers(r *checkResult, dir, shown string) {
	have, err := cgroup.Controllers(dir)
	if err != nil {
		r.add("controllers", statusFail, fmt.Sprintf("cannot read the controllers of %s: %v", shown, err), "")
		return
	}
	var missing []string
	for _, c := range []string{"memory", "pids"} {
		if !slices.Contains(have, c) {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		r.add("controllers", statusFail, fmt.Sprintf("%s has no %s controller (cgroup.controllers: %q)", shown, strings.Join(missing, " or "), strings.Join(have, " ")),
			"its parent must delegate them: a systemd unit with Delegate=yes, `systemd-run --scope -p Delegate=yes`, or a group that has them with --parent")
		return
	}
	extra := ""
	if !slices.Contains(have, "cpu") {
		extra = " (no cpu: --cpu-max and --cpu-weight cannot work)"
	}
	r.add("controllers", statusOK, fmt.Sprintf("memory and pids available in %s%s", shown, extra), "")
}

// checkBusy: cgroup v2 puts processes only in leaf groups; cgrun moves itself into a leaf of
// its own group, which works when nothing else is in the group (or cgrun is a container's init).
// Otherwise cgrun run makes its groups beside the own group where place.Nestable allows it, and
// fails where it does not (launch's place: cgroup.Nest answers ErrGroupBusy): a FAIL then.
func checkBusy(r *checkResult, v hostView, h cgroup.Hierarchy, own string) {
	procs, err := cgroup.Procs(own)
	if err != nil || own == h.Mount {
		return // the root group takes processes and children at once
	}
	others := slices.DeleteFunc(procs, func(p int) bool { return p == v.pid })
	switch {
	case len(others) == 0, v.pid == 1:
	case place.Nestable(h, []string{"memory", "pids"}):
		r.add("group", statusInfo, fmt.Sprintf("%s holds %d other processes; cgrun makes its groups beside it, in %s", h.Rel(own), len(others), h.Rel(filepath.Dir(own))), "")
	default:
		r.add("group", statusFail, fmt.Sprintf("%s holds %d other processes (this shell?), and its parent %s is not ready for groups beside it; cgrun run started from here fails",
			h.Rel(own), len(others), h.Rel(filepath.Dir(own))),
			"start cgrun as the only process of its group: a systemd unit with Delegate=yes, `systemd-run --scope -p Delegate=yes`, or an empty group with --parent")
	}
}

// checkFeatures reports the kernel features cgrun uses, by their files where a group shows them
// and by the kernel version otherwise.
func checkFeatures(r *checkResult, v hostView, h cgroup.Hierarchy, k kernelVersion) {
	own := ""
	if h.Mount != "" && h.SelfDir() != h.Mount {
		own = h.SelfDir() // the root group lacks cgroup.kill, memory.peak and memory.events
	}
	// A memory file shows only where the memory controller is on for the group (its parent's
	// cgroup.subtree_control): elsewhere its absence says nothing of the kernel.
	memory := false
	if own != "" {
		b, _ := os.ReadFile(filepath.Join(own, "cgroup.controllers"))
		memory = slices.Contains(strings.Fields(string(b)), "memory")
	}
	has := func(file string) (bool, bool) {
		if own == "" || strings.HasPrefix(file, "memory.") && !memory {
			return false, false
		}
		_, err := os.Stat(filepath.Join(own, file))
		return err == nil, true
	}
	// A key of memory.events, as cgrun's counting looks for it (kernels with backports, such as
	// RHEL 9's, have it before the version says so).
	hasKey := func(key string) (bool, bool) {
		if own == "" || !memory {
			return false, false
		}
		m, err := cgroup.ReadKeyed(own, "memory.events")
		if err != nil {
			return false, false
		}
		_, ok := m[key]
		return ok, true
	}
	type feature struct {
		name         string
		major, minor int
		file, key    string // how it shows in the own group: a file, or a key of memory.events
		without      string
	}
	for _, f := range []feature{
		{"CLONE_INTO_CGROUP", 5, 7, "", "", "cgrun starts the command through a short re-exec of itself instead"},
		{"cgroup.kill", 5, 14, "cgroup.kill", "", "cgrun freezes the group and kills each process instead"},
		{"oom_group_kill", 5, 17, "", "oom_group_kill", "OOM kills are counted as the smaller of oom and oom_kill instead"},
		{"memory.peak", 5, 19, "memory.peak", "", "cgrun samples memory.current instead: its peaks are a floor"},
	} {
		ok := k.atLeast(f.major, f.minor)
		how := fmt.Sprintf("Linux %d.%d; judged from the kernel version only", f.major, f.minor)
		switch {
		case f.file != "":
			if present, known := has(f.file); known {
				ok = present
				how = fmt.Sprintf("%s, Linux %d.%d", f.file, f.major, f.minor)
			}
		case f.key != "":
			if present, known := hasKey(f.key); known {
				ok = present
				how = fmt.Sprintf("memory.events %s, Linux %d.%d", f.key, f.major, f.minor)
			}
		}
		if ok {
			r.add("feature", statusOK, fmt.Sprintf("%s (%s)", f.name, how), "")
		} else {
			r.add("feature", statusWarn, fmt.Sprintf("no %s (%s): %s", f.name, how, f.without), "a newer kernel")
		}
	}
	switch _, err := os.Stat(v.path("/proc/pressure/memory")); {
	case err != nil:
		r.add("PSI", statusWarn, "no /proc/pressure/memory: --pressure and --recycle-on-pressure cannot work, stalls are not measured",
			"a kernel with CONFIG_PSI=y (Linux 4.20), booted without psi=0 (with psi=1 where CONFIG_PSI_DEFAULT_DISABLED=y)")
	case memory:
		if present, _ := has("memory.pressure"); !present {
			r.add("PSI", statusWarn, "/proc/pressure/memory but no memory.pressure in groups", "boot with psi=1 and cgroup PSI enabled")
			return
		}
		r.add("PSI", statusOK, "pressure stall information (/proc/pressure/memory, memory.pressure)", "")
	case !k.atLeast(5, 2):
		r.add("PSI", statusWarn, "/proc/pressure/memory, but no memory.pressure in groups before Linux 5.2 (judged from the kernel version only)",
			"a newer kernel")
	default:
		r.add("PSI", statusOK, "pressure stall information (/proc/pressure/memory; memory.pressure in groups judged from the kernel version only, Linux 5.2)", "")
	}
}

// checkSwap says whether the host swaps, and whether the kernel counts a group's swap.
func checkSwap(r *checkResult, v hostView, h cgroup.Hierarchy, ok bool) {
	s, err := v.read("/proc/swaps")
	if err != nil {
		return
	}
	lines := strings.Split(s, "\n")[1:] // the first line is the header
	var kib uint64
	for _, l := range lines {
		if f := strings.Fields(l); len(f) >= 3 {
			n, _ := strconv.ParseUint(f[2], 10, 64)
			kib += n
		}
	}
	if len(lines) == 0 || kib == 0 {
		r.add("swap", statusInfo, "off: --memory-max is all the memory a group can have", "")
		return
	}
	detail := fmt.Sprintf("on (%s): past --memory-high or --memory-max a group swaps before it is OOM-killed; --memory-swap-max 0 keeps it out of swap",
		cgroup.FormatSize(kib*1024))
	if ok && h.SelfDir() != h.Mount {
		if _, err := os.Stat(filepath.Join(h.SelfDir(), "memory.swap.max")); err != nil {
			r.add("swap", statusWarn, detail+", but this kernel does not count swap per group (no memory.swap.max)",
				"boot with swapaccount=1 (a kernel with CONFIG_MEMCG_SWAP)")
			return
		}
	}
	r.add("swap", statusInfo, detail, "")
}

package place

import (
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cgrun/cgrun/cgroup"
)

func TestShortCommandIsValidUTF8(t *testing.T) {
	long := strings.Repeat("é", 150) // 300 bytes: the cut at 199 falls inside a character
	for _, tc := range []struct {
		name string
		argv []string
		want string // "" checks validity and length only
	}{
		{"plain", []string{"node", "worker.js"}, "node worker.js"},
		{"invalid bytes", []string{"php", "\xff\xfe", "a\xc3"}, "php \uFFFD a\uFFFD"},
		{"cut inside a character", []string{long}, ""},
		{"invalid tail at the cut", []string{strings.Repeat("x", 197) + "\xe2\x82"}, strings.Repeat("x", 197) + "\uFFFD"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			have := shortCommand(tc.argv)
			if !utf8.ValidString(have) {
				t.Errorf("shortCommand(%q) = %q: not valid UTF-8", tc.argv, have)
			}
			if len(have) > 203 {
				t.Errorf("shortCommand(%q) is %d bytes long", tc.argv, len(have))
			}
			if tc.want != "" && have != tc.want {
				t.Errorf("shortCommand(%q) = %q, want %q", tc.argv, have, tc.want)
			}
		})
	}
}

// TestNestable: a busy group's generations may go beside it only where they escape none of its
// limits.
func TestNestable(t *testing.T) {
	none := map[string]string{"memory.max": "max", "memory.high": "max", "pids.max": "max"}
	with := func(m map[string]string) map[string]string {
		out := maps.Clone(none)
		maps.Copy(out, m)
		return out
	}
	for _, tc := range []struct {
		name        string
		own, parent map[string]string // files; the parent's subtree_control is "memory pids" unless given
		want        bool
	}{
		{"no limits", none, nil, true},
		{"memory.max the parent's own", with(map[string]string{"memory.max": "67108864"}), map[string]string{"memory.max": "67108864"}, true},
		{"memory.max of its own", with(map[string]string{"memory.max": "67108864"}), map[string]string{"memory.max": "max"}, false},
		{"memory.high missing", map[string]string{"memory.max": "max", "pids.max": "max"}, nil, false},
		{"pids.max of its own", with(map[string]string{"pids.max": "64"}), map[string]string{"pids.max": "max"}, false},
		{"swap of its own", with(map[string]string{"memory.swap.max": "0"}), map[string]string{"memory.swap.max": "max"}, false},
		{"swap off for it", none, nil, true},
		{"cpu.max without a quota", with(map[string]string{"cpu.max": "max 100000"}), map[string]string{"cpu.max": "50000 100000"}, true},
		{"cpu.max quota of its own", with(map[string]string{"cpu.max": "50000 100000"}), map[string]string{"cpu.max": "max 100000"}, false},
		{"cpu.max the parent's", with(map[string]string{"cpu.max": "50000 100000"}), map[string]string{"cpu.max": "50000 100000"}, true},
		{"io.max empty", with(map[string]string{"io.max": ""}), nil, true},
		{"io.max of its own", with(map[string]string{"io.max": "8:0 rbps=1048576 wbps=max riops=max wiops=max"}), map[string]string{"io.max": ""}, false},
		{"cpuset of its own", with(map[string]string{"cpuset.cpus": "0"}), map[string]string{"cpuset.cpus": ""}, false},
		{"cpuset the parent's", with(map[string]string{"cpuset.cpus": "0-1", "cpuset.mems": "0"}), map[string]string{"cpuset.cpus": "0-1", "cpuset.mems": "0"}, true},
		{"pids off for the children", none, map[string]string{"cgroup.subtree_control": "memory"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mount := t.TempDir()
			parent, own := filepath.Join(mount, "svc"), filepath.Join(mount, "svc", "cgrun")
			if err := os.MkdirAll(own, 0o755); err != nil {
				t.Fatal(err)
			}
			files := map[string]string{"cgroup.subtree_control": "memory pids"}
			maps.Copy(files, tc.parent)
			for dir, m := range map[string]map[string]string{parent: files, own: tc.own} {
				for name, v := range m {
					if err := os.WriteFile(filepath.Join(dir, name), []byte(v+"\n"), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			if have := Nestable(cgroup.Hierarchy{Mount: mount, Self: "/svc/cgrun"}, []string{"memory", "pids"}); have != tc.want {
				t.Errorf("Nestable = %v, want %v", have, tc.want)
			}
		})
	}
	if Nestable(cgroup.Hierarchy{Mount: t.TempDir(), Self: "/"}, []string{"memory"}) {
		t.Error("Nestable at the hierarchy's root: there is no parent to nest in")
	}
}

// Plan's decision where the hierarchy carries no delegation marks (a temp dir stands in for it).
func TestPlan(t *testing.T) {
	h := cgroup.Hierarchy{Mount: t.TempDir(), Self: "/user.slice/session-1.scope"}
	own := h.SelfDir()
	for _, c := range []struct {
		name    string
		parent  string
		systemd bool
		want    Placement
	}{
		{"--parent, relative to the mount", "/workers", true, Placement{Kind: Parent, Dir: filepath.Join(h.Mount, "workers")}},
		{"--parent, under the mount", filepath.Join(h.Mount, "workers"), false, Placement{Kind: Parent, Dir: filepath.Join(h.Mount, "workers")}},
		{"--parent with ..: kept as given, refused where it is used", "/a/../b", false, Placement{Kind: Parent, Dir: "/a/../b"}},
		{"no systemd: nested in cgrun's own group", "", false, Placement{Kind: Nest, Dir: own}},
		{"systemd's group, not delegated: a scope", "", true, Placement{Kind: Scope, Dir: own}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if have := Plan(h, c.parent, c.systemd); have != c.want {
				t.Errorf("have %+v; want %+v", have, c.want)
			}
		})
	}
}

func TestUnitName(t *testing.T) {
	for in, want := range map[string]string{
		"php-fpm":         "php-fpm",
		"node@worker:1":   "node_worker:1",
		"a b/c\u00e9.x_y": "a_b_c_.x_y",
	} {
		if have := unitName(in); have != want {
			t.Errorf("unitName(%q) = %q; want %q", in, have, want)
		}
	}
}

package cgroup_test

import (
	"strings"
	"testing"

	"github.com/cgrun/cgrun/cgroup"
)

func TestParseOCIResources(t *testing.T) {
	success := []struct {
		name string
		json string
		want string // Limits.String()
		oom  bool
	}{
		{"memory and pids", `{"memory":{"limit":67108864,"reservation":16777216,"swap":100663296},"pids":{"limit":64}}`,
			"memory.max=64M memory.low=16M memory.swap.max=32M pids.max=64", true},
		{"unlimited", `{"memory":{"limit":-1,"swap":-1},"pids":{"limit":0}}`, "memory.max=max memory.swap.max=max pids.max=max", true},
		{"cpu", `{"cpu":{"quota":150000,"period":100000,"shares":1024}}`, "cpu.max=150000/100000 cpu.weight=39", true},
		{"cpu quota only", `{"cpu":{"quota":50000}}`, "cpu.max=50000/100000", true},
		{"unified", `{"memory":{"limit":134217728},"unified":{"memory.high":"96M","memory.oom.group":"0","memory.min":"1048576","cpu.weight":"200"}}`,
			"memory.max=128M memory.high=96M cpu.weight=200", false},
		{"empty", `{}`, "no limits", true},
	}
	for _, tc := range success {
		t.Run(tc.name, func(t *testing.T) {
			l, err := cgroup.ParseOCIResources([]byte(tc.json), 8<<30)
			if err != nil || l.String() != tc.want || l.OOMGroup != tc.oom {
				t.Errorf("= %q oom.group %v, %v; want %q, %v", l.String(), l.OOMGroup, err, tc.want, tc.oom)
			}
		})
	}
	failure := []struct {
		name, json, want string
	}{
		{"unknown top key", `{"memroy":{}}`, `unknown key "memroy"`},
		{"unknown nested key", `{"memory":{"limt":5}}`, `unknown key "limt"`},
		{"bad value type", `{"memory":{"limit":"64M"}}`, `key "memory.limit"`},
		{"negative limit", `{"memory":{"limit":-5}}`, `key "memory.limit"`},
		{"swap below limit", `{"memory":{"limit":100,"swap":50}}`, `key "memory.swap"`},
		{"swap without limit", `{"memory":{"swap":50}}`, `key "memory.swap"`},
		{"devices", `{"devices":[{"allow":false,"access":"rwm"}]}`, `key "devices"`},
		{"swappiness", `{"memory":{"swappiness":10}}`, `key "memory.swappiness"`},
		{"cpuset", `{"cpu":{"cpus":"0-1"}}`, `key "cpu.cpus"`},
		{"tiny quota", `{"cpu":{"quota":10}}`, `key "cpu.quota"`},
		{"bad shares", `{"cpu":{"shares":1}}`, `key "cpu.shares"`},
		{"unified other controller", `{"unified":{"io.weight":"100"}}`, `unified key "io.weight"`},
		{"unified cgroup file", `{"unified":{"cgroup.procs":"1"}}`, `unified key "cgroup.procs"`},
		{"unified bad size", `{"unified":{"memory.high":"lots"}}`, `unified key "memory.high"`},
		{"pids past the kernel's largest", `{"pids":{"limit":4194305}}`, `key "pids.limit": bad value "4194305"`},
		{"unified size past 8E", `{"unified":{"memory.max":"9E"}}`, "use max for no limit"},
		{"unified bad oom.group", `{"unified":{"memory.oom.group":"yes"}}`, `unified key "memory.oom.group"`},
		{"high above max", `{"memory":{"limit":1048576},"unified":{"memory.high":"2M"}}`, "above --memory-max"},
		{"not json", `memory: 5`, "not a LinuxResources JSON object"},
		{"an array", `[]`, "not a LinuxResources JSON object: the file holds a JSON array"},
		{"a number", `5`, "not a LinuxResources JSON object: the file holds a JSON number"},
		{"two objects", `{} {}`, "trailing data"},
	}
	for _, tc := range failure {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cgroup.ParseOCIResources([]byte(tc.json), 8<<30)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("err %v, want one line containing %q", err, tc.want)
			}
		})
	}
}

func TestParseCPU(t *testing.T) {
	for in, want := range map[string]string{"150%": "150000 100000", "50%": "50000 100000", "0.5%": "1000 100000", "max": "max 100000", "200%": "200000 100000"} {
		m, err := cgroup.ParseCPUQuota(in)
		if err != nil || m.String() != want {
			t.Errorf("ParseCPUQuota(%q) = %q, %v; want %q", in, m.String(), err, want)
		}
	}
	for _, in := range []string{"", "150", "-5%", "0%", "lots%", "1e3%"} {
		if _, err := cgroup.ParseCPUQuota(in); err == nil {
			t.Errorf("ParseCPUQuota(%q) accepted", in)
		}
	}
	for _, in := range []string{"0", "10001", "x", "-1"} {
		if _, err := cgroup.ParseCPUWeight(in); err == nil {
			t.Errorf("ParseCPUWeight(%q) accepted", in)
		}
	}
}

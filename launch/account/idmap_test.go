package account_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cgrun/cgrun/launch/account"
)

func TestParseIDMap(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		has, not   []uint32
		err        string
	}{
		{name: "initial namespace", text: "         0          0 4294967295\n", has: []uint32{0, 33, 4294967294}},
		{name: "rootless podman", text: "0 1000 1\n1 100000 65536\n", has: []uint32{0, 1, 33, 65536}, not: []uint32{65537, 100000}},
		{name: "only root", text: "0 1000 1\n", has: []uint32{0}, not: []uint32{1, 33}},
		{name: "empty (no map written yet)", text: "", not: []uint32{0, 33}},
		{name: "two fields", text: "0 1000\n", err: `line "0 1000": want three numbers`},
		{name: "not a number", text: "0 x 1\n", err: `"x" is not an id or count`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := account.ParseIDMap(tc.text)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range tc.has {
				if !m.Has(id) {
					t.Errorf("%q: Has(%d) false, want true", tc.text, id)
				}
			}
			for _, id := range tc.not {
				if m.Has(id) {
					t.Errorf("%q: Has(%d) true, want false", tc.text, id)
				}
			}
		})
	}
}

func TestCheckMapped(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	full := write("full", "0 0 4294967295\n")
	rootOnly := write("root", "0 1000 1\n")
	low := write("low", "0 100000 100\n")
	www := &account.User{Name: "www-data", UID: 33, GID: 33, Groups: []uint32{33, 103}}
	for _, tc := range []struct {
		name, uidMap, gidMap, want string
	}{
		{"all mapped", full, full, ""},
		{"uid outside", rootOnly, full, "uid 33 is not mapped in cgrun's user namespace (" + rootOnly + ": 0 1000 1)"},
		{"supplementary gid outside", full, low, "gid 103 is not mapped in cgrun's user namespace (" + low + ": 0 100000 100)"},
		{"no map file", filepath.Join(dir, "none"), full, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := www.CheckMapped(tc.uidMap, tc.gidMap)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one containing %q", err, tc.want)
			}
		})
	}
}

package launch

import "testing"

func TestNames(t *testing.T) {
	for in, want := range map[string]string{"node": "node", "/usr/bin/php-fpm8.2": "php-fpm8.2", "./my app": "my_app", ".hidden": "_.hidden", "-x": "_-x"} {
		if have := DefaultName(in); have != want || ValidName(have) != nil {
			t.Errorf("DefaultName(%q) = %q (valid: %v), want %q", in, have, ValidName(have), want)
		}
	}
	for _, bad := range []string{"", "a/b", "..", ".x", "-x", "cgroup.procs", "sp ace", string(make([]byte, 65))} {
		if ValidName(bad) == nil {
			t.Errorf("ValidName(%q) accepted", bad)
		}
	}
}

package launch

import (
	"testing"

	"github.com/cgrun/cgrun/launch/state"
)

func TestNames(t *testing.T) {
	for in, want := range map[string]string{"node": "node", "/usr/bin/php-fpm8.2": "php-fpm8.2", "./my app": "my_app", ".hidden": "_.hidden", "-x": "_-x"} {
		if have := state.DefaultName(in); have != want || state.ValidName(have) != nil {
			t.Errorf("state.DefaultName(%q) = %q (valid: %v), want %q", in, have, state.ValidName(have), want)
		}
	}
	for _, bad := range []string{"", "a/b", "..", ".x", "-x", "cgroup.procs", "sp ace", string(make([]byte, 65))} {
		if state.ValidName(bad) == nil {
			t.Errorf("state.ValidName(%q) accepted", bad)
		}
	}
}

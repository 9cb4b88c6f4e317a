package proc

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestShmFor(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		shared bool
		euid   int
		dir    string
		want   *Shm
		notice bool
	}{
		{"root: a private one, sized", false, 0, dir, &Shm{Size: 64 << 20}, false},
		{"--shared-shm: the host's, said nothing", true, 0, dir, nil, false},
		{"no /dev/shm on the host", false, 0, filepath.Join(dir, "none"), nil, false},
		{"/dev/shm not a directory", false, 0, file, nil, false},
		{"not root: the host's, said once", false, 1000, dir, nil, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var log bytes.Buffer
			have := shmFor(c.shared, 64<<20, c.euid, c.dir, &log)
			if (have == nil) != (c.want == nil) || (have != nil && *have != *c.want) {
				t.Errorf("have %+v; want %+v", have, c.want)
			}
			if said := strings.Contains(log.String(), "cgrun: notice: the command shares the host's /dev/shm: only root can give it a private one"); said != c.notice {
				t.Errorf("log %q; want the notice: %v", log.String(), c.notice)
			}
		})
	}
}

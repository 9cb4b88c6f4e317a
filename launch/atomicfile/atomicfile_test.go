package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestWriteReplacesWholeAndLeavesNoTemporary(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.json")
	for _, data := range []string{"first\n", "second, longer\n"} {
		if err := Write(p, []byte(data)); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil || string(b) != data {
			t.Errorf("read %q, %v; want %q", b, err, data)
		}
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, %v; want 0644", fi.Mode(), err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("%d entries in the directory, want only the file", len(ents))
	}
	if err := Write(filepath.Join(dir, "no", "such", "dir"), []byte("x")); err == nil {
		t.Error("a write into a missing directory succeeded")
	}
}

// TestRefusals: a name that is a symlink, a hard link, a directory or another user's file is
// refused by Write, Append and NewReplacer alike, and the file it leads to stays as it was.
func TestRefusals(t *testing.T) {
	for _, tc := range []struct {
		name  string
		plant func(t *testing.T, victim, at string)
		root  bool // needs root (chown)
	}{
		{"symlink", func(t *testing.T, victim, at string) { must(t, os.Symlink(victim, at)) }, false},
		{"dangling symlink", func(t *testing.T, victim, at string) { must(t, os.Symlink(victim+".none", at)) }, false},
		{"hard link", func(t *testing.T, victim, at string) { must(t, os.Link(victim, at)) }, false},
		{"directory", func(t *testing.T, victim, at string) { must(t, os.Mkdir(at, 0o755)) }, false},
		{"another user's file", func(t *testing.T, victim, at string) {
			must(t, os.WriteFile(at, []byte("theirs"), 0o644))
			must(t, os.Chown(at, 65534, 65534))
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root && os.Geteuid() != 0 {
				t.Skip("needs root to give a file away") // a host unit test; the guests run as root
			}
			dir := t.TempDir()
			victim := filepath.Join(t.TempDir(), "victim")
			must(t, os.WriteFile(victim, []byte("secret"), 0o600))
			at := filepath.Join(dir, "out")
			tc.plant(t, victim, at)
			var re *RefusedError
			if err := Write(at, []byte("x")); !errors.As(err, &re) {
				t.Errorf("Write: %v, want a RefusedError", err)
			}
			if _, err := NewReplacer(at); !errors.As(err, &re) {
				t.Errorf("NewReplacer: %v, want a RefusedError", err)
			}
			d, name, err := Split(at)
			must(t, err)
			defer d.Close()
			if f, err := d.Append(name); !errors.As(err, &re) {
				if f != nil {
					f.Close()
				}
				t.Errorf("Append: %v, want a RefusedError", err)
			}
			if _, err := d.Read(name, 1<<20); err == nil && tc.name != "another user's file" {
				t.Errorf("Read succeeded")
			}
			b, _ := os.ReadFile(victim)
			fi, _ := os.Stat(victim)
			if string(b) != "secret" || fi.Mode().Perm() != 0o600 {
				t.Errorf("victim now %q %v", b, fi.Mode())
			}
		})
	}
}

// TestReplacerKeepsOldUntilWritten: a Replacer touches nothing when made; its Write replaces.
func TestReplacerKeepsOldUntilWritten(t *testing.T) {
	p := filepath.Join(t.TempDir(), "report.json")
	must(t, os.WriteFile(p, []byte("previous"), 0o644))
	r, err := NewReplacer(p)
	must(t, err)
	defer r.Close()
	if b, _ := os.ReadFile(p); string(b) != "previous" {
		t.Errorf("after NewReplacer: %q, want the previous report untouched", b)
	}
	if _, err := r.Write([]byte("new")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "new" {
		t.Errorf("after Write: %q", b)
	}
}

// TestOpenDirSymlinks: a symlinked directory is followed where only root could have made it,
// and refused in a directory others may write (as /tmp).
func TestOpenDirSymlinks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the safe case needs a directory of root's")
	}
	base := t.TempDir()
	real := filepath.Join(base, "real")
	must(t, os.Mkdir(real, 0o755))
	for i, tc := range []struct {
		mode  uint32 // raw: os.Chmod takes 0o1000 for something else than the sticky bit
		owner int    // the symlink's
		ok    bool
	}{
		{0o755, 0, true},
		{0o1777, 0, true},      // root's own in a sticky directory: no one else may replace it
		{0o1777, 65534, false}, // another user's in /tmp
		{0o775, 0, false},      // group-writable, not sticky: anyone in the group may replace it
		{0o777, 0, false},
	} {
		parent := filepath.Join(base, strconv.Itoa(i))
		must(t, os.Mkdir(parent, 0o755))
		must(t, syscall.Chmod(parent, tc.mode))
		link := filepath.Join(parent, "link")
		must(t, os.Symlink(real, link))
		must(t, os.Lchown(link, tc.owner, tc.owner))
		err := Write(filepath.Join(link, "f"), []byte("x"))
		var re *RefusedError
		if tc.ok && err != nil || !tc.ok && !errors.As(err, &re) {
			t.Errorf("a symlinked directory of uid %d in a %04o directory: %v, want ok=%v", tc.owner, tc.mode, err, tc.ok)
		}
	}
}

// TestAppendFIFO: a FIFO with no reader is ENXIO (the caller opens it late), never created.
func TestAppendFIFO(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fifo")
	must(t, syscall.Mkfifo(p, 0o644))
	d, name, err := Split(p)
	must(t, err)
	defer d.Close()
	if _, err := d.Append(name); !errors.Is(err, syscall.ENXIO) {
		t.Errorf("Append of a FIFO without a reader: %v, want ENXIO", err)
	}
	must(t, os.Remove(p))
	must(t, os.WriteFile(p, nil, 0o644))
	var re *RefusedError
	if _, err := d.OpenFIFO(name); !errors.As(err, &re) {
		t.Errorf("OpenFIFO of a regular file: %v, want a RefusedError", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestKernelFileSystemsRefused: a file on proc or sysfs is a kernel interface, never a target,
// whatever its mode and owner (/proc/1/mem is root's regular file with one link).
func TestKernelFileSystemsRefused(t *testing.T) {
	for _, path := range []string{"/proc/self/status", "/proc/1/mem", "/proc/nope.json", "/sys/kernel/nope.json"} {
		if d, _, err := Split(path); err == nil || !strings.Contains(err.Error(), "a kernel interface") {
			if d != nil {
				d.Close()
			}
			t.Errorf("Split(%s): %v, want a refusal naming a kernel interface", path, err)
		}
	}
	d, _, err := Split(filepath.Join(t.TempDir(), "events.jsonl"))
	if err != nil {
		t.Fatalf("a file in a temporary directory: %v", err)
	}
	d.Close()
}

package diagnose_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cgrun/cgrun/launch/diagnose"
)

// swap does what a command that owns the dump directory's parent can do once cgrun opened it:
// move the directory away and put a symlink to victim in its place. It returns where the
// directory went.
func swap(t *testing.T, dir, victim string) string {
	t.Helper()
	moved := dir + ".moved"
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, dir); err != nil {
		t.Fatal(err)
	}
	return moved
}

func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestPruneSwappedDir: after the dump directory is swapped for a symlink, Prune removes the old
// dumps from the directory cgrun opened, never the same names in the symlink's target; and it
// leaves a symlinked entry (and what it points at) alone.
func TestPruneSwappedDir(t *testing.T) {
	base, victim := t.TempDir(), t.TempDir()
	dir := filepath.Join(base, "dumps")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	d := openDir(t, dir)
	var dumps []diagnose.Dump
	for _, n := range []string{"1", "2", "3"} {
		write(t, filepath.Join(dir, n), "dump")
		write(t, filepath.Join(victim, n), "precious")
		dumps = append(dumps, diagnose.Dump{Generation: len(dumps) + 1, Files: []diagnose.File{{Path: filepath.Join(dir, n), Size: 4}}})
	}
	// Dump 2's file becomes a symlink to a precious file.
	if err := os.Remove(filepath.Join(dir, "2")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(victim, "2"), filepath.Join(dir, "2")); err != nil {
		t.Fatal(err)
	}
	moved := swap(t, dir, victim)
	kept, errs := diagnose.Prune(d, dumps, 1)
	if len(kept) != 1 || kept[0].Generation != 3 {
		t.Errorf("kept %+v, want generation 3", kept)
	}
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "not a regular file") {
		t.Errorf("errs %v, want one saying the symlinked dump 2 was left alone", errs)
	}
	for _, n := range []string{"1", "2", "3"} {
		if b, err := os.ReadFile(filepath.Join(victim, n)); err != nil || string(b) != "precious" {
			t.Errorf("%s/%s: %q, %v; want it untouched", victim, n, b, err)
		}
	}
	if _, err := os.Stat(filepath.Join(moved, "1")); !os.IsNotExist(err) {
		t.Errorf("the pruned dump 1 in the opened directory: %v, want it removed", err)
	}
	if _, err := os.Lstat(filepath.Join(moved, "2")); err != nil {
		t.Errorf("the symlink that was dump 2: %v, want it left", err)
	}
}

// TestWaitSwappedDir: the watcher hears the directory it was given, not what the path names
// after a swap, and does not report a symlinked entry.
func TestWaitSwappedDir(t *testing.T) {
	base, victim := t.TempDir(), t.TempDir()
	dir := filepath.Join(base, "dumps")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	w, err := diagnose.Watch(openDir(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	moved := swap(t, dir, victim)
	write(t, filepath.Join(victim, "elsewhere"), "x")
	write(t, filepath.Join(moved, "heap"), "dump")
	// A symlink moved in counts as written, but is not reported as a dump file.
	if err := os.Symlink("/etc/passwd", filepath.Join(base, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(base, "link"), filepath.Join(moved, "link")); err != nil {
		t.Fatal(err)
	}
	files, complete := w.Wait(time.Now().Add(5*time.Second), 200*time.Millisecond)
	if !complete || len(files) != 1 || files[0].Path != filepath.Join(dir, "heap") || files[0].Size != 4 {
		t.Fatalf("files %+v complete %v; want only heap (4 bytes), complete", files, complete)
	}
}

func TestOpenDirRefuses(t *testing.T) {
	base := t.TempDir()
	real := filepath.Join(base, "real")
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(base, "file")
	write(t, file, "")
	me := uint32(os.Geteuid())
	other := diagnose.Writer{UID: me + 4242, Groups: []uint32{me + 4242}}
	theirs := real // owned by me, which is not the writer, unless I am root
	if me == 0 {
		theirs = filepath.Join(base, "theirs")
		if err := os.Mkdir(theirs, 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(theirs, 4343, 4343); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, path string
		w          diagnose.Writer
		want       string
	}{
		{"symlink", link, diagnose.Writer{UID: me}, "not a directory (a symlink is not followed)"},
		{"file", file, diagnose.Writer{UID: me}, "not a directory"},
		{"missing", filepath.Join(base, "none"), diagnose.Writer{UID: me}, "no such file or directory; make it first"},
		{"owned by someone else", theirs, other, "not by root or the command's user"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := diagnose.OpenDir(tc.path, tc.w)
			d.Close()
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "--diagnose-dir "+tc.path+": ") {
				t.Errorf("err %v, want one on %s containing %q", err, tc.path, tc.want)
			}
		})
	}
	if os.Geteuid() == 0 {
		// A root-owned 0755 directory: the command's user cannot write its dump there.
		_, err := diagnose.OpenDir(real, diagnose.Writer{UID: 33, Groups: []uint32{33}})
		if err == nil || !strings.Contains(err.Error(), "the command's user (uid 33) cannot write it (mode 0755, owner 0:0)") {
			t.Errorf("err %v, want cannot write", err)
		}
		if err := os.Chmod(real, 0o1777); err != nil {
			t.Fatal(err)
		}
		d, err := diagnose.OpenDir(real, diagnose.Writer{UID: 33, Groups: []uint32{33}})
		if err != nil {
			t.Errorf("a 1777 root directory for uid 33: %v, want it accepted", err)
		}
		d.Close()
	}
}

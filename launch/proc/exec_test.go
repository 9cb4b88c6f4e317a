package proc

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cgrun/cgrun/launch/exitcode"
	"golang.org/x/sys/unix"
)

// TestExecErrorWords: execve's errno as a shell tells it — 127 for what is not found, saying
// which file is missing where the command itself is there.
func TestExecErrorWords(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		path string
		err  unix.Errno
		code int
		want string
	}{
		{filepath.Join(dir, "gone"), unix.ENOENT, exitcode.NotFound, "gone: command not found"},
		{write("script", "#!/nonexistent/interp -x\necho hi\n"), unix.ENOENT, exitcode.NotFound, "script: cannot execute: its interpreter /nonexistent/interp (the #! line) is not found"},
		{write("elf", "\x7fELF\x02\x01\x01"), unix.ENOENT, exitcode.NotFound, "elf: cannot execute: a file it needs (its #! interpreter or its ELF loader) is not found"},
		{write("plain", "echo hi\n"), unix.EACCES, exitcode.CannotExec, "plain: cannot execute: permission denied"},
		{write("forks", "echo hi\n"), unix.EAGAIN, exitcode.Failure, "forks: cannot start it: the kernel refused a new process (EAGAIN): the pids.max of its group or of one above it is reached, or the user's process limit (ulimit -u); raise the limit, or see what holds those processes"},
	} {
		err := execError(tc.path, tc.err)
		if exitcode.Of(err) != tc.code || !strings.HasSuffix(err.Error(), tc.want) {
			t.Errorf("execError(%s, %v) = %d %q, want %d and %q", tc.path, tc.err, exitcode.Of(err), err, tc.code, tc.want)
		}
	}
}

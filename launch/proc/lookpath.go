package proc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/cgrun/cgrun/launch/exitcode"
	"golang.org/x/sys/unix"
)

// LookPath resolves the command the way a shell would, before any group is made, so that a
// missing or non-executable command costs nothing: 127 when it is not found, 126 when it is found
// but cannot be executed.
func LookPath(name string) (string, error) {
	if name == "" {
		return "", &exitcode.Error{Code: exitcode.NotFound, Err: errors.New("empty command name")}
	}
	if strings.Contains(name, "/") {
		fi, err := os.Stat(name)
		switch {
		case err != nil:
			return "", execError(name, err)
		case fi.IsDir():
			return "", &exitcode.Error{Code: exitcode.CannotExec, Err: fmt.Errorf("%s: is a directory", name)}
		case unix.Access(name, unix.X_OK) != nil:
			return "", &exitcode.Error{Code: exitcode.CannotExec, Err: fmt.Errorf("%s: permission denied (not executable; chmod +x it)", name)}
		}
		return name, nil
	}
	p, err := exec.LookPath(name)
	if err == nil {
		return p, nil
	}
	if errors.Is(err, exec.ErrDot) {
		return "", &exitcode.Error{Code: exitcode.NotFound, Err: fmt.Errorf("%s: command not found in PATH (it is in the current directory: run ./%s)", name, name)}
	}
	// exec.LookPath skips files that exist but are not executable; a shell says 126 for them.
	for _, dir := range strings.Split(os.Getenv("PATH"), ":") {
		if dir == "" {
			continue
		}
		if fi, serr := os.Stat(dir + "/" + name); serr == nil && !fi.IsDir() {
			return "", &exitcode.Error{Code: exitcode.CannotExec, Err: fmt.Errorf("%s/%s: permission denied (not executable)", dir, name)}
		}
	}
	return "", &exitcode.Error{Code: exitcode.NotFound, Err: fmt.Errorf("%s: command not found in PATH", name)}
}

// Command cgrun runs one command, and everything it forks, in a cgroup v2 group of its own with
// kernel-enforced memory and pids limits.
package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/cgrun/cgrun/launch/exitcode"
	"github.com/cgrun/cgrun/launch/guard"
	"github.com/cgrun/cgrun/launch/proc"
	"golang.org/x/sys/unix"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3"; otherwise the module
// version or VCS revision from the build info is shown.
var version = ""

const usage = `cgrun gives one command its own cgroup v2 memory space.

Usage:
  cgrun check [--json] [--parent GROUP]   can cgrun run work on this host? what is missing?
  cgrun run [flags] -- COMMAND [ARG...]   run COMMAND in a fresh group with limits
  cgrun advise [--for DUR] [--json] [run flags] -- COMMAND [ARG...]
                                          measure what COMMAND needs; print --memory-max to paste
  cgrun ps [--json]                       list the running cgruns with their memory figures
  cgrun status NAME|PID [--json]          one running cgrun in detail
  cgrun stop NAME|PID [--timeout DUR]     stop it gracefully (SIGTERM) and wait until it exits
  cgrun recycle NAME|PID                  recycle its current generation gracefully (SIGALRM)
  cgrun version                           print the version
  cgrun help [COMMAND]                    show this help, or the help of COMMAND

Run 'cgrun run --help' for run's flags by task and examples, 'cgrun COMMAND --help' for the
others; 'man cgrun' has them all.
`

func main() {
	openStdio()
	os.Exit(cgrun(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

// openStdio puts /dev/null in place of a closed stdin, stdout or stderr, as a supervisor may
// leave them: the command inherits these three, and a closed one would make its start fail (or
// let the next file cgrun opens take its number).
func openStdio() {
	for fd := 0; fd <= 2; fd++ {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == unix.EBADF {
			// open(2) returns the lowest free number: this one.
			if nfd, err := unix.Open("/dev/null", unix.O_RDWR, 0); err == nil && nfd != fd {
				unix.Close(nfd)
			}
		}
	}
}

// catchSIGPIPE catches SIGPIPE, and never reads it, until cgrun exits: a write to a broken
// stdout or stderr then fails with EPIPE instead of killing cgrun (Go raises SIGPIPE for fds 1
// and 2 unless it is caught). The supervisor catches it too (launch's notifySignals); this
// covers cgrun run's last lines after it, the give-up line of exit 122 among them. Caught, not
// ignored: the command would inherit an ignored SIGPIPE across exec.
func catchSIGPIPE() {
	signal.Notify(make(chan os.Signal, 1), unix.SIGPIPE)
}

func cgrun(args, env []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitcode.Failure
	}
	switch args[0] {
	case proc.EnterCommand:
		err := proc.Enter(args[1:])
		fmt.Fprintf(stderr, "cgrun: %v\n", err)
		return exitcode.Of(err)
	case "__man": // hidden: the release script makes cgrun(1) with it
		return manCommand(stdout)
	case "__completion": // hidden: bash, zsh and fish completions, for the packages
		return completionCommand(args[1:], stdout, stderr)
	case "check":
		return checkCommand(args[1:], stdout, stderr)
	case guard.Command:
		if err := guard.Run(args[1:]); err != nil {
			fmt.Fprintf(stderr, "cgrun: %v\n", err)
			return exitcode.Failure
		}
		return 0
	case "run":
		catchSIGPIPE()
		return runCommand(args[1:], env, stdout, stderr)
	case "advise":
		catchSIGPIPE()
		return adviseCommand(args[1:], env, stdout, stderr)
	case "ps":
		return psCommand(args[1:], stdout, stderr)
	case "status":
		return statusCommand(args[1:], stdout, stderr)
	case "stop", "recycle":
		return signalCommand(args[0], args[1:], stdout, stderr)
	case "version", "--version", "-v":
		switch {
		case len(args) > 1 && (args[1] == "--help" || args[1] == "-h"):
			return subcommandHelp("version", stdout)
		case len(args) > 1:
			fmt.Fprintf(stderr, "cgrun: version: unexpected argument %q; usage: cgrun version\n", args[1])
			return exitcode.Failure
		}
		fmt.Fprintf(stdout, "cgrun %s\n", versionString())
		return 0
	case "help", "--help", "-h":
		if len(args) > 2 {
			fmt.Fprintf(stderr, "cgrun: help: unexpected argument %q; usage: cgrun help [COMMAND]\n", args[2])
			return exitcode.Failure
		}
		if len(args) > 1 {
			switch args[1] {
			case "--help", "-h":
			case "run":
				return runCommand([]string{"--help"}, env, stdout, stderr)
			case "advise":
				return adviseCommand([]string{"--help"}, env, stdout, stderr)
			case "check":
				return checkCommand([]string{"--help"}, stdout, stderr)
			case "ps", "status", "stop", "recycle", "version":
				return subcommandHelp(args[1], stdout)
			case "help":
			default:
				fmt.Fprintf(stderr, "cgrun: help %q: no such command; the commands are check, run, advise, ps, status, stop, recycle, version\n", args[1])
				return exitcode.Failure
			}
		}
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "cgrun: unknown command %q%s; try 'cgrun help'\n", args[0], commandMeant(args[0]))
	return exitcode.Failure
}

// commandMeant is what an unknown command was likely meant to be: a flag of run's given without
// run before it, or a command a typo away.
func commandMeant(arg string) string {
	if name, ok := strings.CutPrefix(arg, "--"); ok {
		name, _, _ = strings.Cut(name, "=")
		if newRunFlagSet(&runFlags{}).Lookup(name) != nil {
			return fmt.Sprintf(" (--%s is a flag of run: cgrun run --%s ... -- COMMAND)", name, name)
		}
	}
	if c := nearest(arg, []string{"check", "run", "advise", "ps", "status", "stop", "recycle", "version", "help"}); c != "" {
		return " (did you mean " + c + "?)"
	}
	return ""
}

func versionString() string {
	if version != "" {
		return version + " " + runtime.Version()
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	v, rev, dirty := bi.Main.Version, "", ""
	for _, s := range bi.Settings {
		switch {
		case s.Key == "vcs.revision" && len(s.Value) >= 12:
			rev = s.Value[:12]
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "+dirty"
		}
	}
	if v == "(devel)" && rev != "" {
		v = "devel " + rev // a pseudo-version already names the revision
	}
	if !strings.HasSuffix(v, dirty) {
		v += dirty
	}
	return v + " " + bi.GoVersion
}

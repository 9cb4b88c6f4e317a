package main

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/cgrun/cgrun/cgroup"
	"github.com/cgrun/cgrun/launch/advise"
	"github.com/cgrun/cgrun/launch/exitcode"
	"github.com/spf13/pflag"
)

const adviseUsage = `Usage: cgrun advise [--for DUR] [--json] [run flags] -- COMMAND [ARG...]

Runs COMMAND as cgrun run would (its own group, the limits given, if any) for DUR or until it
exits, and finds the memory it needs: it squeezes the group's memory.high toward memory.current
in small steps while the group's memory pressure stays low (PSI where the kernel has it, the
refault counters of memory.stat where not), backs off when pressure rises, and so measures the
working set, what stays resident under gentle reclaim, beside the peak. memory.max stays where
it is, and memory.high is put back at the end. Then it prints one line to paste (or with --json
one object) on stdout, e.g.

  advice: --memory-max 73M  (working set 56M, peak 212M of which 156M was page cache it did not need again; 15s observed, pressure from refaults)

(--memory-high, 65M here, is in the line only on a host with swap: without it a command past
memory.high is throttled instead of restarted; --json has both.)

Run it under a representative load: the advice is only as good as the window it saw. Without
swap the working set is at least the command's anonymous memory. It exits 0 when --for ended the
command, else as cgrun run does (the command's exit code; when a SIGTERM or SIGINT to cgrun
stopped it, cgrun prints the advice and dies of that signal); 125 for bad input, or when the
command ended before cgrun could observe it. On a long-running service, cgrun run --advise keeps
the same estimate in cgrun status. The method, its limits and the JSON fields: docs/advise.md
(/usr/share/doc/cgrun/docs/advise.md).

Advise's flags:
%s
Run's flags (as for cgrun run; see 'cgrun run --help'):
%s
Examples:
  # a worker under its usual traffic for 10 minutes, then paste the line into its unit
  cgrun advise --for 10m -- node dist/worker.js
  # a batch job, observed from start to end
  cgrun advise --json -- ./nightly-import.sh
`

// writeAdviseHelp prints advise's usage: its own flags first, then run's.
func writeAdviseHelp(w io.Writer, fs *pflag.FlagSet) {
	own := pflag.NewFlagSet("advise", pflag.ContinueOnError)
	run := pflag.NewFlagSet("run", pflag.ContinueOnError)
	own.SortFlags = false
	fs.VisitAll(func(f *pflag.Flag) {
		switch f.Name {
		case "for", "json":
			own.AddFlag(f)
		case "help", "advise":
		default:
			run.AddFlag(f)
		}
	})
	fmt.Fprintf(w, adviseUsage, own.FlagUsagesWrapped(100), run.FlagUsagesWrapped(100))
}

// adviseFlags are advise's own flags, beside run's.
type adviseFlags struct {
	window time.Duration
	json   bool
}

func newAdviseFlagSet(f *runFlags, a *adviseFlags) *pflag.FlagSet {
	fs := newRunFlagSet(f)
	own := pflag.NewFlagSet("cgrun advise", pflag.ContinueOnError)
	durationVar(own, &a.window, "for", "observe the command this long, then stop it gracefully (--stop-signal) and advise; 0: until it exits")
	own.BoolVar(&a.json, "json", false, "print the advice as one JSON object (memory_max, memory_high, working_set, peak in bytes; observed_seconds; pressure_source)")
	own.AddFlagSet(fs)
	own.SetInterspersed(false)
	return own
}

func adviseCommand(args, env []string, stdout, stderr io.Writer) int {
	var f runFlags
	var a adviseFlags
	fs := newAdviseFlagSet(&f, &a)
	if fs.Lookup("advise") != nil {
		fs.Lookup("advise").Hidden = true // advise always advises
	}
	return launchCommand(fs, &f, &a, args, env, stdout, stderr)
}

// advice prints the advice the run hands over at its end: at once, because a cgrun that a
// SIGTERM or SIGINT stopped dies of that signal right after (as cgrun run does), and the advice
// must be out by then.
type advice struct {
	json   bool
	stdout io.Writer
	got    *advise.Advice
	ended  bool
}

func (a *advice) done(adv advise.Advice, ended bool) {
	a.got, a.ended = &adv, ended
	if !a.observed() {
		return
	}
	if a.json {
		b, _ := json.Marshal(adv)
		fmt.Fprintf(a.stdout, "%s\n", b)
	} else {
		fmt.Fprintln(a.stdout, adv.Line(cgroup.HostHasSwap()))
	}
}

// observed says whether the probe saw the command: a working set comes from its samples, the
// first half a second in (advise.DefaultConfig), and a command that ended before has none — its
// advice would be the smallest limit, whatever it needs.
func (a *advice) observed() bool {
	return a.got != nil && a.got.ObservedSeconds > 0 && a.got.WorkingSet > 0
}

// exitCode is advise's exit code: 0 when --for ended the command, else the command's; 125 when
// there was nothing to advise.
func (a *advice) exitCode(code int, stderr io.Writer) int {
	if !a.observed() {
		fmt.Fprintln(stderr, "cgrun: advise: the command ended before cgrun could observe it (the first look is half a second in); give it a load that keeps it running")
		return exitcode.Failure
	}
	if a.ended {
		return 0
	}
	return code
}

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/cgrun/cgrun/launch/advise"
	"github.com/cgrun/cgrun/launch/proc"
	"github.com/spf13/pflag"
)

const adviseUsage = `Usage: cgrun advise [--for DUR] [--json] [run flags] -- COMMAND [ARG...]

Runs COMMAND as cgrun run would (its own group, the limits given, if any) for DUR or until it
exits, and finds the memory it needs: it squeezes the group's memory.high toward memory.current
in small steps while the group's memory pressure stays low (PSI where the kernel has it, the
refault counters of memory.stat where not), backs off when pressure rises, and so measures the
working set, what stays resident under gentle reclaim, beside the peak. memory.max stays where
it is, and memory.high is put back at the end. Then it prints one line to paste (or with --json
one object) on stdout. Run it under a representative load: the advice is only as good as the
window it saw. It exits 0 with advice when --for ended the command, else with the command's
exit code; 125 when it found nothing (the command ended before the first two samples).

Flags (advise's own, then run's):
%s
Examples:
  # a worker under its usual traffic for 10 minutes, then paste the line into its unit
  cgrun advise --for 10m -- node dist/worker.js
  # a batch job, observed from start to end
  cgrun advise --json -- ./nightly-import.sh
`

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

// advice is what the run handed to advise at its end.
type advice struct {
	got   *advise.Advice
	ended bool
}

func (a *advice) done(adv advise.Advice, ended bool) { a.got, a.ended = &adv, ended }

// print writes the advice and returns advise's exit code.
func (a *advice) print(f *adviseFlags, code int, stdout, stderr io.Writer) int {
	if a.got == nil || a.got.ObservedSeconds == 0 {
		fmt.Fprintln(stderr, "cgrun: advise: the command ended before cgrun could observe it; give it a load that keeps it running")
		return proc.ExitFailure
	}
	if f.json {
		b, _ := json.Marshal(a.got)
		fmt.Fprintf(stdout, "%s\n", b)
	} else {
		fmt.Fprintln(stdout, a.got.Line())
	}
	if a.ended {
		return 0
	}
	return code
}

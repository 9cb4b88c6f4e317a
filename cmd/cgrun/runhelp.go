package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"
)

// `cgrun run --help` and the man page show run's flags under the headings README's "main flags,
// by task" uses. Which heading a flag goes under is data: one line in runFlagGroups per flag,
// in the order the help shows them (the most used first). A flag missing there fails
// TestRunFlagsAllHaveAGroup.

// The headings, in the order the help shows them.
const (
	groupLimits    = "Limits"
	groupRecycling = "Recycling"
	groupHealth    = "Health"
	groupLeak      = "Finding the leak"
	groupSockets   = "Sockets"
	groupOutput    = "Output and reports"
	groupPlacement = "Placement"
	groupUser      = "User"
)

// runGroups are run --help's headings, in the order they are printed.
func runGroups() []string {
	return []string{groupLimits, groupRecycling, groupHealth, groupLeak, groupSockets, groupOutput, groupPlacement, groupUser}
}

// runFlagGroups puts each flag of `cgrun run` under a heading; a new flag is one line here.
func runFlagGroups() []struct{ flag, group string } {
	return []struct{ flag, group string }{
		{"memory-max", groupLimits},
		{"memory-high", groupLimits},
		{"memory-swap-max", groupLimits},
		{"pids-max", groupLimits},
		{"cpu-max", groupLimits},
		{"cpu-weight", groupLimits},
		{"memory-low", groupLimits},
		{"oom-group", groupLimits},
		{"resources", groupLimits},
		{"advise", groupLimits},

		{"restart", groupRecycling},
		{"max-lifetime", groupRecycling},
		{"lifetime-jitter", groupRecycling},
		{"recycle-above", groupRecycling},
		{"recycle-after", groupRecycling},
		{"recycle-on-high", groupRecycling},
		{"recycle-on-stall", groupRecycling},
		{"recycle-on-pressure", groupRecycling},
		{"thrash", groupRecycling},
		{"stop-signal", groupRecycling},
		{"stop-timeout", groupRecycling},
		{"max-restarts", groupRecycling},
		{"restart-window", groupRecycling},
		{"restart-delay", groupRecycling},
		{"restart-delay-max", groupRecycling},
		{"min-uptime", groupRecycling},

		{"health-http", groupHealth},
		{"health-cmd", groupHealth},
		{"health-interval", groupHealth},
		{"health-timeout", groupHealth},
		{"health-retries", groupHealth},
		{"health-start-period", groupHealth},

		{"diagnose-signal", groupLeak},
		{"diagnose-cmd", groupLeak},
		{"diagnose-dir", groupLeak},
		{"diagnose-headroom", groupLeak},
		{"diagnose-above", groupLeak},
		{"diagnose-timeout", groupLeak},
		{"diagnose-keep", groupLeak},
		{"diagnose-interval", groupLeak},

		{"listen", groupSockets},
		{"overlap", groupSockets},
		{"ready-timeout", groupSockets},

		{"events", groupOutput},
		{"verbose", groupOutput},
		{"report", groupOutput},
		{"metrics-addr", groupOutput},
		{"pressure", groupOutput},
		{"record-baseline", groupOutput},
		{"baseline", groupOutput},
		{"baseline-tolerance", groupOutput},

		{"name", groupPlacement},
		{"parent", groupPlacement},
		{"notify-ready", groupPlacement},

		{"user", groupUser},
		{"allow-new-privs", groupUser},
		{"shared-shm", groupUser},
	}
}

// groupedFlags splits fs's flags by heading, each group a flag set of its own in
// runFlagGroups' order; flags without a group (none, as a test checks) go under "Other".
func groupedFlags(fs *pflag.FlagSet) (titles []string, sets map[string]*pflag.FlagSet) {
	sets = map[string]*pflag.FlagSet{}
	add := func(group string, f *pflag.Flag) {
		s, ok := sets[group]
		if !ok {
			s = pflag.NewFlagSet(group, pflag.ContinueOnError)
			s.SortFlags = false
			sets[group] = s
		}
		s.AddFlag(f)
	}
	placed := map[string]bool{}
	for _, g := range runFlagGroups() {
		if f := fs.Lookup(g.flag); f != nil {
			add(g.group, f)
			placed[g.flag] = true
		}
	}
	fs.VisitAll(func(f *pflag.Flag) {
		if !placed[f.Name] && f.Name != "help" && !f.Hidden {
			add("Other", f)
		}
	})
	for _, g := range append(append([]string{}, runGroups()...), "Other") {
		if sets[g] != nil {
			titles = append(titles, g)
		}
	}
	return titles, sets
}

// The text of `cgrun run --help`, around the flags; the man page uses the same pieces.
const (
	runSynopsis = `Usage: cgrun run [flags] -- COMMAND [ARG...]`

	runSummary = `Runs COMMAND, and everything it forks, in a fresh cgroup v2 group with the limits below,
forwards signals to it, and removes the group and all that is left in it when COMMAND exits.
Flags go before COMMAND: what follows it is COMMAND's.`

	runSyntax = `SIZE is bytes or a number with K, M, G, T, P or E (base 1024; KB, KiB and lower case work
too; 1.5G works), a percentage of the machine's memory or a container's limit (75%), or max /
infinity for no limit; --memory-max and --memory-high take at least 1M. N is a whole number
(pids: or max). DUR is a duration such as 500ms, 30s, 5m or 1h30m, or a number of seconds.
Every flag can also be given as an environment variable: --memory-max as CGRUN_MEMORY_MAX,
--oom-group as CGRUN_OOM_GROUP, and so on; a flag on the command line wins over the
environment, and a misspelt variable draws a warning.`

	runExitStatus = `cgrun exits with COMMAND's exit code, 128+N when it died of signal N, 125 when cgrun itself
failed, 126 when COMMAND cannot be executed and 127 when it is not found.`

	runExamples = `  # a queue worker that may never take more than 512M, started again when the kernel's OOM
  # killer or V8's own heap limit (Node sizes its heap from the 512M) ends it
  cgrun run --memory-max 512M --restart on-oom -- node dist/worker.js

  # what does the test suite really peak at, children included? (no limit, just a group;
  # --verbose prints the peak when it exits)
  cgrun run --verbose --name tests -- npm test

  # the same limits from the environment, as in a PM2 or supervisord env block
  CGRUN_MEMORY_MAX=1G CGRUN_PIDS_MAX=256 cgrun run -- php-fpm8.2 -F

  # nest under a group you made and delegated yourself
  cgrun run --parent /sys/fs/cgroup/apps --memory-max 25% -- ./server

  # started by root (supervisord, PM2, a unit without User=): the app runs as www-data (www on
  # aaPanel), root keeps the group and its limits
  cgrun run --user www-data --memory-max 1G -- node /srv/api/server.js
`
)

// writeRunHelp writes `cgrun run --help`: the synopsis, then the flags under their headings,
// then sizes and durations, exit codes and examples.
func writeRunHelp(w io.Writer, fs *pflag.FlagSet) {
	fmt.Fprintf(w, "%s\n\n%s\n", runSynopsis, runSummary)
	titles, sets := groupedFlags(fs)
	for _, t := range titles {
		fmt.Fprintf(w, "\n%s:\n%s", t, sets[t].FlagUsagesWrapped(100))
	}
	fmt.Fprintf(w, "\n%s\n\n%s\n\nMore: man cgrun, and /usr/share/doc/cgrun (README.md and docs/).\n\nExamples:\n%s",
		runSyntax, runExitStatus, runExamples)
}

// flagsAfterCommand is the warning for arguments after COMMAND that are `cgrun run`'s own long
// flags ("" when there are none): they go to COMMAND, as env(1), timeout(1) and systemd-run(1)
// do it, and `cgrun run node app.js --memory-max 128M` would otherwise run node with no limit
// and no word. The command still runs: the flag may be COMMAND's own. A cgrun that runs a cgrun
// is left alone, and so is everything after a "--" of COMMAND's.
func flagsAfterCommand(fs *pflag.FlagSet, cmd []string) string {
	if len(cmd) < 2 || baseName(cmd[0]) == "cgrun" {
		return ""
	}
	var found, fix []string
	args := cmd[1:]
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !strings.HasPrefix(a, "--") || name == "help" {
			continue
		}
		f := fs.Lookup(name)
		if f == nil {
			continue
		}
		given := "--" + name
		if hasValue {
			given += "=" + value
		} else if f.NoOptDefVal == "" && i+1 < len(args) {
			given += " " + args[i+1]
			i++
		}
		found = append(found, "--"+name)
		fix = append(fix, given)
	}
	if len(found) == 0 {
		return ""
	}
	it, them := "it", "is"
	if len(found) > 1 {
		it, them = "them", "are"
	}
	return fmt.Sprintf("%s after the command %s %s passed to %s, not used by cgrun (flags stop at the command); put %s before %s: cgrun run %s -- %s ... (or ignore this if %s takes %s itself)",
		strings.Join(found, ", "), baseName(cmd[0]), them, baseName(cmd[0]), it, baseName(cmd[0]), strings.Join(fix, " "), baseName(cmd[0]), baseName(cmd[0]), it)
}

func baseName(p string) string {
	return p[strings.LastIndex(p, "/")+1:]
}

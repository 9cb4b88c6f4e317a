package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/pflag"
)

// The man page cgrun(1) and the shell completions are generated from the same flag sets the
// commands parse, by two hidden commands the release script runs on the binary it packages:
//
//	cgrun __man                        > cgrun.1
//	cgrun __completion bash|zsh|fish   > the completion script
//
// so they cannot drift from the flags.

// subcommand is one of cgrun's commands, for the man page and the completions.
type subcommand struct {
	name, args, summary string
	flags               func() *pflag.FlagSet // nil: no flags
}

func subcommands() []subcommand {
	runFS := func() *pflag.FlagSet { return newRunFlagSet(&runFlags{}) }
	checkFS := func() *pflag.FlagSet { fs, _, _ := newCheckFlagSet(); return fs }
	adviseFS := func() *pflag.FlagSet {
		own := newAdviseFlagSet(&runFlags{}, &adviseFlags{})
		own.VisitAll(func(f *pflag.Flag) {
			if f.Name != "for" && f.Name != "json" {
				f.Hidden = true // run's, documented under run
			}
		})
		return own
	}
	psFS := func() *pflag.FlagSet { fs, _ := newPsFlagSet(); return fs }
	statusFS := func() *pflag.FlagSet { fs, _ := newStatusFlagSet(); return fs }
	stopFS := func() *pflag.FlagSet { fs, _ := newSignalFlagSet("stop"); return fs }
	recycleFS := func() *pflag.FlagSet { fs, _ := newSignalFlagSet("recycle"); return fs }
	return []subcommand{
		{"check", "[--json] [--parent GROUP]", "say whether cgrun run can work on this host, what is missing and how to fix it", checkFS},
		{"run", "[FLAGS] -- COMMAND [ARG...]", "run COMMAND, and everything it forks, in a fresh cgroup v2 group with limits", runFS},
		{"advise", "[--for DUR] [--json] [RUN FLAGS] -- COMMAND [ARG...]", "run COMMAND as run does for DUR or until it exits, measure the memory it needs by squeezing memory.high while its memory pressure stays low, and print the --memory-max and --memory-high to paste", adviseFS},
		{"ps", "[--json]", "list the running cgruns with their memory figures", psFS},
		{"status", "NAME|PID [--json]", "one running cgrun in detail", statusFS},
		{"stop", "NAME|PID [--timeout DUR]", "stop a running cgrun gracefully (SIGTERM) and wait until it exits", stopFS},
		{"recycle", "NAME|PID", "recycle the current generation of a running cgrun gracefully (SIGALRM)", recycleFS},
		{"version", "", "print the version", nil},
		{"help", "[COMMAND]", "show the help, or the help of COMMAND", nil},
	}
}

func subcommandByName(name string) subcommand {
	for _, c := range subcommands() {
		if c.name == name {
			return c
		}
	}
	return subcommand{name: name}
}

// subcommandHelp writes the help of ps, status, stop, recycle or version: its usage, what it
// does and its flags, from the same table as the man page.
func subcommandHelp(name string, w io.Writer) int {
	c := subcommandByName(name)
	fmt.Fprintf(w, "Usage: cgrun %s %s\n\n%s%s.\n", c.name, c.args, strings.ToUpper(c.summary[:1]), c.summary[1:])
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	if c.flags != nil {
		fs = c.flags()
	}
	fs.BoolP("help", "h", false, "show this help")
	fmt.Fprintf(w, "\nFlags:\n%s", fs.FlagUsagesWrapped(100))
	return 0
}

// flagDoc is one flag as the man page and the completions show it.
type flagDoc struct {
	name, short, arg, usage, def string
}

func flagDocs(fs *pflag.FlagSet) []flagDoc {
	var out []flagDoc
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		arg, usage := pflag.UnquoteUsage(f)
		d := flagDoc{name: f.Name, short: f.Shorthand, arg: arg, usage: usage}
		if !slices.Contains([]string{"", "false", "0", "0s", "[]"}, f.DefValue) {
			d.def = f.DefValue
		}
		out = append(out, d)
	})
	return out
}

// manCommand writes cgrun(1) in roff.
func manCommand(w io.Writer) int {
	paras := []string{runSummary, runExitStatus, runSyntax}
	examples := runExamples

	fmt.Fprintf(w, ".TH CGRUN 1 \"\" \"cgrun %s\" \"User Commands\"\n", roff(versionString()))
	fmt.Fprintln(w, ".SH NAME\ncgrun \\- give one command its own cgroup v2 memory space")
	fmt.Fprintln(w, ".SH SYNOPSIS")
	for _, c := range subcommands() {
		fmt.Fprintf(w, ".B cgrun %s\n", c.name)
		if c.args != "" {
			fmt.Fprintln(w, roff(c.args))
		}
		fmt.Fprintln(w, ".br")
	}
	fmt.Fprintln(w, ".SH DESCRIPTION")
	for _, p := range paras {
		fmt.Fprintf(w, ".PP\n%s\n", roff(strings.Join(strings.Fields(p), " ")))
	}
	fmt.Fprintln(w, ".PP\nRun\n.B cgrun check\nfirst: it says whether cgrun can work on the host, and how to fix what is missing.")
	fmt.Fprintln(w, ".SH COMMANDS")
	for _, c := range subcommands() {
		fmt.Fprintf(w, ".SS \"cgrun %s %s\"\n%s.\n", c.name, roff(c.args), roff(c.summary))
		if c.flags == nil {
			continue
		}
		if c.name != "run" {
			manFlags(w, c.flags())
			continue
		}
		// run's flags under the headings of `cgrun run --help`.
		titles, sets := groupedFlags(c.flags())
		for _, t := range titles {
			fmt.Fprintf(w, ".PP\n.I %s\n", roff(t))
			manFlags(w, sets[t])
		}
	}
	fmt.Fprintln(w, ".SH ENVIRONMENT\nEvery flag of\n.B cgrun run\ncan also be given as a variable; a flag on the command line wins:")
	for _, f := range flagDocs(newRunFlagSet(&runFlags{})) {
		fmt.Fprintf(w, ".TP\n.B %s\n\\-\\-%s\n", envName(f.name), roff(f.name))
	}
	fmt.Fprintln(w, ".PP\nA variable a typo away from one of these (CGRUN_MEM_MAX, CGRUN_MEMORY_LIMIT) sets nothing; cgrun warns of it and names the one meant.")
	fmt.Fprintln(w, ".SH EXIT STATUS")
	for _, e := range [][2]string{
		{"the command's", "cgrun run exits with the command's exit code"},
		{"128+N", "the command died of signal N (137: SIGKILL, e.g. by the OOM killer)"},
		{"121", "the memory peak exceeded --baseline by more than --baseline-tolerance"},
		{"122", "cgrun gave up restarting: --max-restarts restarts within --restart-window"},
		{"125", "cgrun itself failed: bad input, no usable cgroup v2, a kernel error"},
		{"126", "the command was found but cannot be executed"},
		{"127", "the command was not found, or the interpreter its #! line names (or its ELF loader)"},
		{"0, 1", "cgrun check: cgrun run can (0) or cannot (1) work on this host"},
	} {
		fmt.Fprintf(w, ".TP\n.B %s\n%s\n", roff(e[0]), roff(e[1]))
	}
	fmt.Fprintln(w, ".SH EXAMPLES")
	for _, block := range strings.Split(strings.TrimSpace(examples), "\n\n") {
		fmt.Fprint(w, ".PP\n.nf\n")
		for _, line := range strings.Split(block, "\n") {
			fmt.Fprintln(w, roff(strings.TrimSpace(line)))
		}
		fmt.Fprint(w, ".fi\n")
	}
	fmt.Fprintln(w, ".PP\nMore, for systemd, supervisord, PM2 and Docker, in /usr/share/doc/cgrun/examples.")
	fmt.Fprintln(w, ".SH SEE ALSO\n.BR systemd.resource-control (5),\n.BR cgroups (7),\n.BR systemd-run (1)")
	return 0
}

// manFlags writes each of fs's flags as a tagged paragraph.
func manFlags(w io.Writer, fs *pflag.FlagSet) {
	for _, f := range flagDocs(fs) {
		fmt.Fprint(w, ".TP\n")
		if f.short != "" {
			fmt.Fprintf(w, "\\fB\\-%s\\fR, ", f.short)
		}
		fmt.Fprintf(w, "\\fB\\-\\-%s\\fR", roff(f.name))
		if f.arg != "" {
			fmt.Fprintf(w, " \\fI%s\\fR", roff(f.arg))
		}
		fmt.Fprintf(w, "\n%s", roff(f.usage))
		if f.def != "" {
			fmt.Fprintf(w, " (default: %s)", roff(f.def))
		}
		fmt.Fprintln(w)
	}
}

// roff escapes text for a roff line: backslashes, hyphens (so that they stay ASCII hyphens
// and can be searched for), and a leading dot or quote.
func roff(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// completionCommand writes the completion script for shell.
func completionCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "cgrun: usage: cgrun __completion bash|zsh|fish")
		return 125
	}
	switch args[0] {
	case "bash":
		bashCompletion(stdout)
	case "zsh":
		zshCompletion(stdout)
	case "fish":
		fishCompletion(stdout)
	default:
		fmt.Fprintf(stderr, "cgrun: __completion %q: want bash, zsh or fish\n", args[0])
		return 125
	}
	return 0
}

func bashCompletion(w io.Writer) {
	var names []string
	for _, c := range subcommands() {
		names = append(names, c.name)
	}
	fmt.Fprintf(w, `# bash completion for cgrun; generated by cgrun __completion bash
_cgrun() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} i flags=
  if ((COMP_CWORD == 1)); then
    COMPREPLY=($(compgen -W "%s" -- "$cur"))
    return
  fi
  for ((i = 2; i < COMP_CWORD; i++)); do
    if [[ ${COMP_WORDS[1]} == run && ${COMP_WORDS[i]} == -- ]]; then
      COMPREPLY=($(compgen -c -- "$cur"))  # the command cgrun runs
      return
    fi
  done
  case ${COMP_WORDS[1]} in
`, strings.Join(names, " "))
	for _, c := range subcommands() {
		if c.flags == nil {
			continue
		}
		var all, valued []string
		for _, f := range flagDocs(c.flags()) {
			all = append(all, "--"+f.name)
			if f.arg != "" {
				valued = append(valued, "--"+f.name)
			}
		}
		all = append(all, "--help")
		fmt.Fprintf(w, "    %s) flags=%q\n", c.name, strings.Join(all, " "))
		if len(valued) > 0 {
			fmt.Fprintf(w, "      case $prev in %s) COMPREPLY=($(compgen -f -- \"$cur\")); return ;; esac ;;\n", strings.Join(valued, "|"))
		} else {
			fmt.Fprintln(w, "      ;;")
		}
	}
	fmt.Fprint(w, `  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$flags" -- "$cur"))
  fi
}
complete -o default -F _cgrun cgrun
`)
}

// zshEscape escapes a description for _arguments and _describe: brackets and colons.
func zshEscape(s string) string {
	return strings.NewReplacer("'", "'\\''", "[", "\\[", "]", "\\]", ":", "\\:").Replace(s)
}

func zshCompletion(w io.Writer) {
	fmt.Fprintln(w, "#compdef cgrun\n# zsh completion for cgrun; generated by cgrun __completion zsh\n_cgrun() {\n  local -a commands\n  commands=(")
	for _, c := range subcommands() {
		fmt.Fprintf(w, "    '%s:%s'\n", c.name, zshEscape(c.summary))
	}
	fmt.Fprintln(w, "  )\n  if (( CURRENT == 2 )); then\n    _describe command commands\n    return\n  fi\n  case $words[2] in")
	for _, c := range subcommands() {
		if c.flags == nil {
			continue
		}
		fmt.Fprintf(w, "    %s)\n      _arguments -s \\\n", c.name)
		for _, f := range flagDocs(c.flags()) {
			spec := "--" + f.name + "[" + zshEscape(f.usage) + "]"
			if f.arg != "" {
				spec = "--" + f.name + "=[" + zshEscape(f.usage) + "]:" + zshEscape(f.arg) + ":_files"
			}
			fmt.Fprintf(w, "        '%s' \\\n", spec)
		}
		if c.name == "run" {
			fmt.Fprint(w, "        '*::command:_normal' \\\n")
		}
		fmt.Fprint(w, "        '--help[show the help]'\n      ;;\n")
	}
	fmt.Fprintln(w, "  esac\n}\n_cgrun \"$@\"")
}

// fishEscape quotes s for fish in single quotes.
func fishEscape(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, "'", `\'`).Replace(s) + "'"
}

func fishCompletion(w io.Writer) {
	var names []string
	for _, c := range subcommands() {
		names = append(names, c.name)
	}
	fmt.Fprintln(w, "# fish completion for cgrun; generated by cgrun __completion fish\ncomplete -c cgrun -f")
	for _, c := range subcommands() {
		fmt.Fprintf(w, "complete -c cgrun -n 'not __fish_seen_subcommand_from %s' -a %s -d %s\n", strings.Join(names, " "), c.name, fishEscape(c.summary))
	}
	for _, c := range subcommands() {
		if c.flags == nil {
			continue
		}
		for _, f := range flagDocs(c.flags()) {
			line := fmt.Sprintf("complete -c cgrun -n '__fish_seen_subcommand_from %s' -l %s", c.name, f.name)
			if f.short != "" {
				line += " -s " + f.short
			}
			if f.arg != "" {
				line += " -r -F"
			}
			fmt.Fprintf(w, "%s -d %s\n", line, fishEscape(f.usage))
		}
	}
}

// Package launch is the supervisor of one `cgrun run`: it makes each generation's group, starts
// the command in it, hears signals and the kernel's events, recycles and restarts by policy, and
// kills and removes every group it made on every path out.
//
// Its decisions — restart or not and when, what a stop or a recycle does, when the group is
// killed — are package core, which does no I/O: the runner and each generation are its adapter,
// turning signals, timers and the kernel's events into its events, and its actions into syscalls.
//
// What it uses lives in the packages below it, which know nothing of the runner: proc (starting,
// reaping), exitcode (exit codes and signal names), place (where the groups go), policy (when to
// recycle and restart), health (running the health probes), eventlog (the --events stream and the
// event lines), state (the file cgrun ps reads), report (the stable output formats), metrics
// (Prometheus), notify (sd_notify both ways), diagnose (the dump before a memory recycle), advise
// (--advise's probe), listen (--listen's sockets), account (--user), guard (the process that
// cleans up after a SIGKILLed cgrun) and atomicfile.
package launch

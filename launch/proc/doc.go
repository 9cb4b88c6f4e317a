// Package proc starts a process inside a cgroup from its first instruction and reaps the
// children that exit; a command it cannot start fails with the shells' 126 or 127 (package
// exitcode has the words for how a process ended).
package proc

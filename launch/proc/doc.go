// Package proc starts a process inside a cgroup from its first instruction, reaps the children
// that exit, and turns how they ended into the exit codes and signal names shells use.
package proc

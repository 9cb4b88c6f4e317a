package cgroup

import (
	"bufio"
	"bytes"
	"errors"
	"strings"
)

// ProcCgroup is the content of /proc/PID/cgroup.
type ProcCgroup struct {
	// Unified is the path in the v2 hierarchy (the "0::" line); empty when there is none.
	Unified string
	// V1 maps each controller bound to a v1 hierarchy to the process's path there.
	V1 map[string]string
}

// ParseProcCgroup parses /proc/PID/cgroup (see cgroups(7)); path names it in errors.
func ParseProcCgroup(path string, content []byte) (ProcCgroup, error) {
	pc := ProcCgroup{V1: map[string]string{}}
	sc := bufio.NewScanner(bytes.NewReader(content))
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		// hierarchy-ID:controller-list:cgroup-path; the path may itself contain ':'.
		id, rest, ok1 := strings.Cut(line, ":")
		ctrls, p, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 || id == "" {
			return ProcCgroup{}, &ParseError{Path: path, Line: line, Err: errors.New("want ID:CONTROLLERS:PATH")}
		}
		if !strings.HasPrefix(p, "/") {
			return ProcCgroup{}, &ParseError{Path: path, Line: line, Err: errors.New("path is not absolute")}
		}
		if id == "0" && ctrls == "" {
			pc.Unified = p
			continue
		}
		for _, c := range strings.Split(ctrls, ",") {
			if c != "" {
				pc.V1[c] = p
			}
		}
	}
	if err := sc.Err(); err != nil {
		return ProcCgroup{}, &ParseError{Path: path, Err: err}
	}
	return pc, nil
}

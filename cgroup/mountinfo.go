package cgroup

import (
	"bufio"
	"bytes"
	"errors"
	"strings"
)

// Mount is one line of /proc/PID/mountinfo, reduced to what cgrun needs.
type Mount struct {
	Root       string // the path inside the filesystem that is mounted (field 4)
	MountPoint string
	Options    []string // per-mount options: rw, ro, nosuid, ...
	FSType     string
	Super      []string // per-superblock options: for cgroup v1, the bound controllers
}

// ReadOnly reports whether the mount is read-only.
func (m Mount) ReadOnly() bool { return hasOption(m.Options, "ro") }

// ParseMountInfo parses the content of /proc/PID/mountinfo (see proc(5)); path names it in errors.
func ParseMountInfo(path string, content []byte) ([]Mount, error) {
	var mounts []Mount
	sc := bufio.NewScanner(bytes.NewReader(content))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			return nil, &ParseError{Path: path, Line: line, Err: errors.New("no \" - \" separator")}
		}
		f := strings.Fields(pre)
		g := strings.Fields(post)
		if len(f) < 6 || len(g) < 2 {
			return nil, &ParseError{Path: path, Line: line, Err: errors.New("too few fields")}
		}
		m := Mount{
			Root:       unescapeOctal(f[3]),
			MountPoint: unescapeOctal(f[4]),
			Options:    strings.Split(f[5], ","),
			FSType:     g[0],
		}
		if len(g) >= 3 {
			m.Super = strings.Split(g[2], ",")
		}
		mounts = append(mounts, m)
	}
	if err := sc.Err(); err != nil {
		return nil, &ParseError{Path: path, Err: err}
	}
	return mounts, nil
}

// unescapeOctal undoes the kernel's \040-style escaping of spaces, tabs, newlines and backslashes.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) && isOctal(s[i+1:i+4]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(s string) bool {
	for i := 0; i < 3; i++ {
		if s[i] < '0' || s[i] > '7' {
			return false
		}
	}
	return s[0] <= '3'
}

func hasOption(opts []string, want string) bool {
	for _, o := range opts {
		if o == want {
			return true
		}
	}
	return false
}

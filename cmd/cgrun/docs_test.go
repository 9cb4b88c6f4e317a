package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The user docs live at the repository's top: README.md for users, docs/ for reference,
// CONTRIBUTING.md for people working on cgrun. The tests run in cmd/cgrun.
const repoRoot = "../.."

func docFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"README.md", "CONTRIBUTING.md"}
	more, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range more {
		rel, _ := filepath.Rel(repoRoot, f)
		files = append(files, rel)
	}
	return files
}

func readDoc(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var headingRE = regexp.MustCompile(`^#+ (.*)$`)

// anchors are the fragments GitHub gives a file's headings: lower case, punctuation but - and _
// dropped, spaces as -, a repeated heading numbered -1, -2, …
func anchors(text string) map[string]bool {
	got := map[string]bool{}
	seen := map[string]int{}
	fence := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "```") {
			fence = !fence
			continue
		}
		m := headingRE.FindStringSubmatch(line)
		if m == nil || fence {
			continue
		}
		s := strings.Map(func(r rune) rune {
			switch {
			case r == ' ':
				return '-'
			case r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r > 127:
				return r
			}
			return -1
		}, strings.ToLower(strings.TrimSpace(m[1])))
		if n := seen[s]; n > 0 {
			got[s+"-"+strconv.Itoa(n)] = true
		} else {
			got[s] = true
		}
		seen[s]++
	}
	return got
}

// TestDocsLinksResolve: every relative link in README, CONTRIBUTING and docs/ names a file that
// exists and, with a #fragment, a heading in it — so a section moved out of README stays
// reachable from where it was linked.
func TestDocsLinksResolve(t *testing.T) {
	files := docFiles(t)
	texts := map[string]string{}
	for _, f := range files {
		texts[f] = readDoc(t, f)
	}
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	for _, f := range files {
		for _, m := range link.FindAllStringSubmatch(texts[f], -1) {
			target := m[1]
			if regexp.MustCompile(`^[a-z]+:`).MatchString(target) {
				continue
			}
			path, frag, _ := strings.Cut(target, "#")
			to := f
			if path != "" {
				to = filepath.Clean(filepath.Join(filepath.Dir(f), path))
				if _, err := os.Stat(filepath.Join(repoRoot, to)); err != nil {
					t.Errorf("%s links to %s: no such file", f, target)
					continue
				}
			}
			if frag == "" {
				continue
			}
			text, ok := texts[to]
			if !ok {
				text = readDoc(t, to)
			}
			if !anchors(text)[frag] {
				t.Errorf("%s links to %s: %s has no heading #%s", f, target, to, frag)
			}
		}
	}
}

// TestReadmeIsShort: README is for users — at most 600 lines, the quick start within its first
// 40, and a link to each file under docs/ and to CONTRIBUTING.md.
func TestReadmeIsShort(t *testing.T) {
	readme := readDoc(t, "README.md")
	lines := strings.Split(strings.TrimRight(readme, "\n"), "\n")
	if len(lines) > 600 {
		t.Errorf("README.md has %d lines, want at most 600: move reference material to docs/", len(lines))
	}
	quick := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "## Quick start") {
			quick = i + 1
			break
		}
	}
	if quick < 0 || quick > 40 {
		t.Errorf("README.md's quick start heading is at line %d, want within the first 40", quick)
	} else if end := quick + 40; !strings.Contains(strings.Join(lines[quick:min(end, len(lines))], "\n"), "cgrun run") {
		t.Errorf("README.md's quick start shows no cgrun run within 40 lines of its heading")
	}
	for _, f := range docFiles(t) {
		if f == "README.md" {
			continue
		}
		if !strings.Contains(readme, "]("+filepath.ToSlash(f)) {
			t.Errorf("README.md does not link to %s", f)
		}
	}
}

// TestReadmeTestCommandIsCIs: README names the set-up commands, and .ci/run runs the first test
// command README names, so that what README tells contributors is what CI runs.
func TestReadmeTestCommandIsCIs(t *testing.T) {
	readme := readDoc(t, "README.md")
	ci := readDoc(t, ".ci/run")
	first := regexp.MustCompile("scripts/[^ `]*test[^ `]*").FindString(readme)
	if first == "" {
		t.Fatal("README.md names no scripts/...test command")
	}
	if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(first) + `\b`).MatchString(ci) {
		t.Errorf(".ci/run does not run README's test command %q", first)
	}
	if !strings.Contains(readme, "`scripts/demo`") {
		t.Error("README.md lost the demo's set-up command scripts/demo")
	}
}

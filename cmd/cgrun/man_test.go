package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestManAndCompletionsCoverEveryFlag: cgrun(1) and the three completion scripts name every
// flag of every command (they are generated from the same flag sets), and the shells and groff
// that are installed accept them.
func TestManAndCompletionsCoverEveryFlag(t *testing.T) {
	var man bytes.Buffer
	if code := cgrun([]string{"__man"}, nil, &man, &man); code != 0 {
		t.Fatalf("__man: exit %d: %s", code, man.String())
	}
	scripts := map[string]string{}
	for _, sh := range []string{"bash", "zsh", "fish"} {
		var out, errb bytes.Buffer
		if code := cgrun([]string{"__completion", sh}, nil, &out, &errb); code != 0 {
			t.Fatalf("__completion %s: exit %d: %s", sh, code, errb.String())
		}
		scripts[sh] = out.String()
	}
	for _, c := range subcommands() {
		if !strings.Contains(man.String(), ".B cgrun "+c.name+"\n") {
			t.Errorf("man page lacks the command %s", c.name)
		}
		if c.flags == nil {
			continue
		}
		for _, f := range flagDocs(c.flags()) {
			if !strings.Contains(man.String(), `\fB\-\-`+roff(f.name)+`\fR`) {
				t.Errorf("man page lacks %s --%s", c.name, f.name)
			}
			for sh, s := range scripts {
				if want := map[string]string{"bash": "--" + f.name + " ", "zsh": "'--" + f.name, "fish": " -l " + f.name + " "}[sh]; !strings.Contains(s, want) {
					t.Errorf("%s completion lacks %s --%s", sh, c.name, f.name)
				}
			}
		}
	}
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for sh, check := range map[string][]string{"bash": {"bash", "-n"}, "zsh": {"zsh", "-n"}, "fish": {"fish", "--no-execute"}} {
		if _, err := exec.LookPath(check[0]); err != nil {
			t.Logf("%s not installed: its completion's syntax is not checked", check[0])
			continue
		}
		if out, err := exec.Command(check[0], append(check[1:], write("cgrun."+sh, scripts[sh]))...).CombinedOutput(); err != nil {
			t.Errorf("%s rejects its completion: %v\n%s", sh, err, out)
		}
	}
	if _, err := exec.LookPath("groff"); err == nil {
		out, err := exec.Command("groff", "-man", "-ww", "-z", write("cgrun.1", man.String())).CombinedOutput()
		if err != nil || len(out) > 0 {
			t.Errorf("groff warns about cgrun.1: %v\n%s", err, out)
		}
	}
}

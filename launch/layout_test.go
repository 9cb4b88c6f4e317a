package launch

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestSubpackagesImportNothingAbove: what the supervisor uses knows nothing of the supervisor.
// No package under launch/ imports launch, and none imports cmd/cgrun.
func TestSubpackagesImportNothingAbove(t *testing.T) {
	const module = "github.com/cgrun/cgrun/"
	dirs, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		files, _ := filepath.Glob(filepath.Join(d.Name(), "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			ast, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			n++
			for _, imp := range ast.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				if path == module+"launch" || strings.HasPrefix(path, module+"cmd/") {
					t.Errorf("%s imports %s: a package under launch/ must not import what is above it", f, path)
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no package under launch/ was read")
	}
}

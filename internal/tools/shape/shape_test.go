package shape

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

const (
	maxFileLines = 500
	maxFuncLines = 80
)

type sized struct {
	name  string
	lines int
}

// TestShape: every non-test Go file of the module is at most 500 lines and
// every function in it at most 80 (from its func line to its closing
// brace); the largest of each are logged.
func TestShape(t *testing.T) {
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found at %s: %v", root, err)
	}
	var files, funcs []sized
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			// Test helpers are test code; testdata and hidden trees are not code.
			if d.Name() == "testdata" || (strings.HasPrefix(d.Name(), ".") && rel != ".") || rel == filepath.Join("internal", "testutil") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			return err
		}
		files = append(files, sized{rel, fset.Position(f.End()).Line})
		for _, decl := range f.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			name := fd.Name.Name
			if fd.Recv != nil && len(fd.Recv.List) == 1 {
				name = recvName(fd.Recv.List[0].Type) + "." + name
			}
			n := fset.Position(fd.End()).Line - fset.Position(fd.Pos()).Line + 1
			funcs = append(funcs, sized{rel + ": " + name, n})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	check(t, "file", files, maxFileLines)
	check(t, "function", funcs, maxFuncLines)
}

func check(t *testing.T, what string, all []sized, limit int) {
	t.Helper()
	sort.Slice(all, func(i, j int) bool { return all[i].lines > all[j].lines })
	for _, s := range all {
		if s.lines > limit {
			t.Errorf("%s %s: %d lines, over %d: split it by concern", what, s.name, s.lines, limit)
		}
	}
	for i := 0; i < 5 && i < len(all); i++ {
		t.Logf("largest %s: %s: %d lines", what, all[i].name, all[i].lines)
	}
}

func recvName(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.StarExpr:
		return "(*" + recvName(e.X) + ")"
	case *ast.IndexExpr:
		return recvName(e.X)
	case *ast.Ident:
		return e.Name
	}
	return "?"
}

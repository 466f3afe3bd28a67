package codecheck

import (
	"fmt"
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

// exempt are the directories whose code is not held to MaxComplexity:
// the benches and the test harnesses, which only tests and benches run.
var exempt = []string{
	"internal/bench",
	"internal/catest",
	"internal/crashtest",
	"internal/pgsandbox",
	"internal/sandbox",
}

// allowed are functions above MaxComplexity that are being split (file,
// then function name); an entry whose function is no longer above it is
// reported, to be removed.
var allowed = map[string]bool{}

// TestComplexity fails for every non-test function of the module, outside
// exempt, whose complexity is above MaxComplexity, naming each.
func TestComplexity(t *testing.T) {
	root := moduleRoot(t)
	over, err := overLimit(root, MaxComplexity)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var bad []string
	for _, f := range over {
		key := f.file + " " + f.name
		seen[key] = true
		if !allowed[key] {
			bad = append(bad, fmt.Sprintf("%3d %s (%s)", f.complexity, f.name, f.pos))
		}
	}
	if len(bad) > 0 {
		t.Errorf("functions above cyclomatic complexity %d: split them into named steps\n%s", MaxComplexity, strings.Join(bad, "\n"))
	}
	for key := range allowed {
		if !seen[key] {
			t.Logf("%s is no longer above %d: remove it from allowed", key, MaxComplexity)
		}
	}
}

// MaxCmdComplexity is the most a function under cmd/ may branch: cmd
// parses flags, calls one library function and renders its result, so a
// function above it holds a decision that belongs in a library, or
// rendering that wants splitting.
const MaxCmdComplexity = 10

// TestCmdComplexity fails for every non-test function under cmd/ whose
// complexity is above MaxCmdComplexity, naming each.
func TestCmdComplexity(t *testing.T) {
	root := moduleRoot(t)
	over, err := overLimit(filepath.Join(root, "cmd"), MaxCmdComplexity)
	if err != nil {
		t.Fatal(err)
	}
	var bad []string
	for _, f := range over {
		bad = append(bad, fmt.Sprintf("%3d %s (cmd/%s)", f.complexity, f.name, f.pos))
	}
	if len(bad) > 0 {
		t.Errorf("cmd functions above cyclomatic complexity %d: move the decisions into a library, split the rendering:\n%s",
			MaxCmdComplexity, strings.Join(bad, "\n"))
	}
}

// TestComplexityCounts checks the count on known code, so that a counter
// that counts nothing cannot pass TestComplexity.
func TestComplexityCounts(t *testing.T) {
	src := `package p
func f(a, b bool, xs []int, c chan int) {
	if a && b || a {
	}
	for range xs {
	}
	for i := 0; i < 1; i++ {
	}
	switch {
	case a:
	case b:
	default:
	}
	select {
	case <-c:
	default:
	}
	g := func() {
		if b {
		}
	}
	_ = g
}
`
	file, err := parser.ParseFile(token.NewFileSet(), "p.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	fd := file.Decls[0].(*ast.FuncDecl)
	// 1 + if + && + || + range + for + 2 cases + select case + nested if.
	if got, want := complexity(fd.Body), 10; got != want {
		t.Errorf("complexity = %d, want %d", got, want)
	}

	dir := t.TempDir()
	for name, src := range map[string]string{
		"p/p.go":                "package p\n\n" + strings.Replace(src, "package p\n", "", 1),
		"p/p_test.go":           src,
		"internal/bench/x/x.go": src,
		"internal/sandbox/s.go": src,
	} {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	over, err := overLimit(dir, 9)
	if err != nil {
		t.Fatal(err)
	}
	if len(over) != 1 || over[0].file != "p/p.go" || over[0].name != "f" {
		t.Errorf("overLimit = %+v, want only f of p/p.go (tests, benches and harnesses are exempt)", over)
	}
	if over, _ := overLimit(dir, 10); len(over) != 0 {
		t.Errorf("overLimit(10) = %+v, want nothing: the limit itself is allowed", over)
	}
}

type fn struct {
	file, name, pos string
	complexity      int
}

// overLimit parses the non-test Go files under root, outside exempt, and
// returns their functions above limit, most complex first.
func overLimit(root string, limit int) ([]fn, error) {
	var out []fn
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || isExempt(rel)) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") {
			return nil
		}
		file, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		for _, d := range file.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Body != nil {
				if c := complexity(fd.Body); c > limit {
					p := fset.Position(fd.Pos())
					out = append(out, fn{file: rel, name: fd.Name.Name, pos: fmt.Sprintf("%s:%d", rel, p.Line), complexity: c})
				}
			}
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].complexity > out[j].complexity })
	return out, err
}

func isExempt(rel string) bool {
	for _, e := range exempt {
		if rel == e || strings.HasPrefix(rel, e+"/") {
			return true
		}
	}
	return false
}

// complexity is 1 plus one per branch, as package doc says.
func complexity(n ast.Node) int {
	c := 1
	ast.Inspect(n, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.IfStmt, *ast.ForStmt, *ast.RangeStmt:
			c++
		case *ast.CaseClause:
			if x.List != nil {
				c++
			}
		case *ast.CommClause:
			if x.Comm != nil {
				c++
			}
		case *ast.BinaryExpr:
			if x.Op == token.LAND || x.Op == token.LOR {
				c++
			}
		}
		return true
	})
	return c
}

// moduleRoot is the directory of go.mod above the test's directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

package cmd

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// maxComplexity is the most a function of package cmd may branch: cmd
// parses flags, calls one library function and renders its result, so a
// function above it holds a decision that belongs in a library, or
// rendering that wants splitting.
const maxComplexity = 10

// TestComplexity fails for every non-test function of package cmd whose
// cyclomatic complexity is above maxComplexity, counted as
// ../shared/tools/cyclo counts it.
func TestComplexity(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var over []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Body != nil {
				if c := cyclomatic(fd.Body); c > maxComplexity {
					over = append(over, fmt.Sprintf("%3d %s %s", c, fd.Name.Name, fset.Position(fd.Pos())))
				}
			}
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(over)))
	if len(over) > 0 {
		t.Errorf("functions above cyclomatic complexity %d: move the decisions into a library, split the rendering:\n%s",
			maxComplexity, strings.Join(over, "\n"))
	}
}

// cyclomatic is 1 plus one per if, for, range, non-default case and
// select case, && and ||, nested function literals included.
func cyclomatic(n ast.Node) int {
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

// TestCyclomaticCounts pins the counting on small functions, so that the
// rule cannot pass by counting nothing.
func TestCyclomaticCounts(t *testing.T) {
	for src, want := range map[string]int{
		`func f() {}`: 1,
		`func f(a, b bool) { if a && b || a {} }`:                           4,
		`func f(xs []int) { for range xs {}; for i := 0; i < 1; i++ {} }`:   3,
		`func f(x int) { switch x { case 1: case 2, 3: default: } }`:        3,
		`func f(c chan int) { select { case <-c: case c <- 1: default: } }`: 3,
		`func f() { g := func(a bool) { if a {} }; g(true) }`:               2,
	} {
		file, err := parser.ParseFile(token.NewFileSet(), "x.go", "package x\n"+src, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := cyclomatic(file.Decls[0].(*ast.FuncDecl).Body); got != want {
			t.Errorf("%s: complexity %d, want %d", src, got, want)
		}
	}
}

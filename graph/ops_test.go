package graph

import (
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"slices"
	"strconv"
	"testing"
)

// opsNamedIn returns the op names a function of file compares op with:
// string literals in its switch cases and in op == "X" comparisons.
func opsNamedIn(t *testing.T, file, fn string) map[string]bool {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	ops := map[string]bool{}
	found := false
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Name.Name != fn || fd.Recv == nil {
			continue
		}
		found = true
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			var exprs []ast.Expr
			switch n := n.(type) {
			case *ast.CaseClause:
				exprs = n.List
			case *ast.BinaryExpr:
				if id, ok := n.X.(*ast.Ident); ok && id.Name == "op" && n.Op == token.EQL {
					exprs = []ast.Expr{n.Y}
				}
			}
			for _, e := range exprs {
				if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					s, err := strconv.Unquote(lit.Value)
					if err != nil {
						t.Fatal(err)
					}
					ops[s] = true
				}
			}
			return true
		})
	}
	if !found {
		t.Fatalf("%s: no method %s", file, fn)
	}
	return ops
}

// TestEveryRuleHasShapes checks that every operator with a permutation rule
// (rules.go: nodeCtx.run and elementwiseOps) has a shape function
// (shapes.go: shapes.infer and the unaryShape, broadcastShape and
// reduceOps tables). Without one, the analysis of any model using the op
// sees unknown shapes downstream and silently freezes what depends on them.
func TestEveryRuleHasShapes(t *testing.T) {
	rules := opsNamedIn(t, "rules.go", "run")
	maps.Copy(rules, elementwiseOps)
	maps.Copy(rules, broadcastShape)
	maps.Copy(rules, reduceOps)
	shaped := opsNamedIn(t, "shapes.go", "infer")
	for _, table := range []map[string]bool{unaryShape, broadcastShape, reduceOps} {
		maps.Copy(shaped, table)
	}
	if len(rules) < 50 {
		t.Fatalf("found rules for only %d ops: has rules.go's layout changed?", len(rules))
	}
	for _, op := range slices.Sorted(maps.Keys(rules)) {
		if !shaped[op] {
			t.Errorf("%s has a rule in rules.go but no shape function in shapes.go", op)
		}
	}
}

// Package layering checks that the project's imports point one way (see
// docs/design.md, "Packages and their one job").
package layering

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/onnx-rebasin/onnx-rebasin/"

// layer ranks the packages: a package may import only packages of a lower
// rank. Packages not listed here fail the test, so that a new one gets a
// place in the order on purpose.
var layer = map[string]int{
	"internal/half": 0, "internal/hugepage": 0, "internal/atomicfile": 0, "internal/testreq": 0,
	"onnx/onnxpb": 1, "simd": 1, "npy": 1,
	"onnx": 2, "lap": 2, "internal/ortref": 2,
	"graph": 3, "infer": 3, "lap/laptest": 3,
	"eval": 4, "internal/sitelayout": 4, "internal/modelform": 4,
	"permute":          5,
	"internal/testkit": 6, "match": 6,
	"activation": 7, "merge": 7,
	"barrier": 8, "soup": 8,
	"cmd/onnx-rebasin": 9, "bench/heads": 9, "bench/infer": 9, "bench/lap": 9,
}

func TestImportsPointOneWay(t *testing.T) {
	root := filepath.Join("..", "..")
	seen := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		pkg := filepath.ToSlash(rel)
		rank, ok := layer[pkg]
		if !ok {
			t.Errorf("package %s has no place in the layer table", pkg)
			return nil
		}
		seen[pkg] = true
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, spec := range f.Imports {
			imp, err := strconv.Unquote(spec.Path.Value)
			if err != nil {
				return err
			}
			dep, ok := strings.CutPrefix(imp, module)
			if !ok {
				continue
			}
			if r, known := layer[dep]; !known || r >= rank {
				t.Errorf("%s imports %s, which is not below it", path, dep)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for pkg := range layer {
		if !seen[pkg] {
			t.Errorf("layer table lists %s, which has no Go files", pkg)
		}
	}
}

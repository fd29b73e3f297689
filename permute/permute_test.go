package permute

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/internal/ortref"
	"github.com/onnx-rebasin/onnx-rebasin/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// TestPermuteKeepsFunction is the central correctness check: a random
// permutation of every inferred group leaves the outputs unchanged, as
// judged by ONNX Runtime, an independent implementation.
func TestPermuteKeepsFunction(t *testing.T) {
	ort := ortref.Require(t)
	verified := 0
	for _, path := range testkit.Models(t) {
		name := strings.TrimSuffix(filepath.Base(path), ".onnx")
		t.Run(name, func(t *testing.T) {
			orig, a := testkit.LoadAnalyze(t, path)
			if a.PermutableUnits == 0 {
				t.Fatalf("no permutable units found")
			}
			inputs := testkit.RandomInputs(t, orig, 3, 1)
			for _, seed := range []uint64{1, 2, 3} {
				m := orig.Clone()
				if err := Apply(m, a, Random(a, seed)); err != nil {
					t.Fatal(err)
				}
				if !testkit.WeightsMoved(t, orig, m) {
					t.Fatalf("seed %d: no weight moved", seed)
				}
				out := filepath.Join(t.TempDir(), fmt.Sprintf("%s_p%d.onnx", name, seed))
				if err := m.Save(out); err != nil {
					t.Fatal(err)
				}
				if err := ort.CompareModels(path, out, inputs, 1e-4, 1e-3); err != nil {
					t.Fatalf("seed %d: permuted model computes something else: %v", seed, err)
				}
				verified++
			}
		})
	}
	t.Logf("%d model/seed pairs verified by ONNX Runtime", verified)
}

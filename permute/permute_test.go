package permute

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/internal/ortref"
	"github.com/onnx-rebasin/onnx-rebasin/internal/testreq"
	"github.com/onnx-rebasin/onnx-rebasin/npy"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

func TestMain(m *testing.M) {
	code := m.Run()
	ortref.Shutdown()
	os.Exit(code)
}

// testModels lists the committed test models and, when they have been
// generated, the large structure models (testmodels/large, not committed).
func testModels(t *testing.T) []string {
	t.Helper()
	return append(testreq.Glob(t, "../testmodels/*.onnx"), testreq.LargeModels(t, "../testmodels/large")...)
}

// randomInputs makes inputs for every graph input of m from its declared
// shape, with symbolic dims (the batch) set to batch.
func randomInputs(t *testing.T, m *onnx.Model, batch int, seed uint64) map[string]*npy.Array {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 7))
	init := map[string]bool{}
	for _, x := range m.Proto.Graph.Initializer {
		init[x.GetName()] = true
	}
	in := map[string]*npy.Array{}
	for _, v := range m.Proto.Graph.Input {
		if init[v.GetName()] {
			continue
		}
		tt := v.GetType().GetTensorType()
		if onnxpb.TensorProto_DataType(tt.GetElemType()) != onnxpb.TensorProto_FLOAT {
			t.Fatalf("%s: input %s is not float", m.Name, v.GetName())
		}
		var shape []int
		n := 1
		for _, d := range tt.GetShape().GetDim() {
			k := int(d.GetDimValue())
			if k <= 0 {
				k = batch
			}
			shape = append(shape, k)
			n *= k
		}
		data := make([]float32, n)
		for i := range data {
			data[i] = float32(r.NormFloat64())
		}
		a, err := npy.FromFloat32(shape, data)
		if err != nil {
			t.Fatal(err)
		}
		in[v.GetName()] = a
	}
	return in
}

func loadAnalyze(t *testing.T, path string) (*onnx.Model, *graph.Analysis) {
	t.Helper()
	m, err := onnx.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	a, err := graph.Analyze(m)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m, a
}

// weightsMoved reports whether any weight of b differs from a's.
func weightsMoved(t *testing.T, a, b *onnx.Model) bool {
	wa, wb := a.Weights(), b.Weights()
	for name, x := range wa {
		y := wb[name]
		if y == nil {
			return true
		}
		bx, _ := a.TensorBytes(x)
		by, _ := b.TensorBytes(y)
		if !bytes.Equal(bx, by) {
			return true
		}
	}
	return false
}

// TestPermuteKeepsFunction is the central correctness check: a random
// permutation of every inferred group leaves the outputs unchanged, as
// judged by ONNX Runtime, an independent implementation.
func TestPermuteKeepsFunction(t *testing.T) {
	ort := ortref.Require(t)
	verified := 0
	for _, path := range testModels(t) {
		name := strings.TrimSuffix(filepath.Base(path), ".onnx")
		t.Run(name, func(t *testing.T) {
			orig, a := loadAnalyze(t, path)
			if a.PermutableUnits == 0 {
				t.Fatalf("no permutable units found")
			}
			inputs := randomInputs(t, orig, 3, 1)
			for _, seed := range []uint64{1, 2, 3} {
				m := orig.Clone()
				if err := Apply(m, a, Random(a, seed)); err != nil {
					t.Fatal(err)
				}
				if !weightsMoved(t, orig, m) {
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

// TestSelfRecovery permutes a model at random and checks that weight
// matching finds the permutation back exactly.
func TestSelfRecovery(t *testing.T) {
	testSelfRecovery(t, testModels(t), MatchOptions{})
}

// TestSelfRecoveryByDescent is TestSelfRecovery with the coordinate descent
// alone, from the identity, on the committed trained models. (On the
// random-init attention models, attn_*.onnx, it stalls in a local optimum:
// their weights carry little structure for the descent to follow; the
// signature start recovers them, see TestSelfRecovery.)
func TestSelfRecoveryByDescent(t *testing.T) {
	testSelfRecovery(t, testreq.Glob(t, "../testmodels/*_s[01].onnx"), MatchOptions{IdentityStart: true})
}

// TestSelfRecoveryByRank is TestSelfRecovery with the signature start of
// large groups (rank pairing of unit energies) forced on every group.
func TestSelfRecoveryByRank(t *testing.T) {
	defer func(old int) { maxSignatureAssign = old }(maxSignatureAssign)
	maxSignatureAssign = 0
	paths := testreq.Glob(t, "../testmodels/*_s0.onnx")
	for _, p := range testreq.LargeModels(t, "../testmodels/large") {
		if filepath.Base(p) == "mobilenet_v2.onnx" {
			paths = append(paths, p)
		}
	}
	testSelfRecovery(t, paths, MatchOptions{})
}

func testSelfRecovery(t *testing.T, paths []string, opts MatchOptions) {
	for _, path := range paths {
		name := strings.TrimSuffix(filepath.Base(path), ".onnx")
		if testing.Short() && strings.Contains(path, "large") {
			continue
		}
		t.Run(name, func(t *testing.T) {
			a, ga := loadAnalyze(t, path)
			for _, seed := range []uint64{11, 12} {
				b := a.Clone()
				if err := Apply(b, ga, Random(ga, seed)); err != nil {
					t.Fatal(err)
				}
				// What align checks first: the permuted copy (with its
				// own copies of shared tensors) is the same architecture.
				gb, err := graph.Analyze(b)
				if err != nil {
					t.Fatal(err)
				}
				if err := SameArchitecture(a, b, ga, gb); err != nil {
					t.Fatalf("seed %d: the permuted copy: %v", seed, err)
				}
				o := opts
				o.Seed = seed
				res, err := WeightMatch(a, b, ga, o)
				if err != nil {
					t.Fatal(err)
				}
				for i := 1; i < len(res.Sweeps); i++ {
					if res.Sweeps[i].Objective < res.Sweeps[i-1].Objective*(1-1e-9) {
						t.Fatalf("objective decreased: %v", res.Sweeps)
					}
				}
				if err := Apply(b, ga, res.Perms); err != nil {
					t.Fatal(err)
				}
				// Apply on b copied shared tensors the same way it did on
				// a's copy; compare against a with identity applied.
				ref := a.Clone()
				if err := Apply(ref, ga, Identity(ga)); err != nil {
					t.Fatal(err)
				}
				if weightsMoved(t, ref, b) {
					t.Fatalf("seed %d: weights not recovered exactly (objective %g -> %g, %d sweeps)", seed, res.ObjectiveBefore, res.ObjectiveAfter, len(res.Sweeps))
				}
			}
		})
	}
}

package match

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/internal/sitelayout"
	"github.com/onnx-rebasin/onnx-rebasin/internal/testkit"
	"github.com/onnx-rebasin/onnx-rebasin/internal/testreq"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
	"github.com/onnx-rebasin/onnx-rebasin/permute"
)

// TestSelfRecovery permutes a model at random and checks that weight
// matching finds the permutation back exactly.
func TestSelfRecovery(t *testing.T) {
	testSelfRecovery(t, testkit.Models(t), Options{})
}

// TestSelfRecoveryByDescent is TestSelfRecovery with the coordinate descent
// alone, from the identity, on the committed trained models. (On the
// random-init attention models, attn_*.onnx, it stalls in a local optimum:
// their weights carry little structure for the descent to follow; the
// signature start recovers them, see TestSelfRecovery.)
func TestSelfRecoveryByDescent(t *testing.T) {
	testSelfRecovery(t, testreq.Glob(t, "../testmodels/*_s[01].onnx"), Options{Start: StartIdentity})
}

// TestSelfRecoveryBySignature is TestSelfRecovery from the signature start
// on the committed trained models, the plain ones included (whose default
// start is the identity).
func TestSelfRecoveryBySignature(t *testing.T) {
	testSelfRecovery(t, testreq.Glob(t, "../testmodels/*_s[01].onnx"), Options{Start: StartSignature})
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
	testSelfRecovery(t, paths, Options{Start: StartSignature})
}

func testSelfRecovery(t *testing.T, paths []string, opts Options) {
	for _, path := range paths {
		name := strings.TrimSuffix(filepath.Base(path), ".onnx")
		if testing.Short() && strings.Contains(path, "large") {
			continue
		}
		t.Run(name, func(t *testing.T) {
			a, ga := testkit.LoadAnalyze(t, path)
			for _, seed := range []uint64{11, 12} {
				b := a.Clone()
				if err := permute.Apply(b, ga, permute.Random(ga, seed)); err != nil {
					t.Fatal(err)
				}
				// What align checks first: the permuted copy (with its
				// own copies of shared tensors) is the same architecture.
				gb, err := graph.Analyze(b)
				if err != nil {
					t.Fatal(err)
				}
				if err := permute.SameArchitecture(a, b, ga, gb); err != nil {
					t.Fatalf("seed %d: the permuted copy: %v", seed, err)
				}
				o := opts
				o.Seed = seed
				res, err := Weights(a, b, ga, o)
				if err != nil {
					t.Fatal(err)
				}
				for i := 1; i < len(res.Sweeps); i++ {
					if res.Sweeps[i].Objective < res.Sweeps[i-1].Objective*(1-1e-9) {
						t.Fatalf("objective decreased: %v", res.Sweeps)
					}
				}
				if err := permute.Apply(b, ga, res.Perms); err != nil {
					t.Fatal(err)
				}
				// permute.Apply on b copied shared tensors the same way it did on
				// a's copy; compare against a with identity applied.
				ref := a.Clone()
				if err := permute.Apply(ref, ga, permute.Identity(ga)); err != nil {
					t.Fatal(err)
				}
				if testkit.WeightsMoved(t, ref, b) {
					t.Fatalf("seed %d: weights not recovered exactly (objective %g -> %g, %d sweeps)", seed, res.ObjectiveBefore, res.ObjectiveAfter, len(res.Sweeps))
				}
			}
		})
	}
}

// TestWeightMatchBruteForce: with a single group, weight matching must reach
// the best objective over all n! permutations.
func TestWeightMatchBruteForce(t *testing.T) {
	for seed := uint64(0); seed < 20; seed++ {
		a := testkit.TinyMLP(t, 3, 6, 2, seed, onnxpb.TensorProto_FLOAT)
		b := testkit.TinyMLP(t, 3, 6, 2, seed+100, onnxpb.TensorProto_FLOAT)
		ga, err := graph.Analyze(a)
		if err != nil {
			t.Fatal(err)
		}
		if len(ga.Groups) != 1 || ga.Groups[0].Size != 6 {
			t.Fatalf("want one group of 6, got %s", ga.Summary())
		}
		res, err := Weights(a, b, ga, Options{Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		mt, _ := newMatcher(a, b, ga)
		best := math.Inf(-1)
		permutations(6, func(p []int) {
			best = max(best, mt.objective(permute.Perms{p}))
		})
		if math.Abs(res.ObjectiveAfter-best) > 1e-9*math.Abs(best) {
			t.Fatalf("seed %d: objective %v, brute force best %v", seed, res.ObjectiveAfter, best)
		}
	}
}

func permutations(n int, visit func([]int)) {
	p := sitelayout.IdentityPerm(n)
	var rec func(k int)
	rec = func(k int) {
		if k == n {
			visit(p)
			return
		}
		for i := k; i < n; i++ {
			p[k], p[i] = p[i], p[k]
			rec(k + 1)
			p[k], p[i] = p[i], p[k]
		}
	}
	rec(0)
}

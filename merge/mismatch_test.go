package merge

import (
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/activation"
	"github.com/onnx-rebasin/onnx-rebasin/eval"
	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/internal/testkit"
	"github.com/onnx-rebasin/onnx-rebasin/match"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
	"github.com/onnx-rebasin/onnx-rebasin/permute"
)

// noPanic calls fn and turns a panic into a test failure naming what was called.
func noPanic(t *testing.T, what string, fn func() error) (err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s panics: %v\n%s", what, r, debug.Stack())
			err = fmt.Errorf("panic")
		}
	}()
	return fn()
}

// TestMismatchedModels gives every exported function that pairs models two
// models that do not share an architecture, with the analysis of either:
// each must return an error, none may panic (match.Weights on models of
// different widths, as the README's example would call it, panicked in
// simd.DotF64). permute.Apply gets the analysis of the other model.
func TestMismatchedModels(t *testing.T) {
	swapped := func(t *testing.T) *onnx.Model {
		// W1 (6×3) stored as 3×6: same element count, other dims.
		m := testkit.TinyMLP(t, 3, 6, 2, 2, onnxpb.TensorProto_FLOAT)
		m.Proto.Graph.Initializer[0].Dims = []int64{3, 6}
		return m
	}
	type pair struct {
		name string
		a, b func(t *testing.T) *onnx.Model
	}
	tiny := func(in, hidden, out int, seed uint64) func(t *testing.T) *onnx.Model {
		return func(t *testing.T) *onnx.Model {
			return testkit.TinyMLP(t, in, hidden, out, seed, onnxpb.TensorProto_FLOAT)
		}
	}
	file := func(name string) func(t *testing.T) *onnx.Model {
		return func(t *testing.T) *onnx.Model {
			m, err := onnx.Load("../testmodels/" + name + ".onnx")
			if err != nil {
				t.Fatal(err)
			}
			return m
		}
	}
	pairs := []pair{
		{"hidden 6 and 8", tiny(3, 6, 2, 0), tiny(3, 8, 2, 1)},
		{"inputs 3 and 4", tiny(3, 6, 2, 0), tiny(4, 6, 2, 1)},
		{"outputs 2 and 5", tiny(3, 6, 2, 0), tiny(3, 6, 5, 1)},
		{"weight with other dims", tiny(3, 6, 2, 0), swapped},
		{"mlp and mlp32", file("mlp_s0"), file("mlp32_s0")},
		{"cnn_bn and resnet", file("cnn_bn_s0"), file("resnet_s0")},
		{"cnn_bn and cnn_fold", file("cnn_bn_s0"), file("cnn_fold_s0")},
	}
	ds := &eval.Dataset{X: make([]float32, 4*784), Shape: []int{4, 1, 28, 28}}
	for _, p := range pairs {
		t.Run(p.name, func(t *testing.T) {
			models := []*onnx.Model{p.a(t), p.b(t)}
			if models[0].Proto.Graph.Input[0].GetName() == "input" { // Fashion-MNIST models
				checkMismatched(t, models, ds)
			} else {
				checkMismatched(t, models, nil)
			}
		})
	}
}

// checkMismatched is TestMismatchedModels on one pair; ds, if not nil,
// is data for the functions that run the models.
func checkMismatched(t *testing.T, models []*onnx.Model, ds *eval.Dataset) {
	t.Helper()
	for k := range 2 {
		x, y := models[k], models[1-k]
		gx, err := graph.Analyze(x)
		if err != nil {
			continue // the swapped weight contradicts its graph
		}
		wantErr := func(what string, fn func() error) {
			t.Helper()
			if err := noPanic(t, what, fn); err == nil {
				t.Errorf("%s with the analysis of %s: no error", what, x.Name)
			}
		}
		a, b := x, y // the analysis is a's
		if k == 1 {
			a, b = y, x // the analysis is b's
		}
		wantErr("match.Weights", func() error { _, err := match.Weights(a, b, gx, match.Options{MaxIter: 2}); return err })
		wantErr("match.Weights from the identity", func() error {
			_, err := match.Weights(a, b, gx, match.Options{MaxIter: 2, Start: match.StartIdentity})
			return err
		})
		wantErr("Aligned", func() error {
			_, err := Aligned([]*onnx.Model{a, b}, gx, []permute.Perms{permute.Identity(gx), permute.Identity(gx)}, nil)
			return err
		})
		wantErr("Many", func() error { _, err := Many([]*onnx.Model{a, b}, gx, match.Options{MaxIter: 2}, nil); return err })
		wantErr("Average", func() error { _, err := Average([]*onnx.Model{a, b}, nil); return err })
		if ds != nil {
			wantErr("activation.Match", func() error { _, err := activation.Match(a, b, gx, ds, activation.Options{}); return err })
			wantErr("activation.PrepareRepair", func() error { _, err := activation.PrepareRepair(a, b, gx, ds, activation.Options{}); return err })
			// A repair prepared on x applied to y.
			rep, err := activation.PrepareRepair(x, x.Clone(), gx, ds, activation.Options{})
			if err != nil {
				t.Fatal(err)
			}
			wantErr("Repair.Apply", func() error { return rep.Apply(y.Clone(), 0.5) })
			wrong := &eval.Dataset{X: make([]float32, 2*5), Shape: []int{2, 5}}
			wantErr("activation.ResetBatchNorm on data of another shape", func() error { return activation.ResetBatchNorm(x.Clone(), wrong, activation.Options{}) })
		}
		// One model with another's analysis: an error when the
		// groups do not fit, never a panic.
		_ = noPanic(t, "permute.Apply", func() error { return permute.Apply(y.Clone(), gx, permute.Random(gx, 1)) }) // an error is expected; a panic is not
	}
}

// TestMismatchedRandomPairs is TestMismatchedModels on random pairs of
// small MLPs that differ in some width.
func TestMismatchedRandomPairs(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for seed := uint64(0); seed < 40; seed++ {
		var dims [2][3]int
		for dims[0] == dims[1] {
			for i := range dims {
				// Hidden width at least 2: a group to match.
				dims[i] = [3]int{1 + r.IntN(5), 2 + r.IntN(5), 1 + r.IntN(5)}
			}
		}
		a := testkit.TinyMLP(t, dims[0][0], dims[0][1], dims[0][2], seed, onnxpb.TensorProto_FLOAT)
		b := testkit.TinyMLP(t, dims[1][0], dims[1][1], dims[1][2], seed+1000, onnxpb.TensorProto_FLOAT)
		t.Run(fmt.Sprint(dims), func(t *testing.T) { checkMismatched(t, []*onnx.Model{a, b}, nil) })
	}
}

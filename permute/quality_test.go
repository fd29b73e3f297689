package permute

import (
	"path/filepath"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/internal/ortref"
	"github.com/onnx-rebasin/onnx-rebasin/npy"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
)

// ortAccuracy is the top-1 accuracy of m on the committed Fashion-MNIST test
// slice, computed by ONNX Runtime.
func ortAccuracy(t *testing.T, ort *ortref.Runner, m *onnx.Model) float64 {
	t.Helper()
	x, err := npy.ReadFile("../testmodels/fashion_test_x.npy")
	if err != nil {
		t.Fatal(err)
	}
	yArr, err := npy.ReadFile("../testmodels/fashion_test_y.npy")
	if err != nil {
		t.Fatal(err)
	}
	y, _ := yArr.Int64()
	path := filepath.Join(t.TempDir(), "m.onnx")
	if err := m.Save(path); err != nil {
		t.Fatal(err)
	}
	out, err := ort.Run(path, map[string]*npy.Array{"input": x})
	if err != nil {
		t.Fatal(err)
	}
	logits, err := out["logits"].Float32()
	if err != nil {
		t.Fatal(err)
	}
	classes := len(logits) / len(y)
	correct := 0
	for i, label := range y {
		row := logits[i*classes : (i+1)*classes]
		best := 0
		for c, v := range row {
			if v > row[best] {
				best = c
			}
		}
		if int64(best) == label {
			correct++
		}
	}
	return float64(correct) / float64(len(y))
}

// TestMidpointAccuracy checks what re-basin is for: the midpoint of two
// independently trained models is far better after alignment than before.
func TestMidpointAccuracy(t *testing.T) {
	ort := ortref.Require(t)
	pairs := []struct {
		name string
		// minimum gain of the aligned midpoint over the naive one, and
		// maximum drop of the aligned midpoint below the endpoints' mean
		minGain, maxDrop float64
	}{
		{"mlp", 0.20, 0.02},
		{"mlp32", 0.02, 0.30},
		{"cnn_bn", 0.0, 1},
		{"cnn_fold", 0.0, 1},
		// Weight matching alone does not help these two: the ResNet's
		// interpolated BatchNorm statistics no longer fit the merged
		// weights (a BN reset is needed), and on the transformer a
		// higher weight objective does not make a better midpoint (see
		// TestHeadAwareActivationMatching). Their figures are logged, not
		// asserted.
		{"resnet", -1, 1},
		{"transformer", -1, 1},
	}
	for _, p := range pairs {
		t.Run(p.name, func(t *testing.T) {
			a, ga := loadAnalyze(t, "../testmodels/"+p.name+"_s0.onnx")
			b, _ := loadAnalyze(t, "../testmodels/"+p.name+"_s1.onnx")
			res, err := WeightMatch(a, b, ga, MatchOptions{Seed: 0})
			if err != nil {
				t.Fatal(err)
			}
			naive, err := MergeAligned([]*onnx.Model{a, b}, ga, []Perms{Identity(ga), Identity(ga)}, nil)
			if err != nil {
				t.Fatal(err)
			}
			aligned, err := MergeAligned([]*onnx.Model{a, b}, ga, []Perms{Identity(ga), res.Perms}, nil)
			if err != nil {
				t.Fatal(err)
			}
			accA, accB := ortAccuracy(t, ort, a), ortAccuracy(t, ort, b)
			accNaive, accAligned := ortAccuracy(t, ort, naive), ortAccuracy(t, ort, aligned)
			t.Logf("%s: endpoints %.3f / %.3f, naive midpoint %.3f, aligned midpoint %.3f", p.name, accA, accB, accNaive, accAligned)
			if accAligned < accNaive+p.minGain {
				t.Errorf("aligned midpoint %.3f not %.2f above naive %.3f", accAligned, p.minGain, accNaive)
			}
			if mean := (accA + accB) / 2; accAligned < mean-p.maxDrop {
				t.Errorf("aligned midpoint %.3f more than %.2f below the endpoints' mean %.3f", accAligned, p.maxDrop, mean)
			}
		})
	}
}

// TestAlignedKeepsFunction: b aligned to a computes what b computes, as
// judged by ONNX Runtime, for every trained pair.
func TestAlignedKeepsFunction(t *testing.T) {
	ort := ortref.Require(t)
	for _, name := range []string{"mlp", "mlp32", "cnn_bn", "cnn_fold", "resnet", "transformer"} {
		a, ga := loadAnalyze(t, "../testmodels/"+name+"_s0.onnx")
		pathB := "../testmodels/" + name + "_s1.onnx"
		b, _ := loadAnalyze(t, pathB)
		res, err := WeightMatch(a, b, ga, MatchOptions{Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		if err := Apply(b, ga, res.Perms); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), name+"_aligned.onnx")
		if err := b.Save(out); err != nil {
			t.Fatal(err)
		}
		if err := ort.CompareModels(pathB, out, randomInputs(t, a, 4, 9), 1e-4, 1e-3); err != nil {
			t.Errorf("%s: aligned model computes something else: %v", name, err)
		}
	}
}

// TestHeadAwareActivationMatching: on the trained transformer pair,
// activation matching that permutes the attention heads as block groups
// gives a clearly better midpoint than activation matching with the heads
// frozen (measured 0.55 against 0.39 with the built-in evaluator, see
// bench/heads).
func TestHeadAwareActivationMatching(t *testing.T) {
	ort := ortref.Require(t)
	a, ga := loadAnalyze(t, "../testmodels/transformer_s0.onnx")
	b, _ := loadAnalyze(t, "../testmodels/transformer_s1.onnx")
	if len(ga.BlockSets) == 0 {
		t.Fatal("the transformer has no head groups")
	}
	fit := loadData(t, "fashion_train_x.npy", "")
	mid := func(g *graph.Analysis) float64 {
		perms, err := ActivationMatch(a, b, g, fit, DataOptions{})
		if err != nil {
			t.Fatal(err)
		}
		m, err := MergeAligned([]*onnx.Model{a, b}, g, []Perms{Identity(g), perms}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return ortAccuracy(t, ort, m)
	}
	heads := mid(ga)
	frozen := mid(ga.Restrict(func(g graph.Group) bool { return g.Blocks < 2 }))
	t.Logf("midpoint accuracy: heads matched %.3f, heads frozen %.3f", heads, frozen)
	if heads < frozen+0.10 {
		t.Errorf("head-aware activation matching: midpoint %.3f, not 0.10 above %.3f with the heads frozen", heads, frozen)
	}
}

package merge

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/activation"
	"github.com/onnx-rebasin/onnx-rebasin/eval"
	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/internal/ortref"
	"github.com/onnx-rebasin/onnx-rebasin/internal/testkit"
	"github.com/onnx-rebasin/onnx-rebasin/match"
	"github.com/onnx-rebasin/onnx-rebasin/npy"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/permute"
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

// A quality floor: the midpoint (λ = ½) of a trained pair merged by one
// method. The figures were measured (ONNX Runtime, the committed 1,000-image
// test slice) at the commit that added them, the weight-matching ones of
// the plain pairs again when their default start became the identity
// (match.StartAuto); floor is the measured aligned
// accuracy minus at most 0.02, and gain is the least margin by which the
// aligned midpoint must beat the naive one (about half the measured one).
type qualityCase struct {
	pair, method string
	floor, gain  float64
}

// qualityCases covers every trained pair with every method that applies:
// weight matching alone (the BatchNorm pairs included, so that scoring
// their running statistics again would show), with a BatchNorm reset (the
// BatchNorm pairs), with REPAIR, and activation or hybrid matching with
// REPAIR, and on cnn_bn weight matching with restarts (match.Options.Restarts:
// over seeds 0–127 it beats the numpy port of the paper's weight matching
// there; bench/quality/README.md).
// REPAIR finds no layer to correct in the transformer (its layers
// are MatMul), so it is aligned by each method without it.
//
// Two weight-only cases barely differ from the naive midpoint, and their
// gain is allowed to be slightly negative, as measured: the ResNet's
// interpolated BatchNorm statistics no longer fit the merged weights
// (variance collapse; its BN reset case is the one that guards weight
// matching there), and on the transformer a higher weight objective does
// not make a better midpoint (head-aware activation matching does; see
// TestHeadAwareActivationMatching).
var qualityCases = []qualityCase{
	{"mlp", "weight", 0.856, 0.14},                 // measured 0.876, naive 0.586
	{"mlp", "weight+repair", 0.852, 0.14},          // measured 0.872, naive 0.586
	{"mlp", "activation+repair", 0.85, 0.14},       // measured 0.870, naive 0.586
	{"mlp", "hybrid+repair", 0.855, 0.14},          // measured 0.875, naive 0.586
	{"mlp32", "weight", 0.652, 0.14},               // measured 0.672, naive 0.384
	{"mlp32", "weight+repair", 0.721, 0.16},        // measured 0.741, naive 0.384
	{"mlp32", "activation+repair", 0.782, 0.21},    // measured 0.802, naive 0.384
	{"mlp32", "hybrid+repair", 0.73, 0.18},         // measured 0.750, naive 0.384
	{"cnn_bn", "weight", 0.863, 0.13},              // measured 0.883, naive 0.607
	{"cnn_bn", "weight3", 0.879, 0.14},             // measured 0.889, naive 0.607
	{"cnn_bn", "weight+bnreset", 0.866, 0.13},      // measured 0.886, naive 0.607
	{"cnn_bn", "weight+repair", 0.876, 0.14},       // measured 0.896, naive 0.607
	{"cnn_bn", "activation+repair", 0.876, 0.14},   // measured 0.896, naive 0.607
	{"cnn_bn", "hybrid+repair", 0.883, 0.15},       // measured 0.903, naive 0.607
	{"cnn_fold", "weight", 0.873, 0.11},            // measured 0.893, naive 0.666
	{"cnn_fold", "weight+repair", 0.886, 0.12},     // measured 0.906, naive 0.666
	{"cnn_fold", "activation+repair", 0.872, 0.11}, // measured 0.892, naive 0.666
	{"cnn_fold", "hybrid+repair", 0.881, 0.12},     // measured 0.901, naive 0.666
	{"resnet", "weight", 0.077, -0.031},            // measured 0.097, naive 0.108
	{"resnet", "weight+bnreset", 0.279, 0.1},       // measured 0.299, naive 0.108
	{"resnet", "weight+repair", 0.283, 0.1},        // measured 0.303, naive 0.108
	{"resnet", "activation+repair", 0.663, 0.29},   // measured 0.683, naive 0.108
	{"resnet", "hybrid+repair", 0.429, 0.17},       // measured 0.449, naive 0.108
	{"transformer", "weight", 0.312, -0.01},        // measured 0.332, naive 0.328
	{"transformer", "activation", 0.514, 0.10},     // measured 0.534, naive 0.328
	{"transformer", "hybrid", 0.433, 0.06},         // measured 0.453, naive 0.328
}

// midpoint merges pair's two models at λ = ½ by method: "weight",
// "weight3" (weight matching with three restarts),
// "weight+bnreset", "weight+repair", "activation+repair" or
// "hybrid+repair", with fit as the data for matching, reset and REPAIR.
func midpoint(t *testing.T, a, b *onnx.Model, ga *graph.Analysis, method string, fit *eval.Dataset) *onnx.Model {
	t.Helper()
	align, fix, _ := strings.Cut(method, "+")
	var perms permute.Perms
	switch align {
	case "weight", "weight3":
		// weight3: three restarts beside the first descent (--restarts 3).
		restarts := 0
		if align == "weight3" {
			restarts = 3
		}
		res, err := match.Weights(a, b, ga, match.Options{Seed: 0, Restarts: restarts})
		if err != nil {
			t.Fatal(err)
		}
		perms = res.Perms
	case "activation", "hybrid":
		p, err := activation.Match(a, b, ga, fit, activation.Options{Batch: 300})
		if err != nil {
			t.Fatal(err)
		}
		perms = p
		if align == "hybrid" {
			res, err := match.Weights(a, b, ga, match.Options{Seed: 0, Init: p})
			if err != nil {
				t.Fatal(err)
			}
			perms = res.Perms
		}
	default:
		t.Fatalf("unknown method %q", method)
	}
	both := []permute.Perms{permute.Identity(ga), perms}
	mid, err := Aligned([]*onnx.Model{a, b}, ga, both, nil)
	if err != nil {
		t.Fatal(err)
	}
	switch fix {
	case "":
	case "bnreset":
		if err := activation.ResetBatchNorm(mid, fit, activation.Options{Batch: 300}); err != nil {
			t.Fatal(err)
		}
	case "repair":
		ra, rb := a.Clone(), b.Clone()
		if err := permute.Apply(ra, ga, both[0]); err != nil {
			t.Fatal(err)
		}
		if err := permute.Apply(rb, ga, both[1]); err != nil {
			t.Fatal(err)
		}
		rep, err := activation.PrepareRepair(ra, rb, ga, fit, activation.Options{Batch: 300})
		if err != nil {
			t.Fatal(err)
		}
		if err := rep.Apply(mid, 0.5); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("unknown fix %q", fix)
	}
	return mid
}

// TestMidpointAccuracy checks what re-basin is for: the midpoint of two
// independently trained models, merged by each method, keeps at least the
// accuracy measured when the floor was set, and beats the naive midpoint.
func TestMidpointAccuracy(t *testing.T) {
	ort := ortref.Require(t)
	fit := testkit.LoadData(t, "fashion_train_x.npy", "").Head(300)
	naive := map[string]float64{}
	for _, c := range qualityCases {
		t.Run(c.pair+"/"+c.method, func(t *testing.T) {
			a, ga := testkit.LoadAnalyze(t, "../testmodels/"+c.pair+"_s0.onnx")
			b, _ := testkit.LoadAnalyze(t, "../testmodels/"+c.pair+"_s1.onnx")
			if _, ok := naive[c.pair]; !ok {
				m, err := Aligned([]*onnx.Model{a, b}, ga, []permute.Perms{permute.Identity(ga), permute.Identity(ga)}, nil)
				if err != nil {
					t.Fatal(err)
				}
				naive[c.pair] = ortAccuracy(t, ort, m)
			}
			acc := ortAccuracy(t, ort, midpoint(t, a, b, ga, c.method, fit))
			t.Logf("%s %s: aligned midpoint %.3f, naive %.3f (floor %.3f, gain at least %.3f)", c.pair, c.method, acc, naive[c.pair], c.floor, c.gain)
			if acc < c.floor {
				t.Errorf("aligned midpoint %.3f below the floor %.3f", acc, c.floor)
			}
			if acc < naive[c.pair]+c.gain {
				t.Errorf("aligned midpoint %.3f not %.3f above the naive one %.3f", acc, c.gain, naive[c.pair])
			}
		})
	}
}

// TestAlignedKeepsFunction: b aligned to a computes what b computes, as
// judged by ONNX Runtime, for every trained pair.
func TestAlignedKeepsFunction(t *testing.T) {
	ort := ortref.Require(t)
	for _, name := range []string{"mlp", "mlp32", "cnn_bn", "cnn_fold", "resnet", "transformer"} {
		a, ga := testkit.LoadAnalyze(t, "../testmodels/"+name+"_s0.onnx")
		pathB := "../testmodels/" + name + "_s1.onnx"
		b, _ := testkit.LoadAnalyze(t, pathB)
		res, err := match.Weights(a, b, ga, match.Options{Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		if err := permute.Apply(b, ga, res.Perms); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), name+"_aligned.onnx")
		if err := b.Save(out); err != nil {
			t.Fatal(err)
		}
		if err := ort.CompareModels(pathB, out, testkit.RandomInputs(t, a, 4, 9), 1e-4, 1e-3); err != nil {
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
	a, ga := testkit.LoadAnalyze(t, "../testmodels/transformer_s0.onnx")
	b, _ := testkit.LoadAnalyze(t, "../testmodels/transformer_s1.onnx")
	if len(ga.BlockSets) == 0 {
		t.Fatal("the transformer has no head groups")
	}
	fit := testkit.LoadData(t, "fashion_train_x.npy", "")
	mid := func(g *graph.Analysis) float64 {
		perms, err := activation.Match(a, b, g, fit, activation.Options{})
		if err != nil {
			t.Fatal(err)
		}
		m, err := Aligned([]*onnx.Model{a, b}, g, []permute.Perms{permute.Identity(g), perms}, nil)
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

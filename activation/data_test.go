package activation

import (
	"path/filepath"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/eval"
	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/infer"
	"github.com/onnx-rebasin/onnx-rebasin/internal/testkit"
	"github.com/onnx-rebasin/onnx-rebasin/match"
	"github.com/onnx-rebasin/onnx-rebasin/merge"
	"github.com/onnx-rebasin/onnx-rebasin/npy"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/permute"
)

// testLoss is the mean cross-entropy of m on the committed test slice,
// computed by the built-in interpreter.
func testLoss(t *testing.T, m *onnx.Model) float64 {
	t.Helper()
	sess, err := infer.NewSession(m)
	if err != nil {
		t.Fatal(err)
	}
	res, err := eval.Run(sess, testkit.LoadData(t, "fashion_test_x.npy", "../testmodels/fashion_test_y.npy"), 500, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res.Loss
}

// TestActivationMatchRecovers: activations of a permuted copy correlate
// perfectly with the original's only under the true permutation.
func TestActivationMatchRecovers(t *testing.T) {
	ds := testkit.LoadData(t, "fashion_train_x.npy", "")
	ds = ds.Head(300) // plenty, and keeps the test quick
	for _, name := range []string{"mlp32_s0", "cnn_bn_s0", "resnet_s0", "transformer_s0"} {
		a, ga := testkit.LoadAnalyze(t, "../testmodels/"+name+".onnx")
		checkActivationRecovers(t, name, a, ga, ds, 5, 100)
	}
}

// checkActivationRecovers permutes a at random (seed) and checks that
// activation matching on ds finds the permutation back exactly.
func checkActivationRecovers(t *testing.T, name string, a *onnx.Model, ga *graph.Analysis, ds *eval.Dataset, seed uint64, batch int) {
	t.Helper()
	b := a.Clone()
	if err := permute.Apply(b, ga, permute.Random(ga, seed)); err != nil {
		t.Fatal(err)
	}
	perms, err := Match(a, b, ga, ds, Options{Batch: batch})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if err := permute.Apply(b, ga, perms); err != nil {
		t.Fatal(err)
	}
	ref := a.Clone()
	if err := permute.Apply(ref, ga, permute.Identity(ga)); err != nil {
		t.Fatal(err)
	}
	if testkit.WeightsMoved(t, ref, b) {
		t.Errorf("%s: activation matching did not recover the permutation", name)
	}
}

// TestActivationMatchRecoversBlocks: on the attention and grouped-conv
// models (random inputs), activation matching finds a random permutation
// of the heads and blocks back exactly, packed projections and the
// repeated query heads of grouped-query and multi-query attention included.
func TestActivationMatchRecoversBlocks(t *testing.T) {
	for _, name := range []string{"attn_qkv", "attn_mha", "attn_encoder", "attn_rotary", "attn_gqa", "attn_mqa", "gconv"} {
		a, ga := testkit.LoadAnalyze(t, "../testmodels/"+name+".onnx")
		path := filepath.Join(t.TempDir(), "x.npy")
		if err := npy.WriteFile(path, testkit.RandomInputs(t, a, 64, 3)["input"]); err != nil {
			t.Fatal(err)
		}
		ds, err := eval.Load(path, "")
		if err != nil {
			t.Fatal(err)
		}
		checkActivationRecovers(t, name, a, ga, ds, 8, 32)
	}
}

// TestBatchNormResetAndRepair checks the data-driven fixes on the trained
// pairs: after weight matching, resetting BatchNorm statistics cuts the
// midpoint loss of the BatchNorm nets, and REPAIR cuts the narrow MLP's.
func TestBatchNormResetAndRepair(t *testing.T) {
	fit := testkit.LoadData(t, "fashion_train_x.npy", "")
	for _, c := range []struct {
		name   string
		repair bool
		// most of the barrier left after the fix, as a fraction (measured:
		// 0.60, 0.27, 0.77)
		limit float64
	}{{"cnn_bn", false, 0.65}, {"resnet", false, 0.35}, {"mlp32", true, 0.85}} {
		a, ga := testkit.LoadAnalyze(t, "../testmodels/"+c.name+"_s0.onnx")
		b, _ := testkit.LoadAnalyze(t, "../testmodels/"+c.name+"_s1.onnx")
		res, err := match.Weights(a, b, ga, match.Options{})
		if err != nil {
			t.Fatal(err)
		}
		perms := []permute.Perms{permute.Identity(ga), res.Perms}
		mid, err := merge.Aligned([]*onnx.Model{a, b}, ga, perms, nil)
		if err != nil {
			t.Fatal(err)
		}
		before := testLoss(t, mid)
		if !c.repair {
			if err := ResetBatchNorm(mid, fit, Options{}); err != nil {
				t.Fatal(err)
			}
		} else {
			ra, rb := a.Clone(), b.Clone()
			if err := permute.Apply(ra, ga, perms[0]); err != nil {
				t.Fatal(err)
			}
			if err := permute.Apply(rb, ga, perms[1]); err != nil {
				t.Fatal(err)
			}
			rep, err := PrepareRepair(ra, rb, ga, fit, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := rep.Apply(mid, 0.5); err != nil {
				t.Fatal(err)
			}
		}
		after := testLoss(t, mid)
		ends := (testLoss(t, a) + testLoss(t, b)) / 2
		// The midpoint's barrier: its loss above the endpoints' mean.
		bBefore, bAfter := before-ends, after-ends
		fix := map[bool]string{false: "BN reset", true: "REPAIR"}[c.repair]
		t.Logf("%s: midpoint barrier after weight matching %.4f, after %s %.4f", c.name, bBefore, fix, bAfter)
		limit := c.limit * bBefore
		if bAfter > limit {
			t.Errorf("%s: barrier %.4f -> %.4f with %s, expected at most %.4f", c.name, bBefore, bAfter, fix, limit)
		}
	}
}

// TestRepairAtEndpointIsNoOp: REPAIR of model a itself toward λ=0 targets
// a's own statistics, so the function must not change.
func TestRepairAtEndpointIsNoOp(t *testing.T) {
	fit := testkit.LoadData(t, "fashion_train_x.npy", "")
	fit = fit.Head(200)
	a, ga := testkit.LoadAnalyze(t, "../testmodels/cnn_bn_s0.onnx")
	b, _ := testkit.LoadAnalyze(t, "../testmodels/cnn_bn_s1.onnx")
	rep, err := PrepareRepair(a, b, ga, fit, Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := a.Clone()
	if err := rep.Apply(m, 0); err != nil {
		t.Fatal(err)
	}
	la, lm := testLoss(t, a), testLoss(t, m)
	if d := lm - la; d > 1e-3 || d < -1e-3 {
		t.Fatalf("REPAIR at λ=0 changed the loss %.5f -> %.5f", la, lm)
	}
}

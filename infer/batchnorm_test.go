package infer

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/internal/testreq"
)

// TestBatchNormStatisticsReset resets the BatchNorm statistics of the BN-kept
// test models from 256 training images and checks the procedure
// documented on BatchNormStatistics:
//
//   - the sums of the first BN (whose input does not depend on any BN) are
//     the same whether the data comes in one batch or in four;
//   - after writing the reset mean and (population) variance into the model,
//     inference mode on the whole set reproduces batch-statistics mode on it,
//     layer after layer (so the final logits agree);
//   - the reset model still classifies the test slice well.
func TestBatchNormStatisticsReset(t *testing.T) {
	var paths []string
	for _, name := range []string{"cnn_bn_s0", "resnet_s0"} {
		paths = append(paths, testreq.File(t, filepath.Join(testModelDir, name+".onnx")))
	}
	xtr, _ := fashion(t, "train", 256)
	xte, yte := fashion(t, "test", 500)
	for _, path := range paths {
		t.Run(modelName(path), func(t *testing.T) {
			m, s := loadSession(t, path)
			// One batch.
			var whole BatchNormAccumulator
			trainMode, err := s.Run(map[string]*Tensor{"input": xtr}, BatchNormStatistics(whole.Add))
			if err != nil {
				t.Fatal(err)
			}
			nodes := whole.Nodes()
			if len(nodes) == 0 {
				t.Fatal("no BatchNormalization node reported")
			}
			// Four batches.
			var parts BatchNormAccumulator
			predict(t, s, xtr, 64, BatchNormStatistics(parts.Add))
			a, _ := whole.Stats(nodes[0])
			b, _ := parts.Stats(nodes[0])
			if a.Count != b.Count || a.Count%256 != 0 {
				t.Fatalf("counts %d and %d", a.Count, b.Count)
			}
			for c := range a.Sum {
				if d := math.Abs(a.Sum[c] - b.Sum[c]); d > 1e-9*math.Max(1, math.Abs(a.Sum[c])) {
					t.Errorf("first BN channel %d: Σx %v in one batch, %v in four", c, a.Sum[c], b.Sum[c])
				}
				if d := math.Abs(a.SumSq[c] - b.SumSq[c]); d > 1e-9*math.Max(1, a.SumSq[c]) {
					t.Errorf("first BN channel %d: Σx² %v in one batch, %v in four", c, a.SumSq[c], b.SumSq[c])
				}
			}

			// Write the reset statistics into a copy of the model.
			reset := m.Clone()
			w := reset.Weights()
			for _, node := range nodes {
				st, _ := whole.Stats(node)
				mean, variance, ok := whole.MeanVar(node, false)
				if !ok {
					t.Fatalf("%s: no statistics", node)
				}
				for _, set := range []struct {
					name string
					v    []float32
				}{{st.Mean, mean}, {st.Var, variance}} {
					tp, ok := w[set.name]
					if !ok {
						t.Fatalf("%s: %q is not an initializer", node, set.name)
					}
					if err := reset.SetFloat32s(tp, set.v); err != nil {
						t.Fatal(err)
					}
				}
			}
			rs, err := NewSession(reset)
			if err != nil {
				t.Fatal(err)
			}
			evalMode, err := rs.Run(map[string]*Tensor{"input": xtr})
			if err != nil {
				t.Fatal(err)
			}
			if err := compareTensors(evalMode["logits"], trainMode["logits"], 1e-3, 1e-3); err != nil {
				t.Errorf("inference with reset statistics vs batch statistics: %v", err)
			}
			acc := accuracy(predict(t, rs, xte, 500), yte)
			t.Logf("%s: %d BN nodes reset from %d training images; accuracy %.3f on %d test images", modelName(path), len(nodes), xtr.Shape[0], acc, len(yte))
			if acc < 0.8 {
				t.Errorf("accuracy after BN reset %.3f", acc)
			}
		})
	}
}

// TestBatchNormStatisticsNormalises checks batch-statistics mode directly:
// the output of a BN node has, per channel, mean β and variance
// γ²·v/(v+ε) where v is the batch variance.
func TestBatchNormStatisticsNormalises(t *testing.T) {
	path := testreq.File(t, filepath.Join(testModelDir, "cnn_bn_s0.onnx"))
	m, s := loadSession(t, path)
	var scaleName, biasName, bnOut string
	for _, n := range m.Proto.GetGraph().GetNode() {
		if n.GetOpType() == "BatchNormalization" {
			scaleName, biasName, bnOut = n.GetInput()[1], n.GetInput()[2], n.GetOutput()[0]
			break
		}
	}
	x, _ := fashion(t, "train", 100)
	var acc BatchNormAccumulator
	res, err := s.Run(map[string]*Tensor{"input": x}, BatchNormStatistics(acc.Add), Capture(bnOut))
	if err != nil {
		t.Fatal(err)
	}
	node := acc.Nodes()[0]
	_, variance, _ := acc.MeanVar(node, false)
	gamma, err := m.Float32s(m.Weights()[scaleName])
	if err != nil {
		t.Fatal(err)
	}
	beta, err := m.Float32s(m.Weights()[biasName])
	if err != nil {
		t.Fatal(err)
	}
	y := res[bnOut]
	n, ch, S := y.Shape[0], y.Shape[1], numel(y.Shape[2:])
	for c := 0; c < ch; c++ {
		var s, s2 float64
		for i := 0; i < n; i++ {
			for _, v := range y.F[(i*ch+c)*S : (i*ch+c+1)*S] {
				s += float64(v)
				s2 += float64(v) * float64(v)
			}
		}
		cnt := float64(n * S)
		mu := s / cnt
		vr := s2/cnt - mu*mu
		g := float64(gamma[c])
		wantVar := g * g * float64(variance[c]) / (float64(variance[c]) + 1e-5)
		if math.Abs(mu-float64(beta[c])) > 1e-3 || math.Abs(vr-wantVar) > 1e-3*math.Max(1, wantVar) {
			t.Errorf("channel %d: mean %.5f var %.5f, want %.5f and %.5f", c, mu, vr, beta[c], wantVar)
		}
	}
}

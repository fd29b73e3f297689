package merge

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/internal/testkit"
	"github.com/onnx-rebasin/onnx-rebasin/match"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
	"github.com/onnx-rebasin/onnx-rebasin/permute"
)

// twoHiddenMLP builds X(1×3) → Gemm(W1, b1) → Relu → Gemm(W2, b2) → Relu →
// Gemm(W3, b3) → Y with two hidden groups of 4. With shared, both hidden
// layers read one bias tensor "b", as PyTorch's exporter writes layers
// whose parameters are equal (fresh BatchNorms, zero biases).
func twoHiddenMLP(t *testing.T, seed uint64, shared bool) *onnx.Model {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 9))
	m := testkit.NewModel("twohidden")
	g := m.Proto.Graph
	f := onnxpb.TensorProto_FLOAT
	b1, b2 := "b1", "b2"
	testkit.AddRandomWeight(t, m, r, f, "W1", 4, 3)
	testkit.AddRandomWeight(t, m, r, f, "W2", 4, 4)
	testkit.AddRandomWeight(t, m, r, f, "W3", 2, 4)
	testkit.AddRandomWeight(t, m, r, f, "b3", 2)
	if shared {
		testkit.AddRandomWeight(t, m, r, f, "b", 4)
		b1, b2 = "b", "b"
	} else {
		testkit.AddRandomWeight(t, m, r, f, "b1", 4)
		testkit.AddRandomWeight(t, m, r, f, "b2", 4)
	}
	relu := func(x, y string) *onnxpb.NodeProto {
		return &onnxpb.NodeProto{Name: proto.String("relu_" + x), OpType: proto.String("Relu"), Input: []string{x}, Output: []string{y}}
	}
	g.Node = []*onnxpb.NodeProto{
		testkit.GemmNode("fc1", "X", "W1", b1, "h1"), relu("h1", "r1"),
		testkit.GemmNode("fc2", "r1", "W2", b2, "h2"), relu("h2", "r2"),
		testkit.GemmNode("fc3", "r2", "W3", "b3", "Y"),
	}
	g.Input = []*onnxpb.ValueInfoProto{testkit.FloatValue("X", 1, 3)}
	g.Output = []*onnxpb.ValueInfoProto{testkit.FloatValue("Y", 1, 2)}
	return m
}

// weightAt returns the values of the weight that node n reads at input k.
func weightAt(t *testing.T, m *onnx.Model, n, k int) []float64 {
	t.Helper()
	ws := m.Weights()
	name := graph.NewSources(m).Name(m.Proto.Graph.Node[n].Input[k])
	if name == "" {
		t.Fatalf("node %d input %d reads no weight", n, k)
	}
	v, err := m.Float64s(ws[name])
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func analyzeOrFail(t *testing.T, m *onnx.Model) *graph.Analysis {
	t.Helper()
	a, err := graph.Analyze(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestSharedWeights: a model whose layers share a tensor is permuted (permute.Apply
// gives each layer its own copy), and the copy must still count as the same
// architecture, align back exactly, and average with the original. So
// must a model of the same shape that never shared the tensor.
func TestSharedWeights(t *testing.T) {
	a := twoHiddenMLP(t, 1, true)
	ga := analyzeOrFail(t, a)
	if len(ga.Groups) != 2 {
		t.Fatalf("want two hidden groups, got %s", ga.Summary())
	}
	uses := [][2]int{{0, 1}, {0, 2}, {2, 1}, {2, 2}, {4, 1}, {4, 2}} // every weight input
	for seed := uint64(0); seed < 4; seed++ {
		b := a.Clone()
		if err := permute.Apply(b, ga, permute.Random(ga, seed)); err != nil {
			t.Fatal(err)
		}
		if b.Proto.Graph.Node[0].Input[2] == b.Proto.Graph.Node[2].Input[2] {
			t.Fatal("permute.Apply did not give the two layers their own bias")
		}
		gb := analyzeOrFail(t, b)
		if err := permute.SameArchitecture(a, b, ga, gb); err != nil {
			t.Fatalf("seed %d: a model and its permuted copy differ: %v", seed, err)
		}
		res, err := match.Weights(a, b, ga, match.Options{Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		if err := permute.Apply(b, ga, res.Perms); err != nil {
			t.Fatal(err)
		}
		for _, u := range uses {
			if !equalFloats(weightAt(t, a, u[0], u[1]), weightAt(t, b, u[0], u[1])) {
				t.Fatalf("seed %d: node %d input %d not recovered", seed, u[0], u[1])
			}
		}
		avg, err := Average([]*onnx.Model{a, b}, nil)
		if err != nil {
			t.Fatalf("seed %d: averaging with the recovered copy: %v", seed, err)
		}
		for _, u := range uses {
			if !equalFloats(weightAt(t, a, u[0], u[1]), weightAt(t, avg, u[0], u[1])) {
				t.Fatalf("seed %d: average of a model and itself differs at node %d input %d", seed, u[0], u[1])
			}
		}
	}

	// A model that keeps the two biases apart, with other values: same
	// architecture, and the average splits the shared bias.
	c := twoHiddenMLP(t, 2, false)
	gc := analyzeOrFail(t, c)
	if err := permute.SameArchitecture(a, c, ga, gc); err != nil {
		t.Fatalf("shared and unshared biases: %v", err)
	}
	avg, err := Average([]*onnx.Model{a, c}, []float64{1, 3})
	if err != nil {
		t.Fatal(err)
	}
	if avg.Proto.Graph.Node[0].Input[2] == avg.Proto.Graph.Node[2].Input[2] {
		t.Fatal("the average kept one bias for two layers whose averages differ")
	}
	for _, u := range uses {
		wa, wc, wm := weightAt(t, a, u[0], u[1]), weightAt(t, c, u[0], u[1]), weightAt(t, avg, u[0], u[1])
		for i := range wm {
			if want := float64(float32(0.25*wa[i] + 0.75*wc[i])); wm[i] != want {
				t.Fatalf("node %d input %d [%d]: average %v, want %v", u[0], u[1], i, wm[i], want)
			}
		}
	}
	if _, err := Average([]*onnx.Model{c, a}, nil); err != nil {
		t.Fatalf("unshared reference: %v", err)
	}

	// A weight of another shape is still a difference, named by its reader.
	d := twoHiddenMLP(t, 3, false)
	d.Proto.Graph.Initializer[5].Dims = []int64{2, 2} // b2
	err = permute.SameArchitecture(a, d, ga, ga)
	if err == nil || !strings.Contains(err.Error(), `Gemm "fc2" in twohidden reads weight "b" FLOAT[4] at input 2`) {
		t.Fatalf("bias of another shape: err = %v, want one naming input 2 of fc2", err)
	}
}

func equalFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
			return false
		}
	}
	return true
}

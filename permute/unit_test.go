package permute

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

// tinyMLP builds X(1×in) → Gemm(W1, b1) → Relu → Gemm(W2, b2) → Y with
// random weights of dtype dt: one permutation group of size hidden.
func tinyMLP(t *testing.T, in, hidden, out int, seed uint64, dt onnxpb.TensorProto_DataType) *onnx.Model {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 3))
	m := newTestModel("tiny")
	g := m.Proto.Graph
	addRandomWeight(t, m, r, dt, "W1", int64(hidden), int64(in))
	addRandomWeight(t, m, r, dt, "b1", int64(hidden))
	addRandomWeight(t, m, r, dt, "W2", int64(out), int64(hidden))
	addRandomWeight(t, m, r, dt, "b2", int64(out))
	g.Initializer = append(g.Initializer, &onnxpb.TensorProto{Name: proto.String("shape"), Dims: []int64{2}, DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)), Int64Data: []int64{1, int64(out)}})
	g.Node = []*onnxpb.NodeProto{
		gemmNode("fc1", "X", "W1", "b1", "h"),
		{Name: proto.String("relu"), OpType: proto.String("Relu"), Input: []string{"h"}, Output: []string{"hr"}},
		gemmNode("fc2", "hr", "W2", "b2", "y0"),
		{Name: proto.String("reshape"), OpType: proto.String("Reshape"), Input: []string{"y0", "shape"}, Output: []string{"Y"}},
	}
	g.Input = []*onnxpb.ValueInfoProto{floatValue("X", 1, int64(in))}
	g.Output = []*onnxpb.ValueInfoProto{floatValue("Y", 1, int64(out))}
	return m
}

// newTestModel returns a model with an empty graph (IR 8, opset 17).
func newTestModel(name string) *onnx.Model {
	return &onnx.Model{Name: name, Proto: &onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(17)}},
		Graph:       &onnxpb.GraphProto{Name: proto.String(name)},
	}}
}

// addRandomWeight adds an initializer of type dt with standard normal
// values from r.
func addRandomWeight(t *testing.T, m *onnx.Model, r *rand.Rand, dt onnxpb.TensorProto_DataType, name string, dims ...int64) {
	t.Helper()
	n, _ := onnx.NumElements(dims)
	tp := &onnxpb.TensorProto{Name: proto.String(name), Dims: dims, DataType: proto.Int32(int32(dt)), RawData: make([]byte, n*onnx.ElemSize(dt))}
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	if err := m.SetFloat32s(tp, v); err != nil {
		t.Fatal(err)
	}
	m.Proto.Graph.Initializer = append(m.Proto.Graph.Initializer, tp)
}

// gemmNode is Gemm(x, w, b) with transB = 1 (a Linear layer).
func gemmNode(name, x, w, b, y string) *onnxpb.NodeProto {
	return &onnxpb.NodeProto{Name: proto.String(name), OpType: proto.String("Gemm"), Input: []string{x, w, b}, Output: []string{y},
		Attribute: []*onnxpb.AttributeProto{{Name: proto.String("transB"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(1)}}}
}

// floatValue describes a float tensor value of the given dims.
func floatValue(name string, dims ...int64) *onnxpb.ValueInfoProto {
	var shape []*onnxpb.TensorShapeProto_Dimension
	for _, d := range dims {
		shape = append(shape, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}})
	}
	return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
		ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), Shape: &onnxpb.TensorShapeProto{Dim: shape}}}}}
}

// TestWeightMatchBruteForce: with a single group, weight matching must reach
// the best objective over all n! permutations.
func TestWeightMatchBruteForce(t *testing.T) {
	for seed := uint64(0); seed < 20; seed++ {
		a := tinyMLP(t, 3, 6, 2, seed, onnxpb.TensorProto_FLOAT)
		b := tinyMLP(t, 3, 6, 2, seed+100, onnxpb.TensorProto_FLOAT)
		ga, err := graph.Analyze(a)
		if err != nil {
			t.Fatal(err)
		}
		if len(ga.Groups) != 1 || ga.Groups[0].Size != 6 {
			t.Fatalf("want one group of 6, got %s", ga.Summary())
		}
		res, err := WeightMatch(a, b, ga, MatchOptions{Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		mt, _ := newMatcher(a, b, ga)
		best := math.Inf(-1)
		permutations(6, func(p []int) {
			best = max(best, mt.objective(Perms{p}))
		})
		if math.Abs(res.ObjectiveAfter-best) > 1e-9*math.Abs(best) {
			t.Fatalf("seed %d: objective %v, brute force best %v", seed, res.ObjectiveAfter, best)
		}
	}
}

func permutations(n int, visit func([]int)) {
	p := identityPerm(n)
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

// TestAverageKeepsDtype averages fp16 and bf16 models in float64 and writes
// the result back, rounded once, in the model's own type.
func TestAverageKeepsDtype(t *testing.T) {
	for _, dt := range []onnxpb.TensorProto_DataType{onnxpb.TensorProto_FLOAT16, onnxpb.TensorProto_BFLOAT16, onnxpb.TensorProto_DOUBLE, onnxpb.TensorProto_FLOAT} {
		a := tinyMLP(t, 3, 4, 2, 1, dt)
		b := tinyMLP(t, 3, 4, 2, 2, dt)
		avg, err := Average([]*onnx.Model{a, b}, []float64{1, 3})
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"W1", "b1", "W2", "b2"} {
			ta, tb, tm := a.Weights()[name], b.Weights()[name], avg.Weights()[name]
			if onnx.DataType(tm) != dt || tm.RawData == nil {
				t.Fatalf("%v %s: type or storage changed", dt, name)
			}
			va, _ := a.Float64s(ta)
			vb, _ := b.Float64s(tb)
			vm, _ := avg.Float64s(tm)
			want := &onnxpb.TensorProto{Dims: tm.Dims, DataType: tm.DataType, RawData: []byte{}}
			exact := make([]float64, len(va))
			for i := range va {
				exact[i] = 0.25*va[i] + 0.75*vb[i]
			}
			if err := (&onnx.Model{}).SetFloat64s(want, exact); err != nil {
				t.Fatal(err)
			}
			wv, _ := (&onnx.Model{}).Float64s(want)
			for i := range vm {
				if vm[i] != wv[i] {
					t.Fatalf("%v %s[%d]: got %v, want %v (exact %v)", dt, name, i, vm[i], wv[i], exact[i])
				}
			}
		}
	}
}

func TestAverageRejectsDifferentIntegers(t *testing.T) {
	a := tinyMLP(t, 3, 4, 2, 1, onnxpb.TensorProto_FLOAT)
	b := tinyMLP(t, 3, 4, 2, 2, onnxpb.TensorProto_FLOAT)
	b.Weights()["shape"].Int64Data[0] = 2
	_, err := Average([]*onnx.Model{a, b}, nil)
	// The integer values are part of the computation, so the models differ.
	if err == nil || !strings.Contains(err.Error(), `weight "shape" INT64[2]`) {
		t.Fatalf("got %v", err)
	}
}

func TestPermsCheck(t *testing.T) {
	a := tinyMLP(t, 3, 4, 2, 1, onnxpb.TensorProto_FLOAT)
	ga, err := graph.Analyze(a)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []Perms{{}, {{0, 1, 2}}, {{0, 1, 2, 2}}, {{0, 1, 2, 4}}} {
		if err := Apply(a.Clone(), ga, p); err == nil {
			t.Errorf("Apply accepted %v", p)
		}
	}
}

// TestPermuteTensor checks permuteTensor, which moves data in place, against
// index arithmetic: element sizes 1 to 8, 1-D to 4-D tensors, permutations
// on any subset of axes, raw and typed storage.
func TestPermuteTensor(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	types := []onnxpb.TensorProto_DataType{onnxpb.TensorProto_UINT8, onnxpb.TensorProto_FLOAT16, onnxpb.TensorProto_FLOAT, onnxpb.TensorProto_DOUBLE}
	for _, dims := range [][]int{{7}, {4, 3}, {1, 5}, {3, 4, 2, 2}, {6, 2, 3}} {
		for _, dt := range types {
			for trial := 0; trial < 4; trial++ {
				es := onnx.ElemSize(dt)
				n := 1
				d64 := make([]int64, len(dims))
				for i, d := range dims {
					n *= d
					d64[i] = int64(d)
				}
				raw := make([]byte, n*es)
				for i := range raw {
					raw[i] = byte(r.IntN(256))
				}
				tp := &onnxpb.TensorProto{Name: proto.String("w"), Dims: d64, DataType: proto.Int32(int32(dt)), RawData: append([]byte(nil), raw...)}
				var moves []axisMove
				maps := make([][]int, len(dims))
				for axis, d := range dims {
					if trial == 3 || r.IntN(2) == 0 {
						maps[axis] = r.Perm(d)
						moves = append(moves, axisMove{axis, maps[axis]})
					}
				}
				m := &onnx.Model{Proto: &onnxpb.ModelProto{Graph: &onnxpb.GraphProto{Initializer: []*onnxpb.TensorProto{tp}}}}
				if err := permuteTensor(m, tp, moves); err != nil {
					t.Fatal(err)
				}
				// Element at index idx takes the element at idx with
				// each permuted axis mapped.
				st := strides(dims)
				for e := 0; e < n; e++ {
					src, rest := 0, e
					for axis := range dims {
						i := rest / st[axis]
						rest %= st[axis]
						if maps[axis] != nil {
							i = maps[axis][i]
						}
						src += i * st[axis]
					}
					if got, want := tp.RawData[e*es:(e+1)*es], raw[src*es:(src+1)*es]; string(got) != string(want) {
						t.Fatalf("dims %v %v maps %v: element %d is %v, want %v", dims, dt, maps, e, got, want)
					}
				}
			}
		}
	}
	// Typed storage goes through the raw encoding and back.
	tp := &onnxpb.TensorProto{Name: proto.String("f"), Dims: []int64{3, 2}, DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), FloatData: []float32{1, 2, 3, 4, 5, 6}}
	m := &onnx.Model{Proto: &onnxpb.ModelProto{Graph: &onnxpb.GraphProto{Initializer: []*onnxpb.TensorProto{tp}}}}
	if err := permuteTensor(m, tp, []axisMove{{0, []int{2, 0, 1}}, {1, []int{1, 0}}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := m.Float32s(tp); !slices.Equal(got, []float32{6, 5, 2, 1, 4, 3}) {
		t.Fatalf("typed: got %v", got)
	}
}

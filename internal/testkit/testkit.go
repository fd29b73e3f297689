// Package testkit holds helpers shared by the tests of permute, match,
// merge, activation and sitelayout: loading test models, tiny hand-built
// models, random inputs and data sets.
package testkit

import (
	"bytes"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnx-rebasin/onnx-rebasin/eval"
	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/internal/ortref"
	"github.com/onnx-rebasin/onnx-rebasin/internal/testreq"
	"github.com/onnx-rebasin/onnx-rebasin/npy"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

// Models lists the committed test models and, when they have been
// generated, the large structure models (testmodels/large, not committed).
func Models(t testing.TB) []string {
	t.Helper()
	return append(testreq.Glob(t, "../testmodels/*.onnx"), testreq.LargeModels(t, "../testmodels/large")...)
}

// RandomInputs makes inputs for every graph input of m from its declared
// shape, with symbolic dims (the batch) set to batch.
func RandomInputs(t testing.TB, m *onnx.Model, batch int, seed uint64) map[string]*npy.Array {
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

// Main runs a package's tests, then stops the ONNX Runtime process they
// may have started (TestMain of the packages that use internal/ortref).
func Main(m *testing.M) {
	code := m.Run()
	ortref.Shutdown()
	os.Exit(code)
}

// LoadAnalyze loads the model at path and infers its permutation groups.
func LoadAnalyze(t testing.TB, path string) (*onnx.Model, *graph.Analysis) {
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

// WeightsMoved reports whether any weight of b differs from a's.
func WeightsMoved(t testing.TB, a, b *onnx.Model) bool {
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

// TinyMLP builds X(1×in) → Gemm(W1, b1) → Relu → Gemm(W2, b2) → Y with
// random weights of dtype dt: one permutation group of size hidden.
func TinyMLP(t testing.TB, in, hidden, out int, seed uint64, dt onnxpb.TensorProto_DataType) *onnx.Model {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 3))
	m := NewModel("tiny")
	g := m.Proto.Graph
	AddRandomWeight(t, m, r, dt, "W1", int64(hidden), int64(in))
	AddRandomWeight(t, m, r, dt, "b1", int64(hidden))
	AddRandomWeight(t, m, r, dt, "W2", int64(out), int64(hidden))
	AddRandomWeight(t, m, r, dt, "b2", int64(out))
	g.Initializer = append(g.Initializer, &onnxpb.TensorProto{Name: proto.String("shape"), Dims: []int64{2}, DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)), Int64Data: []int64{1, int64(out)}})
	g.Node = []*onnxpb.NodeProto{
		GemmNode("fc1", "X", "W1", "b1", "h"),
		{Name: proto.String("relu"), OpType: proto.String("Relu"), Input: []string{"h"}, Output: []string{"hr"}},
		GemmNode("fc2", "hr", "W2", "b2", "y0"),
		{Name: proto.String("reshape"), OpType: proto.String("Reshape"), Input: []string{"y0", "shape"}, Output: []string{"Y"}},
	}
	g.Input = []*onnxpb.ValueInfoProto{FloatValue("X", 1, int64(in))}
	g.Output = []*onnxpb.ValueInfoProto{FloatValue("Y", 1, int64(out))}
	return m
}

// NewModel returns a model with an empty graph (IR 8, opset 17).
func NewModel(name string) *onnx.Model {
	return &onnx.Model{Name: name, Proto: &onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(17)}},
		Graph:       &onnxpb.GraphProto{Name: proto.String(name)},
	}}
}

// AddRandomWeight adds an initializer of type dt with standard normal
// values from r.
func AddRandomWeight(t testing.TB, m *onnx.Model, r *rand.Rand, dt onnxpb.TensorProto_DataType, name string, dims ...int64) {
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

// GemmNode is Gemm(x, w, b) with transB = 1 (a Linear layer).
func GemmNode(name, x, w, b, y string) *onnxpb.NodeProto {
	return &onnxpb.NodeProto{Name: proto.String(name), OpType: proto.String("Gemm"), Input: []string{x, w, b}, Output: []string{y},
		Attribute: []*onnxpb.AttributeProto{{Name: proto.String("transB"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(1)}}}
}

// FloatValue describes a float tensor value of the given dims.
func FloatValue(name string, dims ...int64) *onnxpb.ValueInfoProto {
	var shape []*onnxpb.TensorShapeProto_Dimension
	for _, d := range dims {
		shape = append(shape, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}})
	}
	return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
		ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), Shape: &onnxpb.TensorShapeProto{Dim: shape}}}}}
}

// LoadData loads the images ../testmodels/x (the tests run one folder below
// the repository root) and the labels at path y (none if empty).
func LoadData(t testing.TB, x, y string) *eval.Dataset {
	t.Helper()
	ds, err := eval.Load("../testmodels/"+x, y)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ds.Close() })
	return ds
}

// AllPerms returns every permutation of 0..n-1.
func AllPerms(n int) [][]int {
	if n == 0 {
		return [][]int{{}}
	}
	var out [][]int
	for _, p := range AllPerms(n - 1) {
		for pos := 0; pos <= len(p); pos++ {
			q := append(append(append([]int{}, p[:pos]...), n-1), p[pos:]...)
			out = append(out, q)
		}
	}
	return out
}

// SameFloats reports whether a and b are equal bit for bit, except that
// any two NaNs are equal.
func SameFloats(a, b []float32) bool {
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) && !(a[i] != a[i] && b[i] != b[i]) {
			return false
		}
	}
	return len(a) == len(b)
}

package permute

import (
	"math/rand/v2"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/internal/sitelayout"
	"github.com/onnx-rebasin/onnx-rebasin/internal/testkit"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

func TestPermsCheck(t *testing.T) {
	a := testkit.TinyMLP(t, 3, 4, 2, 1, onnxpb.TensorProto_FLOAT)
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
				st := sitelayout.Strides(dims)
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

package merge

import (
	"strings"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/internal/testkit"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

// TestAverageKeepsDtype averages fp16 and bf16 models in float64 and writes
// the result back, rounded once, in the model's own type.
func TestAverageKeepsDtype(t *testing.T) {
	for _, dt := range []onnxpb.TensorProto_DataType{onnxpb.TensorProto_FLOAT16, onnxpb.TensorProto_BFLOAT16, onnxpb.TensorProto_DOUBLE, onnxpb.TensorProto_FLOAT} {
		a := testkit.TinyMLP(t, 3, 4, 2, 1, dt)
		b := testkit.TinyMLP(t, 3, 4, 2, 2, dt)
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
	a := testkit.TinyMLP(t, 3, 4, 2, 1, onnxpb.TensorProto_FLOAT)
	b := testkit.TinyMLP(t, 3, 4, 2, 2, onnxpb.TensorProto_FLOAT)
	b.Weights()["shape"].Int64Data[0] = 2
	_, err := Average([]*onnx.Model{a, b}, nil)
	// The integer values are part of the computation, so the models differ.
	if err == nil || !strings.Contains(err.Error(), `weight "shape" INT64[2]`) {
		t.Fatalf("got %v", err)
	}
}

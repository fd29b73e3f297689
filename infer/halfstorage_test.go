package infer

import (
	"path/filepath"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/internal/modelform"
	"github.com/onnx-rebasin/onnx-rebasin/internal/ortref"
	"github.com/onnx-rebasin/onnx-rebasin/npy"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

// TestHalfStorage runs models that store their weights in fp16 or bf16 and
// cast them to float32 before use (testmodels/forms/resnet_s1_fp16.onnx,
// converted by make_models.py, and copies of other test models converted
// here, as initializers or Constant nodes): the interpreter matches ONNX
// Runtime on them, and their accuracy stays within 0.01 of the float32
// model's.
func TestHalfStorage(t *testing.T) {
	r := ortref.Require(t)
	x, y := fashion(t, "test", 1000)
	half := func(dt onnxpb.TensorProto_DataType, constants bool) func(*onnx.Model) (*onnx.Model, error) {
		return func(m *onnx.Model) (*onnx.Model, error) {
			h, err := modelform.HalfStorage(m, dt)
			if err != nil || !constants {
				return h, err
			}
			return modelform.ConstantNodes(h)
		}
	}
	cases := []struct {
		name, float32 string
		convert       func(*onnx.Model) (*onnx.Model, error)
	}{
		{"forms/resnet_s1_fp16", "resnet_s1", nil},
		{"cnn_bn_s0 fp16", "cnn_bn_s0", half(onnxpb.TensorProto_FLOAT16, false)},
		{"cnn_bn_s0 bf16", "cnn_bn_s0", half(onnxpb.TensorProto_BFLOAT16, false)},
		{"transformer_s0 fp16 constants", "transformer_s0", half(onnxpb.TensorProto_FLOAT16, true)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, ref := loadSession(t, filepath.Join(testModelDir, c.float32+".onnx"))
			path := filepath.Join(testModelDir, c.name+".onnx")
			if c.convert != nil {
				m, err := onnx.Load(filepath.Join(testModelDir, c.float32+".onnx"))
				if err != nil {
					t.Fatal(err)
				}
				h, err := c.convert(m)
				if err != nil {
					t.Fatal(err)
				}
				path = filepath.Join(t.TempDir(), "half.onnx")
				if err := h.Save(path); err != nil {
					t.Fatal(err)
				}
			}
			_, s := loadSession(t, path)
			in := batchOf(x, 0, 64)
			got, err := s.Run(map[string]*Tensor{s.Inputs()[0].Name: in})
			if err != nil {
				t.Fatal(err)
			}
			want, err := r.Run(path, map[string]*npy.Array{s.Inputs()[0].Name: toNpy(t, in)})
			if err != nil {
				t.Fatal(err)
			}
			o := s.Outputs()[0].Name
			if err := ortref.CheckClose(toNpy(t, got[o]), want[o], 1e-4, 1e-3); err != nil {
				t.Errorf("vs ONNX Runtime: %v", err)
			}
			accHalf, accFloat := accuracy(predict(t, s, x, 250), y), accuracy(predict(t, ref, x, 250), y)
			t.Logf("accuracy %.3f (float32 weights: %.3f)", accHalf, accFloat)
			if accHalf < accFloat-0.01 {
				t.Errorf("accuracy %.3f, float32 model %.3f", accHalf, accFloat)
			}
		})
	}
}

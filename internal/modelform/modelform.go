// Package modelform rewrites a model into another form that computes the
// same function, as other exporters and converters write it: weights
// stored in fp16 or bf16 and cast to float32 before use, or held by
// Constant nodes instead of initializers. Tests use it to check that the
// tools treat such copies as the same architecture.
package modelform

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

// HalfStorage returns a copy of m whose float32 initializers are stored as
// dt (FLOAT16 or BFLOAT16, rounded to nearest even) under the name
// "<name>_<dt>", each read through a Cast to FLOAT whose output takes the
// initializer's old name: the form a hand conversion (or onnxconverter's
// conversion of the weights alone) gives a model that halves its file but
// still computes in float32. The Casts come first in the node list.
func HalfStorage(m *onnx.Model, dt onnxpb.TensorProto_DataType) (*onnx.Model, error) {
	if dt != onnxpb.TensorProto_FLOAT16 && dt != onnxpb.TensorProto_BFLOAT16 {
		return nil, fmt.Errorf("HalfStorage: %v is not a 16-bit float type", dt)
	}
	out := m.Clone()
	g := out.Proto.Graph
	var casts []*onnxpb.NodeProto
	for i, t := range g.Initializer {
		if onnx.DataType(t) != onnxpb.TensorProto_FLOAT {
			continue
		}
		v, err := out.Float64s(t)
		if err != nil {
			return nil, err
		}
		name := t.GetName()
		half := &onnxpb.TensorProto{Name: proto.String(name + "_" + dt.String()), Dims: t.Dims,
			DataType: proto.Int32(int32(dt)), RawData: []byte{}}
		if err := out.SetFloat64s(half, v); err != nil {
			return nil, err
		}
		g.Initializer[i] = half
		casts = append(casts, &onnxpb.NodeProto{Name: proto.String("cast_" + name), OpType: proto.String("Cast"),
			Input: []string{half.GetName()}, Output: []string{name},
			Attribute: []*onnxpb.AttributeProto{{Name: proto.String("to"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(int64(onnxpb.TensorProto_FLOAT))}}})
	}
	g.Node = append(casts, g.Node...)
	return out, nil
}

// ConstantNodes returns a copy of m whose initializers are held by
// Constant nodes (placed first in the node list) instead.
func ConstantNodes(m *onnx.Model) (*onnx.Model, error) {
	out := m.Clone()
	g := out.Proto.Graph
	var consts []*onnxpb.NodeProto
	for _, t := range g.Initializer {
		raw, err := out.TensorBytes(t)
		if err != nil {
			return nil, err
		}
		c := &onnxpb.TensorProto{Name: proto.String(t.GetName()), Dims: t.Dims, DataType: t.DataType, RawData: raw}
		consts = append(consts, &onnxpb.NodeProto{Name: proto.String("const_" + t.GetName()), OpType: proto.String("Constant"),
			Output:    []string{t.GetName()},
			Attribute: []*onnxpb.AttributeProto{{Name: proto.String("value"), Type: onnxpb.AttributeProto_TENSOR.Enum(), T: c}}})
	}
	for _, in := range g.Input {
		for _, t := range g.Initializer {
			if in.GetName() == t.GetName() {
				return nil, fmt.Errorf("ConstantNodes: initializer %q is also a graph input", t.GetName())
			}
		}
	}
	g.Initializer = nil
	g.Node = append(consts, g.Node...)
	return out, nil
}

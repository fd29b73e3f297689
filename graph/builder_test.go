package graph_test

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

// builder makes small ONNX graphs for the rule tests.
type builder struct {
	g     *onnxpb.GraphProto
	opset int64
	rng   *rand.Rand
	extra []*onnxpb.OperatorSetIdProto
}

func newBuilder(opset int64) *builder {
	return &builder{g: &onnxpb.GraphProto{Name: proto.String("test")}, opset: opset, rng: rand.New(rand.NewPCG(1, 2))}
}

func valueInfo(name string, elem onnxpb.TensorProto_DataType, dims []int64) *onnxpb.ValueInfoProto {
	tt := &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(elem))}
	if dims != nil {
		sh := &onnxpb.TensorShapeProto{}
		for _, d := range dims {
			dim := &onnxpb.TensorShapeProto_Dimension{}
			if d < 0 {
				dim.Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "N"}
			} else {
				dim.Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}
			}
			sh.Dim = append(sh.Dim, dim)
		}
		tt.Shape = sh
	}
	return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: tt}}}
}

// in declares a float graph input; a negative dim is the symbolic batch "N".
func (b *builder) in(name string, dims ...int64) *builder {
	b.g.Input = append(b.g.Input, valueInfo(name, onnxpb.TensorProto_FLOAT, dims))
	return b
}

// out declares float graph outputs (no shape).
func (b *builder) out(names ...string) *builder {
	for _, n := range names {
		b.g.Output = append(b.g.Output, valueInfo(n, onnxpb.TensorProto_FLOAT, nil))
	}
	return b
}

// vi declares the shape of an intermediate value (value_info).
func (b *builder) vi(name string, dims ...int64) *builder {
	b.g.ValueInfo = append(b.g.ValueInfo, valueInfo(name, onnxpb.TensorProto_FLOAT, dims))
	return b
}

func (b *builder) floatTensor(name string, dims []int64) *onnxpb.TensorProto {
	n := 1
	for _, d := range dims {
		n *= int(d)
	}
	data := make([]float32, n)
	for i := range data {
		if strings.Contains(name, "var") {
			data[i] = 0.5 + b.rng.Float32() // variances must be positive
		} else {
			data[i] = float32(b.rng.NormFloat64())
		}
	}
	return &onnxpb.TensorProto{Name: proto.String(name), Dims: dims, DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), FloatData: data}
}

// w adds a random float initializer.
func (b *builder) w(name string, dims ...int64) *builder {
	if dims == nil {
		dims = []int64{}
	}
	b.g.Initializer = append(b.g.Initializer, b.floatTensor(name, dims))
	return b
}

// scalar adds a float scalar initializer with value v.
func (b *builder) scalar(name string, v float32) *builder {
	b.g.Initializer = append(b.g.Initializer, &onnxpb.TensorProto{Name: proto.String(name), Dims: []int64{},
		DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), FloatData: []float32{v}})
	return b
}

// ints adds a 1-D int64 initializer.
func (b *builder) ints(name string, v ...int64) *builder {
	b.g.Initializer = append(b.g.Initializer, intTensor(name, v))
	return b
}

// int0 adds a scalar int64 initializer.
func (b *builder) int0(name string, v int64) *builder {
	t := intTensor(name, []int64{v})
	t.Dims = []int64{}
	b.g.Initializer = append(b.g.Initializer, t)
	return b
}

func intTensor(name string, v []int64) *onnxpb.TensorProto {
	return &onnxpb.TensorProto{Name: proto.String(name), Dims: []int64{int64(len(v))},
		DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)), Int64Data: append([]int64{}, v...)}
}

// node adds a node; ins and outs are comma-separated names ("" entries
// are absent optional inputs). The node is named after its first output.
func (b *builder) node(op, ins, outs string, attrs ...*onnxpb.AttributeProto) *builder {
	n := &onnxpb.NodeProto{OpType: proto.String(op), Attribute: attrs}
	if i := strings.LastIndex(op, "."); i >= 0 {
		n.Domain, n.OpType = proto.String(op[:i]), proto.String(op[i+1:])
	}
	if ins != "" {
		n.Input = strings.Split(ins, ",")
	}
	n.Output = strings.Split(outs, ",")
	n.Name = proto.String(n.Output[0])
	b.g.Node = append(b.g.Node, n)
	return b
}

// constant adds a Constant node holding a random float tensor.
func (b *builder) constant(name string, dims ...int64) *builder {
	t := b.floatTensor(name, dims)
	t.Name = nil
	return b.node("Constant", "", name, &onnxpb.AttributeProto{Name: proto.String("value"), T: t,
		Type: onnxpb.AttributeProto_TENSOR.Enum()})
}

func (b *builder) proto() *onnxpb.ModelProto {
	ops := []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(b.opset)}}
	ops = append(ops, b.extra...)
	return &onnxpb.ModelProto{IrVersion: proto.Int64(8), OpsetImport: ops, Graph: b.g, ProducerName: proto.String("graph test")}
}

func (b *builder) model() *onnx.Model {
	return &onnx.Model{Proto: b.proto(), Name: "test"}
}

func ai(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), I: proto.Int64(v), Type: onnxpb.AttributeProto_INT.Enum()}
}

func ais(name string, v ...int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Ints: v, Type: onnxpb.AttributeProto_INTS.Enum()}
}

func as(name, v string) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), S: []byte(v), Type: onnxpb.AttributeProto_STRING.Enum()}
}

// site renders a weight site as Tensor#axis, with /bBlock, @offset,
// /within (one block's units) and value> when the node reads it through
// another name.
func site(s graph.WeightSite) string {
	r := fmt.Sprintf("%s#%d", s.Tensor, s.Axis)
	if s.Value != s.Tensor {
		r = s.Value + ">" + r
	}
	if s.Block > 1 {
		r += fmt.Sprintf("/b%d", s.Block)
	}
	if s.Offset > 0 {
		r += fmt.Sprintf("@%d", s.Offset)
	}
	if s.Within {
		r += "/within"
	}
	if s.Repeat > 1 {
		r += fmt.Sprintf("/r%d", s.Repeat)
	}
	return r
}

// describeGroups renders each group as "size: site site ...".
func describeGroups(a *graph.Analysis) []string {
	var out []string
	for _, g := range a.Groups {
		var s []string
		for _, w := range g.Weights {
			s = append(s, site(w))
		}
		size := fmt.Sprint(g.Size)
		if g.Blocks > 1 {
			size += fmt.Sprintf(" (%d blocks)", g.Blocks)
			if g.FixedWithin {
				size = strings.TrimSuffix(size, ")") + ", fixed within)"
			}
			if g.SharedWithin {
				size = strings.TrimSuffix(size, ")") + ", shared within)"
			}
		}
		out = append(out, fmt.Sprintf("%s: %s", size, strings.Join(s, " ")))
	}
	return out
}

// describeFrozen renders each frozen entry as "value#axis(size): reason".
func describeFrozen(a *graph.Analysis) []string {
	var out []string
	for _, f := range a.Frozen {
		out = append(out, fmt.Sprintf("%s#%d(%d): %s", f.Value, f.Axis, f.Size, f.Reason))
	}
	return out
}

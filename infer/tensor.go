package infer

import (
	"fmt"
	"strings"

	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

// DType is the element type of a Tensor.
type DType uint8

// The element types the interpreter computes with. ONNX FLOAT, INT64 and BOOL.
const (
	Float32 DType = iota + 1
	Int64
	Bool
)

func (d DType) String() string {
	switch d {
	case Float32:
		return "float32"
	case Int64:
		return "int64"
	case Bool:
		return "bool"
	}
	return fmt.Sprintf("DType(%d)", uint8(d))
}

// dtypeOf maps an ONNX element type to a DType; ok is false for the types the
// interpreter does not compute with.
func dtypeOf(dt onnxpb.TensorProto_DataType) (DType, bool) {
	switch dt {
	case onnxpb.TensorProto_FLOAT:
		return Float32, true
	case onnxpb.TensorProto_INT64:
		return Int64, true
	case onnxpb.TensorProto_BOOL:
		return Bool, true
	}
	return 0, false
}

// Tensor is a dense, row-major (C-ordered) n-dimensional array. Exactly one of
// F, I and B holds the elements, according to DType; its length is the
// product of Shape (1 for a scalar, whose Shape is empty).
//
// Tensors returned by Session.Run belong to the caller. Tensors passed to a
// Session are only read.
type Tensor struct {
	Shape []int
	DType DType
	F     []float32 // DType == Float32
	I     []int64   // DType == Int64
	B     []bool    // DType == Bool
}

// NewFloat32 returns a float32 tensor of the given shape holding data (not
// copied). With data nil a zeroed tensor is allocated. It panics if
// len(data) does not match the shape.
func NewFloat32(shape []int, data []float32) *Tensor {
	n := numel(shape)
	if data == nil {
		data = make([]float32, n)
	}
	if len(data) != n {
		panic(fmt.Sprintf("infer.NewFloat32: %d values for shape %v", len(data), shape))
	}
	return &Tensor{Shape: append([]int{}, shape...), DType: Float32, F: data}
}

// NewInt64 is NewFloat32 for int64 tensors.
func NewInt64(shape []int, data []int64) *Tensor {
	n := numel(shape)
	if data == nil {
		data = make([]int64, n)
	}
	if len(data) != n {
		panic(fmt.Sprintf("infer.NewInt64: %d values for shape %v", len(data), shape))
	}
	return &Tensor{Shape: append([]int{}, shape...), DType: Int64, I: data}
}

// NewBool is NewFloat32 for bool tensors.
func NewBool(shape []int, data []bool) *Tensor {
	n := numel(shape)
	if data == nil {
		data = make([]bool, n)
	}
	if len(data) != n {
		panic(fmt.Sprintf("infer.NewBool: %d values for shape %v", len(data), shape))
	}
	return &Tensor{Shape: append([]int{}, shape...), DType: Bool, B: data}
}

// Len is the number of elements.
func (t *Tensor) Len() int {
	switch t.DType {
	case Float32:
		return len(t.F)
	case Int64:
		return len(t.I)
	case Bool:
		return len(t.B)
	}
	return 0
}

// Clone returns a deep copy of t.
func (t *Tensor) Clone() *Tensor {
	c := &Tensor{Shape: append([]int{}, t.Shape...), DType: t.DType}
	switch t.DType {
	case Float32:
		c.F = append([]float32{}, t.F...)
	case Int64:
		c.I = append([]int64{}, t.I...)
	case Bool:
		c.B = append([]bool{}, t.B...)
	}
	return c
}

// String describes t's type and shape, e.g. "float32[2 3]".
func (t *Tensor) String() string {
	var b strings.Builder
	b.WriteString(t.DType.String())
	b.WriteString(fmt.Sprint(t.Shape))
	return b.String()
}

// check verifies that t's data agrees with its DType and Shape.
func (t *Tensor) check() error {
	if t == nil {
		return fmt.Errorf("nil tensor")
	}
	for _, d := range t.Shape {
		if d < 0 {
			return fmt.Errorf("negative dimension in shape %v", t.Shape)
		}
	}
	n := numel(t.Shape)
	var got int
	switch t.DType {
	case Float32:
		got = len(t.F)
	case Int64:
		got = len(t.I)
	case Bool:
		got = len(t.B)
	default:
		return fmt.Errorf("unknown dtype %v", t.DType)
	}
	if got != n {
		return fmt.Errorf("%v tensor with shape %v holds %d values, want %d", t.DType, t.Shape, got, n)
	}
	return nil
}

// TensorFromProto decodes a TensorProto of type FLOAT, INT64 or BOOL (an
// *UnsupportedError for other types). Data in external files can only be read
// through the model that references them: pass that model as m, or nil for a
// standalone tensor.
func TensorFromProto(m *onnx.Model, tp *onnxpb.TensorProto) (*Tensor, error) {
	if m == nil {
		m = &onnx.Model{}
	}
	dt, ok := dtypeOf(onnx.DataType(tp))
	if !ok {
		return nil, &UnsupportedError{What: fmt.Sprintf("tensor %q of type %v", tp.GetName(), onnx.DataType(tp))}
	}
	n, err := onnx.NumElements(tp.GetDims())
	if err != nil {
		return nil, fmt.Errorf("tensor %q: %v", tp.GetName(), err)
	}
	shape := make([]int, len(tp.GetDims()))
	for i, d := range tp.GetDims() {
		shape[i] = int(d)
	}
	t := &Tensor{Shape: shape, DType: dt}
	switch dt {
	case Float32:
		t.F, err = m.Float32s(tp)
	case Int64:
		t.I, err = m.Int64s(tp)
	case Bool:
		var v []int64
		v, err = m.Int64s(tp)
		t.B = make([]bool, len(v))
		for i, x := range v {
			t.B[i] = x != 0
		}
	}
	if err != nil {
		return nil, fmt.Errorf("tensor %q: %v", tp.GetName(), err)
	}
	if t.Len() != n {
		return nil, fmt.Errorf("tensor %q: %d values for dims %v", tp.GetName(), t.Len(), tp.GetDims())
	}
	if t.F == nil && dt == Float32 {
		t.F = []float32{}
	}
	if t.I == nil && dt == Int64 {
		t.I = []int64{}
	}
	if t.B == nil && dt == Bool {
		t.B = []bool{}
	}
	return t, nil
}

// widenedTensor is TensorFromProto for a tensor that is only ever cast to
// float32: FLOAT16 and BFLOAT16 values (which float32 holds exactly) are
// decoded as Float32, so the Casts after them pass them on unchanged.
// Models that store their weights in 16 bits and compute in float32 have
// this form.
func widenedTensor(m *onnx.Model, tp *onnxpb.TensorProto) (*Tensor, error) {
	if dt := onnx.DataType(tp); dt != onnxpb.TensorProto_FLOAT16 && dt != onnxpb.TensorProto_BFLOAT16 {
		return TensorFromProto(m, tp)
	}
	if m == nil {
		m = &onnx.Model{}
	}
	n, err := onnx.NumElements(tp.GetDims())
	if err != nil {
		return nil, fmt.Errorf("tensor %q: %v", tp.GetName(), err)
	}
	f, err := m.Float32s(tp)
	if err != nil {
		return nil, fmt.Errorf("tensor %q: %v", tp.GetName(), err)
	}
	if len(f) != n {
		return nil, fmt.Errorf("tensor %q: %d values for dims %v", tp.GetName(), len(f), tp.GetDims())
	}
	shape := make([]int, len(tp.GetDims()))
	for i, d := range tp.GetDims() {
		shape[i] = int(d)
	}
	return &Tensor{Shape: shape, DType: Float32, F: f}, nil
}

// castToFloatOnly returns the values of g that some node reads and that
// every reader casts to float32 (and that are no graph output).
func castToFloatOnly(g *onnxpb.GraphProto) map[string]bool {
	only := map[string]bool{}
	for _, n := range g.GetNode() {
		cast := n.GetOpType() == "Cast" && (n.GetDomain() == "" || n.GetDomain() == "ai.onnx") && len(n.GetInput()) == 1
		if cast {
			cast = false
			for _, a := range n.GetAttribute() {
				if a.GetName() == "to" {
					cast = a.GetI() == int64(onnxpb.TensorProto_FLOAT)
				}
			}
		}
		for _, in := range n.GetInput() {
			if v, seen := only[in]; !seen || v {
				only[in] = cast
			}
		}
	}
	for _, o := range g.GetOutput() {
		only[o.GetName()] = false
	}
	for _, n := range g.GetNode() {
		for _, a := range n.GetAttribute() {
			if a.GetG() != nil || len(a.GetGraphs()) > 0 {
				// A subgraph may read any value: widen nothing.
				return map[string]bool{}
			}
		}
	}
	return only
}

// numel is the product of shape (1 for a scalar).
func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// stridesOf returns the row-major element strides of shape.
func stridesOf(shape []int) []int {
	s := make([]int, len(shape))
	acc := 1
	for i := len(shape) - 1; i >= 0; i-- {
		s[i] = acc
		acc *= shape[i]
	}
	return s
}

// normAxis maps a possibly negative axis into [0, rank).
func normAxis(axis, rank int) (int, error) {
	if axis < -rank || axis >= rank {
		return 0, fmt.Errorf("axis %d out of range for rank %d", axis, rank)
	}
	if axis < 0 {
		axis += rank
	}
	return axis, nil
}

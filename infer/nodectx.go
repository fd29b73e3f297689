package infer

import (
	"errors"
	"fmt"
	"math"

	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

// builder checks a node's attributes and input types, sets the output types
// in b.out and returns the node's kernel.
type builder func(b *nodeCtx) (kernel, error)

// registry maps ONNX op types (domain ai.onnx) to their builders; it is filled
// by the init functions of the ops_*.go files.
var registry = map[string]builder{}

func register(op string, b builder) {
	if _, dup := registry[op]; dup {
		panic("infer: op registered twice: " + op)
	}
	registry[op] = b
}

// Supported reports whether the interpreter implements op (ai.onnx domain).
// An implemented op may still reject some attribute values or element types;
// NewSession says so.
func Supported(op string) bool {
	_, ok := registry[op]
	return ok
}

// nodeCtx is what a builder knows about its node at session creation.
type nodeCtx struct {
	proto  *onnxpb.NodeProto
	op     string
	name   string
	opset  int
	in     []DType   // per input; 0 when absent
	consts []*Tensor // per input; non-nil when the value is a constant
	nOut   int
	out    []DType     // set by the builder
	bn     *bnInfo     // set by the BatchNormalization builder
	conv   *convOp     // set by the Conv builder
	act    *activation // set by builders of fusable activations (Clip)

	maxPool2 bool // set by buildPool: a 2×2/2 MaxPool a Conv may absorb

	// widen: the node's output is read only by Casts to float32 (see
	// castToFloatOnly), so a Constant may hold it as float32.
	widen bool
}

// unsupported marks builder errors that become *UnsupportedError.
type unsupported struct{ what string }

func (u *unsupported) Error() string { return u.what }

func (b *nodeCtx) unsupported(format string, args ...any) error {
	return &unsupported{fmt.Sprintf(format, args...)}
}

// wrap turns a builder error into the error NewSession returns.
func (b *nodeCtx) wrap(err error) error {
	var u *unsupported
	if errors.As(err, &u) {
		return &UnsupportedError{Op: b.op, Node: b.name, What: u.what}
	}
	var ue *UnsupportedError
	if errors.As(err, &ue) {
		return &UnsupportedError{Op: b.op, Node: b.name, What: ue.What}
	}
	return fmt.Errorf("infer: %s node %q: %v", b.op, b.name, err)
}

func (b *nodeCtx) attr(name string) *onnxpb.AttributeProto {
	for _, a := range b.proto.GetAttribute() {
		if a.GetName() == name {
			return a
		}
	}
	return nil
}

func (b *nodeCtx) has(name string) bool { return b.attr(name) != nil }

func (b *nodeCtx) int(name string, def int) int {
	if a := b.attr(name); a != nil {
		return int(a.GetI())
	}
	return def
}

func (b *nodeCtx) float(name string, def float32) float32 {
	if a := b.attr(name); a != nil {
		return a.GetF()
	}
	return def
}

func (b *nodeCtx) ints(name string, def []int) []int {
	a := b.attr(name)
	if a == nil {
		return def
	}
	out := make([]int, len(a.GetInts()))
	for i, v := range a.GetInts() {
		out[i] = int(v)
	}
	return out
}

func (b *nodeCtx) str(name, def string) string {
	if a := b.attr(name); a != nil {
		return string(a.GetS())
	}
	return def
}

// input returns whether input i is present.
func (b *nodeCtx) input(i int) bool { return i < len(b.in) && b.in[i] != 0 }

// nIn is the number of inputs the node lists (absent optional ones included).
func (b *nodeCtx) nIn() int { return len(b.in) }

// needInputs checks the number of inputs.
func (b *nodeCtx) needInputs(lo, hi int) error {
	n := len(b.in)
	for n > 0 && b.in[n-1] == 0 {
		n--
	}
	if n < lo || n > hi {
		if lo == hi {
			return fmt.Errorf("has %d inputs, want %d", n, lo)
		}
		return fmt.Errorf("has %d inputs, want %d to %d", n, lo, hi)
	}
	for i := 0; i < lo; i++ {
		if b.in[i] == 0 {
			return fmt.Errorf("input %d is required", i)
		}
	}
	return nil
}

// needType checks that input i (when present) has one of the types.
func (b *nodeCtx) needType(i int, types ...DType) error {
	if !b.input(i) {
		return nil
	}
	for _, t := range types {
		if b.in[i] == t {
			return nil
		}
	}
	return b.unsupported("input %d of type %v", i, b.in[i])
}

// sameTypes checks that the present inputs among idx share one type.
func (b *nodeCtx) sameTypes(idx ...int) error {
	var t DType
	for _, i := range idx {
		if !b.input(i) {
			continue
		}
		if t == 0 {
			t = b.in[i]
		} else if b.in[i] != t {
			return fmt.Errorf("inputs of different types %v and %v", t, b.in[i])
		}
	}
	return nil
}

// setOut sets the type of all outputs.
func (b *nodeCtx) setOut(t DType) {
	for i := range b.out {
		b.out[i] = t
	}
}

// intsOf reads an int64 tensor as ints.
func intsOf(t *Tensor) ([]int, error) {
	if t.DType != Int64 {
		return nil, fmt.Errorf("%v tensor where int64 is required", t.DType)
	}
	out := make([]int, len(t.I))
	for i, v := range t.I {
		out[i] = clampInt(v)
	}
	return out, nil
}

// clampInt converts an int64 to int, saturating (ONNX uses ±2⁶³−1 for "to the
// end" in Slice).
func clampInt(v int64) int {
	if v > math.MaxInt {
		return math.MaxInt
	}
	if v < math.MinInt {
		return math.MinInt
	}
	return int(v)
}

// scalarF reads a float32 scalar (or single-element) tensor.
func scalarF(t *Tensor) (float32, error) {
	if t.DType != Float32 || len(t.F) != 1 {
		return 0, fmt.Errorf("want a float32 scalar, got %v", t)
	}
	return t.F[0], nil
}

func onnxDataType(v int) onnxpb.TensorProto_DataType { return onnxpb.TensorProto_DataType(v) }

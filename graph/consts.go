package graph

import (
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

// Constant folding of the small integer subgraphs exporters build shapes
// with (torch's x.view(x.size(0), -1) is Shape -> Gather -> Unsqueeze ->
// Concat -> Reshape), so that Reshape and Expand targets are known.

// intVal is a small integer tensor whose entries are known literally or as
// dimensions: shape computations read dims of tensors with a symbolic batch.
type intVal struct {
	v []int64
	// dim is nil when every entry is the literal v[i]; otherwise dim[i] is
	// 0 for a literal, dimUnknown for an unknown entry, or the symbolic size
	// the entry equals.
	dim []int64
}

func (x intVal) literal(i int) bool { return x.dim == nil || x.dim[i] == 0 }

func (x intVal) allLiteral() bool {
	for i := range x.v {
		if !x.literal(i) {
			return false
		}
	}
	return true
}

// asDim returns entry i as a dimension.
func (x intVal) asDim(i int) int64 {
	if x.literal(i) {
		if x.v[i] < 0 {
			return dimUnknown
		}
		return x.v[i]
	}
	return x.dim[i]
}

// fromDims makes the value of Shape applied to a tensor with dims d.
func fromDims(d []int64) intVal {
	x := intVal{v: make([]int64, len(d)), dim: make([]int64, len(d))}
	for i, e := range d {
		if isStatic(e) {
			x.v[i] = e
		} else {
			x.dim[i] = e
		}
	}
	return x
}

// pick returns the entries at indexes idx.
func (x intVal) pick(idx []int) intVal {
	y := intVal{v: make([]int64, len(idx))}
	if x.dim != nil {
		y.dim = make([]int64, len(idx))
	}
	for k, i := range idx {
		y.v[k] = x.v[i]
		if x.dim != nil {
			y.dim[k] = x.dim[i]
		}
	}
	return y
}

// intsUnary folds Neg and Abs of known integers.
func (s *shapes) intsUnary(n *onnxpb.NodeProto, op string) {
	x, ok := s.literalInts(input(n, 0))
	if !ok {
		return
	}
	y := make([]int64, len(x))
	for i, e := range x {
		y[i] = -e
		if op == "Abs" && e >= 0 {
			y[i] = e
		}
	}
	s.ints[output(n, 0)] = intVal{v: y}
}

// intsFill folds a ConstantOfShape of integers (torch builds Expand
// targets with it).
func (s *shapes) intsFill(n *onnxpb.NodeProto, dims []int64) {
	val := int64(0)
	if a := attr(n, "value"); a != nil && a.GetT() != nil {
		t := a.GetT()
		if !isIntType(onnx.DataType(t)) {
			return
		}
		v, err := s.v.m.Int64s(t)
		if err != nil || len(v) != 1 {
			return
		}
		val = v[0]
	}
	total := prodDims(dims)
	if !isStatic(total) || total > maxIntValues {
		return
	}
	v := make([]int64, total)
	for i := range v {
		v[i] = val
	}
	s.ints[output(n, 0)] = intVal{v: v}
}

// intsEqual folds Equal of integer vectors. A dimension is never negative,
// so it is known to differ from a negative literal (torch compares shapes
// with -1).
func (s *shapes) intsEqual(n *onnxpb.NodeProto) {
	a, aok := s.ints[input(n, 0)]
	b, bok := s.ints[input(n, 1)]
	if !aok || !bok {
		return
	}
	l := max(len(a.v), len(b.v))
	if (len(a.v) != l && len(a.v) != 1) || (len(b.v) != l && len(b.v) != 1) {
		return
	}
	out := intVal{v: make([]int64, l)}
	for i := range l {
		ia, ib := min(i, len(a.v)-1), min(i, len(b.v)-1)
		la, lb := a.literal(ia), b.literal(ib)
		switch {
		case la && lb:
			if a.v[ia] == b.v[ib] {
				out.v[i] = 1
			}
		case la && a.v[ia] < 0, lb && b.v[ib] < 0:
			// a dimension against a negative literal: not equal
		case !la && !lb && a.dim[ia] == b.dim[ib] && a.dim[ia] != dimUnknown:
			out.v[i] = 1
		default:
			return
		}
	}
	s.ints[output(n, 0)] = out
}

// intsWhere folds Where with a known condition over integer vectors.
func (s *shapes) intsWhere(n *onnxpb.NodeProto) {
	c, cok := s.literalInts(input(n, 0))
	a, aok := s.ints[input(n, 1)]
	b, bok := s.ints[input(n, 2)]
	if !cok || !aok || !bok {
		return
	}
	l := max(len(c), len(a.v), len(b.v))
	for _, k := range []int{len(c), len(a.v), len(b.v)} {
		if k != l && k != 1 {
			return
		}
	}
	out := intVal{v: make([]int64, l), dim: make([]int64, l)}
	for i := range l {
		src, j := b, min(i, len(b.v)-1)
		if c[min(i, len(c)-1)] != 0 {
			src, j = a, min(i, len(a.v)-1)
		}
		out.v[i] = src.v[j]
		if !src.literal(j) {
			out.dim[i] = src.dim[j]
		}
	}
	s.ints[output(n, 0)] = out
}

// intsArith folds integer Add/Sub/Mul/Div of known literal operands of the
// same length (or a scalar), as shape computations do.
func (s *shapes) intsArith(n *onnxpb.NodeProto, op string) {
	if op != "Add" && op != "Sub" && op != "Mul" && op != "Div" || len(n.GetInput()) != 2 {
		return
	}
	a, aok := s.ints[input(n, 0)]
	b, bok := s.ints[input(n, 1)]
	if !aok || !bok {
		return
	}
	l := max(len(a.v), len(b.v))
	if (len(a.v) != l && len(a.v) != 1) || (len(b.v) != l && len(b.v) != 1) {
		return
	}
	out := intVal{v: make([]int64, l), dim: make([]int64, l)}
	for i := range l {
		ia, ib := min(i, len(a.v)-1), min(i, len(b.v)-1)
		if !a.literal(ia) || !b.literal(ib) {
			out.dim[i] = dimUnknown
			continue
		}
		x, y := a.v[ia], b.v[ib]
		switch op {
		case "Add":
			out.v[i] = x + y
		case "Sub":
			out.v[i] = x - y
		case "Mul":
			out.v[i] = x * y
		case "Div":
			if y == 0 {
				return
			}
			q := x / y
			if (x%y != 0) && ((x < 0) != (y < 0)) {
				q-- // integer Div floors
			}
			out.v[i] = q
		}
	}
	s.ints[output(n, 0)] = out
}

// intsExpand folds Expand of a known integer scalar or vector to a 1-D
// target (torch's repeat_interleave builds its repeat counts this way).
func (s *shapes) intsExpand(n *onnxpb.NodeProto, out []int64) {
	x, ok := s.ints[input(n, 0)]
	if !ok || len(out) != 1 || !isStatic(out[0]) || out[0] > maxIntValues || (len(x.v) != 1 && int64(len(x.v)) != out[0]) {
		return
	}
	idx := make([]int, out[0])
	for i := range idx {
		idx[i] = min(i, len(x.v)-1)
	}
	s.ints[output(n, 0)] = x.pick(idx)
}

// intsSplit folds a Split of a known integer vector into its pieces.
func (s *shapes) intsSplit(n *onnxpb.NodeProto, sizes []int64) {
	x, ok := s.ints[input(n, 0)]
	if !ok {
		return
	}
	var start int64
	for j, sz := range sizes {
		if sz < 0 || start+sz > int64(len(x.v)) {
			return
		}
		idx := make([]int, sz)
		for i := range idx {
			idx[i] = int(start) + i
		}
		if o := output(n, j); o != "" {
			s.ints[o] = x.pick(idx)
		}
		start += sz
	}
}

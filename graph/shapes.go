package graph

import (
	"errors"
	"fmt"
	"math"

	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

// Dimensions are int64: a non-negative value is a static size, dimUnknown
// (-1) is a size nothing tells, and values <= -2 are symbolic sizes: equal
// symbols are equal sizes (the batch dimension "N" of every value that
// inherits it), which lets Reshape targets like [N, -1] be resolved.
const dimUnknown = -1

// isStatic reports whether d is a known size.
func isStatic(d int64) bool { return d >= 0 }

// sameDim reports whether d and e are provably the same size.
func sameDim(d, e int64) bool { return d == e && d != dimUnknown }

// maxDim bounds every computed size so that products cannot overflow.
const maxDim = 1 << 40

// maxIntValues bounds the integer tensors whose values are tracked
// (shape vectors, axes, indices): shape arithmetic never needs more.
const maxIntValues = 4096

// ErrShape is wrapped by errors for shapes that contradict each other,
// such as a MatMul whose inner dimensions differ.
var ErrShape = errors.New("shape contradiction")

// shapes holds the inferred rank and dims of every value whose rank is
// known, and the values of small integer tensors (shape arithmetic).
type shapes struct {
	v    *view
	dims map[string][]int64 // present iff the rank is known
	ints map[string]intVal
	vi   map[string][]int64 // static dims declared by value_info and graph outputs
	syms map[string]int64   // dim_param name -> symbolic dim
	next int64              // next fresh symbolic dim
}

func inferShapes(v *view) (*shapes, error) {
	s := &shapes{
		v:    v,
		dims: map[string][]int64{},
		ints: map[string]intVal{},
		vi:   map[string][]int64{},
		syms: map[string]int64{},
		next: -2,
	}
	for _, vi := range append(append([]*onnxpb.ValueInfoProto(nil), v.g.GetValueInfo()...), v.g.GetOutput()...) {
		if d, ok := s.declared(vi, false); ok {
			s.vi[vi.GetName()] = d
		}
	}
	for _, in := range v.g.GetInput() {
		if !v.inputs[in.GetName()] {
			continue
		}
		if d, ok := s.declared(in, true); ok {
			s.dims[in.GetName()] = d
		}
	}
	for name, t := range v.weights {
		s.dims[name] = append([]int64{}, t.GetDims()...)
		if isIntType(onnx.DataType(t)) {
			if n, err := onnx.NumElements(t.GetDims()); err == nil && n <= maxIntValues {
				if vals, err := v.m.Int64s(t); err == nil && len(vals) == n {
					s.ints[name] = intVal{v: vals}
				}
			}
		}
	}
	for _, i := range v.order {
		if err := s.infer(i); err != nil {
			return nil, fmt.Errorf("%s: %w", v.nodeName(i), err)
		}
	}
	return s, nil
}

func isIntType(dt onnxpb.TensorProto_DataType) bool {
	switch dt {
	case onnxpb.TensorProto_INT64, onnxpb.TensorProto_INT32, onnxpb.TensorProto_INT16, onnxpb.TensorProto_INT8,
		onnxpb.TensorProto_UINT8, onnxpb.TensorProto_UINT16, onnxpb.TensorProto_UINT32, onnxpb.TensorProto_BOOL:
		return true
	}
	return false
}

// declared reads the shape a ValueInfoProto declares. With symbols, named
// dims become symbolic dims (shared by name) and unnamed ones fresh symbols;
// otherwise only static dims are kept.
func (s *shapes) declared(vi *onnxpb.ValueInfoProto, symbols bool) ([]int64, bool) {
	tt := vi.GetType().GetTensorType()
	if tt == nil || tt.GetShape() == nil {
		return nil, false
	}
	var d []int64
	for _, dim := range tt.GetShape().GetDim() {
		switch dv := dim.GetValue().(type) {
		case *onnxpb.TensorShapeProto_Dimension_DimValue:
			if dv.DimValue >= 0 && dv.DimValue <= maxDim {
				d = append(d, dv.DimValue)
			} else {
				d = append(d, s.fresh(symbols))
			}
		case *onnxpb.TensorShapeProto_Dimension_DimParam:
			if !symbols || dv.DimParam == "" {
				d = append(d, s.fresh(symbols))
				break
			}
			sym, ok := s.syms[dv.DimParam]
			if !ok {
				sym = s.fresh(true)
				s.syms[dv.DimParam] = sym
			}
			d = append(d, sym)
		default:
			d = append(d, s.fresh(symbols))
		}
	}
	if d == nil {
		d = []int64{}
	}
	return d, true
}

func (s *shapes) fresh(symbol bool) int64 {
	if !symbol {
		return dimUnknown
	}
	d := s.next
	s.next--
	return d
}

// shape returns the dims of value name and whether its rank is known.
func (s *shapes) shape(name string) ([]int64, bool) {
	d, ok := s.dims[name]
	return d, ok
}

// set records the dims of a node output, completed and checked by what
// value_info declares for it.
func (s *shapes) set(name string, d []int64) error {
	if name == "" {
		return nil
	}
	d = append([]int64{}, d...)
	for k, e := range d {
		// Sizes beyond maxDim, and negative values that are no symbol
		// (arithmetic that overflowed), are refused.
		if e > maxDim || e < dimUnknown && e <= s.next {
			return fmt.Errorf("%w: %q dimension %d is %d, implausibly large", ErrShape, name, k, e)
		}
	}
	if vd, ok := s.vi[name]; ok {
		if len(vd) != len(d) {
			return fmt.Errorf("%w: %q has rank %d, but value_info declares rank %d", ErrShape, name, len(d), len(vd))
		}
		for k, e := range vd {
			if !isStatic(e) {
				continue
			}
			if isStatic(d[k]) && d[k] != e {
				return fmt.Errorf("%w: %q dimension %d is %d, but value_info declares %d", ErrShape, name, k, d[k], e)
			}
			if d[k] == dimUnknown {
				d[k] = e
			}
		}
	}
	s.dims[name] = d
	return nil
}

// setUnknown records what value_info says of an output whose shape the
// rules cannot infer.
func (s *shapes) setUnknown(name string) {
	if vd, ok := s.vi[name]; ok && name != "" {
		s.dims[name] = append([]int64{}, vd...)
	}
}

// setRank records an output of known rank and unknown dims.
func (s *shapes) setRank(name string, r int) error {
	d := make([]int64, r)
	for k := range d {
		d[k] = dimUnknown
	}
	return s.set(name, d)
}

// constInts returns the values of integer input name, if known.
func (s *shapes) constInts(name string) (intVal, bool) {
	x, ok := s.ints[name]
	return x, ok
}

// literalInts returns input name's values when all are known literally.
func (s *shapes) literalInts(name string) ([]int64, bool) {
	x, ok := s.ints[name]
	if !ok || !x.allLiteral() {
		return nil, false
	}
	return x.v, true
}

// normAxis maps a possibly negative axis into [0, r).
func normAxis(a int64, r int) (int, error) {
	if a < 0 {
		a += int64(r)
	}
	if a < 0 || a >= int64(r) {
		return 0, fmt.Errorf("axis %d is out of range for rank %d", a, r)
	}
	return int(a), nil
}

// normAxes maps axes into [0, r) and refuses repeats.
func normAxes(axes []int64, r int) ([]int, error) {
	out := make([]int, len(axes))
	seen := map[int]bool{}
	for i, a := range axes {
		k, err := normAxis(a, r)
		if err != nil {
			return nil, err
		}
		if seen[k] {
			return nil, fmt.Errorf("axis %d is repeated", a)
		}
		seen[k] = true
		out[i] = k
	}
	return out, nil
}

// broadcastDim combines two dims by numpy rules.
func broadcastDim(a, b int64) (int64, error) {
	switch {
	case a == b:
		return a, nil
	case a == 1:
		return b, nil
	case b == 1:
		return a, nil
	case isStatic(a) && isStatic(b):
		return 0, fmt.Errorf("%w: dimensions %d and %d do not broadcast", ErrShape, a, b)
	case isStatic(a) && a > 1:
		return a, nil // b is a or 1 at run time
	case isStatic(b) && b > 1:
		return b, nil
	}
	return dimUnknown, nil
}

// broadcastShapes combines shapes by numpy rules.
func broadcastShapes(shs ...[]int64) ([]int64, error) {
	r := 0
	for _, sh := range shs {
		r = max(r, len(sh))
	}
	out := make([]int64, r)
	for k := range out {
		out[k] = 1
	}
	for _, sh := range shs {
		for k, d := range sh {
			o := r - len(sh) + k
			b, err := broadcastDim(out[o], d)
			if err != nil {
				return nil, err
			}
			out[o] = b
		}
	}
	return out, nil
}

// prodDims multiplies dims: static when all are, the one symbolic dim when
// the others are all 1, unknown otherwise.
func prodDims(d []int64) int64 {
	p := int64(1)
	var sym int64
	for _, e := range d {
		switch {
		case isStatic(e):
			if e != 0 && p > maxDim/e {
				return dimUnknown
			}
			p *= e
		case sym == 0 && e != dimUnknown:
			sym = e
		default:
			return dimUnknown
		}
	}
	if sym != 0 {
		if p == 1 {
			return sym
		}
		return dimUnknown
	}
	return p
}

// mulCap multiplies sizes, or returns -1 when the product exceeds maxDim.
func mulCap(a, b int64) int64 {
	if a < 0 || b < 0 || b != 0 && a > maxDim/b {
		return -1
	}
	return a * b
}

// unaryShape ops produce outputs of their first input's shape.
var unaryShape = map[string]bool{
	"Relu": true, "Sigmoid": true, "Tanh": true, "Erf": true, "LeakyRelu": true, "Elu": true, "Selu": true,
	"Celu": true, "HardSigmoid": true, "HardSwish": true, "Softplus": true, "Softsign": true, "Gelu": true,
	"Sqrt": true, "Exp": true, "Log": true, "Neg": true, "Abs": true, "Reciprocal": true, "Floor": true,
	"Ceil": true, "Round": true, "Sign": true, "Mish": true, "ThresholdedRelu": true, "Not": true,
	"IsNaN": true, "IsInf": true, "Identity": true, "Cast": true, "CastLike": true, "Dropout": true,
	"Clip": true, "Sin": true, "Cos": true, "Tan": true, "Asin": true, "Acos": true, "Atan": true,
	"Sinh": true, "Cosh": true, "Asinh": true, "Acosh": true, "Atanh": true, "Shrink": true,
	"Softmax": true, "LogSoftmax": true, "Hardmax": true, "LRN": true, "CumSum": true, "Trilu": true,
	"LpNormalization": true, "MeanVarianceNormalization": true, "InstanceNormalization": true,
	"GroupNormalization": true, "BitwiseNot": true,
}

// broadcastShape ops broadcast all their inputs (numpy rules).
var broadcastShape = map[string]bool{
	"Add": true, "Sub": true, "Mul": true, "Div": true, "Pow": true, "Max": true, "Min": true, "Sum": true,
	"Mean": true, "Mod": true, "Equal": true, "Greater": true, "Less": true, "GreaterOrEqual": true,
	"LessOrEqual": true, "And": true, "Or": true, "Xor": true, "Where": true, "PRelu": true, "BitShift": true,
	"BitwiseAnd": true, "BitwiseOr": true, "BitwiseXor": true,
}

// reduceOps reduce over a set of axes.
var reduceOps = map[string]bool{
	"ReduceMean": true, "ReduceSum": true, "ReduceMax": true, "ReduceMin": true, "ReduceProd": true,
	"ReduceL1": true, "ReduceL2": true, "ReduceLogSum": true, "ReduceLogSumExp": true, "ReduceSumSquare": true,
}

// infer computes the output shapes of node i from its input shapes.
func (s *shapes) infer(i int) error {
	n := s.v.nodes[i]
	if s.v.forwarders[i] {
		// A weight forwarded: it has the weight's shape and values.
		src := s.v.source[input(n, 0)]
		s.dims[output(n, 0)] = s.dims[src]
		if iv, ok := s.ints[src]; ok {
			s.ints[output(n, 0)] = iv
		}
		return nil
	}
	d := n.GetDomain()
	if d != "" && d != "ai.onnx" {
		s.unknownOutputs(n)
		return nil
	}
	op := n.GetOpType()
	in0 := input(n, 0)
	x, xok := s.shape(in0)
	out0 := output(n, 0)
	switch {
	case op == "Constant":
		return s.constant(n)
	case unaryShape[op]:
		if !xok {
			s.unknownOutputs(n)
			return nil
		}
		if err := s.set(out0, x); err != nil {
			return err
		}
		if op == "Dropout" || op == "LayerNormalization" {
			if err := s.set(output(n, 1), x); err != nil {
				return err
			}
		}
		if iv, ok := s.ints[in0]; ok && (op == "Identity" || op == "Cast" || op == "CastLike") {
			s.ints[out0] = iv
		}
		if op == "Neg" || op == "Abs" {
			s.intsUnary(n, op)
		}
		return nil
	case broadcastShape[op]:
		var shs [][]int64
		for _, in := range n.GetInput() {
			if in == "" {
				continue
			}
			sh, ok := s.shape(in)
			if !ok {
				s.unknownOutputs(n)
				return nil
			}
			shs = append(shs, sh)
		}
		if len(shs) == 0 {
			return fmt.Errorf("no inputs")
		}
		out, err := broadcastShapes(shs...)
		if err != nil {
			return err
		}
		if op == "PRelu" && len(out) != len(shs[0]) {
			return fmt.Errorf("%w: slope has a higher rank than the input", ErrShape)
		}
		if err := s.set(out0, out); err != nil {
			return err
		}
		switch op {
		case "Equal":
			s.intsEqual(n)
		case "Where":
			s.intsWhere(n)
		default:
			s.intsArith(n, op)
		}
		return nil
	case reduceOps[op]:
		return s.reduce(n, x, xok)
	}
	switch op {
	case "Gemm":
		return s.gemm(n)
	case "MatMul":
		return s.matmul(n)
	case "Conv", "ConvTranspose":
		return s.conv(n, op == "ConvTranspose")
	case "MaxPool", "AveragePool", "LpPool":
		return s.pool(n)
	case "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool":
		if !xok || len(x) < 2 {
			return s.needRank(n, xok, x, 2)
		}
		out := append([]int64{x[0], x[1]}, make([]int64, len(x)-2)...)
		for k := 2; k < len(out); k++ {
			out[k] = 1
		}
		return s.set(out0, out)
	case "BatchNormalization":
		if !xok || len(x) < 2 {
			return s.needRank(n, xok, x, 2)
		}
		if err := s.set(out0, x); err != nil {
			return err
		}
		for j := 1; j < len(n.GetOutput()); j++ {
			if err := s.set(output(n, j), []int64{x[1]}); err != nil {
				return err
			}
		}
		return nil
	case "LayerNormalization":
		if !xok {
			s.unknownOutputs(n)
			return nil
		}
		a, err := normAxis(attrInt(n, "axis", -1), len(x))
		if err != nil {
			return err
		}
		if err := s.set(out0, x); err != nil {
			return err
		}
		stat := append([]int64{}, x...)
		for k := a; k < len(stat); k++ {
			stat[k] = 1
		}
		for j := 1; j < len(n.GetOutput()); j++ {
			if err := s.set(output(n, j), stat); err != nil {
				return err
			}
		}
		return nil
	case "Flatten":
		if !xok {
			s.unknownOutputs(n)
			return nil
		}
		a := attrInt(n, "axis", 1)
		if a < 0 {
			a += int64(len(x))
		}
		if a < 0 || a > int64(len(x)) {
			return fmt.Errorf("axis %d is out of range for rank %d", attrInt(n, "axis", 1), len(x))
		}
		return s.set(out0, []int64{prodDims(x[:a]), prodDims(x[a:])})
	case "Reshape":
		return s.reshape(n, x, xok)
	case "Transpose":
		if !xok {
			s.unknownOutputs(n)
			return nil
		}
		perm, err := transposePerm(n, len(x))
		if err != nil {
			return err
		}
		out := make([]int64, len(x))
		for k, p := range perm {
			out[k] = x[p]
		}
		return s.set(out0, out)
	case "Concat":
		return s.concat(n)
	case "Split":
		return s.split(n, x, xok)
	case "Slice":
		return s.slice(n, x, xok)
	case "Unsqueeze", "Squeeze":
		return s.squeeze(n, x, xok, op == "Unsqueeze")
	case "ArgMax", "ArgMin":
		if !xok {
			s.unknownOutputs(n)
			return nil
		}
		a, err := normAxis(attrInt(n, "axis", 0), len(x))
		if err != nil {
			return err
		}
		return s.set(out0, reducedDims(x, []int{a}, attrInt(n, "keepdims", 1) != 0))
	case "Shape":
		if !xok {
			s.unknownOutputs(n)
			return nil
		}
		r := int64(len(x))
		start, end := attrInt(n, "start", 0), attrInt(n, "end", r)
		start, end = clampRange(start, r), clampRange(end, r)
		if end < start {
			end = start
		}
		s.ints[out0] = fromDims(x[start:end])
		return s.set(out0, []int64{end - start})
	case "Size":
		if xok {
			if p := prodDims(x); isStatic(p) {
				s.ints[out0] = intVal{v: []int64{p}}
			}
		}
		return s.set(out0, []int64{})
	case "Gather":
		return s.gather(n, x, xok)
	case "Expand":
		return s.expand(n, x, xok)
	case "Tile":
		if !xok {
			s.unknownOutputs(n)
			return nil
		}
		out := make([]int64, len(x))
		reps, ok := s.literalInts(input(n, 1))
		for k := range out {
			out[k] = dimUnknown
			if ok && len(reps) == len(x) && isStatic(x[k]) && reps[k] >= 0 && reps[k] <= maxDim && (x[k] == 0 || reps[k] <= maxDim/x[k]) {
				out[k] = x[k] * reps[k]
			}
		}
		return s.set(out0, out)
	case "Pad":
		return s.pad(n, x, xok)
	case "Resize", "Upsample":
		return s.resize(n, x, xok)
	case "ConstantOfShape":
		if iv, ok := s.constInts(in0); ok {
			out := make([]int64, len(iv.v))
			for k := range out {
				out[k] = iv.asDim(k)
			}
			s.intsFill(n, out)
			return s.set(out0, out)
		}
		if xok && len(x) == 1 && isStatic(x[0]) && x[0] <= maxIntValues {
			return s.setRank(out0, int(x[0]))
		}
		s.unknownOutputs(n)
		return nil
	case "Range":
		return s.set(out0, []int64{dimUnknown})
	}
	s.unknownOutputs(n)
	return nil
}

// unknownOutputs gives every output of n what value_info declares, if anything.
func (s *shapes) unknownOutputs(n *onnxpb.NodeProto) {
	for _, o := range n.GetOutput() {
		s.setUnknown(o)
	}
}

// needRank reports an input of too low rank, or leaves outputs unknown
// when the rank is unknown.
func (s *shapes) needRank(n *onnxpb.NodeProto, ok bool, x []int64, r int) error {
	if !ok {
		s.unknownOutputs(n)
		return nil
	}
	return fmt.Errorf("%w: input has rank %d, needs at least %d", ErrShape, len(x), r)
}

func clampRange(v, r int64) int64 {
	if v < 0 {
		v += r
	}
	return min(max(v, 0), r)
}

func (s *shapes) constant(n *onnxpb.NodeProto) error {
	out := output(n, 0)
	if t, ok := s.v.weights[out]; ok {
		_ = t // shape and values were recorded with the weights
		return nil
	}
	if a := attr(n, "value_int"); a != nil {
		s.ints[out] = intVal{v: []int64{a.GetI()}}
		return s.set(out, []int64{})
	}
	if a := attr(n, "value_ints"); a != nil {
		if len(a.GetInts()) <= maxIntValues {
			s.ints[out] = intVal{v: append([]int64{}, a.GetInts()...)}
		}
		return s.set(out, []int64{int64(len(a.GetInts()))})
	}
	if a := attr(n, "value_float"); a != nil {
		return s.set(out, []int64{})
	}
	if a := attr(n, "value_floats"); a != nil {
		return s.set(out, []int64{int64(len(a.GetFloats()))})
	}
	s.setUnknown(out)
	return nil
}

func (s *shapes) gemm(n *onnxpb.NodeProto) error {
	a, aok := s.shape(input(n, 0))
	b, bok := s.shape(input(n, 1))
	if !aok || !bok {
		s.unknownOutputs(n)
		return nil
	}
	if len(a) != 2 || len(b) != 2 {
		return fmt.Errorf("%w: Gemm needs rank-2 A and B, got ranks %d and %d", ErrShape, len(a), len(b))
	}
	m, ka := a[0], a[1]
	if attrInt(n, "transA", 0) != 0 {
		m, ka = a[1], a[0]
	}
	kb, nn := b[0], b[1]
	if attrInt(n, "transB", 0) != 0 {
		kb, nn = b[1], b[0]
	}
	if isStatic(ka) && isStatic(kb) && ka != kb {
		return fmt.Errorf("%w: Gemm inner dimensions %d and %d differ", ErrShape, ka, kb)
	}
	out := []int64{m, nn}
	if c, ok := s.shape(input(n, 2)); ok && input(n, 2) != "" {
		if len(c) > 2 {
			return fmt.Errorf("%w: Gemm bias C has rank %d", ErrShape, len(c))
		}
		bc, err := broadcastShapes(out, c)
		if err != nil {
			return fmt.Errorf("bias C: %w", err)
		}
		if isStatic(bc[0]) && isStatic(m) && bc[0] != m || isStatic(bc[1]) && isStatic(nn) && bc[1] != nn {
			return fmt.Errorf("%w: Gemm bias C %v does not broadcast to %v", ErrShape, c, out)
		}
	}
	return s.set(output(n, 0), out)
}

func (s *shapes) matmul(n *onnxpb.NodeProto) error {
	a, aok := s.shape(input(n, 0))
	b, bok := s.shape(input(n, 1))
	if !aok || !bok {
		s.unknownOutputs(n)
		return nil
	}
	if len(a) == 0 || len(b) == 0 {
		return fmt.Errorf("%w: MatMul of a scalar", ErrShape)
	}
	aa, bb := a, b
	if len(a) == 1 {
		aa = []int64{1, a[0]}
	}
	if len(b) == 1 {
		bb = []int64{b[0], 1}
	}
	ka, kb := aa[len(aa)-1], bb[len(bb)-2]
	if isStatic(ka) && isStatic(kb) && ka != kb {
		return fmt.Errorf("%w: MatMul inner dimensions %d and %d differ", ErrShape, ka, kb)
	}
	batch, err := broadcastShapes(aa[:len(aa)-2], bb[:len(bb)-2])
	if err != nil {
		return fmt.Errorf("batch dimensions: %w", err)
	}
	out := batch
	if len(a) > 1 {
		out = append(out, aa[len(aa)-2])
	}
	if len(b) > 1 {
		out = append(out, bb[len(bb)-1])
	}
	return s.set(output(n, 0), out)
}

// spatialParams reads the window attributes of a Conv or pool over k
// spatial axes; kernel comes from the weight when the attribute is absent.
type spatialParams struct {
	kernel, strides, dilations, pads []int64
	autoPad                          string
}

func readSpatial(n *onnxpb.NodeProto, k int, kernelFromW []int64) (spatialParams, error) {
	p := spatialParams{autoPad: attrString(n, "auto_pad", "NOTSET")}
	ones := func() []int64 {
		o := make([]int64, k)
		for i := range o {
			o[i] = 1
		}
		return o
	}
	get := func(name string, want int, def []int64) ([]int64, error) {
		v, ok := attrInts(n, name)
		if !ok {
			return def, nil
		}
		if len(v) != want {
			return nil, fmt.Errorf("attribute %s has %d values, want %d", name, len(v), want)
		}
		return v, nil
	}
	var err error
	if p.kernel, err = get("kernel_shape", k, kernelFromW); err != nil {
		return p, err
	}
	if p.kernel == nil {
		return p, fmt.Errorf("no kernel_shape")
	}
	if p.strides, err = get("strides", k, ones()); err != nil {
		return p, err
	}
	if p.dilations, err = get("dilations", k, ones()); err != nil {
		return p, err
	}
	if p.pads, err = get("pads", 2*k, make([]int64, 2*k)); err != nil {
		return p, err
	}
	for i := range k {
		if p.strides[i] <= 0 || p.dilations[i] <= 0 || p.kernel[i] < 0 || p.pads[i] < 0 || p.pads[i+k] < 0 ||
			p.kernel[i] > maxDim || p.strides[i] > maxDim || p.dilations[i] > maxDim || p.pads[i] > maxDim || p.pads[i+k] > maxDim {
			return p, fmt.Errorf("invalid kernel, stride, dilation or pad")
		}
	}
	return p, nil
}

// windowOut is the output size of a sliding window along one axis.
func windowOut(in int64, p spatialParams, i int, ceil bool) (int64, error) {
	if !isStatic(in) {
		return dimUnknown, nil
	}
	k := len(p.kernel)
	s := p.strides[i]
	switch p.autoPad {
	case "SAME_UPPER", "SAME_LOWER":
		return (in + s - 1) / s, nil
	case "VALID":
		num := in - ((p.kernel[i]-1)*p.dilations[i] + 1)
		if num < 0 {
			return 0, fmt.Errorf("%w: window %d is larger than the input %d", ErrShape, p.kernel[i], in)
		}
		return num/s + 1, nil
	}
	num := in + p.pads[i] + p.pads[i+k] - ((p.kernel[i]-1)*p.dilations[i] + 1)
	if num < 0 {
		return 0, fmt.Errorf("%w: window %d is larger than the padded input %d", ErrShape, p.kernel[i], in)
	}
	out := num/s + 1
	if ceil && num%s != 0 {
		out++
		// A last window that would start in the right padding is dropped.
		if (out-1)*s >= in+p.pads[i] {
			out--
		}
	}
	return out, nil
}

func (s *shapes) conv(n *onnxpb.NodeProto, transpose bool) error {
	x, xok := s.shape(input(n, 0))
	w, wok := s.shape(input(n, 1))
	if !xok || !wok {
		s.unknownOutputs(n)
		return nil
	}
	if len(x) < 3 || len(w) != len(x) {
		return fmt.Errorf("%w: input rank %d and weight rank %d do not make a convolution", ErrShape, len(x), len(w))
	}
	k := len(x) - 2
	g := attrInt(n, "group", 1)
	if g <= 0 || g > maxDim {
		return fmt.Errorf("invalid group %d", g)
	}
	p, err := readSpatial(n, k, w[2:])
	if err != nil {
		return err
	}
	for _, e := range p.kernel {
		if !isStatic(e) {
			return fmt.Errorf("kernel size unknown")
		}
	}
	c := x[1]
	var m int64
	if !transpose {
		if isStatic(c) && isStatic(w[1]) && c != w[1]*g {
			return fmt.Errorf("%w: %d input channels, weight expects %d×%d groups", ErrShape, c, w[1], g)
		}
		m = w[0]
		if isStatic(m) && m%g != 0 {
			return fmt.Errorf("%w: %d output channels do not split into %d groups", ErrShape, m, g)
		}
	} else {
		if isStatic(c) && isStatic(w[0]) && c != w[0] {
			return fmt.Errorf("%w: %d input channels, weight has %d", ErrShape, c, w[0])
		}
		m = dimUnknown
		if isStatic(w[1]) {
			m = w[1] * g
		}
	}
	if b := input(n, 2); b != "" {
		if bd, ok := s.shape(b); ok && (len(bd) != 1 || isStatic(bd[0]) && isStatic(m) && bd[0] != m) {
			return fmt.Errorf("%w: bias shape %v for %d output channels", ErrShape, bd, m)
		}
	}
	out := []int64{x[0], m}
	for i := range k {
		var o int64
		if transpose {
			o, err = convTransposeOut(n, x[2+i], p, i)
		} else {
			o, err = windowOut(x[2+i], p, i, false)
		}
		if err != nil {
			return err
		}
		out = append(out, o)
	}
	return s.set(output(n, 0), out)
}

func convTransposeOut(n *onnxpb.NodeProto, in int64, p spatialParams, i int) (int64, error) {
	k := len(p.kernel)
	if os, ok := attrInts(n, "output_shape"); ok && len(os) >= k {
		return os[len(os)-k+i], nil
	}
	if !isStatic(in) {
		return dimUnknown, nil
	}
	var op int64
	if v, ok := attrInts(n, "output_padding"); ok && len(v) == k {
		op = v[i]
	}
	if p.autoPad == "SAME_UPPER" || p.autoPad == "SAME_LOWER" {
		return in * p.strides[i], nil
	}
	pads := p.pads[i] + p.pads[i+k]
	if p.autoPad == "VALID" {
		pads = 0
	}
	o := p.strides[i]*(in-1) + op + (p.kernel[i]-1)*p.dilations[i] + 1 - pads
	if o < 0 {
		return 0, fmt.Errorf("%w: negative output size", ErrShape)
	}
	return o, nil
}

func (s *shapes) pool(n *onnxpb.NodeProto) error {
	x, xok := s.shape(input(n, 0))
	if !xok || len(x) < 3 {
		return s.needRank(n, xok, x, 3)
	}
	p, err := readSpatial(n, len(x)-2, nil)
	if err != nil {
		return err
	}
	out := []int64{x[0], x[1]}
	for i := range len(x) - 2 {
		o, err := windowOut(x[2+i], p, i, attrInt(n, "ceil_mode", 0) != 0)
		if err != nil {
			return err
		}
		out = append(out, o)
	}
	for j := range n.GetOutput() {
		if err := s.set(output(n, j), out); err != nil { // MaxPool's Indices too
			return err
		}
	}
	return nil
}

// reducedDims drops (or sets to 1 with keep) the axes ax of x.
func reducedDims(x []int64, ax []int, keep bool) []int64 {
	red := map[int]bool{}
	for _, a := range ax {
		red[a] = true
	}
	var out []int64
	for k, d := range x {
		switch {
		case !red[k]:
			out = append(out, d)
		case keep:
			out = append(out, 1)
		}
	}
	if out == nil {
		out = []int64{}
	}
	return out
}

// reduceAxes returns the axes a Reduce* node reduces over (nil: none, it is
// the identity) and whether they are known.
func (s *shapes) reduceAxes(n *onnxpb.NodeProto, r int) (axes []int, known bool, err error) {
	raw, ok := attrInts(n, "axes")
	if !ok && input(n, 1) != "" {
		raw, ok = s.literalInts(input(n, 1))
		if !ok {
			return nil, false, nil
		}
	}
	if len(raw) == 0 {
		if attrInt(n, "noop_with_empty_axes", 0) != 0 {
			return nil, true, nil
		}
		all := make([]int, r)
		for k := range all {
			all[k] = k
		}
		return all, true, nil
	}
	axes, err = normAxes(raw, r)
	return axes, err == nil, err
}

func (s *shapes) reduce(n *onnxpb.NodeProto, x []int64, xok bool) error {
	if !xok {
		s.unknownOutputs(n)
		return nil
	}
	keep := attrInt(n, "keepdims", 1) != 0
	axes, known, err := s.reduceAxes(n, len(x))
	if err != nil {
		return err
	}
	if !known {
		if keep {
			return s.setRank(output(n, 0), len(x))
		}
		s.unknownOutputs(n)
		return nil
	}
	if axes == nil {
		return s.set(output(n, 0), x)
	}
	return s.set(output(n, 0), reducedDims(x, axes, keep))
}

// transposePerm returns a Transpose node's permutation, checked.
func transposePerm(n *onnxpb.NodeProto, r int) ([]int, error) {
	raw, ok := attrInts(n, "perm")
	perm := make([]int, r)
	if !ok {
		for k := range perm {
			perm[k] = r - 1 - k
		}
		return perm, nil
	}
	if len(raw) != r {
		return nil, fmt.Errorf("perm %v does not fit rank %d", raw, r)
	}
	seen := make([]bool, r)
	for k, p := range raw {
		if p < 0 || p >= int64(r) || seen[p] {
			return nil, fmt.Errorf("perm %v is not a permutation", raw)
		}
		seen[p] = true
		perm[k] = int(p)
	}
	return perm, nil
}

// reshapeTarget resolves a Reshape's output dims (0 copies, -1 infers).
func (s *shapes) reshapeTarget(n *onnxpb.NodeProto, x []int64, xok bool) ([]int64, bool, error) {
	iv, ok := s.constInts(input(n, 1))
	if !ok {
		if sh, ok := s.shape(input(n, 1)); ok && len(sh) == 1 && isStatic(sh[0]) && sh[0] <= maxIntValues {
			d := make([]int64, sh[0])
			for k := range d {
				d[k] = dimUnknown
			}
			return d, true, nil
		}
		return nil, false, nil
	}
	allowZero := attrInt(n, "allowzero", 0) != 0
	out := make([]int64, len(iv.v))
	infer := -1
	for k := range iv.v {
		if !iv.literal(k) {
			out[k] = iv.dim[k]
			continue
		}
		switch v := iv.v[k]; {
		case v == 0 && !allowZero:
			if !xok {
				out[k] = dimUnknown
			} else if k < len(x) {
				out[k] = x[k]
			} else {
				return nil, false, fmt.Errorf("shape entry %d copies a dimension the input (rank %d) lacks", k, len(x))
			}
		case v == -1:
			if infer >= 0 {
				return nil, false, fmt.Errorf("shape has more than one -1")
			}
			infer = k
			out[k] = dimUnknown
		case v < -1 || v > maxDim:
			return nil, false, fmt.Errorf("invalid shape entry %d", v)
		default:
			out[k] = v
		}
	}
	if !xok {
		return out, true, nil
	}
	// Cancel equal symbolic dims on both sides, then divide static sizes.
	inStatic, outStatic := int64(1), int64(1)
	syms := map[int64]int{}
	unknown := false
	for _, d := range x {
		switch {
		case isStatic(d):
			inStatic = mulCap(inStatic, d)
		case d == dimUnknown:
			unknown = true
		default:
			syms[d]++
		}
	}
	for k, d := range out {
		switch {
		case k == infer:
		case isStatic(d):
			outStatic = mulCap(outStatic, d)
		case d == dimUnknown:
			unknown = true
		default:
			syms[d]--
		}
	}
	var left []int64
	for d, c := range syms {
		for ; c > 0; c-- {
			left = append(left, d)
		}
		if c < 0 {
			unknown = true
		}
	}
	if unknown || inStatic < 0 || outStatic < 0 {
		return out, true, nil
	}
	if infer < 0 {
		if len(left) == 0 && inStatic != outStatic {
			return nil, false, fmt.Errorf("%w: cannot reshape %v (%d elements) to %v (%d)", ErrShape, x, inStatic, out, outStatic)
		}
		return out, true, nil
	}
	switch {
	case outStatic == 0:
		out[infer] = dimUnknown
	case len(left) == 0:
		if inStatic%outStatic != 0 {
			return nil, false, fmt.Errorf("%w: cannot reshape %v to %v", ErrShape, x, out)
		}
		out[infer] = inStatic / outStatic
	case len(left) == 1 && inStatic == outStatic:
		out[infer] = left[0]
	}
	return out, true, nil
}

func (s *shapes) reshape(n *onnxpb.NodeProto, x []int64, xok bool) error {
	out, ok, err := s.reshapeTarget(n, x, xok)
	if err != nil {
		return err
	}
	if !ok {
		s.unknownOutputs(n)
		return nil
	}
	if err := s.set(output(n, 0), out); err != nil {
		return err
	}
	if iv, ok := s.ints[input(n, 0)]; ok && len(iv.v) <= maxIntValues {
		s.ints[output(n, 0)] = iv // a reshaped integer vector keeps its values
	}
	return nil
}

func (s *shapes) concat(n *onnxpb.NodeProto) error {
	var shs [][]int64
	var names []string
	for _, in := range n.GetInput() {
		if in == "" {
			continue
		}
		sh, ok := s.shape(in)
		if !ok {
			s.unknownOutputs(n)
			return nil
		}
		shs = append(shs, sh)
		names = append(names, in)
	}
	if len(shs) == 0 {
		return fmt.Errorf("no inputs")
	}
	r := len(shs[0])
	a, err := normAxis(attrInt(n, "axis", 0), r)
	if err != nil {
		return err
	}
	out := append([]int64{}, shs[0]...)
	for _, sh := range shs[1:] {
		if len(sh) != r {
			return fmt.Errorf("%w: inputs have ranks %d and %d", ErrShape, r, len(sh))
		}
		for k, d := range sh {
			if k == a {
				if isStatic(out[k]) && isStatic(d) {
					out[k] += d
				} else {
					out[k] = dimUnknown
				}
				continue
			}
			if isStatic(out[k]) && isStatic(d) && out[k] != d {
				return fmt.Errorf("%w: inputs differ in dimension %d (%d and %d)", ErrShape, k, out[k], d)
			}
			if !isStatic(out[k]) && isStatic(d) {
				out[k] = d
			}
		}
	}
	if err := s.set(output(n, 0), out); err != nil {
		return err
	}
	if r == 1 {
		var iv intVal
		iv.dim = []int64{}
		for _, name := range names {
			x, ok := s.ints[name]
			if !ok {
				return nil
			}
			for k := range x.v {
				iv.v = append(iv.v, x.v[k])
				if x.literal(k) {
					iv.dim = append(iv.dim, 0)
				} else {
					iv.dim = append(iv.dim, x.dim[k])
				}
			}
		}
		if len(iv.v) <= maxIntValues {
			s.ints[output(n, 0)] = iv
		}
	}
	return nil
}

// splitSizes returns the sizes of a Split's outputs along its axis.
func (s *shapes) splitSizes(n *onnxpb.NodeProto, dim int64) ([]int64, bool) {
	outs := len(n.GetOutput())
	if sp, ok := attrInts(n, "split"); ok {
		return sp, true
	}
	if in := input(n, 1); in != "" {
		sp, ok := s.literalInts(in)
		return sp, ok
	}
	if !isStatic(dim) || outs == 0 {
		return nil, false
	}
	k := int64(outs)
	if no := attrInt(n, "num_outputs", 0); no > 0 {
		k = no
	}
	size := (dim + k - 1) / k // the last part may be smaller (opset 18)
	sp := make([]int64, outs)
	left := dim
	for j := range sp {
		sp[j] = min(size, left)
		left -= sp[j]
	}
	return sp, true
}

func (s *shapes) split(n *onnxpb.NodeProto, x []int64, xok bool) error {
	if !xok {
		s.unknownOutputs(n)
		return nil
	}
	a, err := normAxis(attrInt(n, "axis", 0), len(x))
	if err != nil {
		return err
	}
	sp, ok := s.splitSizes(n, x[a])
	if ok && len(sp) != len(n.GetOutput()) {
		return fmt.Errorf("split has %d sizes for %d outputs", len(sp), len(n.GetOutput()))
	}
	var total int64
	for j := range n.GetOutput() {
		out := append([]int64{}, x...)
		out[a] = dimUnknown
		if ok {
			if sp[j] < 0 || sp[j] > maxDim {
				return fmt.Errorf("invalid split size %d", sp[j])
			}
			out[a] = sp[j]
			total += sp[j]
		}
		if err := s.set(output(n, j), out); err != nil {
			return err
		}
	}
	if ok && isStatic(x[a]) && total != x[a] {
		return fmt.Errorf("%w: split sizes %v do not add up to %d", ErrShape, sp, x[a])
	}
	if ok && len(x) == 1 {
		s.intsSplit(n, sp)
	}
	return nil
}

// sliceParams returns, per axis of a rank-r input, the start, end and step
// a Slice node applies (full range for axes it leaves alone).
type sliceAxis struct {
	start, end, step int64
	sliced           bool
}

func (s *shapes) sliceParams(n *onnxpb.NodeProto, r int) ([]sliceAxis, bool, error) {
	var starts, ends, axes, steps []int64
	var ok bool
	if v, has := attrInts(n, "starts"); has {
		starts = v
		ends, _ = attrInts(n, "ends")
		axes, _ = attrInts(n, "axes")
	} else {
		if starts, ok = s.literalInts(input(n, 1)); !ok {
			return nil, false, nil
		}
		if ends, ok = s.literalInts(input(n, 2)); !ok {
			return nil, false, nil
		}
		if in := input(n, 3); in != "" {
			if axes, ok = s.literalInts(in); !ok {
				return nil, false, nil
			}
		}
		if in := input(n, 4); in != "" {
			if steps, ok = s.literalInts(in); !ok {
				return nil, false, nil
			}
		}
	}
	if len(ends) != len(starts) || (axes != nil && len(axes) != len(starts)) || (steps != nil && len(steps) != len(starts)) {
		return nil, false, fmt.Errorf("starts, ends, axes and steps differ in length")
	}
	if axes == nil {
		axes = make([]int64, len(starts))
		for i := range axes {
			axes[i] = int64(i)
		}
	}
	ax, err := normAxes(axes, r)
	if err != nil {
		return nil, false, err
	}
	p := make([]sliceAxis, r)
	for k := range p {
		p[k] = sliceAxis{0, math.MaxInt64, 1, false}
	}
	for i, k := range ax {
		st := int64(1)
		if steps != nil {
			st = steps[i]
		}
		if st == 0 {
			return nil, false, fmt.Errorf("slice step 0")
		}
		p[k] = sliceAxis{starts[i], ends[i], st, true}
	}
	return p, true, nil
}

// sliceLen returns the clamped start and length of a slice of a dim.
func sliceLen(d int64, a sliceAxis) (start, length int64) {
	st, en := a.start, a.end
	if a.step > 0 {
		st, en = clampSlice(st, d, 0, d), clampSlice(en, d, 0, d)
		if en <= st {
			return st, 0
		}
		return st, (en-st-1)/a.step + 1
	}
	st, en = clampSlice(st, d, -1, d-1), clampSlice(en, d, -1, d-1)
	if st <= en {
		return st, 0
	}
	if a.step == math.MinInt64 {
		return st, 1
	}
	return st, (st-en-1)/-a.step + 1
}

func clampSlice(v, d, lo, hi int64) int64 {
	if v < 0 && v > math.MinInt64/2 {
		v += d
	} else if v < 0 {
		v = lo
	}
	return min(max(v, lo), hi)
}

// fullSlice reports whether slicing dim d by a keeps it unchanged.
func fullSlice(d int64, a sliceAxis) bool {
	if !a.sliced {
		return true
	}
	if !isStatic(d) || a.step != 1 {
		return false
	}
	st, l := sliceLen(d, a)
	return st == 0 && l == d
}

func (s *shapes) slice(n *onnxpb.NodeProto, x []int64, xok bool) error {
	if !xok {
		s.unknownOutputs(n)
		return nil
	}
	p, ok, err := s.sliceParams(n, len(x))
	if err != nil {
		return err
	}
	if !ok {
		return s.setRank(output(n, 0), len(x))
	}
	out := make([]int64, len(x))
	for k, d := range x {
		switch {
		case !p[k].sliced:
			out[k] = d
		case isStatic(d):
			_, out[k] = sliceLen(d, p[k])
		default:
			out[k] = dimUnknown
		}
	}
	if err := s.set(output(n, 0), out); err != nil {
		return err
	}
	if iv, ok := s.ints[input(n, 0)]; ok && len(x) == 1 && p[0].step == 1 {
		st, l := sliceLen(int64(len(iv.v)), p[0])
		idx := make([]int, l)
		for i := range idx {
			idx[i] = int(st) + i
		}
		s.ints[output(n, 0)] = iv.pick(idx)
	}
	return nil
}

// squeezeAxes returns the axes attribute or constant input of (Un)Squeeze.
func (s *shapes) squeezeAxes(n *onnxpb.NodeProto) ([]int64, bool) {
	if v, ok := attrInts(n, "axes"); ok {
		return v, true
	}
	if in := input(n, 1); in != "" {
		return s.literalInts(in)
	}
	return nil, true
}

func (s *shapes) squeeze(n *onnxpb.NodeProto, x []int64, xok bool, unsqueeze bool) error {
	if !xok {
		s.unknownOutputs(n)
		return nil
	}
	raw, ok := s.squeezeAxes(n)
	if !ok {
		s.unknownOutputs(n)
		return nil
	}
	var out []int64
	if unsqueeze {
		r := len(x) + len(raw)
		ax, err := normAxes(raw, r)
		if err != nil {
			return err
		}
		ins := map[int]bool{}
		for _, a := range ax {
			ins[a] = true
		}
		out = make([]int64, 0, r)
		j := 0
		for k := range r {
			if ins[k] {
				out = append(out, 1)
			} else {
				out = append(out, x[j])
				j++
			}
		}
	} else {
		rm := map[int]bool{}
		if raw == nil {
			for k, d := range x {
				if d == 1 {
					rm[k] = true
				} else if !isStatic(d) {
					s.unknownOutputs(n)
					return nil
				}
			}
		} else {
			ax, err := normAxes(raw, len(x))
			if err != nil {
				return err
			}
			for _, a := range ax {
				if isStatic(x[a]) && x[a] != 1 {
					return fmt.Errorf("%w: cannot squeeze axis %d of size %d", ErrShape, a, x[a])
				}
				rm[a] = true
			}
		}
		out = []int64{}
		for k, d := range x {
			if !rm[k] {
				out = append(out, d)
			}
		}
	}
	if err := s.set(output(n, 0), out); err != nil {
		return err
	}
	if iv, ok := s.ints[input(n, 0)]; ok {
		s.ints[output(n, 0)] = iv
	}
	return nil
}

func (s *shapes) gather(n *onnxpb.NodeProto, x []int64, xok bool) error {
	ind, iok := s.shape(input(n, 1))
	if !xok || !iok {
		s.unknownOutputs(n)
		return nil
	}
	a, err := normAxis(attrInt(n, "axis", 0), len(x))
	if err != nil {
		return err
	}
	out := append(append(append([]int64{}, x[:a]...), ind...), x[a+1:]...)
	if err := s.set(output(n, 0), out); err != nil {
		return err
	}
	data, dok := s.ints[input(n, 0)]
	idx, ok := s.literalInts(input(n, 1))
	if dok && ok && len(x) == 1 {
		pick := make([]int, len(idx))
		for i, j := range idx {
			if j < 0 {
				j += int64(len(data.v))
			}
			if j < 0 || j >= int64(len(data.v)) {
				return fmt.Errorf("index %d is out of range for %d values", idx[i], len(data.v))
			}
			pick[i] = int(j)
		}
		s.ints[output(n, 0)] = data.pick(pick)
	}
	return nil
}

func (s *shapes) expand(n *onnxpb.NodeProto, x []int64, xok bool) error {
	iv, ok := s.constInts(input(n, 1))
	if !xok || !ok {
		if sh, sok := s.shape(input(n, 1)); xok && sok && len(sh) == 1 && isStatic(sh[0]) && sh[0] <= maxIntValues {
			return s.setRank(output(n, 0), max(len(x), int(sh[0])))
		}
		s.unknownOutputs(n)
		return nil
	}
	target := make([]int64, len(iv.v))
	for k := range target {
		target[k] = iv.asDim(k)
		if iv.literal(k) && iv.v[k] < 0 {
			return fmt.Errorf("invalid Expand shape entry %d", iv.v[k])
		}
	}
	out, err := broadcastShapes(x, target)
	if err != nil {
		return err
	}
	if len(x) <= 1 {
		s.intsExpand(n, out)
	}
	return s.set(output(n, 0), out)
}

// padAmounts returns per axis the padding before and after.
func (s *shapes) padAmounts(n *onnxpb.NodeProto, r int) ([]int64, bool, error) {
	pads, ok := attrInts(n, "pads")
	if !ok {
		if pads, ok = s.literalInts(input(n, 1)); !ok {
			return nil, false, nil
		}
	}
	axes := make([]int, r)
	for k := range axes {
		axes[k] = k
	}
	if in := input(n, 3); in != "" {
		raw, ok := s.literalInts(in)
		if !ok {
			return nil, false, nil
		}
		var err error
		if axes, err = normAxes(raw, r); err != nil {
			return nil, false, err
		}
	}
	if len(pads) != 2*len(axes) {
		return nil, false, fmt.Errorf("%d pads for %d axes", len(pads), len(axes))
	}
	full := make([]int64, 2*r)
	for i, a := range axes {
		full[a], full[a+r] = pads[i], pads[i+len(axes)]
		if pads[i] < -maxDim || pads[i] > maxDim || pads[i+len(axes)] < -maxDim || pads[i+len(axes)] > maxDim {
			return nil, false, fmt.Errorf("invalid pads")
		}
	}
	return full, true, nil
}

func (s *shapes) pad(n *onnxpb.NodeProto, x []int64, xok bool) error {
	if !xok {
		s.unknownOutputs(n)
		return nil
	}
	pads, ok, err := s.padAmounts(n, len(x))
	if err != nil {
		return err
	}
	if !ok {
		return s.setRank(output(n, 0), len(x))
	}
	out := make([]int64, len(x))
	for k, d := range x {
		out[k] = dimUnknown
		if isStatic(d) {
			out[k] = d + pads[k] + pads[k+len(x)]
			if out[k] < 0 {
				return fmt.Errorf("%w: padding makes dimension %d negative", ErrShape, k)
			}
		} else if pads[k] == 0 && pads[k+len(x)] == 0 {
			out[k] = d
		}
	}
	return s.set(output(n, 0), out)
}

// resizeScales returns the per-axis scales or sizes of a Resize/Upsample.
func (s *shapes) resizeTarget(n *onnxpb.NodeProto, x []int64) (scales []float64, sizes []int64) {
	if isOp(n, "Upsample") || s.v.opset < 11 {
		if v := attr(n, "scales"); v != nil {
			for _, f := range v.GetFloats() {
				scales = append(scales, float64(f))
			}
			return scales, nil
		}
		return s.floatConsts(input(n, 1)), nil
	}
	if in := input(n, 3); in != "" {
		if sz, ok := s.literalInts(in); ok {
			return nil, sz
		}
		return nil, nil
	}
	return s.floatConsts(input(n, 2)), nil
}

// floatConsts returns the values of a float weight (Resize scales).
func (s *shapes) floatConsts(name string) []float64 {
	src, ok := s.v.source[name]
	if !ok {
		return nil
	}
	t := s.v.weights[src]
	if n, err := onnx.NumElements(t.GetDims()); err != nil || n > maxIntValues || !onnx.IsFloat(onnx.DataType(t)) {
		return nil
	}
	v, err := s.v.m.Float64s(t)
	if err != nil {
		return nil
	}
	return v
}

func (s *shapes) resize(n *onnxpb.NodeProto, x []int64, xok bool) error {
	if !xok {
		s.unknownOutputs(n)
		return nil
	}
	if _, ok := attrInts(n, "axes"); ok {
		return s.setRank(output(n, 0), len(x))
	}
	scales, sizes := s.resizeTarget(n, x)
	out := make([]int64, len(x))
	for k, d := range x {
		out[k] = dimUnknown
		switch {
		case len(sizes) == len(x):
			out[k] = sizes[k]
		case len(scales) == len(x) && isStatic(d):
			if scales[k] <= 0 || scales[k] > maxDim || math.IsNaN(scales[k]) {
				return fmt.Errorf("invalid scale %v", scales[k])
			}
			out[k] = int64(math.Floor(float64(d) * scales[k]))
		case len(scales) == len(x) && scales[k] == 1:
			out[k] = d
		}
	}
	return s.set(output(n, 0), out)
}

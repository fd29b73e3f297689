package infer

import (
	"errors"
	"fmt"
	"math"
	"math/rand"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
	"github.com/onnx-rebasin/onnx-rebasin/simd"
)

type attrs map[string]any

// opModel builds a model with one node of type op whose inputs are graph
// inputs of the given types (0 = absent optional input).
func opModel(op string, opset int, at attrs, inTypes []DType, nOut int) *onnx.Model {
	elem := map[DType]int32{Float32: 1, Int64: 7, Bool: 9}
	g := &onnxpb.GraphProto{Name: proto.String("g")}
	n := &onnxpb.NodeProto{OpType: proto.String(op), Name: proto.String("node0")}
	for i, dt := range inTypes {
		if dt == 0 {
			n.Input = append(n.Input, "")
			continue
		}
		name := fmt.Sprintf("in%d", i)
		n.Input = append(n.Input, name)
		g.Input = append(g.Input, &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{
			Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(elem[dt])}}}})
	}
	for i := 0; i < nOut; i++ {
		name := fmt.Sprintf("out%d", i)
		n.Output = append(n.Output, name)
		g.Output = append(g.Output, &onnxpb.ValueInfoProto{Name: proto.String(name)})
	}
	for k, v := range at {
		a := &onnxpb.AttributeProto{Name: proto.String(k)}
		switch v := v.(type) {
		case int:
			a.Type, a.I = onnxpb.AttributeProto_INT.Enum(), proto.Int64(int64(v))
		case float32:
			a.Type, a.F = onnxpb.AttributeProto_FLOAT.Enum(), proto.Float32(v)
		case float64:
			a.Type, a.F = onnxpb.AttributeProto_FLOAT.Enum(), proto.Float32(float32(v))
		case string:
			a.Type, a.S = onnxpb.AttributeProto_STRING.Enum(), []byte(v)
		case []int:
			a.Type = onnxpb.AttributeProto_INTS.Enum()
			for _, x := range v {
				a.Ints = append(a.Ints, int64(x))
			}
		case []float32:
			a.Type, a.Floats = onnxpb.AttributeProto_FLOATS.Enum(), v
		default:
			panic(fmt.Sprintf("attribute %s: %T", k, v))
		}
		n.Attribute = append(n.Attribute, a)
	}
	g.Node = []*onnxpb.NodeProto{n}
	return &onnx.Model{Proto: &onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(int64(opset))}},
		Graph:       g,
	}}
}

// runOp runs one node on inputs (nil for an absent optional input).
func runOp(t testing.TB, op string, opset int, at attrs, nOut int, inputs ...*Tensor) []*Tensor {
	t.Helper()
	out, err := tryOp(op, opset, at, nOut, inputs...)
	if err != nil {
		t.Fatalf("%s: %v", op, err)
	}
	return out
}

func tryOp(op string, opset int, at attrs, nOut int, inputs ...*Tensor) ([]*Tensor, error) {
	types := make([]DType, len(inputs))
	feed := map[string]*Tensor{}
	for i, x := range inputs {
		if x != nil {
			types[i] = x.DType
			feed[fmt.Sprintf("in%d", i)] = x
		}
	}
	s, err := NewSession(opModel(op, opset, at, types, nOut))
	if err != nil {
		return nil, err
	}
	res, err := s.Run(feed)
	if err != nil {
		return nil, err
	}
	out := make([]*Tensor, nOut)
	for i := range out {
		out[i] = res[fmt.Sprintf("out%d", i)]
	}
	return out, nil
}

func randT(rng *rand.Rand, shape ...int) *Tensor {
	x := NewFloat32(shape, nil)
	for i := range x.F {
		x.F[i] = float32(rng.NormFloat64())
	}
	return x
}

func arange(shape ...int) *Tensor {
	x := NewFloat32(shape, nil)
	for i := range x.F {
		x.F[i] = float32(i)
	}
	return x
}

func i64(v ...int) *Tensor {
	x := NewInt64([]int{len(v)}, nil)
	for i, e := range v {
		x.I[i] = int64(e)
	}
	return x
}

func check(t *testing.T, what string, got, want *Tensor, tol float64) {
	t.Helper()
	if err := compareTensors(got, want, tol, tol); err != nil {
		t.Errorf("%s: %v", what, err)
	}
}

// unravel converts a flat index into a multi-index of shape.
func unravel(i int, shape []int) []int {
	idx := make([]int, len(shape))
	for d := len(shape) - 1; d >= 0; d-- {
		idx[d] = i % shape[d]
		i /= shape[d]
	}
	return idx
}

func ravel(idx, shape []int) int {
	o := 0
	for d := range shape {
		o = o*shape[d] + idx[d]
	}
	return o
}

// naiveConv is a direct convolution, written independently of the kernel:
// y[n,m,o...] = b[m] + Σ_{c,k...} x[n, g·C/G + c, o·s - pb + k·d] · w[m,c,k...].
func naiveConv(x, w, b *Tensor, strides, dil, pb, pe []int, group int) *Tensor {
	r := len(x.Shape) - 2
	n, ch, m := x.Shape[0], x.Shape[1], w.Shape[0]
	cg, mg := ch/group, m/group
	ks := w.Shape[2:]
	outSp := make([]int, r)
	for i := 0; i < r; i++ {
		outSp[i] = (x.Shape[2+i]+pb[i]+pe[i]-dil[i]*(ks[i]-1)-1)/strides[i] + 1
	}
	y := NewFloat32(append([]int{n, m}, outSp...), nil)
	inSp := x.Shape[2:]
	for i := range y.F {
		idx := unravel(i, y.Shape)
		img, oc, o := idx[0], idx[1], idx[2:]
		g := oc / mg
		var s float64
		if b != nil {
			s = float64(b.F[oc])
		}
		for c := 0; c < cg; c++ {
			for kk := 0; kk < numel(ks); kk++ {
				k := unravel(kk, ks)
				pos := make([]int, r)
				ok := true
				for d := 0; d < r; d++ {
					pos[d] = o[d]*strides[d] - pb[d] + k[d]*dil[d]
					ok = ok && pos[d] >= 0 && pos[d] < inSp[d]
				}
				if !ok {
					continue
				}
				xv := x.F[ravel(append([]int{img, g*cg + c}, pos...), x.Shape)]
				wv := w.F[ravel(append([]int{oc, c}, k...), w.Shape)]
				s += float64(xv) * float64(wv)
			}
		}
		y.F[i] = float32(s)
	}
	return y
}

func TestConvMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	type tc struct {
		in      []int // N C spatial...
		m, g    int
		k       []int
		strides []int
		dil     []int
		pads    []int
		autoPad string
		bias    bool
	}
	cases := []tc{
		{in: []int{2, 3, 7, 8}, m: 4, g: 1, k: []int{3, 3}, strides: []int{1, 1}, dil: []int{1, 1}, pads: []int{1, 1, 1, 1}, bias: true},
		{in: []int{1, 4, 9, 7}, m: 6, g: 2, k: []int{3, 2}, strides: []int{2, 3}, dil: []int{1, 2}, pads: []int{0, 2, 1, 1}},
		{in: []int{3, 6, 10, 10}, m: 6, g: 6, k: []int{3, 3}, strides: []int{2, 2}, dil: []int{2, 1}, pads: []int{2, 0, 1, 3}, bias: true},     // depthwise
		{in: []int{2, 4, 6, 6}, m: 8, g: 1, k: []int{1, 1}, strides: []int{1, 1}, dil: []int{1, 1}, pads: []int{0, 0, 0, 0}, bias: true},       // pointwise
		{in: []int{2, 4, 7, 6}, m: 3, g: 1, k: []int{1, 1}, strides: []int{2, 2}, dil: []int{1, 1}, pads: []int{0, 0, 0, 0}},                   // strided 1x1
		{in: []int{2, 3, 11}, m: 5, g: 1, k: []int{4}, strides: []int{3}, dil: []int{2}, pads: []int{3, 1}, bias: true},                        // 1-D
		{in: []int{1, 2, 5, 6, 4}, m: 4, g: 2, k: []int{2, 3, 2}, strides: []int{1, 2, 1}, dil: []int{2, 1, 1}, pads: []int{1, 0, 1, 0, 2, 1}}, // 3-D
		{in: []int{2, 3, 9, 8}, m: 4, g: 1, k: []int{3, 4}, strides: []int{2, 3}, dil: []int{1, 1}, autoPad: "SAME_UPPER"},
		{in: []int{2, 3, 9, 8}, m: 4, g: 1, k: []int{3, 4}, strides: []int{2, 3}, dil: []int{1, 1}, autoPad: "SAME_LOWER"},
		{in: []int{2, 3, 9, 8}, m: 4, g: 1, k: []int{3, 4}, strides: []int{2, 1}, dil: []int{2, 1}, autoPad: "VALID"},
	}
	for i, c := range cases {
		r := len(c.k)
		x := randT(rng, c.in...)
		w := randT(rng, append([]int{c.m, c.in[1] / c.g}, c.k...)...)
		var b *Tensor
		if c.bias {
			b = randT(rng, c.m)
		}
		at := attrs{"kernel_shape": c.k, "strides": c.strides, "dilations": c.dil, "group": c.g}
		pb, pe := make([]int, r), make([]int, r)
		if c.autoPad != "" {
			at["auto_pad"] = c.autoPad
			for d := 0; d < r; d++ {
				if c.autoPad == "VALID" {
					continue
				}
				in := c.in[2+d]
				out := (in + c.strides[d] - 1) / c.strides[d]
				total := max(0, (out-1)*c.strides[d]+c.dil[d]*(c.k[d]-1)+1-in)
				pb[d], pe[d] = total/2, total-total/2
				if c.autoPad == "SAME_LOWER" {
					pb[d], pe[d] = pe[d], pb[d]
				}
			}
		} else {
			at["pads"] = c.pads
			copy(pb, c.pads[:r])
			copy(pe, c.pads[r:])
		}
		want := naiveConv(x, w, b, c.strides, c.dil, pb, pe, c.g)
		got := runOp(t, "Conv", 17, at, 1, x, w, b)[0]
		check(t, fmt.Sprintf("case %d", i), got, want, 1e-4)
	}
}

// naiveConvTranspose scatters every input element through the kernel.
func naiveConvTranspose(x, w, b *Tensor, strides, dil, pb []int, outSp []int, group int) *Tensor {
	r := len(x.Shape) - 2
	n, ch := x.Shape[0], x.Shape[1]
	mg := w.Shape[1]
	m, cg := mg*group, ch/group
	ks := w.Shape[2:]
	y := NewFloat32(append([]int{n, m}, outSp...), nil)
	acc := make([]float64, len(y.F))
	for i := range acc {
		if b != nil {
			acc[i] = float64(b.F[unravel(i, y.Shape)[1]])
		}
	}
	for i := range x.F {
		idx := unravel(i, x.Shape)
		img, c, p := idx[0], idx[1], idx[2:]
		g := c / cg
		for oc := 0; oc < mg; oc++ {
			for kk := 0; kk < numel(ks); kk++ {
				k := unravel(kk, ks)
				pos := make([]int, r)
				ok := true
				for d := 0; d < r; d++ {
					pos[d] = p[d]*strides[d] - pb[d] + k[d]*dil[d]
					ok = ok && pos[d] >= 0 && pos[d] < outSp[d]
				}
				if !ok {
					continue
				}
				wv := w.F[ravel(append([]int{c, oc}, k...), w.Shape)]
				acc[ravel(append([]int{img, g*mg + oc}, pos...), y.Shape)] += float64(x.F[i]) * float64(wv)
			}
		}
	}
	for i, v := range acc {
		y.F[i] = float32(v)
	}
	return y
}

func TestConvTransposeMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	type tc struct {
		in            []int
		m, g          int
		k, s, d, pads []int
		outPad        []int
		bias          bool
	}
	cases := []tc{
		{in: []int{2, 3, 4, 5}, m: 2, g: 1, k: []int{3, 3}, s: []int{1, 1}, d: []int{1, 1}, pads: []int{0, 0, 0, 0}, bias: true},
		{in: []int{1, 4, 3, 4}, m: 6, g: 2, k: []int{3, 2}, s: []int{2, 3}, d: []int{1, 2}, pads: []int{1, 0, 0, 1}},
		{in: []int{2, 2, 5}, m: 3, g: 1, k: []int{4}, s: []int{3}, d: []int{2}, pads: []int{2, 1}, outPad: []int{2}, bias: true},
		{in: []int{1, 2, 3, 3}, m: 2, g: 1, k: []int{3, 3}, s: []int{2, 2}, d: []int{1, 1}, pads: []int{1, 1, 1, 1}, outPad: []int{1, 1}},
		{in: []int{1, 2, 2, 3, 2}, m: 2, g: 2, k: []int{2, 2, 3}, s: []int{2, 1, 2}, d: []int{1, 1, 1}, pads: []int{0, 1, 0, 0, 0, 1}},
	}
	for i, c := range cases {
		r := len(c.k)
		x := randT(rng, c.in...)
		w := randT(rng, append([]int{c.in[1], c.m / c.g}, c.k...)...)
		var b *Tensor
		if c.bias {
			b = randT(rng, c.m)
		}
		at := attrs{"kernel_shape": c.k, "strides": c.s, "dilations": c.d, "group": c.g, "pads": c.pads}
		outSp := make([]int, r)
		for d := 0; d < r; d++ {
			op := 0
			if c.outPad != nil {
				op = c.outPad[d]
			}
			outSp[d] = c.s[d]*(c.in[2+d]-1) + op + (c.k[d]-1)*c.d[d] + 1 - c.pads[d] - c.pads[r+d]
		}
		if c.outPad != nil {
			at["output_padding"] = c.outPad
		}
		want := naiveConvTranspose(x, w, b, c.s, c.d, c.pads[:r], outSp, c.g)
		got := runOp(t, "ConvTranspose", 17, at, 1, x, w, b)[0]
		check(t, fmt.Sprintf("case %d", i), got, want, 1e-4)
	}
}

// naiveBinary broadcasts by index arithmetic.
func naiveBinary(a, b *Tensor, f func(x, y float32) float32) *Tensor {
	shape, err := broadcastShape(a.Shape, b.Shape)
	if err != nil {
		panic(err)
	}
	y := NewFloat32(shape, nil)
	at := func(t *Tensor, idx []int) float32 {
		off := len(idx) - len(t.Shape)
		sub := make([]int, len(t.Shape))
		for d := range sub {
			if t.Shape[d] != 1 {
				sub[d] = idx[off+d]
			}
		}
		return t.F[ravel(sub, t.Shape)]
	}
	for i := range y.F {
		idx := unravel(i, shape)
		y.F[i] = f(at(a, idx), at(b, idx))
	}
	return y
}

func TestBroadcasting(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	pairs := [][2][]int{
		{{2, 3, 4}, {4}}, {{2, 1, 4}, {3, 1}}, {{}, {2, 3}}, {{1}, {2, 3}}, {{2, 3, 1, 5}, {1, 3, 4, 1}},
		{{0, 3}, {1, 3}}, {{5, 1, 1}, {1, 1, 6}}, {{3, 4}, {3, 4}}, {{2, 3, 4, 5}, {3, 1, 1}}, {{1, 1}, {1}},
	}
	ops := map[string]func(x, y float32) float32{
		"Add": func(x, y float32) float32 { return x + y },
		"Sub": func(x, y float32) float32 { return x - y },
		"Mul": func(x, y float32) float32 { return x * y },
		"Div": func(x, y float32) float32 { return x / y },
		"Max": func(x, y float32) float32 { return max(x, y) },
		"Pow": func(x, y float32) float32 { return float32(math.Pow(float64(x), float64(y))) },
	}
	for _, p := range pairs {
		for _, swap := range []bool{false, true} {
			sa, sb := p[0], p[1]
			if swap {
				sa, sb = sb, sa
			}
			a, b := randT(rng, sa...), randT(rng, sb...)
			for op, f := range ops {
				if op == "Pow" {
					for i := range a.F {
						a.F[i] = float32(math.Abs(float64(a.F[i]))) + 0.5
					}
				}
				got := runOp(t, op, 17, nil, 1, a, b)[0]
				check(t, fmt.Sprintf("%s %v %v", op, sa, sb), got, naiveBinary(a, b, f), 1e-5)
			}
			// Where and Equal broadcast the same way.
			cond := NewBool(sa, nil)
			for i := range cond.B {
				cond.B[i] = rng.Intn(2) == 0
			}
			got := runOp(t, "Where", 17, nil, 1, cond, b, b)[0]
			check(t, fmt.Sprintf("Where %v %v", sa, sb), got, naiveBinary(a, b, func(_, y float32) float32 { return y }), 0)
			eq := runOp(t, "Equal", 17, nil, 1, a, a)[0]
			for _, v := range eq.B {
				if !v {
					t.Fatalf("Equal(x, x) false")
				}
			}
		}
	}
	// Unidirectional broadcasts that do not fit fail.
	if _, err := tryOp("Add", 17, nil, 1, randT(rng, 2, 3), randT(rng, 4)); err == nil {
		t.Error("Add of [2 3] and [4] succeeded")
	}
}

func TestReshape(t *testing.T) {
	x := arange(2, 3, 4)
	for _, c := range []struct {
		spec      []int
		allowZero int
		want      []int
		fail      bool
	}{
		{spec: []int{0, -1}, want: []int{2, 12}},
		{spec: []int{-1, 0}, want: []int{8, 3}},
		{spec: []int{0, 0, 2, 2}, want: []int{2, 3, 2, 2}},
		{spec: []int{4, -1, 3}, want: []int{4, 2, 3}},
		{spec: []int{24}, want: []int{24}},
		{spec: []int{0, -1}, allowZero: 1, fail: true}, // 0 is a real zero: 0 × ? cannot hold 24 values
		{spec: []int{-1, -1}, fail: true},
		{spec: []int{5, -1}, fail: true},
	} {
		out, err := tryOp("Reshape", 17, attrs{"allowzero": c.allowZero}, 1, x, i64(c.spec...))
		if c.fail {
			if err == nil {
				t.Errorf("Reshape %v (allowzero %d) succeeded with shape %v", c.spec, c.allowZero, out[0].Shape)
			}
			continue
		}
		if err != nil {
			t.Errorf("Reshape %v: %v", c.spec, err)
			continue
		}
		if !slices.Equal(out[0].Shape, c.want) {
			t.Errorf("Reshape %v: shape %v, want %v", c.spec, out[0].Shape, c.want)
		}
		check(t, "Reshape data", NewFloat32(x.Shape, out[0].F), x, 0)
	}
	// allowzero keeps a zero dimension of an empty tensor.
	empty := NewFloat32([]int{0, 3}, nil)
	out := runOp(t, "Reshape", 17, attrs{"allowzero": 1}, 1, empty, i64(3, 0))[0]
	if !slices.Equal(out.Shape, []int{3, 0}) {
		t.Errorf("allowzero Reshape of [0 3] to [3 0]: %v", out.Shape)
	}
}

// naiveSlice follows numpy's slicing rules on one axis.
func naiveSliceIdx(dim, start, end, step int) []int {
	clamp := func(v, lo, hi int) int { return min(max(v, lo), hi) }
	if start < 0 {
		start += dim
	}
	if end < 0 {
		end += dim
	}
	var idx []int
	if step > 0 {
		start, end = clamp(start, 0, dim), clamp(end, 0, dim)
		for i := start; i < end; i += step {
			idx = append(idx, i)
		}
	} else {
		start, end = clamp(start, -1, dim-1), clamp(end, -1, dim-1)
		for i := start; i > end; i += step {
			idx = append(idx, i)
		}
	}
	return idx
}

func TestSliceSteps(t *testing.T) {
	x := arange(4, 5)
	const big = math.MaxInt64
	for _, c := range []struct{ starts, ends, axes, steps []int }{
		{[]int{-1}, []int{-big}, []int{1}, []int{-1}},
		{[]int{3, 4}, []int{0, 1}, []int{0, 1}, []int{-2, -1}},
		{[]int{big}, []int{-big}, []int{0}, []int{-3}},
		{[]int{1, -2}, []int{big, 0}, []int{-1, 0}, []int{2, -1}},
		{[]int{-100}, []int{100}, []int{1}, []int{3}},
		{[]int{2}, []int{2}, []int{1}, []int{-1}}, // empty
	} {
		got := runOp(t, "Slice", 13, nil, 1, x, i64(c.starts...), i64(c.ends...), i64(c.axes...), i64(c.steps...))[0]
		maps := [][]int{identityMap(4), identityMap(5)}
		for i, a := range c.axes {
			if a < 0 {
				a += 2
			}
			maps[a] = naiveSliceIdx(x.Shape[a], c.starts[i], c.ends[i], c.steps[i])
		}
		want := NewFloat32([]int{len(maps[0]), len(maps[1])}, nil)
		for i, r := range maps[0] {
			for j, col := range maps[1] {
				want.F[i*len(maps[1])+j] = x.F[r*5+col]
			}
		}
		check(t, fmt.Sprintf("Slice %+v", c), got, want, 0)
	}
}

func naiveSoftmax(x []float32) []float32 {
	m := float32(math.Inf(-1))
	for _, v := range x {
		m = max(m, v)
	}
	var s float64
	for _, v := range x {
		s += math.Exp(float64(v - m))
	}
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = float32(math.Exp(float64(v-m)) / s)
	}
	return y
}

// TestSoftmaxOpsets: before opset 13 Softmax flattens to 2-D at axis, from 13
// on it normalises along axis alone.
func TestSoftmaxOpsets(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	x := randT(rng, 2, 3, 4)
	// Opset 11, axis 1: each of the 2 rows of 12 sums to 1.
	want11 := NewFloat32(x.Shape, nil)
	for r := 0; r < 2; r++ {
		copy(want11.F[r*12:(r+1)*12], naiveSoftmax(x.F[r*12:(r+1)*12]))
	}
	check(t, "Softmax-11 axis 1", runOp(t, "Softmax", 11, attrs{"axis": 1}, 1, x)[0], want11, 1e-6)
	// Opset 13, axis 1: each (n, ·, k) column of 3 sums to 1.
	want13 := NewFloat32(x.Shape, nil)
	for n := 0; n < 2; n++ {
		for k := 0; k < 4; k++ {
			col := []float32{x.F[n*12+k], x.F[n*12+4+k], x.F[n*12+8+k]}
			y := naiveSoftmax(col)
			for j := range y {
				want13.F[n*12+j*4+k] = y[j]
			}
		}
	}
	check(t, "Softmax-13 axis 1", runOp(t, "Softmax", 13, attrs{"axis": 1}, 1, x)[0], want13, 1e-6)
	// Defaults: axis 1 before 13 (as above), -1 from 13.
	check(t, "Softmax-11 default", runOp(t, "Softmax", 11, nil, 1, x)[0], want11, 1e-6)
	wantLast := NewFloat32(x.Shape, nil)
	for r := 0; r < 6; r++ {
		copy(wantLast.F[r*4:(r+1)*4], naiveSoftmax(x.F[r*4:(r+1)*4]))
	}
	check(t, "Softmax-13 default", runOp(t, "Softmax", 13, nil, 1, x)[0], wantLast, 1e-6)
	// LogSoftmax agrees with log(Softmax).
	ls := runOp(t, "LogSoftmax", 11, attrs{"axis": 1}, 1, x)[0]
	for i := range ls.F {
		ls.F[i] = float32(math.Exp(float64(ls.F[i])))
	}
	check(t, "exp(LogSoftmax-11)", ls, want11, 1e-5)
}

// TestPadModes checks Pad's modes and negative pads against numpy.pad
// (values computed with numpy 1.24).
func TestPadModes(t *testing.T) {
	x := arange(2, 3)       // [[0 1 2] [3 4 5]]
	pads := i64(1, 2, 1, 1) // begin (rows, cols), end (rows, cols)
	for mode, want := range map[string][]float32{
		// np.pad(x, ((1,1),(2,1)), mode=..., constant_values=7)
		"constant": {7, 7, 7, 7, 7, 7, 7, 7, 0, 1, 2, 7, 7, 7, 3, 4, 5, 7, 7, 7, 7, 7, 7, 7},
		"edge":     {0, 0, 0, 1, 2, 2, 0, 0, 0, 1, 2, 2, 3, 3, 3, 4, 5, 5, 3, 3, 3, 4, 5, 5},
		"reflect":  {5, 4, 3, 4, 5, 4, 2, 1, 0, 1, 2, 1, 5, 4, 3, 4, 5, 4, 2, 1, 0, 1, 2, 1},
		"wrap":     {4, 5, 3, 4, 5, 3, 1, 2, 0, 1, 2, 0, 4, 5, 3, 4, 5, 3, 1, 2, 0, 1, 2, 0},
	} {
		opset := 18
		if mode == "wrap" {
			opset = 19
		}
		got := runOp(t, "Pad", opset, attrs{"mode": mode}, 1, x, pads, NewFloat32(nil, []float32{7}))[0]
		check(t, "Pad "+mode, got, NewFloat32([]int{4, 6}, want), 0)
	}
	// Negative pads crop; axes (opset 18) select dimensions.
	got := runOp(t, "Pad", 18, nil, 1, x, i64(-1, 1, 0, -1), nil)[0]
	check(t, "Pad negative", got, NewFloat32([]int{1, 3}, []float32{0, 3, 4}), 0)
	got = runOp(t, "Pad", 18, attrs{"mode": "edge"}, 1, x, i64(2, 0), nil, i64(-1))[0]
	check(t, "Pad axes", got, NewFloat32([]int{2, 5}, []float32{0, 0, 0, 1, 2, 3, 3, 3, 4, 5}), 0)
	// Opset 2 takes pads and value as attributes.
	got = runOp(t, "Pad", 2, attrs{"pads": []int{0, 1, 0, 0}, "value": float32(-1)}, 1, x)[0]
	check(t, "Pad-2", got, NewFloat32([]int{2, 4}, []float32{-1, 0, 1, 2, -1, 3, 4, 5}), 0)
}

func TestMatMulBroadcast(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	for _, c := range [][2][]int{
		{{2, 1, 3, 4}, {5, 4, 2}}, {{3, 4}, {4, 5}}, {{4}, {2, 4, 3}}, {{2, 3, 4}, {4}}, {{4}, {4}},
		{{6, 3, 4}, {4, 2}}, {{1, 3, 4}, {6, 4, 2}}, {{2, 2, 3, 4}, {2, 2, 4, 5}},
	} {
		a, b := randT(rng, c[0]...), randT(rng, c[1]...)
		got := runOp(t, "MatMul", 13, nil, 1, a, b)[0]
		// Naive: promote, broadcast, multiply, squeeze.
		as, bs := append([]int{}, c[0]...), append([]int{}, c[1]...)
		if len(as) == 1 {
			as = []int{1, as[0]}
		}
		if len(bs) == 1 {
			bs = []int{bs[0], 1}
		}
		batch, _ := broadcastShape(as[:len(as)-2], bs[:len(bs)-2])
		m, k, n := as[len(as)-2], as[len(as)-1], bs[len(bs)-1]
		want := NewFloat32(append(append([]int{}, batch...), m, n), nil)
		for i := range want.F {
			idx := unravel(i, want.Shape)
			bi, r, col := idx[:len(batch)], idx[len(batch)], idx[len(batch)+1]
			pick := func(shape []int, row, cl int) int {
				pre := shape[:len(shape)-2]
				sub := make([]int, len(pre))
				for d := range pre {
					if pre[d] != 1 {
						sub[d] = bi[len(bi)-len(pre)+d]
					}
				}
				return ravel(append(sub, row, cl), shape)
			}
			var s float64
			for p := 0; p < k; p++ {
				s += float64(a.F[pick(as, r, p)]) * float64(b.F[pick(bs, p, col)])
			}
			want.F[i] = float32(s)
		}
		ws := append([]int{}, batch...)
		if len(c[0]) > 1 {
			ws = append(ws, m)
		}
		if len(c[1]) > 1 {
			ws = append(ws, n)
		}
		want.Shape = ws
		check(t, fmt.Sprintf("MatMul %v %v", c[0], c[1]), got, want, 1e-4)
	}
}

func TestTransposeGather(t *testing.T) {
	x := arange(2, 3, 4, 5)
	for _, perm := range [][]int{{0, 1, 2, 3}, {3, 2, 1, 0}, {0, 2, 1, 3}, {1, 3, 0, 2}, {0, 1, 3, 2}} {
		got := runOp(t, "Transpose", 13, attrs{"perm": perm}, 1, x)[0]
		for i, v := range got.F {
			idx := unravel(i, got.Shape)
			src := make([]int, 4)
			for d, p := range perm {
				src[p] = idx[d]
			}
			if v != x.F[ravel(src, x.Shape)] {
				t.Fatalf("Transpose %v: element %v wrong", perm, idx)
			}
		}
	}
	idx := NewInt64([]int{2, 2}, []int64{-1, 0, 2, 1})
	got := runOp(t, "Gather", 13, attrs{"axis": 1}, 1, x, idx)[0]
	if !slices.Equal(got.Shape, []int{2, 2, 2, 4, 5}) {
		t.Fatalf("Gather shape %v", got.Shape)
	}
	for i, v := range got.F {
		id := unravel(i, got.Shape)
		j := int(idx.I[id[1]*2+id[2]])
		if j < 0 {
			j += 3
		}
		if v != x.F[ravel([]int{id[0], j, id[3], id[4]}, x.Shape)] {
			t.Fatalf("Gather element %v wrong", id)
		}
	}
}

// TestOpsetForms covers operators whose inputs moved between attributes and
// inputs across opsets.
func TestOpsetForms(t *testing.T) {
	x := NewFloat32([]int{2, 3}, []float32{-3, -1, 0, 1, 2, 5})
	want := NewFloat32([]int{2, 3}, []float32{-1, -1, 0, 1, 2, 2})
	check(t, "Clip-6", runOp(t, "Clip", 6, attrs{"min": float32(-1), "max": float32(2)}, 1, x)[0], want, 0)
	check(t, "Clip-13", runOp(t, "Clip", 13, nil, 1, x, NewFloat32(nil, []float32{-1}), NewFloat32(nil, []float32{2}))[0], want, 0)
	check(t, "Clip-13 max only", runOp(t, "Clip", 13, nil, 1, x, nil, NewFloat32(nil, []float32{2}))[0],
		NewFloat32([]int{2, 3}, []float32{-3, -1, 0, 1, 2, 2}), 0)

	rs := NewFloat32([]int{2}, []float32{-4, 8})
	check(t, "ReduceSum-11", runOp(t, "ReduceSum", 11, attrs{"axes": []int{1}, "keepdims": 0}, 1, x)[0], rs, 0)
	check(t, "ReduceSum-13", runOp(t, "ReduceSum", 13, attrs{"keepdims": 0}, 1, x, i64(1))[0], rs, 0)
	check(t, "ReduceSum-13 noop", runOp(t, "ReduceSum", 13, attrs{"noop_with_empty_axes": 1}, 1, x)[0], x, 0)
	check(t, "ReduceSum-13 all", runOp(t, "ReduceSum", 13, nil, 1, x)[0], NewFloat32([]int{1, 1}, []float32{4}), 0)
	rm := NewFloat32([]int{1, 3}, []float32{-1, 0.5, 2.5})
	check(t, "ReduceMean-13", runOp(t, "ReduceMean", 13, attrs{"axes": []int{0}}, 1, x)[0], rm, 0)
	check(t, "ReduceMean-18", runOp(t, "ReduceMean", 18, nil, 1, x, i64(-2))[0], rm, 0)

	a := NewFloat32([]int{2, 1}, []float32{-3, 1})
	b := NewFloat32([]int{2, 2}, []float32{-1, 0, 2, 5})
	for _, c := range []struct {
		opset int
		at    attrs
		in    []*Tensor
	}{
		{11, attrs{"axis": 1, "split": []int{1, 2}}, []*Tensor{x}},
		{13, attrs{"axis": 1}, []*Tensor{x, i64(1, 2)}},
	} {
		out := runOp(t, "Split", c.opset, c.at, 2, c.in...)
		check(t, fmt.Sprintf("Split-%d part 0", c.opset), out[0], a, 0)
		check(t, fmt.Sprintf("Split-%d part 1", c.opset), out[1], b, 0)
	}
	out := runOp(t, "Split", 18, attrs{"axis": 1, "num_outputs": 2}, 2, x)
	check(t, "Split-18 num_outputs", out[0], NewFloat32([]int{2, 2}, []float32{-3, -1, 1, 2}), 0)
	check(t, "Split-18 num_outputs", out[1], NewFloat32([]int{2, 1}, []float32{0, 5}), 0)

	u := runOp(t, "Unsqueeze", 11, attrs{"axes": []int{0, -1}}, 1, x)[0]
	u13 := runOp(t, "Unsqueeze", 13, nil, 1, x, i64(0, -1))[0]
	if !slices.Equal(u.Shape, []int{1, 2, 3, 1}) || !slices.Equal(u13.Shape, u.Shape) {
		t.Errorf("Unsqueeze shapes %v and %v", u.Shape, u13.Shape)
	}
	sq := runOp(t, "Squeeze", 13, nil, 1, u13, i64(-1))[0]
	if !slices.Equal(sq.Shape, []int{1, 2, 3}) {
		t.Errorf("Squeeze shape %v", sq.Shape)
	}
}

// TestAveragePoolPadding checks count_include_pad and ceil_mode with the
// PyTorch divisor rule (window clipped to the padded input).
func TestAveragePoolPadding(t *testing.T) {
	x := arange(1, 1, 4, 4)
	// kernel 3, stride 2, pad 1, ceil_mode: output 3x3 (last window starts
	// at 3 < 4+1).
	at := attrs{"kernel_shape": []int{3, 3}, "strides": []int{2, 2}, "pads": []int{1, 1, 1, 1}, "ceil_mode": 1}
	incl := runOp(t, "AveragePool", 17, attrs{"kernel_shape": at["kernel_shape"], "strides": at["strides"], "pads": at["pads"],
		"ceil_mode": 1, "count_include_pad": 1}, 1, x)[0]
	excl := runOp(t, "AveragePool", 17, at, 1, x)[0]
	// torch.nn.functional.avg_pool2d(torch.arange(16.).view(1,1,4,4), 3, 2, 1, ceil_mode=True, count_include_pad=...)
	// with torch 1.13
	check(t, "count_include_pad=1", incl, NewFloat32([]int{1, 1, 3, 3}, []float32{
		1.1111112, 2.6666667, 1.6666666, 5.6666665, 10, 5.5, 4.1666665, 7, 3.75}), 1e-6)
	check(t, "count_include_pad=0", excl, NewFloat32([]int{1, 1, 3, 3}, []float32{
		2.5, 4, 5, 8.5, 10, 11, 12.5, 14, 15}), 1e-6)
}

// TestUnsupportedAtCreation: unknown ops, attribute values and types are
// refused by NewSession with an *UnsupportedError naming op and node.
func TestUnsupportedAtCreation(t *testing.T) {
	for _, c := range []struct {
		op    string
		at    attrs
		in    []DType
		wantE string
	}{
		{"NoSuchOp", nil, []DType{Float32}, `infer: NoSuchOp node "node0": unsupported operator`},
		{"Pad", attrs{"mode": "mirror"}, []DType{Float32, Int64}, `infer: Pad node "node0": unsupported mode "mirror"`},
		{"MatMul", nil, []DType{Int64, Int64}, `infer: MatMul node "node0": unsupported input 0 of type int64`},
		{"Cast", attrs{"to": 11}, []DType{Float32}, `infer: Cast node "node0": unsupported cast to DOUBLE`},
	} {
		_, err := NewSession(opModel(c.op, 17, c.at, c.in, 1))
		var u *UnsupportedError
		if !errors.As(err, &u) || err.Error() != c.wantE {
			t.Errorf("%s: error %v, want %q", c.op, err, c.wantE)
		}
	}
}

// TestSgemm checks sgemm (with its matrix-vector path for one or two rows
// and its unpacked path for small products) against simd.Gemm, including
// transposes, alpha/beta and thread counts.
func TestSgemm(t *testing.T) {
	rng := rand.New(rand.NewSource(6))
	for _, c := range [][3]int{{1, 1, 1}, {3, 5, 7}, {130, 67, 300}, {1, 200, 513}, {2, 33, 17}, {64, 3, 9}} {
		m, n, k := c[0], c[1], c[2]
		for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
			a, b := randT(rng, m*k).F, randT(rng, k*n).F
			c0 := randT(rng, m*n).F
			lda, ldb := k, n
			if tr[0] {
				lda = m
			}
			if tr[1] {
				ldb = k
			}
			want := slices.Clone(c0)
			simd.Gemm(tr[0], tr[1], m, n, k, 0.5, a, lda, b, ldb, 2, want, n)
			for _, threads := range []int{1, 3} {
				got := slices.Clone(c0)
				sgemm(threads, tr[0], tr[1], m, n, k, 0.5, a, lda, b, ldb, 2, got, n)
				for i := range got {
					if d := math.Abs(float64(got[i] - want[i])); d > 1e-4*(1+math.Abs(float64(want[i]))) {
						t.Fatalf("%v trans %v threads %d: sgemm C[%d] = %v, simd %v", c, tr, threads, i, got[i], want[i])
					}
				}
			}
		}
	}
}

func TestActivations(t *testing.T) {
	x := NewFloat32([]int{7}, []float32{-30, -2, -0.5, 0, 0.5, 2, 30})
	each := func(f func(v float64) float64) *Tensor {
		y := NewFloat32(x.Shape, nil)
		for i, v := range x.F {
			y.F[i] = float32(f(float64(v)))
		}
		return y
	}
	gelu := func(v float64) float64 { return 0.5 * v * (1 + math.Erf(v/math.Sqrt2)) }
	geluTanh := func(v float64) float64 {
		return 0.5 * v * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(v+0.044715*v*v*v)))
	}
	check(t, "Gelu", runOp(t, "Gelu", 20, nil, 1, x)[0], each(gelu), 1e-6)
	check(t, "Gelu tanh", runOp(t, "Gelu", 20, attrs{"approximate": "tanh"}, 1, x)[0], each(geluTanh), 1e-6)
	check(t, "Erf", runOp(t, "Erf", 13, nil, 1, x)[0], each(math.Erf), 1e-6)
	check(t, "Sigmoid", runOp(t, "Sigmoid", 13, nil, 1, x)[0], each(func(v float64) float64 { return 1 / (1 + math.Exp(-v)) }), 1e-6)
	check(t, "LeakyRelu", runOp(t, "LeakyRelu", 16, attrs{"alpha": 0.1}, 1, x)[0],
		each(func(v float64) float64 { return max(v, float64(float32(0.1))*v) }), 1e-6)
	// PRelu with a per-channel slope [C 1 1].
	rng := rand.New(rand.NewSource(7))
	xc := randT(rng, 2, 3, 2, 2)
	slope := NewFloat32([]int{3, 1, 1}, []float32{0.1, 0.2, 0.3})
	check(t, "PRelu", runOp(t, "PRelu", 16, nil, 1, xc, slope)[0], naiveBinary(xc, slope, func(v, s float32) float32 {
		if v < 0 {
			return v * s
		}
		return v
	}), 0)
	// Inputs are never modified, even by kernels that can work in place.
	orig := xc.Clone()
	runOp(t, "Relu", 14, nil, 1, xc)
	check(t, "Relu input", xc, orig, 0)
}

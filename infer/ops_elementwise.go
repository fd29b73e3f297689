package infer

import (
	"fmt"
	"math"
	"slices"

	"github.com/onnx-rebasin/onnx-rebasin/simd"
)

func init() {
	for _, op := range []string{"Add", "Sub", "Mul", "Div"} {
		register(op, buildArith)
	}
	register("Pow", buildPow)
	for _, op := range []string{"Max", "Min", "Sum", "Mean"} {
		register(op, buildVariadic)
	}
	for _, op := range []string{"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"} {
		register(op, buildCompare)
	}
	for _, op := range []string{"And", "Or", "Xor"} {
		register(op, buildLogical)
	}
	register("Not", buildNot)
	register("Where", buildWhere)
	register("PRelu", buildPRelu)
	register("Clip", buildClip)
	register("Cast", buildCast)
	for op := range unaryFloat {
		register(op, buildUnaryFloat)
	}
	for _, op := range []string{"Relu", "Neg", "Abs", "Sign"} {
		register(op, buildUnaryNumeric)
	}
	register("LeakyRelu", buildUnaryFloat)
	register("Elu", buildUnaryFloat)
	register("Selu", buildUnaryFloat)
	register("HardSigmoid", buildUnaryFloat)
	register("Gelu", buildUnaryFloat)
}

// binaryShape checks that a and b broadcast and returns the output shape.
func binaryShape(a, b *Tensor) ([]int, error) {
	return broadcastShape(a.Shape, b.Shape)
}

// floatBinary computes out = f(a, b) elementwise with broadcasting, calling
// run on contiguous runs: run(dst, x, y, incx, incy) must fill dst from x and
// y, each advancing by its inc (0 or 1).
func floatBinary(c *runCtx, in []*Tensor, run func(dst, x, y []float32, incx, incy int)) (*Tensor, error) {
	a, b := in[0], in[1]
	shape, err := binaryShape(a, b)
	if err != nil {
		return nil, err
	}
	var out *Tensor
	switch n := numel(shape); {
	case len(a.F) == n:
		out = &Tensor{Shape: shape, DType: Float32, F: c.outFor(in, 0)}
	case len(b.F) == n:
		out = &Tensor{Shape: shape, DType: Float32, F: c.outFor(in, 1)}
	default:
		out = c.newF(shape)
	}
	if len(out.F) == 0 {
		return out, nil
	}
	// On one goroutine the kernels are called directly: a closure handed
	// to parallelFor is heap garbage, and fresh memory costs page faults.
	one := serial(c.threads, len(out.F), 1<<15)
	if slices.Equal(a.Shape, b.Shape) {
		if one {
			run(out.F, a.F, b.F, 1, 1)
			return out, nil
		}
		parallelFor(c.threads, len(out.F), 1<<15, func(lo, hi int) {
			run(out.F[lo:hi], a.F[lo:hi], b.F[lo:hi], 1, 1)
		})
		return out, nil
	}
	// The common broadcasts without the general machinery: a scalar
	// operand, or one whose shape is the output's trailing dimensions
	// (a bias) against a full-size one.
	switch n := len(out.F); {
	case one && len(a.F) == n && len(b.F) == 1:
		run(out.F, a.F, b.F, 1, 0)
		return out, nil
	case one && len(b.F) == n && len(a.F) == 1:
		run(out.F, a.F, b.F, 0, 1)
		return out, nil
	case one && len(a.F) == n && trailing(b.Shape, shape):
		for r, w := 0, len(b.F); r < n/w; r++ {
			run(out.F[r*w:(r+1)*w], a.F[r*w:(r+1)*w], b.F, 1, 1)
		}
		return out, nil
	case one && len(b.F) == n && trailing(a.Shape, shape):
		for r, w := 0, len(a.F); r < n/w; r++ {
			run(out.F[r*w:(r+1)*w], a.F, b.F[r*w:(r+1)*w], 1, 1)
		}
		return out, nil
	case len(a.F) == n && len(b.F) == 1:
		parallelFor(c.threads, n, 1<<15, func(lo, hi int) { run(out.F[lo:hi], a.F[lo:hi], b.F, 1, 0) })
		return out, nil
	case len(b.F) == n && len(a.F) == 1:
		parallelFor(c.threads, n, 1<<15, func(lo, hi int) { run(out.F[lo:hi], a.F, b.F[lo:hi], 0, 1) })
		return out, nil
	case len(a.F) == n && trailing(b.Shape, shape):
		w := len(b.F)
		parallelFor(c.threads, n/w, max(1, (1<<15)/w), func(lo, hi int) {
			for r := lo; r < hi; r++ {
				run(out.F[r*w:(r+1)*w], a.F[r*w:(r+1)*w], b.F, 1, 1)
			}
		})
		return out, nil
	case len(b.F) == n && trailing(a.Shape, shape):
		w := len(a.F)
		parallelFor(c.threads, n/w, max(1, (1<<15)/w), func(lo, hi int) {
			for r := lo; r < hi; r++ {
				run(out.F[r*w:(r+1)*w], a.F, b.F[r*w:(r+1)*w], 1, 1)
			}
		})
		return out, nil
	}
	bc := newBcast(shape, a.Shape, b.Shape)
	bc.parallelRuns(c.threads, func(o int, off, inc []int, n int) {
		x := a.F[off[0]:]
		y := b.F[off[1]:]
		if inc[0] == 1 {
			x = x[:n]
		}
		if inc[1] == 1 {
			y = y[:n]
		}
		run(out.F[o:o+n], x, y, inc[0], inc[1])
	})
	return out, nil
}

// trailing reports whether a tensor of shape t, broadcast to shape out,
// repeats whole: t without its leading 1s equals out's trailing dimensions
// (and has at least one element).
func trailing(t, out []int) bool {
	for len(t) > 0 && t[0] == 1 {
		t = t[1:]
	}
	if len(t) > len(out) || numel(t) == 0 {
		return false
	}
	return slices.Equal(t, out[len(out)-len(t):])
}

// genericBinary computes out = f(a, b) elementwise with broadcasting for any
// element types.
func genericBinary[T, U any](c *runCtx, shape []int, a []T, as []int, b []T, bs []int, out []U, f func(x, y T) U) {
	if len(out) == 0 {
		return
	}
	bc := newBcast(shape, as, bs)
	bc.parallelRuns(c.threads, func(o int, off, inc []int, n int) {
		ia, ib := off[0], off[1]
		for i := 0; i < n; i++ {
			out[o+i] = f(a[ia], b[ib])
			ia += inc[0]
			ib += inc[1]
		}
	})
}

// The arithmetic runs: d = x op y where x and y advance by ix, iy (0 or 1)
// per element, in package simd's vector code (the same IEEE operation per
// element as a Go loop).
func addRun(d, x, y []float32, ix, iy int) { arithRun(simd.OpAdd, d, x, y, ix, iy) }
func subRun(d, x, y []float32, ix, iy int) { arithRun(simd.OpSub, d, x, y, ix, iy) }
func mulRun(d, x, y []float32, ix, iy int) { arithRun(simd.OpMul, d, x, y, ix, iy) }
func divRun(d, x, y []float32, ix, iy int) { arithRun(simd.OpDiv, d, x, y, ix, iy) }

func arithRun(op simd.BinaryOp, d, x, y []float32, ix, iy int) {
	switch {
	case ix == 1 && iy == 1:
		simd.Binary(op, d, x, y)
	case ix == 1:
		simd.BinaryScalarY(op, d, x, y[0])
	case iy == 1:
		simd.BinaryScalarX(op, d, x[0], y)
	case len(d) > 0:
		simd.BinaryScalarX(op, d[:1], x[0], y[:1])
		fill(d, d[0])
	}
}

func buildArith(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(2, 2); err != nil {
		return nil, err
	}
	if err := b.needType(0, Float32, Int64); err != nil {
		return nil, err
	}
	if err := b.sameTypes(0, 1); err != nil {
		return nil, err
	}
	b.setOut(b.in[0])
	var frun func(d, x, y []float32, ix, iy int)
	var irun func(x, y int64) int64
	switch b.op {
	case "Add":
		frun, irun = addRun, func(x, y int64) int64 { return x + y }
	case "Sub":
		frun, irun = subRun, func(x, y int64) int64 { return x - y }
	case "Mul":
		frun, irun = mulRun, func(x, y int64) int64 { return x * y }
	case "Div":
		frun, irun = divRun, func(x, y int64) int64 {
			if y == 0 {
				return 0
			}
			return x / y
		}
	}
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		a, bb := in[0], in[1]
		if a.DType == Float32 {
			out, err := floatBinary(c, in, frun)
			return []*Tensor{out}, err
		}
		shape, err := binaryShape(a, bb)
		if err != nil {
			return nil, err
		}
		out := NewInt64(shape, nil)
		genericBinary(c, shape, a.I, a.Shape, bb.I, bb.Shape, out.I, irun)
		return []*Tensor{out}, nil
	}, nil
}

func buildPow(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(2, 2); err != nil {
		return nil, err
	}
	if err := b.needType(0, Float32, Int64); err != nil {
		return nil, err
	}
	if err := b.needType(1, Float32, Int64); err != nil {
		return nil, err
	}
	b.setOut(b.in[0])
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		x, y := in[0], in[1]
		shape, err := binaryShape(x, y)
		if err != nil {
			return nil, err
		}
		yf := toF64(y)
		if x.DType == Float32 {
			if len(yf) == 1 && yf[0] == 2 {
				// Squares (variance in decomposed LayerNorms): exactly
				// float32(pow(x, 2)), since x·x is exact in float64.
				out := c.newF(shape)
				for i, v := range x.F {
					out.F[i] = v * v
				}
				return []*Tensor{out}, nil
			}
			out := c.newF(shape)
			xf := toF64(x)
			genericBinary(c, shape, xf, x.Shape, yf, y.Shape, out.F, func(a, b float64) float32 {
				return float32(math.Pow(a, b))
			})
			return []*Tensor{out}, nil
		}
		out := NewInt64(shape, nil)
		xf := toF64(x)
		genericBinary(c, shape, xf, x.Shape, yf, y.Shape, out.I, func(a, b float64) int64 {
			return int64(math.Pow(a, b))
		})
		return []*Tensor{out}, nil
	}, nil
}

// toF64 returns a numeric tensor's values as float64.
func toF64(t *Tensor) []float64 {
	out := make([]float64, t.Len())
	switch t.DType {
	case Float32:
		for i, v := range t.F {
			out[i] = float64(v)
		}
	case Int64:
		for i, v := range t.I {
			out[i] = float64(v)
		}
	}
	return out
}

// buildVariadic implements Max, Min, Sum and Mean over any number of inputs.
func buildVariadic(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(1, math.MaxInt); err != nil {
		return nil, err
	}
	idx := make([]int, b.nIn())
	for i := range idx {
		idx[i] = i
	}
	if err := b.needType(0, Float32, Int64); err != nil {
		return nil, err
	}
	if b.op == "Mean" {
		if err := b.needType(0, Float32); err != nil {
			return nil, err
		}
	}
	if err := b.sameTypes(idx...); err != nil {
		return nil, err
	}
	b.setOut(b.in[0])
	op := b.op
	ff := map[string]func(x, y float32) float32{
		"Max": func(x, y float32) float32 {
			if x != x || y != y {
				return float32(math.NaN())
			}
			return max(x, y)
		},
		"Min": func(x, y float32) float32 {
			if x != x || y != y {
				return float32(math.NaN())
			}
			return min(x, y)
		},
		"Sum":  func(x, y float32) float32 { return x + y },
		"Mean": func(x, y float32) float32 { return x + y },
	}[op]
	fi := map[string]func(x, y int64) int64{
		"Max":  func(x, y int64) int64 { return max(x, y) },
		"Min":  func(x, y int64) int64 { return min(x, y) },
		"Sum":  func(x, y int64) int64 { return x + y },
		"Mean": func(x, y int64) int64 { return x + y },
	}[op]
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		acc := in[0]
		for _, t := range in[1:] {
			shape, err := binaryShape(acc, t)
			if err != nil {
				return nil, err
			}
			var next *Tensor
			if acc.DType == Float32 {
				next = c.newF(shape)
				genericBinary(c, shape, acc.F, acc.Shape, t.F, t.Shape, next.F, ff)
			} else {
				next = NewInt64(shape, nil)
				genericBinary(c, shape, acc.I, acc.Shape, t.I, t.Shape, next.I, fi)
			}
			if acc != in[0] && acc.DType == Float32 {
				c.recycle(acc.F)
			}
			acc = next
		}
		if acc == in[0] {
			acc = acc.Clone()
		}
		if op == "Mean" {
			k := float32(len(in))
			for i := range acc.F {
				acc.F[i] /= k
			}
		}
		return []*Tensor{acc}, nil
	}, nil
}

func buildCompare(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(2, 2); err != nil {
		return nil, err
	}
	if b.op == "Equal" {
		if err := b.needType(0, Float32, Int64, Bool); err != nil {
			return nil, err
		}
	} else if err := b.needType(0, Float32, Int64); err != nil {
		return nil, err
	}
	if err := b.sameTypes(0, 1); err != nil {
		return nil, err
	}
	b.setOut(Bool)
	op := b.op
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		x, y := in[0], in[1]
		shape, err := binaryShape(x, y)
		if err != nil {
			return nil, err
		}
		out := NewBool(shape, nil)
		switch x.DType {
		case Float32:
			genericBinary(c, shape, x.F, x.Shape, y.F, y.Shape, out.B, compareFunc[float32](op))
		case Int64:
			genericBinary(c, shape, x.I, x.Shape, y.I, y.Shape, out.B, compareFunc[int64](op))
		case Bool:
			genericBinary(c, shape, x.B, x.Shape, y.B, y.Shape, out.B, func(p, q bool) bool { return p == q })
		}
		return []*Tensor{out}, nil
	}, nil
}

func compareFunc[T float32 | int64](op string) func(x, y T) bool {
	switch op {
	case "Equal":
		return func(x, y T) bool { return x == y }
	case "Less":
		return func(x, y T) bool { return x < y }
	case "Greater":
		return func(x, y T) bool { return x > y }
	case "LessOrEqual":
		return func(x, y T) bool { return x <= y }
	}
	return func(x, y T) bool { return x >= y }
}

func buildLogical(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(2, 2); err != nil {
		return nil, err
	}
	if err := b.needType(0, Bool); err != nil {
		return nil, err
	}
	if err := b.needType(1, Bool); err != nil {
		return nil, err
	}
	b.setOut(Bool)
	f := map[string]func(x, y bool) bool{
		"And": func(x, y bool) bool { return x && y },
		"Or":  func(x, y bool) bool { return x || y },
		"Xor": func(x, y bool) bool { return x != y },
	}[b.op]
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		shape, err := binaryShape(in[0], in[1])
		if err != nil {
			return nil, err
		}
		out := NewBool(shape, nil)
		genericBinary(c, shape, in[0].B, in[0].Shape, in[1].B, in[1].Shape, out.B, f)
		return []*Tensor{out}, nil
	}, nil
}

func buildNot(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(1, 1); err != nil {
		return nil, err
	}
	if err := b.needType(0, Bool); err != nil {
		return nil, err
	}
	b.setOut(Bool)
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		out := NewBool(in[0].Shape, nil)
		for i, v := range in[0].B {
			out.B[i] = !v
		}
		return []*Tensor{out}, nil
	}, nil
}

func buildWhere(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(3, 3); err != nil {
		return nil, err
	}
	if err := b.needType(0, Bool); err != nil {
		return nil, err
	}
	if err := b.sameTypes(1, 2); err != nil {
		return nil, err
	}
	b.setOut(b.in[1])
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		cond, x, y := in[0], in[1], in[2]
		shape, err := broadcastShape(cond.Shape, x.Shape, y.Shape)
		if err != nil {
			return nil, err
		}
		out := &Tensor{Shape: shape, DType: x.DType}
		n := numel(shape)
		switch x.DType {
		case Float32:
			out.F = c.floats(n)
		case Int64:
			out.I = make([]int64, n)
		case Bool:
			out.B = make([]bool, n)
		}
		if n == 0 {
			return []*Tensor{out}, nil
		}
		bc := newBcast(shape, cond.Shape, x.Shape, y.Shape)
		bc.parallelRuns(c.threads, func(o int, off, inc []int, m int) {
			ic, ix, iy := off[0], off[1], off[2]
			for i := 0; i < m; i++ {
				switch x.DType {
				case Float32:
					if cond.B[ic] {
						out.F[o+i] = x.F[ix]
					} else {
						out.F[o+i] = y.F[iy]
					}
				case Int64:
					if cond.B[ic] {
						out.I[o+i] = x.I[ix]
					} else {
						out.I[o+i] = y.I[iy]
					}
				case Bool:
					if cond.B[ic] {
						out.B[o+i] = x.B[ix]
					} else {
						out.B[o+i] = y.B[iy]
					}
				}
				ic += inc[0]
				ix += inc[1]
				iy += inc[2]
			}
		})
		return []*Tensor{out}, nil
	}, nil
}

// buildPRelu: y = x for x >= 0, slope·x otherwise; slope broadcasts to x.
func buildPRelu(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(2, 2); err != nil {
		return nil, err
	}
	if err := b.needType(0, Float32); err != nil {
		return nil, err
	}
	if err := b.needType(1, Float32); err != nil {
		return nil, err
	}
	b.setOut(Float32)
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		out, err := floatBinary(c, in, func(d, x, y []float32, ix, iy int) {
			xi, yi := 0, 0
			for i := range d {
				v := x[xi]
				if v < 0 {
					v *= y[yi]
				}
				d[i] = v
				xi += ix
				yi += iy
			}
		})
		if err == nil && !slices.Equal(out.Shape, in[0].Shape) {
			err = fmt.Errorf("slope shape %v does not broadcast to input shape %v", in[1].Shape, in[0].Shape)
		}
		return []*Tensor{out}, err
	}, nil
}

// buildClip: bounds are attributes before opset 11, optional scalar inputs
// from opset 11 on.
// clipRange sets dst[i] = src[i] raised to lo and lowered to hi (NaN
// passes through): Clip's float32 rule, shared with fused Conv epilogues.
func clipRange(dst, src []float32, lo, hi float32) {
	dst = dst[:len(src)]
	for i, v := range src {
		if v < lo {
			v = lo
		}
		if v > hi {
			v = hi
		}
		dst[i] = v
	}
}

func buildClip(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(1, 3); err != nil {
		return nil, err
	}
	if err := b.needType(0, Float32, Int64); err != nil {
		return nil, err
	}
	if err := b.sameTypes(0, 1, 2); err != nil {
		return nil, err
	}
	b.setOut(b.in[0])
	attrMin := b.float("min", float32(math.Inf(-1)))
	attrMax := b.float("max", float32(math.Inf(1)))
	old := b.opset < 11
	// Bounds known now (attributes, or constant inputs) let a Conv fuse
	// this Clip into its epilogue.
	if b.in[0] == Float32 {
		lo, hi, ok := attrMin, attrMax, true
		if !old {
			lo, hi = float32(math.Inf(-1)), float32(math.Inf(1))
			for j, dst := range []*float32{&lo, &hi} {
				if !b.input(j + 1) {
					continue
				}
				if b.consts[j+1] == nil {
					ok = false
					continue
				}
				v, err := scalarF(b.consts[j+1])
				if err != nil {
					ok = false
					continue
				}
				*dst = v
			}
		}
		if ok {
			b.act = &activation{kind: actClip, lo: lo, hi: hi}
		}
	}
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		if x.DType == Int64 {
			lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
			if len(in) > 1 && in[1] != nil {
				if len(in[1].I) != 1 {
					return nil, fmt.Errorf("min must be a scalar")
				}
				lo = in[1].I[0]
			}
			if len(in) > 2 && in[2] != nil {
				if len(in[2].I) != 1 {
					return nil, fmt.Errorf("max must be a scalar")
				}
				hi = in[2].I[0]
			}
			out := NewInt64(x.Shape, nil)
			for i, v := range x.I {
				out.I[i] = min(max(v, lo), hi)
			}
			return []*Tensor{out}, nil
		}
		lo, hi := attrMin, attrMax
		if !old {
			lo, hi = float32(math.Inf(-1)), float32(math.Inf(1))
			var err error
			if len(in) > 1 && in[1] != nil {
				if lo, err = scalarF(in[1]); err != nil {
					return nil, fmt.Errorf("min: %v", err)
				}
			}
			if len(in) > 2 && in[2] != nil {
				if hi, err = scalarF(in[2]); err != nil {
					return nil, fmt.Errorf("max: %v", err)
				}
			}
		}
		out := &Tensor{Shape: x.Shape, DType: Float32, F: c.outFor(in, 0)}
		parallelFor(c.threads, len(x.F), 1<<15, func(s, e int) {
			clipRange(out.F[s:e], x.F[s:e], lo, hi)
		})
		return []*Tensor{out}, nil
	}, nil
}

func buildCast(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(1, 1); err != nil {
		return nil, err
	}
	to, ok := dtypeOf(onnxDataType(b.int("to", 0)))
	if !ok {
		return nil, b.unsupported("cast to %v", onnxDataType(b.int("to", 0)))
	}
	b.setOut(to)
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		return []*Tensor{castTo(in[0], to)}, nil
	}, nil
}

// castTo converts t to dtype to (always a new tensor). Float to int64
// truncates toward zero, anything nonzero is true.
func castTo(t *Tensor, to DType) *Tensor {
	out := &Tensor{Shape: append([]int{}, t.Shape...), DType: to}
	n := t.Len()
	switch to {
	case Float32:
		out.F = make([]float32, n)
	case Int64:
		out.I = make([]int64, n)
	case Bool:
		out.B = make([]bool, n)
	}
	for i := 0; i < n; i++ {
		switch t.DType {
		case Float32:
			v := t.F[i]
			switch to {
			case Float32:
				out.F[i] = v
			case Int64:
				out.I[i] = int64(v)
			case Bool:
				out.B[i] = v != 0
			}
		case Int64:
			v := t.I[i]
			switch to {
			case Float32:
				out.F[i] = float32(v)
			case Int64:
				out.I[i] = v
			case Bool:
				out.B[i] = v != 0
			}
		case Bool:
			v := t.B[i]
			switch to {
			case Float32:
				if v {
					out.F[i] = 1
				}
			case Int64:
				if v {
					out.I[i] = 1
				}
			case Bool:
				out.B[i] = v
			}
		}
	}
	return out
}

// unaryFloat are the float32 → float32 elementwise functions without
// attributes.
var unaryFloat = map[string]func(float32) float32{
	"Sigmoid": func(x float32) float32 {
		if x >= 0 {
			return 1 / (1 + float32(math.Exp(float64(-x))))
		}
		e := float32(math.Exp(float64(x)))
		return e / (1 + e)
	},
	"Tanh":       func(x float32) float32 { return float32(math.Tanh(float64(x))) },
	"Erf":        func(x float32) float32 { return float32(math.Erf(float64(x))) },
	"Sqrt":       func(x float32) float32 { return float32(math.Sqrt(float64(x))) },
	"Exp":        func(x float32) float32 { return float32(math.Exp(float64(x))) },
	"Log":        func(x float32) float32 { return float32(math.Log(float64(x))) },
	"Reciprocal": func(x float32) float32 { return 1 / x },
	"Floor":      func(x float32) float32 { return float32(math.Floor(float64(x))) },
	"Ceil":       func(x float32) float32 { return float32(math.Ceil(float64(x))) },
	"Softplus":   func(x float32) float32 { return float32(softplus(float64(x))) },
	"Softsign":   func(x float32) float32 { return x / (1 + float32(math.Abs(float64(x)))) },
	"Sin":        func(x float32) float32 { return float32(math.Sin(float64(x))) },
	"Cos":        func(x float32) float32 { return float32(math.Cos(float64(x))) },
	"HardSwish": func(x float32) float32 {
		return x * min(max(x/6+0.5, 0), 1)
	},
}

func softplus(x float64) float64 {
	if x > 30 {
		return x
	}
	return math.Log1p(math.Exp(x))
}

func buildUnaryFloat(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(1, 1); err != nil {
		return nil, err
	}
	if err := b.needType(0, Float32); err != nil {
		return nil, err
	}
	b.setOut(Float32)
	f := unaryFloat[b.op]
	switch b.op {
	case "LeakyRelu":
		alpha := b.float("alpha", 0.01)
		f = func(x float32) float32 {
			if x < 0 {
				return alpha * x
			}
			return x
		}
	case "Elu":
		alpha := float64(b.float("alpha", 1))
		f = func(x float32) float32 {
			if x < 0 {
				return float32(alpha * math.Expm1(float64(x)))
			}
			return x
		}
	case "Selu":
		alpha := float64(b.float("alpha", 1.67326319217681884765625))
		gamma := float64(b.float("gamma", 1.05070102214813232421875))
		f = func(x float32) float32 {
			if x <= 0 {
				return float32(gamma * alpha * math.Expm1(float64(x)))
			}
			return float32(gamma * float64(x))
		}
	case "HardSigmoid":
		alpha, beta := b.float("alpha", 0.2), b.float("beta", 0.5)
		f = func(x float32) float32 { return min(max(alpha*x+beta, 0), 1) }
	case "Gelu":
		switch approx := b.str("approximate", "none"); approx {
		case "none":
			f = func(x float32) float32 {
				v := float64(x)
				return float32(0.5 * v * (1 + math.Erf(v/math.Sqrt2)))
			}
		case "tanh":
			f = func(x float32) float32 {
				v := float64(x)
				return float32(0.5 * v * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(v+0.044715*v*v*v))))
			}
		default:
			return nil, b.unsupported("approximate=%q", approx)
		}
	}
	// Exp and Erf in float32 vector code (simd; accuracy documented there).
	var vec func(dst, src []float32)
	switch b.op {
	case "Exp":
		vec = simd.Exp
	case "Erf":
		vec = simd.Erf
	}
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		out := &Tensor{Shape: x.Shape, DType: Float32, F: c.outFor(in, 0)}
		if vec != nil {
			if serial(c.threads, len(x.F), 1<<15) {
				vec(out.F, x.F)
				return []*Tensor{out}, nil
			}
			parallelFor(c.threads, len(x.F), 1<<15, func(lo, hi int) {
				vec(out.F[lo:hi], x.F[lo:hi])
			})
			return []*Tensor{out}, nil
		}
		parallelFor(c.threads, len(x.F), 1<<13, func(lo, hi int) {
			src, dst := x.F[lo:hi], out.F[lo:hi]
			for i, v := range src {
				dst[i] = f(v)
			}
		})
		return []*Tensor{out}, nil
	}, nil
}

// buildUnaryNumeric: Relu, Neg, Abs and Sign on float32 or int64.
func buildUnaryNumeric(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(1, 1); err != nil {
		return nil, err
	}
	if err := b.needType(0, Float32, Int64); err != nil {
		return nil, err
	}
	b.setOut(b.in[0])
	op := b.op
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		if x.DType == Int64 {
			out := NewInt64(x.Shape, nil)
			for i, v := range x.I {
				switch op {
				case "Relu":
					out.I[i] = max(v, 0)
				case "Neg":
					out.I[i] = -v
				case "Abs":
					out.I[i] = max(v, -v)
				case "Sign":
					out.I[i] = int64(cmpSign(v))
				}
			}
			return []*Tensor{out}, nil
		}
		out := &Tensor{Shape: x.Shape, DType: Float32, F: c.outFor(in, 0)}
		parallelFor(c.threads, len(x.F), 1<<15, func(lo, hi int) {
			src, dst := x.F[lo:hi], out.F[lo:hi]
			switch op {
			case "Relu":
				relu(dst, src)
			case "Neg":
				for i, v := range src {
					dst[i] = -v
				}
			case "Abs":
				for i, v := range src {
					dst[i] = float32(math.Abs(float64(v)))
				}
			case "Sign":
				for i, v := range src {
					switch {
					case v > 0:
						dst[i] = 1
					case v < 0:
						dst[i] = -1
					default:
						dst[i] = v // 0 or NaN
					}
				}
			}
		})
		return []*Tensor{out}, nil
	}, nil
}

// relu sets dst[i] = 0 where src[i] < 0 and src[i] otherwise (so -0 and
// NaNs pass through unchanged): simd.Relu, a vector max with 0 on amd64.
func relu(dst, src []float32) { simd.Relu(dst, src) }

func cmpSign(v int64) int {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}

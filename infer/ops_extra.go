package infer

import (
	"fmt"
	"math"
)

// Operators beyond the CNN/MLP/transformer core: cheap to provide and
// occasionally found in exported models.

func init() {
	for op, f := range map[string]func(float64) float64{
		"Round": math.RoundToEven, "Tan": math.Tan, "Sinh": math.Sinh, "Cosh": math.Cosh,
		"Asin": math.Asin, "Acos": math.Acos, "Atan": math.Atan,
		"Asinh": math.Asinh, "Acosh": math.Acosh, "Atanh": math.Atanh,
	} {
		unaryFloat[op] = func(x float32) float32 { return float32(f(float64(x))) }
	}
	for _, op := range []string{"Round", "Tan", "Sinh", "Cosh", "Asin", "Acos", "Atan", "Asinh", "Acosh", "Atanh"} {
		register(op, buildUnaryFloat)
	}
	register("Celu", buildUnaryAttr)
	register("ThresholdedRelu", buildUnaryAttr)
	register("Shrink", buildUnaryAttr)
	register("IsNaN", buildIsNaNInf)
	register("IsInf", buildIsNaNInf)
	register("ArgMax", buildArg)
	register("ArgMin", buildArg)
	register("Hardmax", buildHardmax)
	register("GatherElements", buildGatherElements)
	register("Trilu", buildTrilu)
	register("DepthToSpace", buildDepthSpace)
	register("SpaceToDepth", buildDepthSpace)
	register("Mod", buildMod)
}

// buildUnaryAttr: elementwise float functions with attributes.
func buildUnaryAttr(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(1, 1); err != nil {
		return nil, err
	}
	if err := b.needType(0, Float32); err != nil {
		return nil, err
	}
	b.setOut(Float32)
	var f func(float32) float32
	switch b.op {
	case "Celu":
		alpha := float64(b.float("alpha", 1))
		f = func(x float32) float32 {
			v := float64(x)
			return float32(max(0, v) + min(0, alpha*math.Expm1(v/alpha)))
		}
	case "ThresholdedRelu":
		alpha := b.float("alpha", 1)
		f = func(x float32) float32 {
			if x > alpha {
				return x
			}
			return 0
		}
	case "Shrink":
		lambd, bias := b.float("lambd", 0.5), b.float("bias", 0)
		f = func(x float32) float32 {
			switch {
			case x < -lambd:
				return x + bias
			case x > lambd:
				return x - bias
			}
			return 0
		}
	}
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		out := &Tensor{Shape: x.Shape, DType: Float32, F: c.outFor(in, 0)}
		for i, v := range x.F {
			out.F[i] = f(v)
		}
		return []*Tensor{out}, nil
	}, nil
}

func buildIsNaNInf(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(1, 1); err != nil {
		return nil, err
	}
	if err := b.needType(0, Float32); err != nil {
		return nil, err
	}
	b.setOut(Bool)
	nan := b.op == "IsNaN"
	neg, pos := b.int("detect_negative", 1) != 0, b.int("detect_positive", 1) != 0
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		out := NewBool(in[0].Shape, nil)
		for i, v := range in[0].F {
			f := float64(v)
			if nan {
				out.B[i] = math.IsNaN(f)
			} else {
				out.B[i] = (neg && math.IsInf(f, -1)) || (pos && math.IsInf(f, 1))
			}
		}
		return []*Tensor{out}, nil
	}, nil
}

// buildArg: ArgMax and ArgMin along one axis, first (or last) extreme index.
func buildArg(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(1, 1); err != nil {
		return nil, err
	}
	if err := b.needType(0, Float32, Int64); err != nil {
		return nil, err
	}
	b.setOut(Int64)
	axis, keep := b.int("axis", 0), b.int("keepdims", 1) != 0
	last := b.int("select_last_index", 0) != 0
	isMax := b.op == "ArgMax"
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		ax, err := normAxis(axis, len(x.Shape))
		if err != nil {
			return nil, err
		}
		outer, dim, inner := numel(x.Shape[:ax]), x.Shape[ax], numel(x.Shape[ax+1:])
		if dim == 0 {
			return nil, fmt.Errorf("empty axis")
		}
		shape := append([]int{}, x.Shape[:ax]...)
		if keep {
			shape = append(shape, 1)
		}
		shape = append(shape, x.Shape[ax+1:]...)
		y := NewInt64(shape, nil)
		val := func(i int) float64 {
			if x.DType == Int64 {
				return float64(x.I[i])
			}
			return float64(x.F[i])
		}
		for o := 0; o < outer; o++ {
			for i := 0; i < inner; i++ {
				best, bv := 0, val(o*dim*inner+i)
				for j := 1; j < dim; j++ {
					v := val((o*dim+j)*inner + i)
					better := v > bv
					if !isMax {
						better = v < bv
					}
					if better || (last && v == bv) {
						best, bv = j, v
					}
				}
				y.I[o*inner+i] = int64(best)
			}
		}
		return []*Tensor{y}, nil
	}, nil
}

// buildHardmax: one-hot of the first maximum; 2-D coercion before opset 13,
// as in Softmax.
func buildHardmax(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(1, 1); err != nil {
		return nil, err
	}
	if err := b.needType(0, Float32); err != nil {
		return nil, err
	}
	b.setOut(Float32)
	old := b.opset < 13
	axis := b.int("axis", map[bool]int{true: 1, false: -1}[old])
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		ax, err := normAxis(axis, len(x.Shape))
		if err != nil {
			return nil, err
		}
		outer, dim, inner := numel(x.Shape[:ax]), x.Shape[ax], numel(x.Shape[ax+1:])
		if old {
			dim, inner = numel(x.Shape[ax:]), 1
		}
		y := NewFloat32(x.Shape, nil)
		for o := 0; o < outer; o++ {
			for i := 0; i < inner; i++ {
				best := 0
				for j := 1; j < dim; j++ {
					if x.F[(o*dim+j)*inner+i] > x.F[(o*dim+best)*inner+i] {
						best = j
					}
				}
				if dim > 0 {
					y.F[(o*dim+best)*inner+i] = 1
				}
			}
		}
		return []*Tensor{y}, nil
	}, nil
}

func buildGatherElements(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(2, 2); err != nil {
		return nil, err
	}
	if err := b.needType(1, Int64); err != nil {
		return nil, err
	}
	anyType(b)
	axis := b.int("axis", 0)
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		x, idx := in[0], in[1]
		r := len(x.Shape)
		ax, err := normAxis(axis, r)
		if err != nil {
			return nil, err
		}
		if len(idx.Shape) != r {
			return nil, fmt.Errorf("indices of rank %d for data of rank %d", len(idx.Shape), r)
		}
		y := alloc(c, x.DType, append([]int{}, idx.Shape...))
		xs := stridesOf(x.Shape)
		pos := make([]int, r)
		for i, v := range idx.I {
			j := int(v)
			if j < 0 {
				j += x.Shape[ax]
			}
			if j < 0 || j >= x.Shape[ax] {
				return nil, fmt.Errorf("index %d out of range for dimension %d", v, x.Shape[ax])
			}
			off := 0
			for d := 0; d < r; d++ {
				p := pos[d]
				if d == ax {
					p = j
				} else if p >= x.Shape[d] {
					return nil, fmt.Errorf("indices shape %v exceeds data shape %v", idx.Shape, x.Shape)
				}
				off += p * xs[d]
			}
			switch x.DType {
			case Float32:
				y.F[i] = x.F[off]
			case Int64:
				y.I[i] = x.I[off]
			case Bool:
				y.B[i] = x.B[off]
			}
			for d := r - 1; d >= 0; d-- {
				if pos[d]++; pos[d] < idx.Shape[d] {
					break
				}
				pos[d] = 0
			}
		}
		return []*Tensor{y}, nil
	}, nil
}

// buildTrilu keeps the upper (or lower) triangle of the last two dims, from
// diagonal k.
func buildTrilu(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(1, 2); err != nil {
		return nil, err
	}
	if err := b.needType(1, Int64); err != nil {
		return nil, err
	}
	anyType(b)
	upper := b.int("upper", 1) != 0
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		if len(x.Shape) < 2 {
			return nil, fmt.Errorf("input of rank %d", len(x.Shape))
		}
		k := 0
		if len(in) > 1 && in[1] != nil {
			if len(in[1].I) != 1 {
				return nil, fmt.Errorf("k must be a scalar")
			}
			k = clampInt(in[1].I[0])
		}
		rows, cols := x.Shape[len(x.Shape)-2], x.Shape[len(x.Shape)-1]
		y := x.Clone()
		for i := 0; i < y.Len(); i++ {
			col := i % cols
			row := (i / cols) % rows
			keep := col-row >= k
			if !upper {
				keep = col-row <= k
			}
			if !keep {
				switch y.DType {
				case Float32:
					y.F[i] = 0
				case Int64:
					y.I[i] = 0
				case Bool:
					y.B[i] = false
				}
			}
		}
		return []*Tensor{y}, nil
	}, nil
}

// buildDepthSpace implements DepthToSpace (modes DCR and CRD) and
// SpaceToDepth on [N C H W] tensors, as reshape-transpose-reshape.
func buildDepthSpace(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(1, 1); err != nil {
		return nil, err
	}
	anyType(b)
	bs := b.int("blocksize", 0)
	if bs < 1 {
		return nil, fmt.Errorf("blocksize %d", bs)
	}
	mode := b.str("mode", "DCR")
	if mode != "DCR" && mode != "CRD" {
		return nil, b.unsupported("mode %q", mode)
	}
	toSpace := b.op == "DepthToSpace"
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		if len(x.Shape) != 4 {
			return nil, fmt.Errorf("input %v: want [N C H W]", x.Shape)
		}
		n, ch, h, w := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
		var tmp, perm, out []int
		switch {
		case toSpace && ch%(bs*bs) != 0:
			return nil, fmt.Errorf("channels %d not divisible by blocksize² %d", ch, bs*bs)
		case toSpace && mode == "DCR":
			tmp, perm = []int{n, bs, bs, ch / (bs * bs), h, w}, []int{0, 3, 4, 1, 5, 2}
			out = []int{n, ch / (bs * bs), h * bs, w * bs}
		case toSpace:
			tmp, perm = []int{n, ch / (bs * bs), bs, bs, h, w}, []int{0, 1, 4, 2, 5, 3}
			out = []int{n, ch / (bs * bs), h * bs, w * bs}
		case h%bs != 0 || w%bs != 0:
			return nil, fmt.Errorf("spatial %dx%d not divisible by blocksize %d", h, w, bs)
		default:
			tmp, perm = []int{n, ch, h / bs, bs, w / bs, bs}, []int{0, 3, 5, 1, 2, 4}
			out = []int{n, ch * bs * bs, h / bs, w / bs}
		}
		y := alloc(c, x.DType, out)
		switch x.DType {
		case Float32:
			transposeT(c.threads, y.F, x.F, tmp, perm)
		case Int64:
			transposeT(1, y.I, x.I, tmp, perm)
		case Bool:
			transposeT(1, y.B, x.B, tmp, perm)
		}
		return []*Tensor{y}, nil
	}, nil
}

// buildMod: fmod=1 is C's fmod (sign of the dividend), fmod=0 (integers
// only) takes the sign of the divisor, as Python's %.
func buildMod(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(2, 2); err != nil {
		return nil, err
	}
	if err := b.needType(0, Float32, Int64); err != nil {
		return nil, err
	}
	if err := b.sameTypes(0, 1); err != nil {
		return nil, err
	}
	fmod := b.int("fmod", 0) != 0
	if b.in[0] == Float32 && !fmod {
		return nil, fmt.Errorf("float Mod requires fmod=1")
	}
	b.setOut(b.in[0])
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		x, y := in[0], in[1]
		shape, err := binaryShape(x, y)
		if err != nil {
			return nil, err
		}
		if x.DType == Float32 {
			out := c.newF(shape)
			genericBinary(c, shape, x.F, x.Shape, y.F, y.Shape, out.F, func(a, b float32) float32 {
				return float32(math.Mod(float64(a), float64(b)))
			})
			return []*Tensor{out}, nil
		}
		out := NewInt64(shape, nil)
		genericBinary(c, shape, x.I, x.Shape, y.I, y.Shape, out.I, func(a, b int64) int64 {
			if b == 0 {
				return 0
			}
			r := a % b
			if !fmod && r != 0 && (r < 0) != (b < 0) {
				r += b
			}
			return r
		})
		return []*Tensor{out}, nil
	}, nil
}

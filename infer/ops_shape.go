package infer

import (
	"fmt"
	"math"
)

func init() {
	register("Identity", buildIdentity)
	register("Dropout", buildDropout)
	register("Reshape", buildReshape)
	register("Flatten", buildFlatten)
	register("Squeeze", buildSqueeze)
	register("Unsqueeze", buildUnsqueeze)
	register("Transpose", buildTranspose)
	register("Concat", buildConcat)
	register("Split", buildSplit)
	register("Slice", buildSlice)
	register("Gather", buildGather)
	register("Shape", buildShape)
	register("Size", buildSize)
	register("Expand", buildExpand)
	register("Pad", buildPad)
	register("Tile", buildTile)
	register("Constant", buildConstant)
	register("ConstantOfShape", buildConstantOfShape)
	register("Range", buildRange)
}

// alloc returns a tensor of the given type and shape; float32 contents are
// undefined, the others zeroed.
func alloc(c *runCtx, dt DType, shape []int) *Tensor {
	t := &Tensor{Shape: shape, DType: dt}
	n := numel(shape)
	switch dt {
	case Float32:
		t.F = c.floats(n)
	case Int64:
		t.I = make([]int64, n)
	case Bool:
		t.B = make([]bool, n)
	}
	return t
}

// view returns a tensor sharing x's data under another shape.
func view(x *Tensor, shape []int) *Tensor {
	return &Tensor{Shape: shape, DType: x.DType, F: x.F, I: x.I, B: x.B}
}

func anyType(b *nodeCtx) {
	b.setOut(b.in[0])
}

func buildIdentity(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(1, 1); err != nil {
		return nil, err
	}
	anyType(b)
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		return []*Tensor{view(in[0], append([]int{}, in[0].Shape...))}, nil
	}, nil
}

// buildDropout: inference is the identity; the optional mask is all true.
// Training mode (a true training_mode input from opset 12) with a nonzero
// ratio would be random and is refused.
func buildDropout(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(1, 3); err != nil {
		return nil, err
	}
	if err := b.needType(0, Float32); err != nil {
		return nil, err
	}
	if err := b.needType(1, Float32); err != nil {
		return nil, err
	}
	if err := b.needType(2, Bool); err != nil {
		return nil, err
	}
	b.setOut(Float32)
	if b.nOut > 1 {
		b.out[1] = Bool
	}
	if b.opset < 7 && b.int("is_test", 0) == 0 && b.has("is_test") {
		return nil, b.unsupported("training mode (is_test=0)")
	}
	if len(b.consts) > 2 && b.consts[2] != nil && len(b.consts[2].B) == 1 && b.consts[2].B[0] {
		if len(b.consts) < 2 || b.consts[1] == nil || len(b.consts[1].F) != 1 || b.consts[1].F[0] != 0 {
			return nil, b.unsupported("training mode (random dropout)")
		}
	}
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		if len(in) > 2 && in[2] != nil && len(in[2].B) == 1 && in[2].B[0] {
			ratio := float32(0.5)
			if in[1] != nil && len(in[1].F) == 1 {
				ratio = in[1].F[0]
			}
			if ratio != 0 {
				return nil, fmt.Errorf("training-mode (random) dropout is not supported")
			}
		}
		mask := NewBool(x.Shape, nil)
		for i := range mask.B {
			mask.B[i] = true
		}
		return []*Tensor{view(x, append([]int{}, x.Shape...)), mask}, nil
	}, nil
}

func buildReshape(b *nodeCtx) (kernel, error) {
	if b.opset < 5 {
		return nil, b.unsupported("opset %d form (shape attribute)", b.opset)
	}
	if err := b.needInputs(2, 2); err != nil {
		return nil, err
	}
	if err := b.needType(1, Int64); err != nil {
		return nil, err
	}
	anyType(b)
	allowZero := b.int("allowzero", 0) != 0
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		spec, err := intsOf(in[1])
		if err != nil {
			return nil, err
		}
		shape, err := reshapeDims(x.Shape, spec, allowZero)
		if err != nil {
			return nil, err
		}
		return []*Tensor{view(x, shape)}, nil
	}, nil
}

// reshapeDims resolves a Reshape shape: 0 copies the input dimension (unless
// allowZero), -1 is inferred.
func reshapeDims(in, spec []int, allowZero bool) ([]int, error) {
	shape := make([]int, len(spec))
	infer := -1
	known := 1
	for i, d := range spec {
		switch {
		case d == 0 && !allowZero:
			if i >= len(in) {
				return nil, fmt.Errorf("shape %v: 0 at index %d beyond input rank %d", spec, i, len(in))
			}
			shape[i] = in[i]
		case d == -1:
			if infer >= 0 {
				return nil, fmt.Errorf("shape %v has two -1", spec)
			}
			infer = i
			continue
		case d < 0:
			return nil, fmt.Errorf("shape %v: invalid dimension %d", spec, d)
		default:
			shape[i] = d
		}
		known *= shape[i]
	}
	n := numel(in)
	if infer >= 0 {
		if known == 0 || n%known != 0 {
			return nil, fmt.Errorf("cannot reshape %v into %v", in, spec)
		}
		shape[infer] = n / known
	} else if known != n {
		return nil, fmt.Errorf("cannot reshape %v (%d elements) into %v", in, n, shape)
	}
	return shape, nil
}

func buildFlatten(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(1, 1); err != nil {
		return nil, err
	}
	anyType(b)
	axis := b.int("axis", 1)
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		r := len(x.Shape)
		a := axis
		if a < 0 {
			a += r
		}
		if a < 0 || a > r {
			return nil, fmt.Errorf("axis %d out of range for rank %d", axis, r)
		}
		return []*Tensor{view(x, []int{numel(x.Shape[:a]), numel(x.Shape[a:])})}, nil
	}, nil
}

// axesArg returns a node's axes from its attribute (before opset
// attrUntil) or its input idx; nil when absent.
func axesArg(b *nodeCtx, attrUntil, idx int, in []*Tensor) ([]int, bool, error) {
	if b.opset < attrUntil {
		if !b.has("axes") {
			return nil, false, nil
		}
		return b.ints("axes", nil), true, nil
	}
	if idx >= len(in) || in[idx] == nil {
		return nil, false, nil
	}
	v, err := intsOf(in[idx])
	return v, true, err
}

func buildSqueeze(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(1, 2); err != nil {
		return nil, err
	}
	if err := b.needType(1, Int64); err != nil {
		return nil, err
	}
	anyType(b)
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		axes, given, err := axesArg(b, 13, 1, in)
		if err != nil {
			return nil, err
		}
		drop := make([]bool, len(x.Shape))
		if !given {
			for i, d := range x.Shape {
				drop[i] = d == 1
			}
		}
		for _, a := range axes {
			ax, err := normAxis(a, len(x.Shape))
			if err != nil {
				return nil, err
			}
			if x.Shape[ax] != 1 {
				return nil, fmt.Errorf("cannot squeeze axis %d of shape %v", a, x.Shape)
			}
			drop[ax] = true
		}
		shape := []int{}
		for i, d := range x.Shape {
			if !drop[i] {
				shape = append(shape, d)
			}
		}
		return []*Tensor{view(x, shape)}, nil
	}, nil
}

func buildUnsqueeze(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(1, 2); err != nil {
		return nil, err
	}
	if err := b.needType(1, Int64); err != nil {
		return nil, err
	}
	anyType(b)
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		axes, given, err := axesArg(b, 13, 1, in)
		if err != nil {
			return nil, err
		}
		if !given {
			return nil, fmt.Errorf("axes are required")
		}
		r := len(x.Shape) + len(axes)
		ins := make([]bool, r)
		for _, a := range axes {
			ax, err := normAxis(a, r)
			if err != nil {
				return nil, err
			}
			if ins[ax] {
				return nil, fmt.Errorf("repeated axis %d", a)
			}
			ins[ax] = true
		}
		shape := make([]int, 0, r)
		j := 0
		for i := 0; i < r; i++ {
			if ins[i] {
				shape = append(shape, 1)
			} else {
				shape = append(shape, x.Shape[j])
				j++
			}
		}
		return []*Tensor{view(x, shape)}, nil
	}, nil
}

func buildTranspose(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(1, 1); err != nil {
		return nil, err
	}
	anyType(b)
	perm := b.ints("perm", nil)
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		r := len(x.Shape)
		p := perm
		if p == nil {
			p = make([]int, r)
			for i := range p {
				p[i] = r - 1 - i
			}
		}
		if len(p) != r {
			return nil, fmt.Errorf("perm %v for rank %d", p, r)
		}
		seen := make([]bool, r)
		shape := make([]int, r)
		for i, a := range p {
			if a < 0 || a >= r || seen[a] {
				return nil, fmt.Errorf("invalid perm %v", p)
			}
			seen[a] = true
			shape[i] = x.Shape[a]
		}
		y := alloc(c, x.DType, shape)
		switch x.DType {
		case Float32:
			transposeT(c.threads, y.F, x.F, x.Shape, p)
		case Int64:
			transposeT(1, y.I, x.I, x.Shape, p)
		case Bool:
			transposeT(1, y.B, x.B, x.Shape, p)
		}
		return []*Tensor{y}, nil
	}, nil
}

// transposeT writes src (shape) permuted by perm into dst.
func transposeT[T any](threads int, dst, src []T, shape, perm []int) {
	if len(dst) == 0 {
		return
	}
	st := stridesOf(shape)
	// Output dims with their input strides, coalescing runs that stay
	// contiguous in the input and dropping size-1 dims.
	var dims, strides []int
	for _, a := range perm {
		d, s := shape[a], st[a]
		if d == 1 {
			continue
		}
		if n := len(dims); n > 0 && strides[n-1] == s*d {
			dims[n-1] *= d
			strides[n-1] = s
			continue
		}
		dims = append(dims, d)
		strides = append(strides, s)
	}
	if len(dims) == 0 {
		dims, strides = []int{1}, []int{1}
	}
	nd := len(dims)
	inner, is := dims[nd-1], strides[nd-1]
	outer := len(dst) / inner
	parallelFor(threads, outer, max(1, 16384/inner), func(lo, hi int) {
		idx := make([]int, nd-1)
		r := lo
		off := 0
		for d := nd - 2; d >= 0; d-- {
			idx[d] = r % dims[d]
			r /= dims[d]
			off += idx[d] * strides[d]
		}
		for run := lo; run < hi; run++ {
			out := dst[run*inner : (run+1)*inner]
			if is == 1 {
				copy(out, src[off:off+inner])
			} else {
				o := off
				for i := range out {
					out[i] = src[o]
					o += is
				}
			}
			for d := nd - 2; d >= 0; d-- {
				idx[d]++
				off += strides[d]
				if idx[d] < dims[d] {
					break
				}
				off -= strides[d] * dims[d]
				idx[d] = 0
			}
		}
	})
}

func buildConcat(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(1, math.MaxInt); err != nil {
		return nil, err
	}
	idx := make([]int, b.nIn())
	for i := range idx {
		idx[i] = i
	}
	if err := b.sameTypes(idx...); err != nil {
		return nil, err
	}
	anyType(b)
	if !b.has("axis") {
		return nil, fmt.Errorf("axis is required")
	}
	axis := b.int("axis", 0)
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		r := len(in[0].Shape)
		ax, err := normAxis(axis, r)
		if err != nil {
			return nil, err
		}
		shape := append([]int{}, in[0].Shape...)
		shape[ax] = 0
		for _, t := range in {
			if len(t.Shape) != r {
				return nil, fmt.Errorf("inputs of different ranks")
			}
			for d := range shape {
				if d != ax && t.Shape[d] != shape[d] {
					return nil, fmt.Errorf("input shapes %v and %v differ off axis %d", in[0].Shape, t.Shape, ax)
				}
			}
			shape[ax] += t.Shape[ax]
		}
		y := alloc(c, in[0].DType, shape)
		outer := numel(shape[:ax])
		blocks := make([]int, len(in))
		for i, t := range in {
			blocks[i] = numel(t.Shape[ax:])
		}
		row := numel(shape[ax:])
		switch y.DType {
		case Float32:
			concatT(c.threads, y.F, in, func(t *Tensor) []float32 { return t.F }, outer, row, blocks)
		case Int64:
			concatT(1, y.I, in, func(t *Tensor) []int64 { return t.I }, outer, row, blocks)
		case Bool:
			concatT(1, y.B, in, func(t *Tensor) []bool { return t.B }, outer, row, blocks)
		}
		return []*Tensor{y}, nil
	}, nil
}

func concatT[T any](threads int, dst []T, in []*Tensor, data func(*Tensor) []T, outer, row int, blocks []int) {
	parallelFor(threads, outer, max(1, 16384/max(row, 1)), func(lo, hi int) {
		for o := lo; o < hi; o++ {
			off := o * row
			for i, t := range in {
				bs := blocks[i]
				copy(dst[off:off+bs], data(t)[o*bs:(o+1)*bs])
				off += bs
			}
		}
	})
}

func buildSplit(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(1, 2); err != nil {
		return nil, err
	}
	if err := b.needType(1, Int64); err != nil {
		return nil, err
	}
	anyType(b)
	axis := b.int("axis", 0)
	attrSplit := b.ints("split", nil)
	numOutputs := b.int("num_outputs", 0)
	nOut := b.nOut
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		ax, err := normAxis(axis, len(x.Shape))
		if err != nil {
			return nil, err
		}
		dim := x.Shape[ax]
		var split []int
		switch {
		case b.opset < 13:
			split = attrSplit
		case len(in) > 1 && in[1] != nil:
			if split, err = intsOf(in[1]); err != nil {
				return nil, err
			}
		}
		if split == nil {
			parts := nOut
			if numOutputs > 0 {
				parts = numOutputs
			}
			size := (dim + parts - 1) / parts
			for i := 0; i < parts; i++ {
				split = append(split, max(0, min(size, dim-i*size)))
			}
		}
		total := 0
		for _, s := range split {
			if s < 0 {
				return nil, fmt.Errorf("negative split %v", split)
			}
			total += s
		}
		if total != dim || len(split) != nOut {
			return nil, fmt.Errorf("split %v of dimension %d into %d outputs", split, dim, nOut)
		}
		outer, inner := numel(x.Shape[:ax]), numel(x.Shape[ax+1:])
		outs := make([]*Tensor, nOut)
		start := 0
		for i, s := range split {
			shape := append([]int{}, x.Shape...)
			shape[ax] = s
			y := alloc(c, x.DType, shape)
			bs := s * inner
			for o := 0; o < outer; o++ {
				src := o*dim*inner + start*inner
				switch x.DType {
				case Float32:
					copy(y.F[o*bs:(o+1)*bs], x.F[src:src+bs])
				case Int64:
					copy(y.I[o*bs:(o+1)*bs], x.I[src:src+bs])
				case Bool:
					copy(y.B[o*bs:(o+1)*bs], x.B[src:src+bs])
				}
			}
			start += s
			outs[i] = y
		}
		return outs, nil
	}, nil
}

// gatherMaps fills dst (shape out) from src (shape in): along each dim d,
// output index o reads input index maps[d][o], or fill where that is -1.
func gatherMaps[T any](dst, src []T, in, out []int, maps [][]int, fill T) {
	if len(dst) == 0 {
		return
	}
	r := len(out)
	if r == 0 {
		dst[0] = src[0]
		return
	}
	st := stridesOf(in)
	inner := out[r-1]
	last := maps[r-1]
	idx := make([]int, r-1)
	for run := 0; run < len(dst)/inner; run++ {
		base, valid := 0, true
		for d := 0; d < r-1; d++ {
			m := maps[d][idx[d]]
			if m < 0 {
				valid = false
				break
			}
			base += m * st[d]
		}
		seg := dst[run*inner : (run+1)*inner]
		if !valid {
			for i := range seg {
				seg[i] = fill
			}
		} else {
			for i, m := range last {
				if m < 0 {
					seg[i] = fill
				} else {
					seg[i] = src[base+m]
				}
			}
		}
		for d := r - 2; d >= 0; d-- {
			if idx[d]++; idx[d] < out[d] {
				break
			}
			idx[d] = 0
		}
	}
}

// mapped builds the output of gatherMaps for any dtype; fill is the value
// for unmapped positions (a float64 converted to the dtype).
func mapped(c *runCtx, x *Tensor, shape []int, maps [][]int, fill float64) *Tensor {
	y := alloc(c, x.DType, shape)
	switch x.DType {
	case Float32:
		gatherMaps(y.F, x.F, x.Shape, shape, maps, float32(fill))
	case Int64:
		gatherMaps(y.I, x.I, x.Shape, shape, maps, int64(fill))
	case Bool:
		gatherMaps(y.B, x.B, x.Shape, shape, maps, fill != 0)
	}
	return y
}

func buildSlice(b *nodeCtx) (kernel, error) {
	old := b.opset < 10
	if old {
		if err := b.needInputs(1, 1); err != nil {
			return nil, err
		}
	} else {
		if err := b.needInputs(3, 5); err != nil {
			return nil, err
		}
		for i := 1; i < 5; i++ {
			if err := b.needType(i, Int64); err != nil {
				return nil, err
			}
		}
	}
	anyType(b)
	aStarts, aEnds, aAxes := b.ints("starts", nil), b.ints("ends", nil), b.ints("axes", nil)
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		var starts, ends, axes, steps []int
		var err error
		if old {
			starts, ends, axes = aStarts, aEnds, aAxes
		} else {
			if starts, err = intsOf(in[1]); err != nil {
				return nil, err
			}
			if ends, err = intsOf(in[2]); err != nil {
				return nil, err
			}
			if len(in) > 3 && in[3] != nil {
				if axes, err = intsOf(in[3]); err != nil {
					return nil, err
				}
			}
			if len(in) > 4 && in[4] != nil {
				if steps, err = intsOf(in[4]); err != nil {
					return nil, err
				}
			}
		}
		if len(starts) != len(ends) || (axes != nil && len(axes) != len(starts)) || (steps != nil && len(steps) != len(starts)) {
			return nil, fmt.Errorf("starts, ends, axes and steps of different lengths")
		}
		r := len(x.Shape)
		shape := append([]int{}, x.Shape...)
		maps := make([][]int, r)
		done := make([]bool, r)
		for i := range starts {
			ax := i
			if axes != nil {
				if ax, err = normAxis(axes[i], r); err != nil {
					return nil, err
				}
			}
			if done[ax] {
				return nil, fmt.Errorf("repeated axis %d", ax)
			}
			done[ax] = true
			step := 1
			if steps != nil {
				step = steps[i]
			}
			if step == 0 {
				return nil, fmt.Errorf("step 0")
			}
			dim := x.Shape[ax]
			s, e := starts[i], ends[i]
			if s < 0 {
				s += dim
			}
			if e < 0 {
				e += dim
			}
			var n int
			if step > 0 {
				s, e = min(max(s, 0), dim), min(max(e, 0), dim)
				n = max(0, (e-s+step-1)/step)
			} else {
				s, e = min(max(s, -1), dim-1), min(max(e, -1), dim-1)
				n = max(0, (s-e-step-1)/(-step))
			}
			shape[ax] = n
			maps[ax] = make([]int, n)
			for o := range maps[ax] {
				maps[ax][o] = s + o*step
			}
		}
		for d := range maps {
			if maps[d] == nil {
				maps[d] = identityMap(x.Shape[d])
			}
		}
		return []*Tensor{mapped(c, x, shape, maps, 0)}, nil
	}, nil
}

func identityMap(n int) []int {
	m := make([]int, n)
	for i := range m {
		m[i] = i
	}
	return m
}

func buildGather(b *nodeCtx) (kernel, error) {
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
		ax, err := normAxis(axis, len(x.Shape))
		if err != nil {
			return nil, err
		}
		dim := x.Shape[ax]
		shape := append(append(append([]int{}, x.Shape[:ax]...), idx.Shape...), x.Shape[ax+1:]...)
		outer, inner := numel(x.Shape[:ax]), numel(x.Shape[ax+1:])
		ids := make([]int, len(idx.I))
		for i, v := range idx.I {
			j := int(v)
			if j < 0 {
				j += dim
			}
			if j < 0 || j >= dim {
				return nil, fmt.Errorf("index %d out of range for dimension %d", v, dim)
			}
			ids[i] = j
		}
		y := alloc(c, x.DType, shape)
		for o := 0; o < outer; o++ {
			for k, j := range ids {
				dst := (o*len(ids) + k) * inner
				src := (o*dim + j) * inner
				switch x.DType {
				case Float32:
					copy(y.F[dst:dst+inner], x.F[src:src+inner])
				case Int64:
					copy(y.I[dst:dst+inner], x.I[src:src+inner])
				case Bool:
					copy(y.B[dst:dst+inner], x.B[src:src+inner])
				}
			}
		}
		return []*Tensor{y}, nil
	}, nil
}

func buildShape(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(1, 1); err != nil {
		return nil, err
	}
	b.setOut(Int64)
	start, hasEnd := b.int("start", 0), b.has("end")
	end := b.int("end", 0)
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		r := len(in[0].Shape)
		s, e := start, r
		if hasEnd {
			e = end
		}
		if s < 0 {
			s += r
		}
		if e < 0 {
			e += r
		}
		s, e = min(max(s, 0), r), min(max(e, 0), r)
		var v []int64
		for i := s; i < e; i++ {
			v = append(v, int64(in[0].Shape[i]))
		}
		return []*Tensor{NewInt64([]int{len(v)}, append([]int64{}, v...))}, nil
	}, nil
}

func buildSize(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(1, 1); err != nil {
		return nil, err
	}
	b.setOut(Int64)
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		return []*Tensor{NewInt64(nil, []int64{int64(numel(in[0].Shape))})}, nil
	}, nil
}

func buildExpand(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(2, 2); err != nil {
		return nil, err
	}
	if err := b.needType(1, Int64); err != nil {
		return nil, err
	}
	anyType(b)
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		spec, err := intsOf(in[1])
		if err != nil {
			return nil, err
		}
		shape, err := broadcastShape(x.Shape, spec)
		if err != nil {
			return nil, err
		}
		return []*Tensor{broadcastTo(c, x, shape)}, nil
	}, nil
}

// broadcastTo returns x broadcast to shape (a new tensor).
func broadcastTo(c *runCtx, x *Tensor, shape []int) *Tensor {
	y := alloc(c, x.DType, shape)
	switch x.DType {
	case Float32:
		broadcastInto(y.F, shape, x.F, x.Shape)
	default:
		maps := make([][]int, len(shape))
		xs := make([]int, len(shape)) // x's shape left-padded with 1s
		off := len(shape) - len(x.Shape)
		for d := range shape {
			xs[d] = 1
			if d >= off {
				xs[d] = x.Shape[d-off]
			}
			maps[d] = make([]int, shape[d])
			if xs[d] != 1 {
				copy(maps[d], identityMap(shape[d]))
			}
		}
		xv := view(x, xs)
		z := mapped(c, xv, shape, maps, 0)
		y.I, y.B = z.I, z.B
	}
	return y
}

// buildPad: modes constant, reflect, edge and wrap; negative pads crop.
func buildPad(b *nodeCtx) (kernel, error) {
	old := b.opset < 11
	if old {
		if err := b.needInputs(1, 1); err != nil {
			return nil, err
		}
	} else {
		if err := b.needInputs(2, 4); err != nil {
			return nil, err
		}
		if err := b.needType(1, Int64); err != nil {
			return nil, err
		}
		if err := b.needType(3, Int64); err != nil {
			return nil, err
		}
		if err := b.sameTypes(0, 2); err != nil {
			return nil, err
		}
	}
	anyType(b)
	mode := b.str("mode", "constant")
	switch mode {
	case "constant", "reflect", "edge":
	case "wrap":
		if b.opset < 19 {
			return nil, fmt.Errorf("mode wrap needs opset 19")
		}
	default:
		return nil, b.unsupported("mode %q", mode)
	}
	attrPads := b.ints("pads", nil)
	if attrPads == nil {
		attrPads = b.ints("paddings", nil) // opset 1
	}
	attrValue := float64(b.float("value", 0))
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		r := len(x.Shape)
		pads, value := attrPads, attrValue
		var axes []int
		if !old {
			var err error
			if pads, err = intsOf(in[1]); err != nil {
				return nil, err
			}
			if len(in) > 2 && in[2] != nil && in[2].Len() > 0 {
				switch v := in[2]; v.DType {
				case Float32:
					value = float64(v.F[0])
				case Int64:
					value = float64(v.I[0])
				case Bool:
					if v.B[0] {
						value = 1
					}
				}
			}
			if len(in) > 3 && in[3] != nil {
				if axes, err = intsOf(in[3]); err != nil {
					return nil, err
				}
			}
		}
		if axes == nil {
			axes = identityMap(r)
		}
		if len(pads) != 2*len(axes) {
			return nil, fmt.Errorf("pads %v for %d axes", pads, len(axes))
		}
		pb, pe := make([]int, r), make([]int, r)
		for i, a := range axes {
			ax, err := normAxis(a, r)
			if err != nil {
				return nil, err
			}
			pb[ax], pe[ax] = pads[i], pads[len(axes)+i]
		}
		shape := make([]int, r)
		maps := make([][]int, r)
		for d := 0; d < r; d++ {
			n := x.Shape[d]
			shape[d] = n + pb[d] + pe[d]
			if shape[d] < 0 {
				return nil, fmt.Errorf("pads %v crop more than dimension %d", pads, n)
			}
			maps[d] = make([]int, shape[d])
			for o := range maps[d] {
				i := o - pb[d]
				if i < 0 || i >= n {
					switch {
					case n == 0 && mode != "constant":
						return nil, fmt.Errorf("cannot %s-pad an empty dimension", mode)
					case mode == "constant":
						i = -1
					case mode == "edge":
						i = min(max(i, 0), n-1)
					case mode == "wrap":
						i = ((i % n) + n) % n
					case mode == "reflect":
						if n == 1 {
							i = 0
							break
						}
						period := 2 * (n - 1)
						i = ((i % period) + period) % period
						if i >= n {
							i = period - i
						}
					}
				}
				maps[d][o] = i
			}
		}
		return []*Tensor{mapped(c, x, shape, maps, value)}, nil
	}, nil
}

func buildTile(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(2, 2); err != nil {
		return nil, err
	}
	if err := b.needType(1, Int64); err != nil {
		return nil, err
	}
	anyType(b)
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		reps, err := intsOf(in[1])
		if err != nil {
			return nil, err
		}
		if len(reps) != len(x.Shape) {
			return nil, fmt.Errorf("repeats %v for rank %d", reps, len(x.Shape))
		}
		shape := make([]int, len(reps))
		maps := make([][]int, len(reps))
		for d, rp := range reps {
			if rp < 0 {
				return nil, fmt.Errorf("negative repeat %d", rp)
			}
			shape[d] = x.Shape[d] * rp
			maps[d] = make([]int, shape[d])
			for o := range maps[d] {
				maps[d][o] = o % x.Shape[d]
			}
		}
		return []*Tensor{mapped(c, x, shape, maps, 0)}, nil
	}, nil
}

func buildConstant(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(0, 0); err != nil {
		return nil, err
	}
	var t *Tensor
	for _, a := range b.proto.GetAttribute() {
		switch a.GetName() {
		case "value":
			var err error
			if b.widen {
				t, err = widenedTensor(nil, a.GetT())
			} else {
				t, err = TensorFromProto(nil, a.GetT())
			}
			if err != nil {
				return nil, err
			}
		case "value_float":
			t = NewFloat32(nil, []float32{a.GetF()})
		case "value_floats":
			t = NewFloat32([]int{len(a.GetFloats())}, append([]float32{}, a.GetFloats()...))
		case "value_int":
			t = NewInt64(nil, []int64{a.GetI()})
		case "value_ints":
			t = NewInt64([]int{len(a.GetInts())}, append([]int64{}, a.GetInts()...))
		default:
			return nil, b.unsupported("attribute %s", a.GetName())
		}
	}
	if t == nil {
		return nil, fmt.Errorf("no value")
	}
	b.setOut(t.DType)
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		return []*Tensor{t}, nil
	}, nil
}

func buildConstantOfShape(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(1, 1); err != nil {
		return nil, err
	}
	if err := b.needType(0, Int64); err != nil {
		return nil, err
	}
	val := NewFloat32(nil, []float32{0})
	if a := b.attr("value"); a != nil {
		var err error
		if val, err = TensorFromProto(nil, a.GetT()); err != nil {
			return nil, err
		}
		if val.Len() != 1 {
			return nil, fmt.Errorf("value must hold one element")
		}
	}
	b.setOut(val.DType)
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		shape, err := intsOf(in[0])
		if err != nil {
			return nil, err
		}
		for _, d := range shape {
			if d < 0 {
				return nil, fmt.Errorf("negative dimension in %v", shape)
			}
		}
		y := alloc(c, val.DType, shape)
		switch val.DType {
		case Float32:
			for i := range y.F {
				y.F[i] = val.F[0]
			}
		case Int64:
			for i := range y.I {
				y.I[i] = val.I[0]
			}
		case Bool:
			for i := range y.B {
				y.B[i] = val.B[0]
			}
		}
		return []*Tensor{y}, nil
	}, nil
}

func buildRange(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(3, 3); err != nil {
		return nil, err
	}
	if err := b.needType(0, Float32, Int64); err != nil {
		return nil, err
	}
	if err := b.sameTypes(0, 1, 2); err != nil {
		return nil, err
	}
	anyType(b)
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		for _, t := range in {
			if t.Len() != 1 {
				return nil, fmt.Errorf("start, limit and delta must be scalars")
			}
		}
		if in[0].DType == Int64 {
			s, l, d := in[0].I[0], in[1].I[0], in[2].I[0]
			if d == 0 {
				return nil, fmt.Errorf("delta 0")
			}
			n := max(0, int((l-s+d-sign64(d))/d))
			y := NewInt64([]int{n}, nil)
			for i := range y.I {
				y.I[i] = s + int64(i)*d
			}
			return []*Tensor{y}, nil
		}
		s, l, d := in[0].F[0], in[1].F[0], in[2].F[0]
		if d == 0 {
			return nil, fmt.Errorf("delta 0")
		}
		n := max(0, int(math.Ceil(float64((l-s)/d))))
		y := NewFloat32([]int{n}, nil)
		for i := range y.F {
			y.F[i] = s + float32(i)*d
		}
		return []*Tensor{y}, nil
	}, nil
}

func sign64(v int64) int64 {
	if v < 0 {
		return -1
	}
	return 1
}

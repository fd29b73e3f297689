package infer

import (
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/onnx-rebasin/onnx-rebasin/simd"
)

func init() {
	register("Conv", buildConv)
	register("ConvTranspose", buildConvTranspose)
	register("MaxPool", buildPool)
	register("AveragePool", buildPool)
	register("GlobalAveragePool", buildGlobalPool)
	register("GlobalMaxPool", buildGlobalPool)
}

// Spatial operators work on 1 to 3 spatial dimensions; fewer than three are
// handled as three with leading size-1 dimensions (kernel 1, stride 1, no
// padding), so one implementation serves all.

// window holds the geometry of a convolution or pooling along the (padded to
// three) spatial dimensions.
type window struct {
	in, out     [3]int
	k, s, d     [3]int
	padB, padE  [3]int
	rank        int // actual number of spatial dims
	outputShape []int
}

// spatialAttrs reads kernel_shape, strides, dilations and pads (not yet
// resolved against auto_pad) for rank spatial dims.
type spatialAttrs struct {
	kernel, strides, dilations, pads []int
	autoPad                          string
	ceil                             bool
}

func readSpatial(b *nodeCtx, withDilations bool) (*spatialAttrs, error) {
	a := &spatialAttrs{
		kernel:    b.ints("kernel_shape", nil),
		strides:   b.ints("strides", nil),
		dilations: b.ints("dilations", nil),
		pads:      b.ints("pads", nil),
		autoPad:   b.str("auto_pad", "NOTSET"),
		ceil:      b.int("ceil_mode", 0) != 0,
	}
	if !withDilations && a.dilations != nil {
		for _, d := range a.dilations {
			if d != 1 {
				return nil, b.unsupported("dilations %v", a.dilations)
			}
		}
	}
	switch a.autoPad {
	case "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID":
	default:
		return nil, fmt.Errorf("auto_pad %q", a.autoPad)
	}
	return a, nil
}

// resolve computes the window for input spatial dims in and kernel dims k
// (from kernel_shape or the weights). transposed selects ConvTranspose rules.
func (a *spatialAttrs) resolve(in, k []int) (*window, error) {
	r := len(in)
	if r < 1 || r > 3 {
		return nil, fmt.Errorf("%d spatial dimensions (1 to 3 supported)", r)
	}
	if len(k) != r {
		return nil, fmt.Errorf("kernel shape %v for %d spatial dims", k, r)
	}
	get := func(v []int, i, def int) (int, error) {
		if v == nil {
			return def, nil
		}
		if len(v) != r && !(len(v) == 2*r) {
			return 0, fmt.Errorf("attribute of length %d for %d spatial dims", len(v), r)
		}
		return v[i], nil
	}
	w := &window{rank: r}
	off := 3 - r
	for i := 0; i < 3; i++ {
		w.in[i], w.out[i], w.k[i], w.s[i], w.d[i] = 1, 1, 1, 1, 1
	}
	for i := 0; i < r; i++ {
		j := off + i
		w.in[j], w.k[j] = in[i], k[i]
		var err error
		if w.s[j], err = get(a.strides, i, 1); err != nil {
			return nil, err
		}
		if w.d[j], err = get(a.dilations, i, 1); err != nil {
			return nil, err
		}
		if a.pads != nil {
			if len(a.pads) != 2*r {
				return nil, fmt.Errorf("pads %v for %d spatial dims", a.pads, r)
			}
			w.padB[j], w.padE[j] = a.pads[i], a.pads[r+i]
		}
		if w.s[j] < 1 || w.d[j] < 1 || w.k[j] < 1 {
			return nil, fmt.Errorf("invalid kernel %v, strides %v or dilations %v", k, a.strides, a.dilations)
		}
		ext := w.d[j]*(w.k[j]-1) + 1 // kernel extent
		switch a.autoPad {
		case "VALID":
			w.padB[j], w.padE[j] = 0, 0
		case "SAME_UPPER", "SAME_LOWER":
			out := (w.in[j] + w.s[j] - 1) / w.s[j]
			total := max(0, (out-1)*w.s[j]+ext-w.in[j])
			if a.autoPad == "SAME_UPPER" {
				w.padB[j], w.padE[j] = total/2, total-total/2
			} else {
				w.padB[j], w.padE[j] = total-total/2, total/2
			}
		}
		span := w.in[j] + w.padB[j] + w.padE[j] - ext
		if span < 0 {
			return nil, fmt.Errorf("kernel extent %d larger than padded input %d", ext, w.in[j]+w.padB[j]+w.padE[j])
		}
		if a.ceil {
			w.out[j] = (span+w.s[j]-1)/w.s[j] + 1
			// The last window must start inside the input or the leading
			// padding (as in PyTorch and ONNX Runtime).
			if (w.out[j]-1)*w.s[j] >= w.in[j]+w.padB[j] {
				w.out[j]--
			}
		} else {
			w.out[j] = span/w.s[j] + 1
		}
	}
	for i := 0; i < r; i++ {
		w.outputShape = append(w.outputShape, w.out[off+i])
	}
	return w, nil
}

func (w *window) inSize() int  { return w.in[0] * w.in[1] * w.in[2] }
func (w *window) outSize() int { return w.out[0] * w.out[1] * w.out[2] }
func (w *window) kSize() int   { return w.k[0] * w.k[1] * w.k[2] }

// pointwise reports whether the convolution is a plain 1×1 product.
func (w *window) pointwise() bool {
	for i := 0; i < 3; i++ {
		if w.k[i] != 1 || w.s[i] != 1 || w.padB[i] != 0 || w.padE[i] != 0 {
			return false
		}
	}
	return true
}

// validRange returns the output indices o in [0, out) for which
// o*s - pad + kk*d lies in [0, in).
func validRange(out, in, s, pad, off int) (lo, hi int) {
	// o*s >= pad - off  and  o*s < in + pad - off
	lo = ceilDiv(pad-off, s)
	hi = ceilDiv(in+pad-off, s)
	return max(lo, 0), min(hi, out)
}

func floorDiv(a, b int) int {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func ceilDiv(a, b int) int {
	if a >= 0 {
		return (a + b - 1) / b
	}
	return -((-a) / b)
}

// fill sets every element of dst to v: a short loop, then doubling copies
// (memmove's wide stores are several times faster than a scalar loop).
func fill(dst []float32, v float32) {
	n := min(len(dst), 32)
	for i := range dst[:n] {
		dst[i] = v
	}
	for n < len(dst) {
		n += copy(dst[n:], dst[:n])
	}
}

// im2col writes the patches of one image's channels x (c channels of w.in)
// into col, row-major [c·kSize][outSize].
func im2col(x []float32, c int, w *window, col []float32) {
	if w.k[0] == 1 && w.in[0] == 1 && w.out[0] == 1 && w.s[1] == 1 && w.s[2] == 1 && w.out[2] == w.in[2] {
		im2colShifted(x, c, w, col)
		return
	}
	im2colGeneric(x, c, w, col)
}

func im2colGeneric(x []float32, c int, w *window, col []float32) {
	P := w.outSize()
	inS := w.inSize()
	row := 0
	for ch := 0; ch < c; ch++ {
		xc := x[ch*inS : (ch+1)*inS]
		for kd := 0; kd < w.k[0]; kd++ {
			for kh := 0; kh < w.k[1]; kh++ {
				for kw := 0; kw < w.k[2]; kw++ {
					dst := col[row*P : (row+1)*P]
					row++
					offD, offH, offW := kd*w.d[0], kh*w.d[1], kw*w.d[2]
					wlo, whi := validRange(w.out[2], w.in[2], w.s[2], w.padB[2], offW)
					i := 0
					for od := 0; od < w.out[0]; od++ {
						id := od*w.s[0] - w.padB[0] + offD
						for oh := 0; oh < w.out[1]; oh++ {
							ih := oh*w.s[1] - w.padB[1] + offH
							seg := dst[i : i+w.out[2]]
							i += w.out[2]
							if id < 0 || id >= w.in[0] || ih < 0 || ih >= w.in[1] || wlo >= whi {
								clear(seg)
								continue
							}
							clear(seg[:wlo])
							clear(seg[whi:])
							src := xc[(id*w.in[1]+ih)*w.in[2]:]
							iw := wlo*w.s[2] - w.padB[2] + offW
							if w.s[2] == 1 {
								copy(seg[wlo:whi], src[iw:iw+whi-wlo])
							} else {
								for ow := wlo; ow < whi; ow++ {
									seg[ow] = src[iw]
									iw += w.s[2]
								}
							}
						}
					}
				}
			}
		}
	}
}

// im2colShifted is im2col for a 1-D or 2-D convolution with stride 1 whose
// output rows are as wide as the input rows (e.g. 3×3 with padding 1). Then
// each row of col is the input plane shifted by a constant offset, with
// the taps that fall in the padding zeroed: one long copy per row of col
// instead of one short copy per output row.
func im2colShifted(x []float32, c int, w *window, col []float32) {
	W := w.in[2]
	P := w.outSize()
	inS := w.inSize()
	row := 0
	for ch := 0; ch < c; ch++ {
		xc := x[ch*inS : (ch+1)*inS]
		for kh := 0; kh < w.k[1]; kh++ {
			offH := kh * w.d[1]
			hlo, hhi := validRange(w.out[1], w.in[1], 1, w.padB[1], offH)
			for kw := 0; kw < w.k[2]; kw++ {
				dst := col[row*P : (row+1)*P]
				row++
				offW := kw * w.d[2]
				wlo, whi := validRange(w.out[2], w.in[2], 1, w.padB[2], offW)
				if hlo >= hhi || wlo >= whi {
					clear(dst)
					continue
				}
				// dst[oh*W+ow] = xc[(oh+offH-padB)*W + ow+offW-padB] where
				// valid: a constant shift of the flat index.
				shift := (offH-w.padB[1])*W + offW - w.padB[2]
				first, end := hlo*W+wlo, (hhi-1)*W+whi
				clear(dst[:first])
				copy(dst[first:end], xc[first+shift:end+shift])
				clear(dst[end:])
				if wlo > 0 || whi < W {
					for oh := hlo; oh < hhi; oh++ {
						clear(dst[oh*W : oh*W+wlo])
						clear(dst[oh*W+whi : (oh+1)*W])
					}
				}
			}
		}
	}
}

// col2im adds the columns col ([c·kSize][w.in size], the transposed
// convolution's per-input-position contributions) into y (c channels of
// w.out); the roles of in and out are those of the forward convolution whose
// gradient ConvTranspose is: here w.in is ConvTranspose's output.
func col2im(col []float32, c int, w *window, y []float32) {
	P := w.outSize()
	inS := w.inSize()
	row := 0
	for ch := 0; ch < c; ch++ {
		yc := y[ch*inS : (ch+1)*inS]
		for kd := 0; kd < w.k[0]; kd++ {
			for kh := 0; kh < w.k[1]; kh++ {
				for kw := 0; kw < w.k[2]; kw++ {
					src := col[row*P : (row+1)*P]
					row++
					offD, offH, offW := kd*w.d[0], kh*w.d[1], kw*w.d[2]
					wlo, whi := validRange(w.out[2], w.in[2], w.s[2], w.padB[2], offW)
					i := 0
					for od := 0; od < w.out[0]; od++ {
						id := od*w.s[0] - w.padB[0] + offD
						for oh := 0; oh < w.out[1]; oh++ {
							ih := oh*w.s[1] - w.padB[1] + offH
							seg := src[i : i+w.out[2]]
							i += w.out[2]
							if id < 0 || id >= w.in[0] || ih < 0 || ih >= w.in[1] {
								continue
							}
							dst := yc[(id*w.in[1]+ih)*w.in[2]:]
							iw := wlo*w.s[2] - w.padB[2] + offW
							for ow := wlo; ow < whi; ow++ {
								dst[iw] += seg[ow]
								iw += w.s[2]
							}
						}
					}
				}
			}
		}
	}
}

func buildConv(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(2, 3); err != nil {
		return nil, err
	}
	for i := 0; i < 3; i++ {
		if err := b.needType(i, Float32); err != nil {
			return nil, err
		}
	}
	b.setOut(Float32)
	attrs, err := readSpatial(b, true)
	if err != nil {
		return nil, err
	}
	group := b.int("group", 1)
	if group < 1 {
		return nil, fmt.Errorf("group %d", group)
	}
	op := &convOp{attrs: attrs, group: group}
	// Pack constant weights now, unless the bias is computed at run time.
	if wt := b.consts[1]; wt != nil && (!b.input(2) || b.consts[2] != nil) {
		var bias []float32
		if b.input(2) {
			bias = b.consts[2].F
		}
		op.prepare(wt, bias)
	}
	b.conv = op
	return op.kernel(), nil
}

// convOp is a Conv node's computation. With constant weights (the usual
// case) they are packed once, per group, for simd.GemmPackedA; a fused Conv
// (see fuse.go) carries BatchNormalization-folded weights and bias and an
// activation applied to each image's output while it is still in cache.
type convOp struct {
	attrs *spatialAttrs
	group int

	// Set by prepare when the weights (and bias, if any) are constants:
	// conv is that weight tensor (possibly folded), bias the bias or nil,
	// packed the weights of each group.
	conv   *Tensor
	bias   []float32
	packed []*simd.PackedA

	// wide caches the geometry (offset table) of the last wide-path run:
	// inputs of one shape recur run after run.
	wide atomic.Pointer[wideConv]

	// build, when set, makes conv, bias and packed on the first run (a
	// fused Conv's folded weights, see fuseConv); built runs it once.
	build func()
	built sync.Once

	act activation
	// pool: a fused 2×2, stride-2 MaxPool (after act) follows; the output
	// is the pooled one.
	pool bool
	// resIdx > 0: a fused Add (before act) of the node's input resIdx, the
	// residual; resFirst: it is the Add's first operand.
	resIdx   int
	resFirst bool
}

// addResidual sets dst = src + res (or res + src when first: the Add's
// operand order).
func addResidual(dst, src, res []float32, first bool) {
	if first {
		simd.Binary(simd.OpAdd, dst, res, src)
		return
	}
	simd.Binary(simd.OpAdd, dst, src, res)
}

// activation is an elementwise function fused into a kernel's epilogue.
type activation struct {
	kind   int // actNone, actRelu, actClip
	lo, hi float32
}

const (
	actNone = iota
	actRelu
	actClip
)

// apply runs the activation over x in place: Relu exactly as the Relu
// kernel does, Clip exactly as the Clip kernel does.
func (a activation) apply(x []float32) {
	switch a.kind {
	case actRelu:
		simd.Relu(x, x)
	case actClip:
		clipRange(x, x, a.lo, a.hi)
	}
}

// prepare packs constant weights wt (and keeps bias, which may be nil).
func (op *convOp) prepare(wt *Tensor, bias []float32) {
	op.conv, op.bias, op.packed = wt, bias, nil
	if len(wt.Shape) < 3 || wt.Shape[0]%op.group != 0 || (bias != nil && len(bias) != wt.Shape[0]) {
		return // malformed: the kernel reports it at run time
	}
	m := wt.Shape[0]
	mg := m / op.group
	K := numel(wt.Shape[1:])
	for g := 0; g < op.group; g++ {
		op.packed = append(op.packed, simd.PackA(mg, K, wt.F[g*mg*K:(g+1)*mg*K], K))
	}
}

func (op *convOp) kernel() kernel {
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		if op.build != nil {
			op.built.Do(op.build)
		}
		wt := in[1]
		var bias, res *Tensor
		if len(in) > 2 && op.resIdx != 2 {
			bias = in[2]
		}
		if op.resIdx > 0 {
			res = in[op.resIdx]
		}
		return op.run(c, in[0], wt, bias, res)
	}
}

func (op *convOp) run(c *runCtx, x, wt, biasT, res *Tensor) ([]*Tensor, error) {
	attrs, group := op.attrs, op.group
	var bias []float32
	if biasT != nil {
		bias = biasT.F
	}
	packed := op.packed
	if op.conv != nil {
		// Constant (maybe folded) weights: the node's inputs are the
		// originals, which a fused node no longer uses.
		wt, bias = op.conv, op.bias
	}
	if len(x.Shape) < 3 || len(wt.Shape) != len(x.Shape) {
		return nil, fmt.Errorf("input %v and weights %v: want [N C spatial...] and [M C/group kernel...]", x.Shape, wt.Shape)
	}
	n, ch := x.Shape[0], x.Shape[1]
	m := wt.Shape[0]
	if ch%group != 0 || m%group != 0 || wt.Shape[1] != ch/group {
		return nil, fmt.Errorf("input %v, weights %v and group %d do not agree", x.Shape, wt.Shape, group)
	}
	kshape := wt.Shape[2:]
	if attrs.kernel != nil && !slices.Equal(attrs.kernel, kshape) {
		return nil, fmt.Errorf("kernel_shape %v but weights %v", attrs.kernel, wt.Shape)
	}
	w, err := attrs.resolve(x.Shape[2:], kshape)
	if err != nil {
		return nil, err
	}
	if bias != nil && len(bias) != m {
		return nil, fmt.Errorf("bias of shape %v for %d output channels", []int{len(bias)}, m)
	}
	if op.pool && (w.rank != 2 || w.out[1] < 2 || w.out[2] < 2) {
		return nil, fmt.Errorf("fused MaxPool over a convolution output of shape %v", w.outputShape)
	}
	y := c.newF(append([]int{n, m}, w.outputShape...))
	// A residual of the output's shape is added in the epilogue; any
	// other (broadcast) shape after the whole output, as the Add would.
	act := op.act
	var resF []float32
	if res != nil {
		if slices.Equal(res.Shape, y.Shape) {
			resF = res.F
		} else {
			act = activation{}
		}
	}
	pooled := y // the node's output
	if op.pool {
		pooled = c.newF([]int{n, m, w.out[1] / 2, w.out[2] / 2})
	}
	cg, mg := ch/group, m/group
	K := cg * w.kSize()
	P := w.outSize()
	inS := w.inSize()
	direct := w.pointwise()
	if len(y.F) == 0 {
		return []*Tensor{y}, nil
	}
	if len(packed) != group {
		packed = nil
	}
	// A stride-1 2-D (or 1-D) convolution reads B straight from a
	// zero-padded copy of the image (simd.GemmPackedAOffsets): no im2col.
	var wide *wideConv
	if packed != nil && !direct && w.in[0] == 1 && w.k[0] == 1 && w.padB[0] == 0 && w.padE[0] == 0 {
		_, nr := packed[0].Tile()
		wide = op.wideFor(w, cg, nr)
		if op.pool {
			// The wide path pools while compacting: no full-size output.
			c.recycle(y.F)
			y = pooled
		}
	}
	// convImage computes one image's output; with threads > 1 (a batch
	// smaller than the thread count) the product is split by columns.
	// col is the im2col matrix, or for wide convolutions the padded image
	// and then the wide output.
	convImage := func(img, threads int, col []float32) {
		for g := 0; g < group; g++ {
			xg := x.F[(img*ch+g*cg)*inS : (img*ch+(g+1)*cg)*inS]
			if wide != nil {
				var gb []float32
				if bias != nil {
					gb = bias[g*mg : (g+1)*mg]
				}
				Q := len(y.F) / (n * m) // per plane: full or pooled
				var rg []float32
				if resF != nil {
					rg = resF[(img*m+g*mg)*Q : (img*m+(g+1)*mg)*Q]
				}
				wide.run(packed[g], xg, gb, act, op.pool, rg, op.resFirst, y.F[(img*m+g*mg)*Q:(img*m+(g+1)*mg)*Q], col, threads)
				continue
			}
			yg := y.F[(img*m+g*mg)*P : (img*m+(g+1)*mg)*P]
			beta := float32(0)
			if bias != nil {
				for oc := 0; oc < mg; oc++ {
					fill(yg[oc*P:(oc+1)*P], bias[g*mg+oc])
				}
				beta = 1
			}
			src := xg
			if !direct {
				im2col(xg, cg, w, col)
				src = col
			}
			if packed == nil {
				sgemm(threads, false, false, mg, P, K, 1, wt.F[g*mg*K:], K, src, P, beta, yg, P)
			} else {
				pa := packed[g]
				_, nr := pa.Tile()
				chunks := columnChunks(threads, mg*K*P, P, nr)
				parallelFor(threads, chunks, 1, func(lo, hi int) {
					for q := lo; q < hi; q++ {
						j0, j1 := chunkRange(P, nr, q, chunks)
						if j0 < j1 {
							simd.GemmPackedA(pa, j1-j0, src[j0:], P, beta, yg[j0:], P)
						}
					}
				})
			}
			if resF != nil {
				addResidual(yg, yg, resF[(img*m+g*mg)*P:(img*m+(g+1)*mg)*P], op.resFirst)
			}
			act.apply(yg)
		}
	}
	colSize := 0
	switch {
	case wide != nil:
		colSize = wide.bufSize(mg)
	case !direct:
		colSize = K * P
	}
	// The padded image's borders must be zero: that part of the buffers
	// starts zeroed, and only the interior is written afterwards.
	get := c.floats
	if wide != nil {
		get = func(n int) []float32 {
			b := c.floats(n)
			clear(b[:wide.padLen])
			return b
		}
	}
	if n >= c.threads && c.threads > 1 {
		cols := make([][]float32, c.threads)
		for i := range cols {
			cols[i] = get(colSize)
		}
		// Images are claimed one at a time, so that a goroutine slowed
		// down (a shared core) takes fewer of them; each goroutine has
		// its own scratch buffer.
		var next atomic.Int64
		simd.Parallel(c.threads, c.threads, func(p int) {
			for img := int(next.Add(1) - 1); img < n; img = int(next.Add(1) - 1) {
				convImage(img, 1, cols[p])
			}
		})
		for _, col := range cols {
			c.recycle(col)
		}
	} else {
		col := get(colSize)
		for img := 0; img < n; img++ {
			convImage(img, c.threads, col)
		}
		c.recycle(col)
	}
	if res != nil && resF == nil {
		// The residual broadcasts: the Add on the whole output, then the
		// activation.
		shape, err := broadcastShape(y.Shape, res.Shape)
		if err != nil {
			return nil, err
		}
		a, b := y, res
		if op.resFirst {
			a, b = res, y
		}
		out := c.newF(shape)
		bc := newBcast(shape, a.Shape, b.Shape)
		bc.parallelRuns(c.threads, func(o int, off, inc []int, n int) {
			xs, ys := a.F[off[0]:], b.F[off[1]:]
			if inc[0] == 1 {
				xs = xs[:n]
			}
			if inc[1] == 1 {
				ys = ys[:n]
			}
			addRun(out.F[o:o+n], xs, ys, inc[0], inc[1])
		})
		c.recycle(y.F)
		op.act.apply(out.F)
		return []*Tensor{out}, nil
	}
	if op.pool && wide == nil {
		// Not fused into the compaction: pool the full output now.
		oh, ow := w.out[1], w.out[2]
		ph, pw := oh/2, ow/2
		parallelFor(c.threads, n*m, max(1, (1<<15)/max(1, oh*ow)), func(lo, hi int) {
			for p := lo; p < hi; p++ {
				simd.MaxPool2x2Rows(pooled.F[p*ph*pw:(p+1)*ph*pw], y.F[p*oh*ow:(p+1)*oh*ow], ph, pw, ow)
			}
		})
		c.recycle(y.F)
	}
	return []*Tensor{pooled}, nil
}

// columnChunks is how many pieces a product of macs multiply-adds over n
// columns is cut into for threads goroutines: at most one per thread and
// per nr columns, and at least 2^21 multiply-adds (~20 µs) each: another
// core must first fetch the image and the weights from this one's cache and
// hand its part of the output back, which costs more than a smaller piece
// saves (finer pieces, claimed dynamically, cost more still).
func columnChunks(threads, macs, n, nr int) int {
	return max(1, min(threads, macs>>21, (n+nr-1)/nr))
}

// chunkRange is chunk q of [0, n) cut into `chunks` pieces at multiples
// of nr.
func chunkRange(n, nr, q, chunks int) (j0, j1 int) {
	t := (n + nr - 1) / nr
	return t * q / chunks * nr, min(n, t*(q+1)/chunks*nr)
}

// wideConv is a 2-D (or 1-D) convolution computed on a "wide" output grid,
// which lets the GEMM read the im2col matrix from a copy of the image
// instead of materialising it (simd.GemmPackedAOffsets).
//
// Stride 1: with the image zero-padded to Hp×Wp, output (oh, ow) for
// ow < Wp (columns ow >= outW are junk) is at q = oh·Wp + ow, and row
// (c, kh, kw) of the im2col matrix is the padded image at offset
// c·Hp·Wp + kh·dh·Wp + kw·dw, q for q.
//
// Stride s: the padded image is split into s_h·s_w phase images
// (xph[a][b][i][j] = xpad[i·s_h + a][j·s_w + b], each Hq×Wq with
// Hq = ⌈Hp/s_h⌉), and tap (kh, kw) reads phase ((kh·dh) mod s_h,
// (kw·dw) mod s_w) at row and column offsets (kh·dh) div s_h,
// (kw·dw) div s_w: again a shifted window, on the grid q = oh·Wq + ow.
// Only the phases some tap reads are built.
//
// The wide result is then compacted into the output, adding the
// activation (and a fused max pooling).
type wideConv struct {
	w      *window
	cg, nr int
	hq, wq int // phase image (the padded image for stride 1)
	pw     int // wide output positions: outH·Wq
	phases [][2]int
	padLen int // phase images with slack (the wide output follows)
	offs   []int
}

// wideFor returns the wideConv for window w, cg input channels per group
// and tile width nr, reusing the last one when the geometry is the same.
func (op *convOp) wideFor(w *window, cg, nr int) *wideConv {
	if wc := op.wide.Load(); wc != nil && wc.cg == cg && wc.nr == nr && wc.w.in == w.in && wc.w.out == w.out &&
		wc.w.k == w.k && wc.w.s == w.s && wc.w.d == w.d && wc.w.padB == w.padB && wc.w.padE == w.padE {
		return wc
	}
	wc := newWideConv(w, cg, nr)
	op.wide.Store(wc)
	return wc
}

func newWideConv(w *window, cg, nr int) *wideConv {
	wc := &wideConv{w: w, cg: cg, nr: nr}
	sh, sw := w.s[1], w.s[2]
	hp := w.in[1] + w.padB[1] + w.padE[1]
	wp := w.in[2] + w.padB[2] + w.padE[2]
	wc.hq, wc.wq = (hp+sh-1)/sh, (wp+sw-1)/sw
	wc.pw = w.out[1] * wc.wq
	plane := wc.hq * wc.wq
	// Phase images in first-use order, each cg planes.
	base := map[[2]int]int{}
	for kh := 0; kh < w.k[1]; kh++ {
		for kw := 0; kw < w.k[2]; kw++ {
			ph := [2]int{kh * w.d[1] % sh, kw * w.d[2] % sw}
			if _, ok := base[ph]; !ok {
				base[ph] = len(wc.phases) * cg * plane
				wc.phases = append(wc.phases, ph)
			}
		}
	}
	maxOff := 0
	for c := 0; c < cg; c++ {
		for kh := 0; kh < w.k[1]; kh++ {
			for kw := 0; kw < w.k[2]; kw++ {
				ph := [2]int{kh * w.d[1] % sh, kw * w.d[2] % sw}
				o := base[ph] + c*plane + kh*w.d[1]/sh*wc.wq + kw*w.d[2]/sw
				wc.offs = append(wc.offs, o)
				maxOff = max(maxOff, o)
			}
		}
	}
	// GemmPackedAOffsets reads up to pw rounded up to nr past each offset.
	wc.padLen = max(len(wc.phases)*cg*plane, maxOff+(wc.pw+nr-1)/nr*nr)
	return wc
}

func (wc *wideConv) bufSize(mg int) int { return wc.padLen + mg*wc.pw }

// run computes one group of one image: x (cg channels), bias (mg values or
// nil) into y (mg planes), with buf from bufSize, zeroed before the first
// call (only the padded image's interior is ever written).
func (wc *wideConv) run(pa *simd.PackedA, x, bias []float32, act activation, pool bool, res []float32, resFirst bool, y, buf []float32, threads int) {
	w := wc.w
	H, W := w.in[1], w.in[2]
	xp, yw := buf[:wc.padLen], buf[wc.padLen:]
	plane := wc.hq * wc.wq
	sh, sw := w.s[1], w.s[2]
	cg := len(wc.offs) / (w.k[1] * w.k[2])
	for pi, ph := range wc.phases {
		a, b := ph[0], ph[1]
		// Phase rows i and columns j that hold input pixels:
		// ih = i·sh + a − padH in [0, H), iw = j·sw + b − padW in [0, W).
		ilo, ihi := ceilDiv(w.padB[1]-a, sh), ceilDiv(H+w.padB[1]-a, sh)
		jlo, jhi := ceilDiv(w.padB[2]-b, sw), ceilDiv(W+w.padB[2]-b, sw)
		ilo, jlo = max(ilo, 0), max(jlo, 0)
		ihi, jhi = min(ihi, wc.hq), min(jhi, wc.wq)
		if ilo >= ihi || jlo >= jhi {
			continue
		}
		for c := 0; c < cg; c++ {
			dst := xp[(pi*cg+c)*plane:]
			src := x[c*H*W : (c+1)*H*W]
			iw0 := jlo*sw + b - w.padB[2]
			if sw == 1 {
				// Input rows i·sh + a − padH, at stride sh·W.
				first := (ilo*sh + a - w.padB[1]) * W
				simd.CopyRows(dst[ilo*wc.wq+jlo:], src[first+iw0:], ihi-ilo, jhi-jlo, wc.wq, sh*W)
				continue
			}
			if sw == 2 {
				first := (ilo*sh + a - w.padB[1]) * W
				simd.CopyRowsEven(dst[ilo*wc.wq+jlo:], src[first+iw0:], ihi-ilo, jhi-jlo, wc.wq, sh*W)
				continue
			}
			for i := ilo; i < ihi; i++ {
				d := dst[i*wc.wq+jlo : i*wc.wq+jhi]
				srow := src[(i*sh+a-w.padB[1])*W:]
				iw := iw0
				for j := range d {
					d[j] = srow[iw]
					iw += sw
				}
			}
		}
	}
	mg := pa.Rows()
	pw := wc.pw
	yw = yw[:mg*pw]
	beta := float32(0)
	if bias != nil {
		for oc, v := range bias {
			fill(yw[oc*pw:(oc+1)*pw], v)
		}
		beta = 1
	}
	_, nr := pa.Tile()
	if chunks := columnChunks(threads, mg*len(wc.offs)*pw, pw, nr); chunks == 1 {
		// Directly: a closure per image and convolution would be garbage.
		simd.GemmPackedAOffsets(pa, pw, xp, wc.offs, beta, yw, pw)
	} else {
		parallelFor(threads, chunks, 1, func(lo, hi int) {
			for q := lo; q < hi; q++ {
				j0, j1 := chunkRange(pw, nr, q, chunks)
				if j0 < j1 {
					simd.GemmPackedAOffsets(pa, j1-j0, xp[j0:], wc.offs, beta, yw[j0:], pw)
				}
			}
		})
	}
	oh, ow := w.out[1], w.out[2]
	wq := wc.wq
	if pool {
		// Activation on the wide planes (in cache), then the 2×2 max
		// pooling straight from them: the full-size output is never
		// written. Relu before pooling, as in the graph: pooling first
		// would change which signed zero wins.
		ph, pwo := oh/2, ow/2
		act.apply(yw[:mg*pw]) // junk columns included: one call
		if oh%2 == 0 {
			// Every channel's rows pair up: one call for the image.
			simd.MaxPool2x2Rows(y, yw, mg*ph, pwo, wq)
			return
		}
		for oc := 0; oc < mg; oc++ {
			simd.MaxPool2x2Rows(y[oc*ph*pwo:], yw[oc*pw:], ph, pwo, wq)
		}
		return
	}
	// Compact the rows, then the residual and the activation over the
	// whole (cached) output: two calls, not two per row.
	// The wide planes follow each other at pw = oh·wq: all rows of all
	// channels are at stride wq.
	simd.CopyRows(y, yw, mg*oh, ow, ow, wq)
	y = y[:mg*oh*ow]
	if res != nil {
		addResidual(y, y, res, resFirst)
	}
	act.apply(y)
}

func buildConvTranspose(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(2, 3); err != nil {
		return nil, err
	}
	for i := 0; i < 3; i++ {
		if err := b.needType(i, Float32); err != nil {
			return nil, err
		}
	}
	b.setOut(Float32)
	attrs, err := readSpatial(b, true)
	if err != nil {
		return nil, err
	}
	group := b.int("group", 1)
	if group < 1 {
		return nil, fmt.Errorf("group %d", group)
	}
	outPad := b.ints("output_padding", nil)
	outShape := b.ints("output_shape", nil)
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		x, wt := in[0], in[1]
		var bias *Tensor
		if len(in) > 2 {
			bias = in[2]
		}
		if len(x.Shape) < 3 || len(wt.Shape) != len(x.Shape) {
			return nil, fmt.Errorf("input %v and weights %v: want [N C spatial...] and [C M/group kernel...]", x.Shape, wt.Shape)
		}
		n, ch := x.Shape[0], x.Shape[1]
		if wt.Shape[0] != ch || ch%group != 0 {
			return nil, fmt.Errorf("input %v, weights %v and group %d do not agree", x.Shape, wt.Shape, group)
		}
		mg := wt.Shape[1]
		m := mg * group
		cg := ch / group
		kshape := wt.Shape[2:]
		r := len(kshape)
		if attrs.kernel != nil && !slices.Equal(attrs.kernel, kshape) {
			return nil, fmt.Errorf("kernel_shape %v but weights %v", attrs.kernel, wt.Shape)
		}
		xin := x.Shape[2:]
		// Output size and padding of the transposed convolution.
		ys := make([]int, r)
		pads := make([]int, 2*r)
		for i := 0; i < r; i++ {
			s, d, op := 1, 1, 0
			if attrs.strides != nil {
				s = attrs.strides[i]
			}
			if attrs.dilations != nil {
				d = attrs.dilations[i]
			}
			if outPad != nil {
				op = outPad[i]
			}
			ext := d*(kshape[i]-1) + 1
			full := s*(xin[i]-1) + op + ext
			switch {
			case outShape != nil || attrs.autoPad == "SAME_UPPER" || attrs.autoPad == "SAME_LOWER":
				// The ONNX rule, with floor division: a negative total (a
				// requested output larger than the full one) pads the end.
				o := xin[i] * s
				if outShape != nil {
					o = outShape[len(outShape)-r+i]
				}
				total := full - o
				if attrs.autoPad == "SAME_UPPER" {
					pads[i], pads[r+i] = floorDiv(total, 2), total-floorDiv(total, 2)
				} else {
					pads[i], pads[r+i] = total-floorDiv(total, 2), floorDiv(total, 2)
				}
			case attrs.autoPad == "VALID" || attrs.pads == nil:
			default:
				pads[i], pads[r+i] = attrs.pads[i], attrs.pads[r+i]
			}
			ys[i] = full - pads[i] - pads[r+i]
			if ys[i] < 0 {
				return nil, fmt.Errorf("negative output size")
			}
		}
		// The forward convolution from y to x has window w (with in = y).
		fwd := &spatialAttrs{strides: attrs.strides, dilations: attrs.dilations, pads: pads, autoPad: "NOTSET"}
		w, err := fwd.resolve(ys, kshape)
		if err != nil {
			return nil, err
		}
		// Output padding can leave the forward output one short; use x's size.
		for i := 0; i < r; i++ {
			w.out[3-r+i] = xin[i]
		}
		if bias != nil && len(bias.F) != m {
			return nil, fmt.Errorf("bias of shape %v for %d output channels", bias.Shape, m)
		}
		y := c.newF(append([]int{n, m}, ys...))
		P := w.outSize() // input positions
		Y := w.inSize()  // output positions
		K := mg * w.kSize()
		if len(y.F) == 0 {
			return []*Tensor{y}, nil
		}
		image := func(img, threads int, col []float32) {
			for g := 0; g < group; g++ {
				xg := x.F[(img*ch+g*cg)*P : (img*ch+(g+1)*cg)*P]
				// col[K][P] = W_gᵀ · x_g, W_g stored [cg][K].
				sgemm(threads, true, false, K, P, cg, 1, wt.F[g*cg*K:], K, xg, P, 0, col, P)
				yg := y.F[(img*m+g*mg)*Y : (img*m+(g+1)*mg)*Y]
				if bias != nil {
					for oc := 0; oc < mg; oc++ {
						v := bias.F[g*mg+oc]
						fill(yg[oc*Y:(oc+1)*Y], v)
					}
				} else {
					clear(yg)
				}
				col2im(col, mg, w, yg)
			}
		}
		parts := min(c.threads, n)
		cols := make([][]float32, parts)
		for i := range cols {
			cols[i] = c.floats(K * P)
		}
		if parts > 1 {
			parallelFor(parts, parts, 1, func(lo, hi int) {
				for p := lo; p < hi; p++ {
					for img := p * n / parts; img < (p+1)*n/parts; img++ {
						image(img, 1, cols[p])
					}
				}
			})
		} else {
			for img := 0; img < n; img++ {
				image(img, c.threads, cols[0])
			}
		}
		for _, col := range cols {
			c.recycle(col)
		}
		return []*Tensor{y}, nil
	}, nil
}

// buildPool implements MaxPool and AveragePool.
func buildPool(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(1, 1); err != nil {
		return nil, err
	}
	if err := b.needType(0, Float32); err != nil {
		return nil, err
	}
	b.setOut(Float32)
	isMax := b.op == "MaxPool"
	if isMax && b.nOut > 1 && b.proto.GetOutput()[1] != "" {
		return nil, b.unsupported("Indices output")
	}
	attrs, err := readSpatial(b, isMax || b.opset >= 19)
	if err != nil {
		return nil, err
	}
	if attrs.kernel == nil {
		return nil, fmt.Errorf("kernel_shape is required")
	}
	includePad := b.int("count_include_pad", 0) != 0
	// A 2×2, stride-2, unpadded, undilated 2-D MaxPool without ceil_mode
	// (every window inside the input) may fuse into a preceding Conv.
	b.maxPool2 = isMax && slices.Equal(attrs.kernel, []int{2, 2}) && slices.Equal(attrs.strides, []int{2, 2}) &&
		!attrs.ceil && (attrs.autoPad == "NOTSET" || attrs.autoPad == "VALID") &&
		(attrs.pads == nil || slices.Equal(attrs.pads, []int{0, 0, 0, 0})) &&
		(attrs.dilations == nil || slices.Equal(attrs.dilations, []int{1, 1}))
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		if len(x.Shape) < 3 {
			return nil, fmt.Errorf("input %v: want [N C spatial...]", x.Shape)
		}
		w, err := attrs.resolve(x.Shape[2:], attrs.kernel)
		if err != nil {
			return nil, err
		}
		planes := x.Shape[0] * x.Shape[1]
		y := c.newF(append([]int{x.Shape[0], x.Shape[1]}, w.outputShape...))
		inS, outS := w.inSize(), w.outSize()
		rd := kernelRanges(w.out[0], w.in[0], w.k[0], w.s[0], w.d[0], w.padB[0])
		rh := kernelRanges(w.out[1], w.in[1], w.k[1], w.s[1], w.d[1], w.padB[1])
		rw := kernelRanges(w.out[2], w.in[2], w.k[2], w.s[2], w.d[2], w.padB[2])
		fast := isMax && w.k[0] == 1 && w.d[1] == 1 && w.d[2] == 1 &&
			fullWindows(rd, w.k[0]) && fullWindows(rh, w.k[1]) && fullWindows(rw, w.k[2])
		// At least 32k window taps per goroutine: one plane costs little.
		parallelFor(c.threads, planes, max(1, (1<<15)/max(1, outS*w.kSize())), func(lo, hi int) {
			for p := lo; p < hi; p++ {
				if fast {
					maxPool2D(x.F[p*inS:(p+1)*inS], y.F[p*outS:(p+1)*outS], w)
					continue
				}
				pool3(x.F[p*inS:(p+1)*inS], y.F[p*outS:(p+1)*outS], w, isMax, includePad, rd, rh, rw)
			}
		})
		return []*Tensor{y}, nil
	}, nil
}

// kernelRanges returns, for each output index o of one dimension, the
// kernel taps [lo, hi) that fall inside the input: o*s - pad + k*d in [0, in).
func kernelRanges(out, in, k, s, d, pad int) [][2]int {
	r := make([][2]int, out)
	for o := range r {
		start := o*s - pad
		lo := max(0, ceilDiv(-start, d))
		hi := min(k, ceilDiv(in-start, d))
		r[o] = [2]int{lo, max(lo, hi)}
	}
	return r
}

// fullWindows reports whether every window in r (from kernelRanges) has all
// k of its taps inside the input.
func fullWindows(r [][2]int, k int) bool {
	for _, lh := range r {
		if lh[0] != 0 || lh[1] != k {
			return false
		}
	}
	return true
}

// maxNaN is the max-pooling update: v if v > acc or v is NaN, else acc
// (so the first NaN met wins, and of -0 and +0 the first). It selects with
// masks rather than branches, which mispredict on data of random order.
func maxNaN(acc, v float32) float32 {
	ab, vb := math.Float32bits(acc), math.Float32bits(v)
	m := -(b2u(v > acc) | b2u(v != v))
	return math.Float32frombits(ab&^m | vb&m)
}

func b2u(b bool) uint32 {
	var x uint32
	if b {
		x = 1
	}
	return x
}

// maxPool2D is pool3 for MaxPool over one plane when the windows are 1-D or
// 2-D (w.k[0] == 1), undilated and all inside the input: the same taps in
// the same order (row by row from -Inf, each through maxNaN, as pool3 does),
// without clipping each window. The first tap needs no comparison:
// maxNaN(-Inf, v) is v, bit for bit.
func maxPool2D(x, y []float32, w *window) {
	kh, kw := w.k[1], w.k[2]
	sh, sw := w.s[1], w.s[2]
	inW, outW := w.in[2], w.out[2]
	vec := kh == 2 && kw == 2 && sw == 2 && w.padB[2] == 0
	if vec && sh == 2 && w.padB[1] == 0 {
		simd.MaxPool2x2Rows(y, x, w.out[1], outW, inW)
		return
	}
	for oh := 0; oh < w.out[1]; oh++ {
		h0 := oh*sh - w.padB[1]
		win := x[h0*inW : (h0+kh)*inW]
		yr := y[oh*outW : (oh+1)*outW]
		if vec {
			maxPool2x2Row(y, oh*outW, outW, x[h0*inW:], x[(h0+1)*inW:])
			continue
		}
		if kh == 2 && kw == 2 {
			r0, r1 := win[:inW], win[inW:2*inW]
			for ow := range yr {
				c := ow*sw - w.padB[2]
				a, b, d, e := r0[c], r0[c+1], r1[c], r1[c+1]
				// Go's max agrees with maxNaN's chain unless a NaN is
				// involved or the maximum is a zero (whose sign maxNaN
				// takes from the first zero): redo those windows exactly.
				m := max(max(a, b), max(d, e))
				if m != m || m == 0 {
					m = maxNaN(maxNaN(maxNaN(a, b), d), e)
				}
				yr[ow] = m
			}
			continue
		}
		for ow := range yr {
			c := ow*sw - w.padB[2]
			acc := win[c]
			for j := 1; j < kw; j++ {
				acc = maxNaN(acc, win[c+j])
			}
			for i := 1; i < kh; i++ {
				row := win[i*inW+c : i*inW+c+kw]
				for _, v := range row {
					acc = maxNaN(acc, v)
				}
			}
			yr[ow] = acc
		}
	}
}

// maxPool2x2Row computes y[at:at+outW], one output row of a 2×2, stride-2
// max pooling whose windows start at r0[0] and r1[0] (two input rows):
// the chain of maxNaN updates, vectorised 8 outputs at a time. A row whose
// width is not a multiple of 8 is computed with the next outputs of y as
// extra lanes (reading past the input rows, which must stay in bounds):
// the caller computes those outputs afterwards, overwriting them. Where y
// or r1 has no room for that, the row is cut into two overlapping groups
// of 8, or left to the scalar rule when narrower than 8.
func maxPool2x2Row(y []float32, at, outW int, r0, r1 []float32) {
	n8 := (outW + 7) &^ 7
	if outW%8 != 0 && len(y)-at >= n8 && len(r0) >= 2*n8 && len(r1) >= 2*n8 {
		simd.MaxPool2x2(y[at:at+n8], r0, r1)
		return
	}
	yr := y[at : at+outW]
	if outW >= 8 && outW%8 != 0 {
		simd.MaxPool2x2(yr[:outW&^7], r0, r1)
		simd.MaxPool2x2(yr[outW-8:], r0[2*(outW-8):], r1[2*(outW-8):])
		return
	}
	simd.MaxPool2x2(yr, r0, r1)
}

// pool3 pools one plane.
func pool3(x, y []float32, w *window, isMax, includePad bool, rd, rh, rw [][2]int) {
	i := 0
	negInf := float32(math.Inf(-1))
	for od := 0; od < w.out[0]; od++ {
		d0 := od*w.s[0] - w.padB[0]
		for oh := 0; oh < w.out[1]; oh++ {
			h0 := oh*w.s[1] - w.padB[1]
			for ow := 0; ow < w.out[2]; ow++ {
				w0 := ow*w.s[2] - w.padB[2]
				acc := float32(0)
				if isMax {
					acc = negInf
				}
				kw0, kw1 := rw[ow][0], rw[ow][1]
				for kd := rd[od][0]; kd < rd[od][1]; kd++ {
					id := d0 + kd*w.d[0]
					for kh := rh[oh][0]; kh < rh[oh][1]; kh++ {
						ih := h0 + kh*w.d[1]
						row := x[(id*w.in[1]+ih)*w.in[2]:]
						if w.d[2] == 1 {
							seg := row[w0+kw0 : w0+kw1]
							if isMax {
								for _, v := range seg {
									acc = maxNaN(acc, v)
								}
							} else {
								for _, v := range seg {
									acc += v
								}
							}
							continue
						}
						for kw := kw0; kw < kw1; kw++ {
							v := row[w0+kw*w.d[2]]
							if isMax {
								acc = maxNaN(acc, v)
							} else {
								acc += v
							}
						}
					}
				}
				if !isMax {
					div := (rd[od][1] - rd[od][0]) * (rh[oh][1] - rh[oh][0]) * (kw1 - kw0)
					if includePad {
						// Window clipped to the padded input.
						div = 1
						for j, o := range [3]int{d0, h0, w0} {
							end := min(o+(w.k[j]-1)*w.d[j]+1, w.in[j]+w.padE[j])
							div *= (end - o + w.d[j] - 1) / w.d[j]
						}
					}
					if div > 0 {
						acc /= float32(div)
					} else {
						acc = float32(math.NaN())
					}
				}
				y[i] = acc
				i++
			}
		}
	}
}

func buildGlobalPool(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(1, 1); err != nil {
		return nil, err
	}
	if err := b.needType(0, Float32); err != nil {
		return nil, err
	}
	b.setOut(Float32)
	isMax := b.op == "GlobalMaxPool"
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		if len(x.Shape) < 2 {
			return nil, fmt.Errorf("input %v: want [N C spatial...]", x.Shape)
		}
		shape := []int{x.Shape[0], x.Shape[1]}
		for range x.Shape[2:] {
			shape = append(shape, 1)
		}
		planes := x.Shape[0] * x.Shape[1]
		S := numel(x.Shape[2:])
		y := c.newF(shape)
		parallelFor(c.threads, planes, max(1, 8192/max(S, 1)), func(lo, hi int) {
			for p := lo; p < hi; p++ {
				src := x.F[p*S : (p+1)*S]
				if isMax {
					m := float32(math.Inf(-1))
					for _, v := range src {
						if v > m || v != v {
							m = v
						}
					}
					y.F[p] = m
					continue
				}
				var s float64
				for _, v := range src {
					s += float64(v)
				}
				y.F[p] = float32(s / float64(S))
			}
		})
		return []*Tensor{y}, nil
	}, nil
}

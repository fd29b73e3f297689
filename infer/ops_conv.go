package infer

import (
	"fmt"
	"math"
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
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		x, wt := in[0], in[1]
		var bias *Tensor
		if len(in) > 2 {
			bias = in[2]
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
		if attrs.kernel != nil && !sameShape(attrs.kernel, kshape) {
			return nil, fmt.Errorf("kernel_shape %v but weights %v", attrs.kernel, wt.Shape)
		}
		w, err := attrs.resolve(x.Shape[2:], kshape)
		if err != nil {
			return nil, err
		}
		if bias != nil && len(bias.F) != m {
			return nil, fmt.Errorf("bias of shape %v for %d output channels", bias.Shape, m)
		}
		y := c.newF(append([]int{n, m}, w.outputShape...))
		cg, mg := ch/group, m/group
		K := cg * w.kSize()
		P := w.outSize()
		inS := w.inSize()
		direct := w.pointwise()
		convImage := func(img, threads int, col []float32) {
			for g := 0; g < group; g++ {
				yg := y.F[(img*m+g*mg)*P : (img*m+(g+1)*mg)*P]
				beta := float32(0)
				if bias != nil {
					for oc := 0; oc < mg; oc++ {
						v := bias.F[g*mg+oc]
						fill(yg[oc*P:(oc+1)*P], v)
					}
					beta = 1
				}
				xg := x.F[(img*ch+g*cg)*inS : (img*ch+(g+1)*cg)*inS]
				src := xg
				if !direct {
					im2col(xg, cg, w, col)
					src = col
				}
				sgemm(threads, false, false, mg, P, K, 1, wt.F[g*mg*K:], K, src, P, beta, yg, P)
			}
		}
		colSize := 0
		if !direct {
			colSize = K * P
		}
		if len(y.F) == 0 {
			return []*Tensor{y}, nil
		}
		if n >= c.threads && c.threads > 1 {
			cols := make([][]float32, c.threads)
			for i := range cols {
				cols[i] = c.floats(colSize)
			}
			parts := c.threads
			parallelFor(parts, parts, 1, func(lo, hi int) {
				for p := lo; p < hi; p++ {
					for img := p * n / parts; img < (p+1)*n/parts; img++ {
						convImage(img, 1, cols[p])
					}
				}
			})
			for _, col := range cols {
				c.recycle(col)
			}
		} else {
			col := c.floats(colSize)
			for img := 0; img < n; img++ {
				convImage(img, c.threads, col)
			}
			c.recycle(col)
		}
		return []*Tensor{y}, nil
	}, nil
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
		if attrs.kernel != nil && !sameShape(attrs.kernel, kshape) {
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
	for oh := 0; oh < w.out[1]; oh++ {
		h0 := oh*sh - w.padB[1]
		win := x[h0*inW : (h0+kh)*inW]
		yr := y[oh*outW : (oh+1)*outW]
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

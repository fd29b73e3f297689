package infer

import (
	"fmt"
	"math"
	"sync"

	"github.com/onnx-rebasin/onnx-rebasin/simd"
)

func init() {
	register("BatchNormalization", buildBatchNorm)
	register("LayerNormalization", buildLayerNorm)
	register("InstanceNormalization", buildInstanceNorm)
	register("Softmax", buildSoftmax)
	register("LogSoftmax", buildSoftmax)
}

// BatchNormStats are the per-channel sums of one BatchNormalization node's
// input X over one batch, reported in batch-statistics mode (see
// BatchNormStatistics).
type BatchNormStats struct {
	Node  string // the node's name ("#index" if unnamed)
	Input string // name of its input X
	// Names of the node's running-mean and running-variance inputs (usually
	// initializers), the tensors a BN reset overwrites.
	Mean, Var string
	Sum       []float64 // Σx per channel
	SumSq     []float64 // Σx² per channel
	Count     int       // values per channel: N × spatial size
}

// BatchNormStatistics switches every BatchNormalization node of the run to
// batch-statistics ("training") mode: it normalises its input with the
// batch's own per-channel mean and biased variance, instead of the running
// mean and variance stored in the model, and then calls fn with the
// per-channel sums of that input. fn is called on the goroutine that called
// Run, once per BatchNormalization node and in execution order, so each
// layer's statistics are those of the activations produced by the already
// re-normalised layers before it, as in a PyTorch forward pass in train mode.
// Scale and bias (γ, β) are applied as usual; the model is not modified.
//
// To reset BatchNorm statistics over a data set (e.g. after merging or
// permuting weights), run every batch with this option feeding a
// BatchNormAccumulator, then write each node's mean and variance into the
// tensors its Mean and Var fields name, and compile a new Session:
//
//	var acc infer.BatchNormAccumulator
//	for _, x := range batches {
//		sess.Run(map[string]*infer.Tensor{"input": x}, infer.BatchNormStatistics(acc.Add))
//	}
//	w := m.Weights()
//	for _, node := range acc.Nodes() {
//		st, _ := acc.Stats(node)
//		mean, variance, _ := acc.MeanVar(node, false)
//		m.SetFloat32s(w[st.Mean], mean)
//		m.SetFloat32s(w[st.Var], variance)
//	}
//
// All batches must go through the same (unmodified) model: the statistics of
// each layer depend on the layers before it only through batch
// normalisation, never through the stored running statistics. The mean is
// the exact mean over the data set, as PyTorch's cumulative (momentum=None)
// reset gives with batches of equal size; the variance is the exact
// variance over the data set, whereas PyTorch averages per-batch unbiased
// variances (which leaves out the spread of the batch means), so the two
// differ slightly.
func BatchNormStatistics(fn func(BatchNormStats)) RunOption {
	return func(c *runConfig) { c.bnStats = fn }
}

// BatchNormAccumulator sums BatchNormStats over many runs, per node. Its Add
// method can be passed to BatchNormStatistics; it is safe for concurrent use.
type BatchNormAccumulator struct {
	mu    sync.Mutex
	order []string
	acc   map[string]*BatchNormStats
}

// Add accumulates s.
func (a *BatchNormAccumulator) Add(s BatchNormStats) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.acc == nil {
		a.acc = map[string]*BatchNormStats{}
	}
	t, ok := a.acc[s.Node]
	if !ok {
		t = &BatchNormStats{Node: s.Node, Input: s.Input, Mean: s.Mean, Var: s.Var,
			Sum: make([]float64, len(s.Sum)), SumSq: make([]float64, len(s.SumSq))}
		a.acc[s.Node] = t
		a.order = append(a.order, s.Node)
	}
	for i := range s.Sum {
		t.Sum[i] += s.Sum[i]
		t.SumSq[i] += s.SumSq[i]
	}
	t.Count += s.Count
}

// Nodes lists the nodes seen, in the order first reported.
func (a *BatchNormAccumulator) Nodes() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string{}, a.order...)
}

// Stats returns the accumulated sums of node (a copy), and whether it was
// seen.
func (a *BatchNormAccumulator) Stats(node string) (BatchNormStats, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.acc[node]
	if !ok {
		return BatchNormStats{}, false
	}
	c := *t
	c.Sum = append([]float64{}, t.Sum...)
	c.SumSq = append([]float64{}, t.SumSq...)
	return c, true
}

// MeanVar returns node's per-channel mean Σx/n and variance over everything
// accumulated: the population variance Σx²/n − mean² when unbiased is false,
// or that times n/(n−1) when true (PyTorch stores the unbiased estimate in
// running_var). ok is false if the node was never reported.
func (a *BatchNormAccumulator) MeanVar(node string, unbiased bool) (mean, variance []float32, ok bool) {
	s, ok := a.Stats(node)
	if !ok || s.Count == 0 {
		return nil, nil, false
	}
	n := float64(s.Count)
	mean = make([]float32, len(s.Sum))
	variance = make([]float32, len(s.Sum))
	for i := range s.Sum {
		m := s.Sum[i] / n
		v := max(s.SumSq[i]/n-m*m, 0)
		if unbiased && s.Count > 1 {
			v *= n / (n - 1)
		}
		mean[i], variance[i] = float32(m), float32(v)
	}
	return mean, variance, true
}

// bnInfo identifies a BatchNormalization node in statistics reports.
type bnInfo struct {
	input, mean, variance string

	eps      float64
	foldable bool // inference mode with one output: may fold into a Conv
}

func buildBatchNorm(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(5, 5); err != nil {
		return nil, err
	}
	for i := 0; i < 5; i++ {
		if err := b.needType(i, Float32); err != nil {
			return nil, err
		}
	}
	b.setOut(Float32)
	if b.opset < 9 && b.int("spatial", 1) == 0 {
		return nil, b.unsupported("spatial=0")
	}
	eps := float64(b.float("epsilon", 1e-5))
	momentum := float64(b.float("momentum", 0.9))
	training := b.int("training_mode", 0) != 0
	outs := 0
	for i, o := range b.proto.GetOutput() {
		if i > 0 && o != "" {
			outs++
		}
	}
	if outs > 0 && !(training && b.opset >= 14 && b.nOut <= 3) {
		return nil, b.unsupported("training outputs (mean/var) in opset %d", b.opset)
	}
	in := b.proto.GetInput()
	b.bn = &bnInfo{input: in[0], mean: in[3], variance: in[4], eps: eps, foldable: !training && outs == 0}
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		x, scale, bias, mean, vr := in[0], in[1], in[2], in[3], in[4]
		if len(x.Shape) < 2 {
			return nil, fmt.Errorf("input %v: want [N C ...]", x.Shape)
		}
		n, ch := x.Shape[0], x.Shape[1]
		for _, t := range []*Tensor{scale, bias, mean, vr} {
			if len(t.F) != ch {
				return nil, fmt.Errorf("parameter of shape %v for %d channels", t.Shape, ch)
			}
		}
		S := numel(x.Shape[2:])
		y := &Tensor{Shape: x.Shape, DType: Float32, F: c.outFor(in, 0)}
		batchMode := training || c.bnStats != nil
		var sum, sumSq, bmean, bvar []float64
		if batchMode {
			sum, sumSq = make([]float64, ch), make([]float64, ch)
			bmean, bvar = make([]float64, ch), make([]float64, ch)
		}
		// Channels are split over goroutines, at least 32k elements each:
		// a small input (batch 1) stays on one goroutine.
		parallelFor(c.threads, ch, max(1, (1<<15)/max(n*S, 1)), func(lo, hi int) {
			for k := lo; k < hi; k++ {
				mu, v := float64(mean.F[k]), float64(vr.F[k])
				if batchMode && n*S > 0 {
					var s, s2 float64
					for img := 0; img < n; img++ {
						for _, xv := range x.F[(img*ch+k)*S : (img*ch+k+1)*S] {
							f := float64(xv)
							s += f
							s2 += f * f
						}
					}
					cnt := float64(n * S)
					mu = s / cnt
					// Variance from squared deviations (two-pass) for accuracy.
					var dev float64
					for img := 0; img < n; img++ {
						for _, xv := range x.F[(img*ch+k)*S : (img*ch+k+1)*S] {
							d := float64(xv) - mu
							dev += d * d
						}
					}
					v = dev / cnt
					sum[k], sumSq[k], bmean[k], bvar[k] = s, s2, mu, v
				}
				a := float64(scale.F[k]) / math.Sqrt(v+eps)
				sh := float32(float64(bias.F[k]) - mu*a)
				af := float32(a)
				for img := 0; img < n; img++ {
					o := (img*ch + k) * S
					simd.ScaleShift(y.F[o:o+S], x.F[o:o+S], af, sh)
				}
			}
		})
		if c.bnStats != nil && c.node != nil && c.node.bn != nil {
			c.bnStats(BatchNormStats{Node: c.node.name, Input: c.node.bn.input, Mean: c.node.bn.mean,
				Var: c.node.bn.variance, Sum: sum, SumSq: sumSq, Count: n * S})
		}
		out := []*Tensor{y}
		if training {
			rm, rv := NewFloat32([]int{ch}, nil), NewFloat32([]int{ch}, nil)
			for k := 0; k < ch; k++ {
				rm.F[k] = float32(float64(mean.F[k])*momentum + bmean[k]*(1-momentum))
				rv.F[k] = float32(float64(vr.F[k])*momentum + bvar[k]*(1-momentum))
			}
			out = append(out, rm, rv)
		}
		return out, nil
	}, nil
}

func buildLayerNorm(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(2, 3); err != nil {
		return nil, err
	}
	for i := 0; i < 3; i++ {
		if err := b.needType(i, Float32); err != nil {
			return nil, err
		}
	}
	b.setOut(Float32)
	axis := b.int("axis", -1)
	eps := float64(b.float("epsilon", 1e-5))
	// The optional Mean and InvStdDev outputs, computed only when the
	// graph uses them.
	stats := false
	for i, o := range b.proto.GetOutput() {
		stats = stats || (i > 0 && o != "")
	}
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		x, scale := in[0], in[1]
		var bias *Tensor
		if len(in) > 2 {
			bias = in[2]
		}
		ax, err := normAxis(axis, len(x.Shape))
		if err != nil {
			return nil, err
		}
		rows, cols := numel(x.Shape[:ax]), numel(x.Shape[ax:])
		norm := x.Shape[ax:]
		expand := func(t *Tensor) ([]float32, error) {
			if t == nil {
				return nil, nil
			}
			sh, err := broadcastShape(t.Shape, norm)
			if err != nil || numel(sh) != cols {
				return nil, fmt.Errorf("parameter of shape %v for normalized shape %v", t.Shape, norm)
			}
			if len(t.F) == cols {
				return t.F, nil
			}
			v := make([]float32, cols)
			broadcastInto(v, sh, t.F, t.Shape)
			return v, nil
		}
		g, err := expand(scale)
		if err != nil {
			return nil, err
		}
		bb, err := expand(bias)
		if err != nil {
			return nil, err
		}
		y := &Tensor{Shape: x.Shape, DType: Float32, F: c.outFor(in, 0)}
		statShape := append([]int{}, x.Shape[:ax]...)
		for range x.Shape[ax:] {
			statShape = append(statShape, 1)
		}
		var meanT, invT *Tensor
		if stats {
			meanT, invT = NewFloat32(statShape, nil), NewFloat32(statShape, nil)
		}
		parallelFor(c.threads, rows, max(1, 4096/max(cols, 1)), func(lo, hi int) {
			for r := lo; r < hi; r++ {
				src, dst := x.F[r*cols:(r+1)*cols], y.F[r*cols:(r+1)*cols]
				// Mean and variance in float64 (two passes, so no
				// cancellation), each with two independent sums; the
				// normalisation in float32 vector code:
				// y = (x·a + sh)·g + b with a = 1/σ, sh = −μ/σ.
				mu := sum64(src) / float64(cols)
				var d0, d1 float64
				i := 0
				for ; i+2 <= len(src); i += 2 {
					a, b := float64(src[i])-mu, float64(src[i+1])-mu
					d0 += a * a
					d1 += b * b
				}
				if i < len(src) {
					a := float64(src[i]) - mu
					d0 += a * a
				}
				inv := 1 / math.Sqrt((d0+d1)/float64(cols)+eps)
				simd.BinaryScalarY(simd.OpMul, dst, src, float32(inv))
				simd.BinaryScalarY(simd.OpAdd, dst, dst, float32(-mu*inv))
				simd.Binary(simd.OpMul, dst, dst, g)
				if bb != nil {
					simd.Binary(simd.OpAdd, dst, dst, bb)
				}
				if stats {
					meanT.F[r], invT.F[r] = float32(mu), float32(inv)
				}
			}
		})
		return []*Tensor{y, meanT, invT}, nil
	}, nil
}

func buildInstanceNorm(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(3, 3); err != nil {
		return nil, err
	}
	for i := 0; i < 3; i++ {
		if err := b.needType(i, Float32); err != nil {
			return nil, err
		}
	}
	b.setOut(Float32)
	eps := float64(b.float("epsilon", 1e-5))
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		x, scale, bias := in[0], in[1], in[2]
		if len(x.Shape) < 3 {
			return nil, fmt.Errorf("input %v: want [N C spatial...]", x.Shape)
		}
		ch := x.Shape[1]
		if len(scale.F) != ch || len(bias.F) != ch {
			return nil, fmt.Errorf("scale %v and bias %v for %d channels", scale.Shape, bias.Shape, ch)
		}
		S := numel(x.Shape[2:])
		planes := x.Shape[0] * ch
		y := &Tensor{Shape: x.Shape, DType: Float32, F: c.outFor(in, 0)}
		parallelFor(c.threads, planes, 1, func(lo, hi int) {
			for p := lo; p < hi; p++ {
				src, dst := x.F[p*S:(p+1)*S], y.F[p*S:(p+1)*S]
				var s float64
				for _, v := range src {
					s += float64(v)
				}
				mu := s / float64(S)
				var dev float64
				for _, v := range src {
					d := float64(v) - mu
					dev += d * d
				}
				a := float64(scale.F[p%ch]) / math.Sqrt(dev/float64(S)+eps)
				sh := float64(bias.F[p%ch]) - mu*a
				for i, v := range src {
					dst[i] = float32(float64(v)*a + sh)
				}
			}
		})
		return []*Tensor{y}, nil
	}, nil
}

// buildSoftmax implements Softmax and LogSoftmax. Before opset 13 the input
// is coerced to 2-D at axis (default 1) and normalised over all of
// shape[axis:]; from opset 13 on only dimension axis (default -1) is.
func buildSoftmax(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(1, 1); err != nil {
		return nil, err
	}
	if err := b.needType(0, Float32); err != nil {
		return nil, err
	}
	b.setOut(Float32)
	old := b.opset < 13
	axis := b.int("axis", map[bool]int{true: 1, false: -1}[old])
	logs := b.op == "LogSoftmax"
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		x := in[0]
		if len(x.Shape) == 0 {
			return nil, fmt.Errorf("scalar input")
		}
		ax, err := normAxis(axis, len(x.Shape))
		if err != nil {
			return nil, err
		}
		outer, dim, inner := numel(x.Shape[:ax]), x.Shape[ax], numel(x.Shape[ax+1:])
		if old {
			dim, inner = numel(x.Shape[ax:]), 1
		}
		y := &Tensor{Shape: x.Shape, DType: Float32, F: c.outFor(in, 0)}
		if len(y.F) == 0 {
			return []*Tensor{y}, nil
		}
		if inner == 1 && dim > 0 {
			// Contiguous rows: exp of the whole chunk at once in float32
			// (simd.Exp), sums in float64 as below.
			parallelFor(c.threads, outer, max(1, 2048/dim), func(lo, hi int) {
				// Blocks of rows: e^(x − max) of a whole block in one
				// simd.Exp call (rows of attention scores are short).
				var maxes [64]float32
				for b0 := lo; b0 < hi; b0 += len(maxes) {
					b1 := min(hi, b0+len(maxes))
					softmaxRows(x.F[b0*dim:b1*dim], y.F[b0*dim:b1*dim], dim, maxes[:b1-b0], logs)
				}
			})
			return []*Tensor{y}, nil
		}
		parallelFor(c.threads, outer*inner, max(1, 2048/dim), func(lo, hi int) {
			for r := lo; r < hi; r++ {
				o, i := r/inner, r%inner
				base := o*dim*inner + i
				m := float32(math.Inf(-1))
				for j := 0; j < dim; j++ {
					m = max(m, x.F[base+j*inner])
				}
				var s float64
				for j := 0; j < dim; j++ {
					e := float64(exp32(x.F[base+j*inner] - m))
					if !logs {
						y.F[base+j*inner] = float32(e)
					}
					s += e
				}
				if logs {
					ls := math.Log(s)
					for j := 0; j < dim; j++ {
						y.F[base+j*inner] = float32(float64(x.F[base+j*inner]-m) - ls)
					}
				} else {
					inv := 1 / s
					for j := 0; j < dim; j++ {
						y.F[base+j*inner] = float32(float64(y.F[base+j*inner]) * inv)
					}
				}
			}
		})
		return []*Tensor{y}, nil
	}, nil
}

// exp32 is e^x in float32 by simd.Exp, for scalar call sites.
func exp32(x float32) float32 {
	v := [1]float32{x}
	simd.Exp(v[:], v[:])
	return v[0]
}

// softmaxRows computes Softmax (or LogSoftmax) over each dim-long row of
// src into dst; len(maxes) is the number of rows (scratch for their
// maxima). Sums are in float64.
func softmaxRows(src, dst []float32, dim int, maxes []float32, logs bool) {
	for r := range maxes {
		row := src[r*dim : (r+1)*dim]
		// Two running maxima (Go's max: NaN wins), for instruction-level
		// parallelism.
		m0, m1 := row[0], row[0]
		j := 1
		for ; j+2 <= len(row); j += 2 {
			m0 = max(m0, row[j])
			m1 = max(m1, row[j+1])
		}
		if j < len(row) {
			m0 = max(m0, row[j])
		}
		m := max(m0, m1)
		maxes[r] = m
		simd.BinaryScalarY(simd.OpSub, dst[r*dim:(r+1)*dim], row, m)
	}
	if logs {
		// dst holds x − m; e^(x−m) is only summed.
		var buf [64]float32
		for r := range maxes {
			d := dst[r*dim : (r+1)*dim]
			var s float64
			for j0 := 0; j0 < dim; j0 += len(buf) {
				chunk := buf[:min(len(buf), dim-j0)]
				simd.Exp(chunk, d[j0:j0+len(chunk)])
				for _, e := range chunk {
					s += float64(e)
				}
			}
			ls := math.Log(s)
			for j, v := range d {
				d[j] = float32(float64(v) - ls)
			}
		}
		return
	}
	simd.Exp(dst, dst)
	for r := range maxes {
		d := dst[r*dim : (r+1)*dim]
		simd.BinaryScalarY(simd.OpMul, d, d, float32(1/sum64(d)))
	}
}

// sum64 is Σ x in float64, as two independent sums (even and odd elements)
// added at the end: half the dependency chain of one sum.
func sum64(x []float32) float64 {
	var s0, s1 float64
	i := 0
	for ; i+2 <= len(x); i += 2 {
		s0 += float64(x[i])
		s1 += float64(x[i+1])
	}
	if i < len(x) {
		s0 += float64(x[i])
	}
	return s0 + s1
}

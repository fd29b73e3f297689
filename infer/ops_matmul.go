package infer

import (
	"fmt"
	"slices"
)

func init() {
	register("Gemm", buildGemm)
	register("MatMul", buildMatMul)
}

// buildGemm: Y = alpha·op(A)·op(B) + beta·C, C broadcasting to Y.
func buildGemm(b *nodeCtx) (kernel, error) {
	if err := b.needInputs(2, 3); err != nil {
		return nil, err
	}
	for i := 0; i < 3; i++ {
		if err := b.needType(i, Float32); err != nil {
			return nil, err
		}
	}
	b.setOut(Float32)
	transA, transB := b.int("transA", 0) != 0, b.int("transB", 0) != 0
	alpha, beta := b.float("alpha", 1), b.float("beta", 1)
	// A constant B stored transposed (torch's Linear) is transposed once
	// here: packing gives the same panels either way, so the bits do not
	// change, and small products can then skip packing (sgemm).
	var bT *Tensor
	if wt := b.consts[1]; transB && wt != nil && len(wt.Shape) == 2 {
		bT = &Tensor{Shape: []int{wt.Shape[1], wt.Shape[0]}, DType: Float32,
			F: transposeCopy(wt.F, wt.Shape[0], wt.Shape[1], wt.Shape[1])}
	}
	return func(c *runCtx, in []*Tensor) ([]*Tensor, error) {
		a, w := in[0], in[1]
		transB := transB
		if bT != nil {
			w, transB = bT, false
		}
		if len(a.Shape) != 2 || len(w.Shape) != 2 {
			return nil, fmt.Errorf("A %v and B %v must be matrices", a.Shape, w.Shape)
		}
		m, k := a.Shape[0], a.Shape[1]
		if transA {
			m, k = k, m
		}
		k2, n := w.Shape[0], w.Shape[1]
		if transB {
			k2, n = n, k2
		}
		if k != k2 {
			return nil, fmt.Errorf("A %v and B %v do not multiply (transA=%v, transB=%v)", a.Shape, w.Shape, transA, transB)
		}
		out := c.newF([]int{m, n})
		betaC := float32(0)
		if len(in) > 2 && in[2] != nil && beta != 0 {
			cc := in[2]
			if _, err := broadcastShape(cc.Shape, out.Shape); err != nil || len(cc.Shape) > 2 {
				return nil, fmt.Errorf("C %v does not broadcast to %v", cc.Shape, out.Shape)
			}
			if sh, _ := broadcastShape(cc.Shape, out.Shape); !slices.Equal(sh, out.Shape) {
				return nil, fmt.Errorf("C %v does not broadcast to %v", cc.Shape, out.Shape)
			}
			broadcastInto(out.F, out.Shape, cc.F, cc.Shape)
			if beta != 1 {
				for i := range out.F {
					out.F[i] *= beta
				}
			}
			betaC = 1
		}
		lda, ldb := a.Shape[1], w.Shape[1]
		sgemm(c.threads, transA, transB, m, n, k, alpha, a.F, lda, w.F, ldb, betaC, out.F, n)
		return []*Tensor{out}, nil
	}, nil
}

// broadcastInto fills dst (of shape dshape) with src broadcast to it.
func broadcastInto(dst []float32, dshape []int, src []float32, sshape []int) {
	if len(dst) == 0 {
		return
	}
	if len(src) == len(dst) {
		copy(dst, src)
		return
	}
	bc := newBcast(dshape, sshape)
	bc.runs(0, bc.outer(), func(o int, off, inc []int, n int) {
		if inc[0] == 1 {
			copy(dst[o:o+n], src[off[0]:off[0]+n])
			return
		}
		v := src[off[0]]
		d := dst[o : o+n]
		for i := range d {
			d[i] = v
		}
	})
}

// buildMatMul: numpy matmul with broadcasting batch dimensions.
func buildMatMul(b *nodeCtx) (kernel, error) {
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
		out, err := matmul(c, in[0], in[1])
		return []*Tensor{out}, err
	}, nil
}

func matmul(c *runCtx, a, w *Tensor) (*Tensor, error) {
	as, ws := a.Shape, w.Shape
	if len(as) == 0 || len(ws) == 0 {
		return nil, fmt.Errorf("MatMul of a scalar")
	}
	// Promote vectors to matrices, remembering which dims to drop.
	dropM, dropN := len(as) == 1, len(ws) == 1
	if dropM {
		as = []int{1, as[0]}
	}
	if dropN {
		ws = []int{ws[0], 1}
	}
	m, k := as[len(as)-2], as[len(as)-1]
	k2, n := ws[len(ws)-2], ws[len(ws)-1]
	if k != k2 {
		return nil, fmt.Errorf("shapes %v and %v do not multiply", a.Shape, w.Shape)
	}
	batch, err := broadcastShape(as[:len(as)-2], ws[:len(ws)-2])
	if err != nil {
		return nil, err
	}
	shape := append(append([]int{}, batch...), m, n)
	out := c.newF(shape)
	if len(out.F) == 0 {
		return finishMatMul(out, batch, m, n, dropM, dropN), nil
	}
	nb := numel(batch)
	if numel(ws[:len(ws)-2]) == 1 {
		// The same right matrix for every batch: one tall product.
		sgemm(c.threads, false, false, nb*m, n, k, 1, a.F, k, w.F, n, 0, out.F, n)
		return finishMatMul(out, batch, m, n, dropM, dropN), nil
	}
	// Offsets of each batch's matrices.
	// Operands without broadcasting (the usual attention case) need no
	// offset tables: fresh memory costs page faults on every run.
	var aOff, wOff []int
	if !slices.Equal(as[:len(as)-2], batch) {
		aOff = batchOffsets(batch, as[:len(as)-2], m*k)
	}
	if !slices.Equal(ws[:len(ws)-2], batch) {
		wOff = batchOffsets(batch, ws[:len(ws)-2], k*n)
	}
	offA := func(i int) int {
		if aOff == nil {
			return i * m * k
		}
		return aOff[i]
	}
	offW := func(i int) int {
		if wOff == nil {
			return i * k * n
		}
		return wOff[i]
	}
	if nb >= c.threads {
		// At least about 2^20 multiply-adds per goroutine (see gemv).
		parallelFor(c.threads, nb, max(1, (1<<20)/max(m*n*k, 1)), func(lo, hi int) {
			for i := lo; i < hi; i++ {
				sgemm(1, false, false, m, n, k, 1, a.F[offA(i):], k, w.F[offW(i):], n, 0, out.F[i*m*n:], n)
			}
		})
	} else {
		for i := 0; i < nb; i++ {
			sgemm(c.threads, false, false, m, n, k, 1, a.F[offA(i):], k, w.F[offW(i):], n, 0, out.F[i*m*n:], n)
		}
	}
	return finishMatMul(out, batch, m, n, dropM, dropN), nil
}

func finishMatMul(out *Tensor, batch []int, m, n int, dropM, dropN bool) *Tensor {
	shape := append([]int{}, batch...)
	if !dropM {
		shape = append(shape, m)
	}
	if !dropN {
		shape = append(shape, n)
	}
	out.Shape = shape
	return out
}

// batchOffsets returns, for every index of the broadcast batch shape, the
// element offset of the matching matrix in an operand with batch shape
// shape (right-aligned, size-1 dims broadcast) and matrices of size mat.
func batchOffsets(batch, shape []int, mat int) []int {
	nb := numel(batch)
	offs := make([]int, nb)
	st := make([]int, len(batch))
	acc := mat
	for i := len(batch) - 1; i >= 0; i-- {
		j := i - (len(batch) - len(shape))
		if j < 0 {
			continue
		}
		if shape[j] != 1 {
			st[i] = acc
		}
		acc *= shape[j]
	}
	idx := make([]int, len(batch))
	for b := 0; b < nb; b++ {
		o := 0
		for d := range idx {
			o += idx[d] * st[d]
		}
		offs[b] = o
		for d := len(idx) - 1; d >= 0; d-- {
			if idx[d]++; idx[d] < batch[d] {
				break
			}
			idx[d] = 0
		}
	}
	return offs
}

package simd

import (
	"fmt"
	"sync"
)

// GEMM with a pre-packed A and an unpacked B, for products that repeat one
// small left operand against many right operands: a convolution's weights
// (M output channels × K = C·kh·kw) against each image's im2col matrix.
// Packing the weights once saves repacking them for every image, and the
// strided micro-kernels read B in place (row stride ldb) instead of copying
// it into slivers first: for the small K of CNN layers the B matrix fits in
// L2, where the copy cost as much as the multiply.
//
// The arithmetic is the packed kernels' (per k-block of the same kc, an FMA
// chain in increasing k, then alpha·acc + c), so PackedA.Gemm gives the same
// bits as Gemm on the same operands, whatever tile shape it picks.

// stridedKernel is a micro-kernel usable by PackedA: fn reads B in place
// (nil when the path has only a packed kernel, which then gets B slivers
// copied into a scratch buffer first).
type stridedKernel struct {
	mr, nr, kc int
	// cost weighs the kernel's time per (padded) row against the other
	// candidates of its path; see pickKernel.
	cost   float64
	fn     func(k int, a, b []float32, ldb int, c []float32, ldc int, alpha, beta float32)
	ind    func(k int, a, b []float32, offs []int, c []float32, ldc int, alpha, beta float32) // B row p at b[offs[p]:]; nil: copied
	packed func(k int, a, b, c []float32, ldc int, alpha, beta float32)
}

// pickKernel returns the candidate that wastes the least work on m rows:
// rows are padded to a multiple of mr, weighted by the kernel's cost.
func pickKernel(cands []*stridedKernel, m int) *stridedKernel {
	best := cands[0]
	bestCost := -1.0
	for _, k := range cands {
		c := float64(ceilDiv(max(m, 1), k.mr)*k.mr) * k.cost
		if bestCost < 0 || c < bestCost {
			best, bestCost = k, c
		}
	}
	return best
}

// PackedA is an m×k float32 matrix packed for repeated products
// C = A·B + beta·C with GemmPackedA. It is immutable and safe for
// concurrent use.
type PackedA struct {
	m, k  int
	mpad  int // m rounded up to the kernel's mr
	kern  *stridedKernel
	data  []float32 // k-block q (kcur rows of k): data[q*kc*mpad:], sliver t at t*kcur*mr
	alpha float32
}

// PackA packs the m×k row-major matrix a (row stride lda >= k) for
// GemmPackedA, choosing the micro-kernel shape that suits m. It panics if
// a is too short.
func PackA(m, k int, a []float32, lda int) *PackedA {
	return packAFor(active, m, k, a, lda)
}

func packAFor(im *impl, m, k int, a []float32, lda int) *PackedA {
	return packAWith(im, pickKernel(im.strided, m), m, k, a, lda)
}

func packAWith(im *impl, kern *stridedKernel, m, k int, a []float32, lda int) *PackedA {
	checkGemm("PackA", false, false, m, 1, k, len(a), lda, k, 1, m, 1)
	p := &PackedA{m: m, k: k, kern: kern, alpha: 1}
	p.mpad = ceilDiv(max(m, 1), kern.mr) * kern.mr
	p.data = make([]float32, p.mpad*k)
	mr, kc := kern.mr, kern.kc
	for pc := 0; pc < k; pc += kc {
		kcur := min(kc, k-pc)
		blk := p.data[pc*p.mpad : pc*p.mpad+kcur*p.mpad]
		for t := 0; t*mr < m; t++ {
			packA(im.transpose, blk[t*kcur*mr:(t+1)*kcur*mr], a, lda, false, t*mr, min(mr, m-t*mr), pc, kcur, mr)
		}
	}
	return p
}

// Rows is A's number of rows (the m of the product).
func (p *PackedA) Rows() int { return p.m }

// Tile reports the micro-kernel shape chosen for A: rows and columns of C
// per kernel call. Callers splitting C between goroutines should cut the
// columns at multiples of nr.
func (p *PackedA) Tile() (mr, nr int) { return p.kern.mr, p.kern.nr }

// scratch holds a B sliver copy (edge columns, or every sliver on paths
// without an in-place kernel) and an edge tile of C.
type scratch struct{ b, c []float32 }

var scratchPool sync.Pool

// GemmPackedA computes C = A·B + beta·C on the calling goroutine, where A is
// p (m×k), B is k×n row-major with row stride ldb >= n and C is m×n with
// row stride ldc >= n. As in Gemm, beta == 0 overwrites C without reading
// it, and the result is bit-identical to
// Gemm(false, false, m, n, k, 1, a, lda, b, ldb, beta, c, ldc) on the same
// path. Columns are independent: computing C in column ranges (e.g. on
// several goroutines, with b and c offset by the first column) gives the
// same bits. It panics if a slice is too short.
func GemmPackedA(p *PackedA, n int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkGemm("GemmPackedA", false, false, p.m, n, p.k, p.m*p.k, max(p.k, 1), len(b), ldb, len(c), ldc)
	gemmPacked(p, n, b, ldb, nil, beta, c, ldc)
}

// GemmPackedAOffsets is GemmPackedA with row p of B at b[offs[p]:]
// (len(offs) = k): the rows of a stride-1 convolution's im2col matrix are
// windows of the zero-padded image at fixed offsets, so B is read from the
// image itself. Unlike GemmPackedA it reads B columns up to n rounded up
// to a multiple of the tile width (Tile's nr): b must hold them
// (len(b) >= max(offs) + that width); their values only reach columns of C
// that are discarded. The result is bit-identical to GemmPackedA on the
// matrix B[p][j] = b[offs[p]+j]. It panics if a slice is too short.
func GemmPackedAOffsets(p *PackedA, n int, b []float32, offs []int, beta float32, c []float32, ldc int) {
	if len(offs) != p.k {
		panic(fmt.Sprintf("simd: GemmPackedAOffsets: %d offsets for k = %d", len(offs), p.k))
	}
	checkGemm("GemmPackedAOffsets", false, false, p.m, n, p.k, p.m*p.k, max(p.k, 1), p.k*n, max(n, 1), len(c), ldc) // B is checked below
	if n > 0 {
		w := ceilDiv(n, p.kern.nr) * p.kern.nr
		for _, o := range offs {
			if o < 0 || o+w > len(b) {
				panic(fmt.Sprintf("simd: GemmPackedAOffsets: row at offset %d, %d columns read, len(b) = %d", o, w, len(b)))
			}
		}
	}
	gemmPacked(p, n, b, 0, offs, beta, c, ldc)
}

// gemmPacked is the driver of GemmPackedA (offs nil: B rows at stride ldb)
// and GemmPackedAOffsets; the caller has checked the bounds.
func gemmPacked(p *PackedA, n int, b []float32, ldb int, offs []int, beta float32, c []float32, ldc int) {
	m, k := p.m, p.k
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		for i := 0; i < m && beta != 1; i++ {
			if beta == 0 {
				clear(c[i*ldc : i*ldc+n])
			} else {
				scaleGeneric(beta, c[i*ldc:i*ldc+n])
			}
		}
		return
	}
	kn := p.kern
	mr, nr, kc := kn.mr, kn.nr, kn.kc
	sc, _ := scratchPool.Get().(*scratch)
	if sc == nil {
		sc = &scratch{}
	}
	if len(sc.c) < mr*nr {
		sc.c = make([]float32, mr*nr)
	}
	needB := min(k, kc) * nr
	if len(sc.b) < needB {
		sc.b = make([]float32, needB)
	}
	tmp := sc.c[:mr*nr]
	mt := ceilDiv(m, mr)
	for j := 0; j < n; j += nr {
		nv := min(nr, n-j)
		for pc := 0; pc < k; pc += kc {
			kcur := min(kc, k-pc)
			bet := float32(1)
			if pc == 0 {
				bet = beta
			}
			// The B sliver: in place when the kernel can read it there,
			// else copied (zero-padded) to scratch and read at stride nr.
			var bs []float32
			var bo []int
			lb := ldb
			switch {
			case offs != nil && kn.ind != nil:
				bs, bo = b[j:], offs[pc:pc+kcur]
			case offs == nil && kn.fn != nil && nv == nr:
				bs = b[pc*ldb+j : pc*ldb+j+(kcur-1)*ldb+nr]
			case offs != nil:
				bs, lb = sc.b[:kcur*nr], nr
				for q := 0; q < kcur; q++ {
					o := offs[pc+q] + j
					copy(bs[q*nr:q*nr+nv], b[o:o+nv])
					clear(bs[q*nr+nv : (q+1)*nr])
				}
			default:
				bs, lb = sc.b[:kcur*nr], nr
				packRuns(bs, b, ldb, pc*ldb+j, kcur, nv, nr)
			}
			blk := p.data[pc*p.mpad:]
			for t := 0; t < mt; t++ {
				as := blk[t*kcur*mr : (t+1)*kcur*mr]
				i := t * mr
				mv := min(mr, m-i)
				off := i*ldc + j
				if mv == mr && nv == nr {
					kn.run(kcur, as, bs, lb, bo, c[off:off+(mr-1)*ldc+nr], ldc, p.alpha, bet)
					continue
				}
				// Edge tile: the same kernel on a copy, so that edge
				// elements get exactly the arithmetic of interior ones.
				for r := 0; r < mr; r++ {
					trow := tmp[r*nr : (r+1)*nr]
					if r < mv && bet != 0 {
						copy(trow, c[off+r*ldc:off+r*ldc+nv])
						clear(trow[nv:])
					} else {
						clear(trow)
					}
				}
				kn.run(kcur, as, bs, lb, bo, tmp, nr, p.alpha, bet)
				for r := 0; r < mv; r++ {
					copy(c[off+r*ldc:off+r*ldc+nv], tmp[r*nr:r*nr+nv])
				}
			}
		}
	}
	scratchPool.Put(sc)
}

// run calls the kernel on one tile; b is either in place (rows at offsets
// offs, or at stride ldb) or a packed sliver (ldb == nr).
func (kn *stridedKernel) run(k int, a, b []float32, ldb int, offs []int, c []float32, ldc int, alpha, beta float32) {
	if offs != nil {
		kn.ind(k, a, b, offs, c, ldc, alpha, beta)
		return
	}
	if kn.fn != nil {
		kn.fn(k, a, b, ldb, c, ldc, alpha, beta)
		return
	}
	if ldb != kn.nr {
		panic(fmt.Sprintf("simd: packed-only kernel given ldb %d", ldb))
	}
	kn.packed(k, a, b, c, ldc, alpha, beta)
}

// stridedGeneric is the generic path's in-place kernel: the 4×4 Go kernel's
// arithmetic with B rows at stride ldb.
func stridedGeneric(k int, a, b []float32, ldb int, c []float32, ldc int, alpha, beta float32) {
	var bp [4 * genericKC]float32
	for p := 0; p < k; p++ {
		copy(bp[p*4:p*4+4], b[p*ldb:p*ldb+4])
	}
	microGeneric(k, a, bp[:4*k], c, ldc, alpha, beta)
}

// indirectGeneric is the generic path's kernel with B rows at offsets.
func indirectGeneric(k int, a, b []float32, offs []int, c []float32, ldc int, alpha, beta float32) {
	var bp [4 * genericKC]float32
	for p := 0; p < k; p++ {
		copy(bp[p*4:p*4+4], b[offs[p]:offs[p]+4])
	}
	microGeneric(k, a, bp[:4*k], c, ldc, alpha, beta)
}

// GemmSmall computes C = A·B + beta·C for row-major A (m×k, row stride
// lda), B (k×n, ldb) and C (m×n, ldc), on the calling goroutine; with
// beta = 0, C is overwritten (NaNs in it do not propagate). It is for products so small that
// Gemm's packing and blocking cost more than the multiplication (the
// per-head 16×16×16 products of attention): on amd64 the rows of A are
// broadcast from memory and B is read in place. The result is
// bit-identical to Gemm(false, false, m, n, k, 1, a, lda, b, ldb, beta, c, ldc)
// on the same path. It panics if a slice is too short
//
// beta must be 0 or 1 (C = A·B + C, bit-identical to Gemm with beta 1).
func GemmSmall(m, n, k int, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	gemmSmall(active, m, n, k, a, lda, b, ldb, beta, c, ldc)
}

func gemmSmall(im *impl, m, n, k int, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkGemm("GemmSmall", false, false, m, n, k, len(a), lda, len(b), ldb, len(c), ldc)
	if beta != 0 && beta != 1 {
		panic("simd: GemmSmall: beta must be 0 or 1")
	}
	if m == 0 || n == 0 {
		return
	}
	// The small kernel sums k in one chain: the same as Gemm's only while
	// k fits one k-block.
	n8 := n &^ 7
	kern := im.small
	if beta == 1 {
		kern = im.smallAdd
	}
	if kern == nil || k == 0 || k > im.sgemm.kc {
		gemm(im, 1, false, false, m, n, k, 1, a, lda, b, ldb, beta, c, ldc)
		return
	}
	if n8 > 0 {
		kern(m, n8, k, a, lda, b, ldb, c, ldc)
	}
	if n8 == n {
		return
	}
	// The last n%8 columns: the same kernel on copies padded to 8 (Gemm
	// on them would pack all of A for a few columns).
	r := n - n8
	sc, _ := scratchPool.Get().(*scratch)
	if sc == nil {
		sc = &scratch{}
	}
	if len(sc.b) < k*8 {
		sc.b = make([]float32, k*8)
	}
	if len(sc.c) < m*8 {
		sc.c = make([]float32, m*8)
	}
	bt, ct := sc.b[:k*8], sc.c[:m*8]
	for p := 0; p < k; p++ {
		copy(bt[p*8:p*8+r], b[p*ldb+n8:p*ldb+n])
		clear(bt[p*8+r : p*8+8])
	}
	if beta == 1 {
		for i := 0; i < m; i++ {
			copy(ct[i*8:i*8+r], c[i*ldc+n8:i*ldc+n])
		}
	}
	kern(m, 8, k, a, lda, bt, 8, ct, 8)
	for i := 0; i < m; i++ {
		copy(c[i*ldc+n8:i*ldc+n], ct[i*8:i*8+r])
	}
	scratchPool.Put(sc)
}

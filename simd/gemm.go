package simd

import (
	"fmt"
	"math/bits"
	"sync"
	"unsafe"

	"github.com/onnx-rebasin/onnx-rebasin/internal/hugepage"
)

// GEMM driver, after Goto & van de Geijn ("Anatomy of high-performance
// matrix multiplication", 2008) and BLIS:
//
//	for jc over n in panels of nc columns           (B panel kc×nc in L3)
//	  for pc over k in blocks of kc                 (fixed order: determinism)
//	    pack op(B)[pc:pc+kc, jc:jc+nc] into nr-wide slivers (shared)
//	    each worker, for its rows and sliver range of C:
//	      for ic over its rows in chunks of ≤ mc    (A chunk mc×kc in L2)
//	        pack op(A)[ic:ic+mc, pc:pc+kc] into mr-tall slivers (private)
//	        for each B sliver (kc×nr, stays in L1)
//	          for each A sliver: micro-kernel on the mr×nr tile of C
//
// Packing copies the operands into the exact order the micro-kernel reads
// them, so the kernel streams two contiguous arrays whatever the transposes
// and leading dimensions, and converts float32 to float64 for GemmF64Acc on
// the way.
//
// Workers own disjoint rectangles of C whose edges lie on the global mr×nr
// tile grid, and every tile is computed the same way (per k-block, an FMA
// chain in increasing k, then c = alpha*acc + c, with beta folded into the
// first k-block) whichever worker runs it; so the result does not depend on
// the number of workers, nor on mc and nc.

// microKernel describes one GEMM micro-kernel and the blocking around it.
type microKernel[T float32 | float64] struct {
	mr, nr int // register tile
	kc     int // k-block: fixed per kernel, it fixes the summation order
	mc, nc int // cache blocking of A rows and B columns; performance only

	// fn computes, for i < mr and j < nr,
	//	c[i*ldc+j] = alpha*Σ_{p<k} a[p*mr+i]*b[p*nr+j] + beta*c[i*ldc+j]
	// with the sum an FMA chain from zero in increasing p, then one FMA
	// alpha*sum + addend, the addend being c (beta == 1), 0 (beta == 0:
	// c is not read) or round(beta*c) otherwise. k >= 1. The driver
	// passes the caller's beta with the first k-block and 1 after it.
	fn func(k int, a, b, c []T, ldc int, alpha, beta T)
}

// newMicroKernel sizes the cache blocks from the detected cache sizes: the
// packed A chunk (mc×kc) takes about half of L2 and the packed B panel
// (kc×nc) about half of L3 (8 MiB assumed when cpuid does not know L3).
// kc is given: it changes the rounding, so it is a constant per kernel
// family rather than a function of the machine, sized so that a B sliver
// (kc×nr) and an A sliver roughly fit in L1. (Measured on Zen 5: kc = 256
// to 512 and mc from 12 to 36 tiles are all within a few percent.)
func newMicroKernel[T float32 | float64](mr, nr, kc int, fn func(k int, a, b, c []T, ldc int, alpha, beta T)) *microKernel[T] {
	var zero T
	es := int(unsafe.Sizeof(zero))
	mc := cacheL2 / 2 / (kc * es) / mr * mr
	mc = min(max(mc, 4*mr), 1024/mr*mr)
	l3 := cacheL3
	if l3 <= 0 {
		l3 = 8 << 20
	}
	nc := l3 / 2 / (kc * es) / nr * nr
	nc = min(max(nc, 16*nr), 8192/nr*nr)
	return &microKernel[T]{mr: mr, nr: nr, kc: kc, mc: mc, nc: nc, fn: fn}
}

// minFlopsPerWorker keeps small products on fewer goroutines: starting and
// joining a goroutine costs a few microseconds, about 2 MFLOP of work.
var minFlopsPerWorker = 2 << 20

func gemm(im *impl, workers int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkGemm("Gemm", transA, transB, m, n, k, len(a), lda, len(b), ldb, len(c), ldc)
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		// Only C = beta·C is left, and A and B are not read.
		for i := 0; i < m && beta != 1; i++ {
			if beta == 0 {
				clear(c[i*ldc : i*ldc+n]) // BLAS: C is not read, NaNs vanish
			} else {
				im.scale(beta, c[i*ldc:i*ldc+n])
			}
		}
		return
	}
	gemmDriver(im.sgemm, im.transpose, workers, transA, transB, m, n, k, alpha, a, lda, nil, b, ldb, nil, beta, c, ldc)
}

func gemmF64Acc(im *impl, workers int, transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float64, ldc int) {
	checkGemm("GemmF64Acc", transA, transB, m, n, k, len(a), lda, len(b), ldb, len(c), ldc)
	if m == 0 || n == 0 || k == 0 {
		return
	}
	gemmDriver(im.dgemm, im.transpose, workers, transA, transB, m, n, k, 1, a, lda, nil, b, ldb, nil, 1, c, ldc)
}

func checkGemm(name string, transA, transB bool, m, n, k, la, lda, lb, ldb, lc, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("simd: %s: negative dimension m=%d n=%d k=%d", name, m, n, k))
	}
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	check := func(what string, l, ld, rows, cols int) {
		if ld < max(1, cols) {
			panic(fmt.Sprintf("simd: %s: ld%s=%d < %d", name, what, ld, max(1, cols)))
		}
		if rows > 0 && cols > 0 && l < (rows-1)*ld+cols {
			panic(fmt.Sprintf("simd: %s: len(%s)=%d < %d", name, what, l, (rows-1)*ld+cols))
		}
	}
	check("a", la, lda, ar, ac)
	check("b", lb, ldb, br, bc)
	check("c", lc, ldc, m, n)
}

// plan chooses how many workers to use and how to lay them out as a pm×pn
// grid over C. It depends on GOMAXPROCS (through workers) but the result
// of the product does not depend on it.
func plan(workers, m, n, k, mr, nr int) (pm, pn int) {
	mt, nt := ceilDiv(m, mr), ceilDiv(n, nr)
	flops := 2 * float64(m) * float64(n) * float64(k)
	w := min(workers, mt*nt)
	if minFlopsPerWorker > 0 {
		w = min(w, int(flops/float64(minFlopsPerWorker)))
	}
	w = max(w, 1)
	for ; w > 1; w-- {
		best := -1.0
		for p := 1; p <= w; p++ {
			if w%p != 0 || p > mt || w/p > nt {
				continue
			}
			rows := float64(ceilDiv(mt, p) * mr)
			cols := float64(ceilDiv(nt, w/p) * nr)
			// Per-worker time: the tile work plus packing its own A rows,
			// which costs roughly as much as 32 more columns of work.
			cost := rows * (cols + 32)
			if best < 0 || cost < best {
				best, pm, pn = cost, p, w/p
			}
		}
		if best >= 0 {
			return pm, pn
		}
	}
	return 1, 1
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// split returns part id of [0, n) cut into parts near-equal pieces.
func split(n, parts, id int) (lo, hi int) {
	return n * id / parts, n * (id + 1) / parts
}

// gemmJob is one call of the driver: its operands, its plan, its buffers
// and the current (jc, pc) block, which the workers read. Keeping it all in
// one struct keeps small products at a couple of allocations.
type gemmJob[T float32 | float64] struct {
	mk     *microKernel[T]
	tr     transposers
	transA bool
	transB bool
	m, n   int
	k      int
	alpha  T
	beta   T
	a      []float32
	lda    int
	aRuns  []Run // if not nil, A is given by runs (GemmRuns) and lda is its row stride
	b      []float32
	ldb    int
	bRuns  []Run // likewise for B
	c      []T
	ldc    int

	pm, pn, w int
	mtiles    int
	bp        *buffer[T]    // packed B: the k-blocks of the current group
	abufs     []*buffer[T]  // per worker: packed A chunk, then an edge tile
	abufArr   [4]*buffer[T] // backing for abufs when w <= 4

	// The current column panel and group of k-blocks: blocks
	// pg, pg+kc, … below pgEnd, block q packed at bp.s[q*bstride:].
	jc, ncur, nsl int
	pg, pgEnd     int
	bstride       int
}

// maxPackedB bounds the packed B of one group of k-blocks (elements): a
// group is packed in one parallel phase and then consumed in another, so
// grouping k-blocks saves barriers (2 per group rather than 2 per k-block).
var maxPackedB = 1 << 20

const (
	phasePackB = iota
	phaseCompute
	phasePackAndCompute
)

func gemmDriver[T float32 | float64](mk *microKernel[T], tr transposers, workers int, transA, transB bool, m, n, k int, alpha T, a []float32, lda int, aRuns []Run, b []float32, ldb int, bRuns []Run, beta T, c []T, ldc int) {
	j := &gemmJob[T]{mk: mk, tr: tr, transA: transA, transB: transB, m: m, n: n, k: k,
		alpha: alpha, beta: beta, a: a, lda: lda, aRuns: aRuns, b: b, ldb: ldb, bRuns: bRuns, c: c, ldc: ldc}
	mr, nr := mk.mr, mk.nr
	kc := min(mk.kc, k) // for buffer sizes; the blocking itself uses mk.kc
	j.pm, j.pn = plan(workers, m, n, k, mr, nr)
	j.w = j.pm * j.pn

	// Column panels: as few as fit nc, of equal width (a multiple of nr)
	// so that no panel is a thin leftover.
	ncw := roundUp(ceilDiv(n, ceilDiv(n, mk.nc)), nr)
	j.bstride = kc * ncw
	group := max(1, min(ceilDiv(k, mk.kc), maxPackedB/j.bstride)) // k-blocks per group
	j.bp = getBuf[T](poolB, group*j.bstride)
	j.mtiles = ceilDiv(m, mr)
	j.abufs = j.abufArr[:0]
	for id := 0; id < j.w; id++ {
		lo, hi := split(j.mtiles, j.pm, id/j.pn)
		// chunkRows never exceeds mc nor the worker's (rounded) row count.
		chunk := min(mk.mc, (hi-lo)*mr)
		j.abufs = append(j.abufs, getBuf[T](poolA, chunk*kc+mr*nr))
	}

	for j.jc = 0; j.jc < n; j.jc += ncw {
		j.ncur = min(ncw, n-j.jc)
		j.nsl = ceilDiv(j.ncur, nr)
		for j.pg = 0; j.pg < k; j.pg = j.pgEnd {
			j.pgEnd = min(k, j.pg+group*mk.kc)
			if j.pm == 1 {
				// Column split only: every worker packs the B slivers it
				// alone uses, so no barrier is needed between the phases.
				j.parallel(phasePackAndCompute)
			} else {
				j.parallel(phasePackB)
				j.parallel(phaseCompute)
			}
		}
	}

	putBuf(poolB, j.bp)
	for _, ab := range j.abufs {
		putBuf(poolA, ab)
	}
}

// parallel runs phase on workers 0..w-1, worker 0 on the calling
// goroutine, and waits for all of them.
func (j *gemmJob[T]) parallel(phase int) {
	if j.w == 1 {
		j.work(0, phase)
		return
	}
	// The spinning pool (workers.go): starting goroutines per phase cost
	// more than a small product.
	Parallel(j.w, j.w, func(id int) { j.work(id, phase) })
}

func (j *gemmJob[T]) work(id, phase int) {
	kc := j.mk.kc
	if phase == phasePackB {
		// Share out the (k-block, sliver) pairs of the group.
		nblk := ceilDiv(j.pgEnd-j.pg, kc)
		lo, hi := split(nblk*j.nsl, j.w, id)
		for q := lo / j.nsl; q*j.nsl < hi; q++ {
			j.packSlivers(q, max(lo-q*j.nsl, 0), min(hi-q*j.nsl, j.nsl))
		}
		return
	}
	mr := j.mk.mr
	t0, t1 := split(j.mtiles, j.pm, id/j.pn)
	s0, s1 := split(j.nsl, j.pn, id%j.pn)
	r0, r1 := t0*mr, min(t1*mr, j.m)
	if r0 >= r1 || s0 >= s1 {
		return
	}
	// k-blocks in increasing order: this fixes every element's summation
	// order, whoever computes it.
	for q := 0; j.pg+q*kc < j.pgEnd; q++ {
		if phase == phasePackAndCompute {
			j.packSlivers(q, s0, s1)
		}
		j.computeBlock(j.abufs[id].s, q, r0, r1, s0, s1)
	}
}

// packSlivers packs B slivers [s0, s1) of k-block q of the current group.
func (j *gemmJob[T]) packSlivers(q, s0, s1 int) {
	nr := j.mk.nr
	pc := j.pg + q*j.mk.kc
	kcur := min(j.mk.kc, j.pgEnd-pc)
	bp := j.bp.s[q*j.bstride:]
	for s := s0; s < s1; s++ {
		dst := bp[s*kcur*nr : (s+1)*kcur*nr]
		if j.bRuns != nil {
			packFromRuns(j.tr, dst, j.b, j.ldb, j.bRuns, j.jc+s*nr, min(nr, j.ncur-s*nr), pc, kcur, nr)
			continue
		}
		packB(j.tr, dst, j.b, j.ldb, j.transB, pc, kcur, j.jc+s*nr, min(nr, j.ncur-s*nr), nr)
	}
}

// chunkRows returns the height of the A chunks a worker with `rows` rows
// uses: at most mc, a multiple of mr, and as even as possible so that no
// chunk is a thin leftover.
func chunkRows(rows, mc, mr int) int {
	if rows <= 0 {
		return mr
	}
	return roundUp(ceilDiv(rows, ceilDiv(rows, mc)), mr)
}

func roundUp(a, b int) int { return ceilDiv(a, b) * b }

// computeBlock runs the micro-kernel over rows [r0, r1) and B slivers
// [s0, s1) of the current panel, for k-block q of the current group; abuf
// is the worker's buffer.
func (j *gemmJob[T]) computeBlock(abuf []T, q, r0, r1, s0, s1 int) {
	mk, c, ldc := j.mk, j.c, j.ldc
	jc, ncur, alpha := j.jc, j.ncur, j.alpha
	pc := j.pg + q*mk.kc
	kcur := min(mk.kc, j.pgEnd-pc)
	bp := j.bp.s[q*j.bstride:]
	// beta applies once, with the first k-block, inside the kernel: no
	// separate pass over C.
	beta := T(1)
	if pc == 0 {
		beta = j.beta
	}
	mr, nr := mk.mr, mk.nr
	chunk := chunkRows(r1-r0, mk.mc, mr)
	ap := abuf[:chunk*kcur]
	tmp := abuf[len(abuf)-mr*nr:]
	fn := mk.fn
	for ic := r0; ic < r1; ic += chunk {
		mcur := min(chunk, r1-ic)
		msl := ceilDiv(mcur, mr)
		for t := 0; t < msl; t++ {
			dst := ap[t*kcur*mr : (t+1)*kcur*mr]
			if j.aRuns != nil {
				packFromRuns(j.tr, dst, j.a, j.lda, j.aRuns, ic+t*mr, min(mr, mcur-t*mr), pc, kcur, mr)
				continue
			}
			packA(j.tr, dst, j.a, j.lda, j.transA, ic+t*mr, min(mr, mcur-t*mr), pc, kcur, mr)
		}
		for s := s0; s < s1; s++ {
			bs := bp[s*kcur*nr : (s+1)*kcur*nr]
			col := jc + s*nr
			nv := min(nr, jc+ncur-col)
			for t := 0; t < msl; t++ {
				as := ap[t*kcur*mr : (t+1)*kcur*mr]
				i := ic + t*mr
				mv := min(mr, ic+mcur-i)
				off := i*ldc + col
				if mv == mr && nv == nr {
					fn(kcur, as, bs, c[off:off+(mr-1)*ldc+nr], ldc, alpha, beta)
					continue
				}
				// Edge tile: run the same kernel on a copy so that edge
				// elements get exactly the arithmetic of interior ones.
				for r := 0; r < mr; r++ {
					trow := tmp[r*nr : (r+1)*nr]
					if r < mv {
						copy(trow, c[off+r*ldc:off+r*ldc+nv])
						clear(trow[nv:])
					} else {
						clear(trow)
					}
				}
				fn(kcur, as, bs, tmp, nr, alpha, beta)
				for r := 0; r < mv; r++ {
					copy(c[off+r*ldc:off+r*ldc+nv], tmp[r*nr:r*nr+nv])
				}
			}
		}
	}
}

// transposers set dst[p*stride+r] = src[r*ld+p] for r < rows, p < k, into
// float32 or (widened) float64 packing buffers; the assembly paths provide
// them (packing A, and B for A·Bᵀ, is a transpose, which costs Go about 1.5
// cycles an element). A nil field means pure Go.
type transposers struct {
	f32 func(dst, src []float32, ld, rows, k, stride int)
	f64 func(dst []float64, src []float32, ld, rows, k, stride int)
}

// packA copies rows [i0, i0+rows) and columns [p0, p0+kc) of op(A) into dst
// as dst[p*mr+r], padding rows beyond `rows` with zeros.
func packA[T float32 | float64](tr transposers, dst []T, a []float32, lda int, trans bool, i0, rows, p0, kc, mr int) {
	dst = dst[:kc*mr]
	if trans {
		// op(A)[i][p] = a[p*lda+i]: each k step is a contiguous run.
		packRuns(dst, a, lda, p0*lda+i0, kc, rows, mr)
		return
	}
	packTransposed(tr, dst, a, lda, i0*lda+p0, rows, kc, mr)
}

// packB copies rows [p0, p0+kc) and columns [j0, j0+cols) of op(B) into dst
// as dst[p*nr+j], padding columns beyond `cols` with zeros.
func packB[T float32 | float64](tr transposers, dst []T, b []float32, ldb int, trans bool, p0, kc, j0, cols, nr int) {
	dst = dst[:kc*nr]
	if !trans {
		// op(B)[p][j] = b[p*ldb+j]: each k step is a contiguous run.
		packRuns(dst, b, ldb, p0*ldb+j0, kc, cols, nr)
		return
	}
	packTransposed(tr, dst, b, ldb, j0*ldb+p0, cols, kc, nr)
}

// packRuns sets dst[q*w:q*w+n] = src[off+q*ld:][:n] for q < runs and zeroes
// the rest of each w-wide row of dst.
func packRuns[T float32 | float64](dst []T, src []float32, ld, off, runs, n, w int) {
	d32, is32 := any(dst).([]float32)
	for q := 0; q < runs; q++ {
		s := src[off+q*ld : off+q*ld+n]
		if is32 {
			copy(d32[q*w:q*w+w], s)
			clear(d32[q*w+n : q*w+w])
			continue
		}
		d := dst[q*w : q*w+w]
		for j, v := range s {
			d[j] = T(v)
		}
		clear(d[n:])
	}
}

// packTransposed sets dst[p*w+r] = src[off+r*ld+p] for r < rows, p < k and
// zeroes dst[p*w+r] for rows <= r < w.
func packTransposed[T float32 | float64](tr transposers, dst []T, src []float32, ld, off, rows, k, w int) {
	if rows < w {
		for p := 0; p < k; p++ {
			clear(dst[p*w+rows : p*w+w])
		}
	}
	// Exact bounds, so that a wrong index panics here rather than letting
	// the assembly touch memory it should not.
	switch d := any(dst).(type) {
	case []float32:
		if tr.f32 != nil {
			tr.f32(d[:(k-1)*w+rows], src[off:off+(rows-1)*ld+k], ld, rows, k, w)
			return
		}
	case []float64:
		if tr.f64 != nil {
			tr.f64(d[:(k-1)*w+rows], src[off:off+(rows-1)*ld+k], ld, rows, k, w)
			return
		}
	}
	// Four rows at a time so that each group of four writes is contiguous.
	r := 0
	for ; r+4 <= rows; r += 4 {
		s0 := src[off+r*ld : off+r*ld+k]
		s1 := src[off+(r+1)*ld : off+(r+1)*ld+k]
		s2 := src[off+(r+2)*ld : off+(r+2)*ld+k]
		s3 := src[off+(r+3)*ld : off+(r+3)*ld+k]
		for p := range s0 {
			d := dst[p*w+r : p*w+r+4 : p*w+r+4]
			d[0], d[1], d[2], d[3] = T(s0[p]), T(s1[p]), T(s2[p]), T(s3[p])
		}
	}
	for ; r < rows; r++ {
		s := src[off+r*ld : off+r*ld+k]
		for p, v := range s {
			dst[p*w+r] = T(v)
		}
	}
}

// Packing buffers are recycled through pools, one per element type, role
// (A chunks and B panels differ in size) and power-of-two size class, so
// that a pool never hands a small buffer to a large request: that made
// garbage, and every replacement touched fresh memory, which is slow on
// some virtual machines. Buffers are 64-byte aligned so that the
// micro-kernels' vector loads of B never straddle cache lines.
var bufPools [2][2][bufClasses]sync.Pool // [float32, float64][poolA, poolB][size class]

const (
	poolA = 0
	poolB = 1

	bufClasses = 48 // up to 2⁴⁷ elements
)

// bufClass is the size class of an n-element buffer: the smallest c with
// n ≤ 2^c.
func bufClass(n int) int { return bits.Len(uint(max(n, 1) - 1)) }

func poolFor[T float32 | float64](role, class int) *sync.Pool {
	var zero T
	if unsafe.Sizeof(zero) == 4 {
		return &bufPools[0][role][class]
	}
	return &bufPools[1][role][class]
}

// buffer wraps a slice so that the pools hold pointers without allocating.
type buffer[T float32 | float64] struct{ s []T }

func getBuf[T float32 | float64](role, n int) *buffer[T] {
	class := bufClass(n)
	// A somewhat larger free buffer serves too: requests vary in size, and
	// a fresh buffer per size class touched more fresh memory.
	for c := class; c < min(class+4, bufClasses); c++ {
		if v, ok := poolFor[T](role, c).Get().(*buffer[T]); ok {
			v.s = v.s[:n]
			return v
		}
	}
	var zero T
	es := int(unsafe.Sizeof(zero))
	size := 1 << class
	raw := hugepage.Make[T](size + 64/es)
	off := 0
	if mis := int(uintptr(unsafe.Pointer(&raw[0])) % 64); mis != 0 {
		off = (64 - mis) / es
	}
	return &buffer[T]{s: raw[off : off+n : off+size]}
}

func putBuf[T float32 | float64](role int, b *buffer[T]) {
	poolFor[T](role, bufClass(cap(b.s))).Put(b)
}

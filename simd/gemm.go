package simd

import (
	"fmt"
	"sync"
	"unsafe"
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
// tile grid, and every tile is computed the same way (a k-block of FMAs in
// increasing k, then c = alpha*acc + c) whichever worker runs it; so the
// result does not depend on the number of workers.

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
// kc itself is chosen per kernel so that a B sliver (kc×nr) plus an A
// sliver fit in L1.
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
		if beta != 1 {
			for i := 0; i < m; i++ {
				scaleOrClear(im.scale, beta, c[i*ldc:i*ldc+n])
			}
		}
		return
	}
	gemmDriver(im.sgemm, im.transpose, workers, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

func gemmF64Acc(im *impl, workers int, transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float64, ldc int) {
	checkGemm("GemmF64Acc", transA, transB, m, n, k, len(a), lda, len(b), ldb, len(c), ldc)
	if m == 0 || n == 0 || k == 0 {
		return
	}
	gemmDriver(im.dgemm, im.transpose, workers, transA, transB, m, n, k, 1, a, lda, b, ldb, 1, c, ldc)
}

func scaleOrClear[T float32 | float64](scale func(T, []T), beta T, x []T) {
	if beta == 0 {
		clear(x) // BLAS semantics: C is not read, so NaNs in it vanish
	} else {
		scale(beta, x)
	}
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

// parallel runs f(0..w-1), f(0) on the calling goroutine, and waits.
func parallel(w int, f func(id int)) {
	if w == 1 {
		f(0)
		return
	}
	var wg sync.WaitGroup
	wg.Add(w - 1)
	for id := 1; id < w; id++ {
		go func() {
			defer wg.Done()
			f(id)
		}()
	}
	f(0)
	wg.Wait()
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// split returns part id of [0, n) cut into parts near-equal pieces.
func split(n, parts, id int) (lo, hi int) {
	return n * id / parts, n * (id + 1) / parts
}

func gemmDriver[T float32 | float64](mk *microKernel[T], tr transposeFunc, workers int, transA, transB bool, m, n, k int, alpha T, a []float32, lda int, b []float32, ldb int, beta T, c []T, ldc int) {
	mr, nr, kc := mk.mr, mk.nr, mk.kc
	pm, pn := plan(workers, m, n, k, mr, nr)
	w := pm * pn

	// Column panels: as few as fit nc, of equal width (a multiple of nr)
	// so that no panel is a thin leftover.
	ncw := roundUp(ceilDiv(n, ceilDiv(n, mk.nc)), nr)
	bp := getBuf[T](kc * ncw)
	defer putBuf(bp)

	mtiles := ceilDiv(m, mr)
	abufs := make([][]T, w)
	for id := range abufs {
		lo, hi := split(mtiles, pm, id/pn)
		// chunkRows never exceeds mc nor the worker's (rounded) row count.
		chunk := min(mk.mc, (hi-lo)*mr)
		abufs[id] = getBuf[T](chunk*kc + mr*nr)
	}
	defer func() {
		for _, buf := range abufs {
			putBuf(buf)
		}
	}()

	for jc := 0; jc < n; jc += ncw {
		ncur := min(ncw, n-jc)
		nsl := ceilDiv(ncur, nr)
		for pc := 0; pc < k; pc += kc {
			kcur := min(kc, k-pc)
			packSlivers := func(s0, s1 int) {
				for s := s0; s < s1; s++ {
					packB(tr, bp[s*kcur*nr:(s+1)*kcur*nr], b, ldb, transB, pc, kcur, jc+s*nr, min(nr, ncur-s*nr), nr)
				}
			}
			compute := func(id int, packOwn bool) {
				t0, t1 := split(mtiles, pm, id/pn)
				s0, s1 := split(nsl, pn, id%pn)
				r0, r1 := t0*mr, min(t1*mr, m)
				if r0 >= r1 || s0 >= s1 {
					return
				}
				if packOwn {
					packSlivers(s0, s1)
				}
				// beta applies once, with the first k-block, inside the
				// kernel: no separate pass over C.
				kbeta := T(1)
				if pc == 0 {
					kbeta = beta
				}
				computeBlock(mk, tr, abufs[id], a, lda, transA, bp, r0, r1, s0, s1, jc, ncur, pc, kcur, alpha, kbeta, c, ldc)
			}
			if pm == 1 {
				// Column split only: every worker packs the B slivers it
				// alone uses, so no barrier is needed between the phases.
				parallel(w, func(id int) { compute(id, true) })
			} else {
				parallel(w, func(id int) {
					s0, s1 := split(nsl, w, id)
					packSlivers(s0, s1)
				})
				parallel(w, func(id int) { compute(id, false) })
			}
		}
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
// [s0, s1) of the current panel, for one k-block.
func computeBlock[T float32 | float64](mk *microKernel[T], tr transposeFunc, abuf []T, a []float32, lda int, transA bool, bp []T, r0, r1, s0, s1, jc, ncur, pc, kcur int, alpha, beta T, c []T, ldc int) {
	mr, nr := mk.mr, mk.nr
	chunk := chunkRows(r1-r0, mk.mc, mr)
	ap := abuf[:chunk*kcur]
	tmp := abuf[len(abuf)-mr*nr:]
	fn := mk.fn
	for ic := r0; ic < r1; ic += chunk {
		mcur := min(chunk, r1-ic)
		msl := ceilDiv(mcur, mr)
		for t := 0; t < msl; t++ {
			packA(tr, ap[t*kcur*mr:(t+1)*kcur*mr], a, lda, transA, ic+t*mr, min(mr, mcur-t*mr), pc, kcur, mr)
		}
		for s := s0; s < s1; s++ {
			bs := bp[s*kcur*nr : (s+1)*kcur*nr]
			j := jc + s*nr
			nv := min(nr, jc+ncur-j)
			for t := 0; t < msl; t++ {
				as := ap[t*kcur*mr : (t+1)*kcur*mr]
				i := ic + t*mr
				mv := min(mr, ic+mcur-i)
				off := i*ldc + j
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

// transposeFunc sets dst[p*stride+r] = src[r*ld+p] for r < rows, p < k;
// the assembly paths provide one (packing A, and B for A·Bᵀ, is a
// transpose, which costs Go about 1.5 cycles an element).
type transposeFunc func(dst, src []float32, ld, rows, k, stride int)

// packA copies rows [i0, i0+rows) and columns [p0, p0+kc) of op(A) into dst
// as dst[p*mr+r], padding rows beyond `rows` with zeros.
func packA[T float32 | float64](tr transposeFunc, dst []T, a []float32, lda int, trans bool, i0, rows, p0, kc, mr int) {
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
func packB[T float32 | float64](tr transposeFunc, dst []T, b []float32, ldb int, trans bool, p0, kc, j0, cols, nr int) {
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
func packTransposed[T float32 | float64](tr transposeFunc, dst []T, src []float32, ld, off, rows, k, w int) {
	if rows < w {
		for p := 0; p < k; p++ {
			clear(dst[p*w+rows : p*w+w])
		}
	}
	if d32, ok := any(dst).([]float32); ok && tr != nil {
		// Exact bounds, so that a wrong index panics here rather than
		// letting the assembly touch memory it should not.
		tr(d32[:(k-1)*w+rows], src[off:off+(rows-1)*ld+k], ld, rows, k, w)
		return
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

// Packing buffers are recycled through pools and 64-byte aligned, so that
// the micro-kernels' vector loads of B never straddle cache lines.
var bufPools [2]sync.Pool // float32, float64

func poolFor[T float32 | float64]() *sync.Pool {
	var zero T
	if unsafe.Sizeof(zero) == 4 {
		return &bufPools[0]
	}
	return &bufPools[1]
}

func getBuf[T float32 | float64](n int) []T {
	p := poolFor[T]()
	if v, ok := p.Get().(*[]T); ok && cap(*v) >= n {
		return (*v)[:n]
	}
	var zero T
	es := int(unsafe.Sizeof(zero))
	raw := make([]T, n+64/es)
	off := 0
	if mis := int(uintptr(unsafe.Pointer(&raw[0])) % 64); mis != 0 {
		off = (64 - mis) / es
	}
	return raw[off : off+n : off+n+(64/es-off)]
}

func putBuf[T float32 | float64](s []T) {
	s = s[:cap(s)]
	poolFor[T]().Put(&s)
}

package simd

import (
	"fmt"
	"runtime"
	"sort"
)

// Run is a stretch of Len columns of a [RunMatrix], from column Col on,
// whose elements lie at consecutive offsets from Off on (relative to the
// start of their row).
type Run struct{ Col, Off, Len int }

// RunMatrix is a matrix read in place from other memory: element (i, p) is
// Data[i*RowStride + Off + (p − Col)] for the run {Col, Off, Len} that
// holds column p. The runs must cover columns 0, 1, … in order. Weight
// matching reads a tensor this way along any axis, with the other axes'
// permutations applied, without first copying it into a matrix: a
// convolution weight (out, in, kh, kw) read along its input axis has
// RowStride kh·kw and one run of kh·kw columns per output channel.
type RunMatrix struct {
	Data      []float32
	RowStride int
	Runs      []Run
}

// GemmRuns computes C = A·Bᵀ for A (m×k) and B (n×k) given as run
// matrices; C is m×n with leading dimension ldc. Its result is bit for bit
// Gemm(false, true, …, 1, A', k, B', k, 0, C, ldc) on copies A' and B' of
// the two matrices: the runs are read while packing, which Gemm does
// anyway, so no copy is made. It panics if a run matrix is malformed or
// reads outside its Data.
//
// GemmRuns uses up to workers goroutines, or GOMAXPROCS if workers <= 0;
// the result does not depend on their number. A caller that keeps other
// goroutines busy passes fewer: the workers wait for each other by
// spinning, so one without a core of its own stalls the others.
func GemmRuns(workers, m, n, k int, a, b RunMatrix, c []float32, ldc int) {
	gemmRuns(active, workersOr(workers), m, n, k, a, b, c, ldc)
}

// GemmF64AccRuns computes C += A·Bᵀ with float64 products and sums, like
// GemmF64Acc, for A and B given as run matrices (see GemmRuns); C is m×n
// with leading dimension ldc.
func GemmF64AccRuns(workers, m, n, k int, a, b RunMatrix, c []float64, ldc int) {
	gemmF64AccRuns(active, workersOr(workers), m, n, k, a, b, c, ldc)
}

func workersOr(workers int) int {
	if workers <= 0 {
		return runtime.GOMAXPROCS(0)
	}
	return workers
}

func gemmRuns(im *impl, workers int, m, n, k int, a, b RunMatrix, c []float32, ldc int) {
	checkRunsGemm("GemmRuns", m, n, k, a, b, len(c), ldc)
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		for i := 0; i < m; i++ {
			clear(c[i*ldc : i*ldc+n])
		}
		return
	}
	gemmDriver(im.sgemm, im.transpose, workers, false, true, m, n, k, 1, a.Data, a.RowStride, a.Runs, b.Data, b.RowStride, b.Runs, 0, c, ldc)
}

func gemmF64AccRuns(im *impl, workers int, m, n, k int, a, b RunMatrix, c []float64, ldc int) {
	checkRunsGemm("GemmF64AccRuns", m, n, k, a, b, len(c), ldc)
	if m == 0 || n == 0 || k == 0 {
		return
	}
	gemmDriver(im.dgemm, im.transpose, workers, false, true, m, n, k, 1, a.Data, a.RowStride, a.Runs, b.Data, b.RowStride, b.Runs, 1, c, ldc)
}

// checkRunsGemm panics unless A (m×k), B (n×k) and C (m×n, leading
// dimension ldc, lc elements) are well formed.
func checkRunsGemm(name string, m, n, k int, a, b RunMatrix, lc, ldc int) {
	checkRuns(name+" A", a, m, k)
	checkRuns(name+" B", b, n, k)
	if m < 0 || n < 0 || ldc < max(n, 1) || (m > 0 && lc < (m-1)*ldc+n) {
		panic(fmt.Sprintf("simd: %s: bad C: m=%d n=%d ldc=%d len=%d", name, m, n, ldc, lc))
	}
}

// checkRuns panics unless x's runs cover columns [0, k) in order and its
// rows [0, rows) stay inside x.Data.
func checkRuns(name string, x RunMatrix, rows, k int) {
	if rows < 0 || k < 0 || x.RowStride < 0 {
		panic(fmt.Sprintf("simd: %s: negative size (rows %d, k %d, row stride %d)", name, rows, k, x.RowStride))
	}
	col, maxEnd := 0, 0
	for i, r := range x.Runs {
		if r.Col != col || r.Len <= 0 || r.Off < 0 {
			panic(fmt.Sprintf("simd: %s: run %d is %+v, want Col %d, Len > 0, Off >= 0", name, i, r, col))
		}
		col += r.Len
		maxEnd = max(maxEnd, r.Off+r.Len)
	}
	if col != k {
		panic(fmt.Sprintf("simd: %s: runs cover %d columns, want %d", name, col, k))
	}
	if rows > 0 && k > 0 && (rows-1)*x.RowStride+maxEnd > len(x.Data) {
		panic(fmt.Sprintf("simd: %s: rows reach element %d of %d", name, (rows-1)*x.RowStride+maxEnd, len(x.Data)))
	}
}

// packFromRuns is packA/packB for a run matrix: it sets dst[q*w+r] to
// element (i0+r, p0+q) for r < rows, q < kc, and zeroes the rows from rows
// to w. Each run's piece is one packTransposed (rows stride apart), or, for
// rows that are adjacent in memory (stride 1), one contiguous copy per
// column.
func packFromRuns[T float32 | float64](tr transposers, dst []T, src []float32, stride int, runs []Run, i0, rows, p0, kc, w int) {
	dst = dst[:kc*w]
	x := sort.Search(len(runs), func(x int) bool { return runs[x].Col+runs[x].Len > p0 })
	base := i0 * stride
	for p := p0; p < p0+kc; x++ {
		r := runs[x]
		n := min(r.Col+r.Len, p0+kc) - p
		off := base + r.Off + p - r.Col
		d := dst[(p-p0)*w : (p-p0+n)*w]
		switch {
		case stride == 1:
			for q := 0; q < n; q++ {
				dq := d[q*w : (q+1)*w]
				s := src[off+q : off+q+rows]
				if d32, ok := any(dq).([]float32); ok {
					copy(d32, s)
				} else {
					for t, v := range s {
						dq[t] = T(v)
					}
				}
				clear(dq[rows:])
			}
		case n < 4:
			// Too short for the transpose kernel's setup to pay.
			packTransposed(transposers{}, d, src, stride, off, rows, n, w)
		default:
			packTransposed(tr, d, src, stride, off, rows, n, w)
		}
		p += n
	}
}

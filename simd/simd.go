package simd

import "runtime"

// Path reports the implementation in use: "avx512", "avx2", "neon" or
// "generic".
func Path() string { return active.name }

// Dot returns Σ x[i]*y[i], accumulated in float32. It panics if the lengths
// differ.
func Dot(x, y []float32) float32 {
	if len(x) != len(y) {
		panic("simd: Dot: length mismatch")
	}
	return active.dot(x, y)
}

// DotF64 returns Σ x[i]*y[i] with the products and the sum in float64. Use
// it where long float32 sums lose too much (cost matrices, norms). It panics
// if the lengths differ.
func DotF64(x, y []float32) float64 {
	if len(x) != len(y) {
		panic("simd: DotF64: length mismatch")
	}
	return active.dotF64(x, y)
}

// SumSqF64 returns Σ x[i] and Σ x[i]² in float64, equal bit for bit to
// DotF64(x, ones) and DotF64(x, x) (one pass over x instead of two).
func SumSqF64(x []float32) (sum, sq float64) {
	return sumSqF64(active, x)
}

func sumSqF64(im *impl, x []float32) (sum, sq float64) {
	if im.sumSq != nil {
		return im.sumSq(x)
	}
	ones := sharedOnes[:min(len(x), len(sharedOnes))]
	if len(x) > len(ones) {
		ones = make([]float32, len(x))
		for i := range ones {
			ones[i] = 1
		}
	}
	return im.dotF64(x, ones), im.dotF64(x, x)
}

// sharedOnes serves sumSqF64's fallback (read only, so shared by every
// goroutine).
var sharedOnes = func() []float32 {
	ones := make([]float32, 4096)
	for i := range ones {
		ones[i] = 1
	}
	return ones
}()

// Axpy sets y[i] += alpha*x[i]. It panics if the lengths differ.
func Axpy(alpha float32, x, y []float32) {
	if len(x) != len(y) {
		panic("simd: Axpy: length mismatch")
	}
	active.axpy(alpha, x, y)
}

// ScaleShift sets dst[i] = src[i]·a + b for i < len(src), the product
// rounded to float32 before the sum (no fused multiply-add), so every path
// gives the bits of the plain Go expression float32(src[i]*a) + b. dst may
// be src. It panics if dst is shorter than src.
func ScaleShift(dst, src []float32, a, b float32) {
	if len(dst) < len(src) {
		panic("simd: ScaleShift: dst shorter than src")
	}
	active.scaleShift(dst, src, a, b)
}

// Scale sets x[i] *= alpha.
func Scale(alpha float32, x []float32) {
	active.scale(alpha, x)
}

// Gemm computes C = alpha·op(A)·op(B) + beta·C, where op(X) is X, or Xᵀ when
// the matching trans flag is set, op(A) is m×k, op(B) is k×n and C is m×n.
// All matrices are row-major with leading dimensions lda, ldb, ldc:
//
//	op(A)[i][p] = a[i*lda+p]  (transA false; lda >= k)
//	op(A)[i][p] = a[p*lda+i]  (transA true;  lda >= m)
//	op(B)[p][j] = b[p*ldb+j]  (transB false; ldb >= n)
//	op(B)[p][j] = b[j*ldb+p]  (transB true;  ldb >= k)
//	C[i][j]     = c[i*ldc+j]  (ldc >= n)
//
// So C += A·B is Gemm(false, false, …, 1, a, lda, b, ldb, 1, c, ldc), and
// C += A·Bᵀ (both operands stored with k contiguous, the usual layout of
// weight matrices) is Gemm(false, true, …).
//
// As in BLAS, beta == 0 overwrites C without reading it (NaNs in C do not
// propagate) and alpha == 0 (or k == 0) does not read A or B. Gemm panics if
// a dimension is negative, a leading dimension is too small or a slice is
// too short. The padding between rows (when ld exceeds the row length) is
// never read or written.
//
// Gemm uses up to GOMAXPROCS goroutines; its result does not depend on
// GOMAXPROCS (see the package documentation).
func Gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	gemm(active, runtime.GOMAXPROCS(0), transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// GemmF64Acc computes C += op(A)·op(B) with float32 inputs and float64
// products, sums and output: the weight-matching cost matrices (Σ W_a W_bᵀ
// over layers) need the extra precision. Shapes, transposes and leading
// dimensions are as in Gemm. It is about half as fast as Gemm.
func GemmF64Acc(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float64, ldc int) {
	gemmF64Acc(active, runtime.GOMAXPROCS(0), transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
}

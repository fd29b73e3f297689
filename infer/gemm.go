package infer

import "github.com/onnx-rebasin/onnx-rebasin/simd"

// This file is the interpreter's only entry point to matrix multiplication:
// Gemm, MatMul, Conv and ConvTranspose all come through sgemm, which calls
// package simd's packed SGEMM (AVX2/AVX-512/NEON, or its own generic Go
// path).

// sgemm computes C = alpha·op(A)·op(B) + beta·C for row-major matrices, where
// op(A) is m×k (A is stored k×m when transA), op(B) is k×n (B is stored n×k
// when transB) and lda, ldb, ldc are the row strides. With beta == 0, C is
// overwritten (NaNs in it do not propagate). The result does not depend on
// how the work is split over goroutines. threads bounds gemv's goroutines;
// simd.Gemm sizes its own worker pool from GOMAXPROCS.
func sgemm(threads int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m <= 0 || n <= 0 {
		return
	}
	if m <= gemvRows && !transA && k > 0 {
		gemv(threads, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	if !transA && !transB && alpha == 1 && (beta == 0 || beta == 1) && k <= 256 && m*n*k <= smallProduct {
		// Same bits as simd.Gemm, without its packing.
		simd.GemmSmall(m, n, k, a, lda, b, ldb, beta, c, ldc)
		return
	}
	simd.Gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// smallProduct is the largest m·n·k that sgemm hands to simd.GemmSmall: up
// to there (attention heads' 16×16×16 products, for one), packing the
// operands costs more than the product itself.
const smallProduct = 1 << 17

// gemvRows is the largest m for which sgemm skips the packed GEMM: with one
// or two rows (batch-1 fully connected layers) packing B would cost as much
// as the product itself.
const gemvRows = 2

// gemv computes the product row by row with vector dot products (B stored
// n×k) or axpys (B stored k×n), split over columns. Each element's sum runs
// over k in one fixed order, so the split does not matter. A goroutine gets
// at least about 2^20 multiply-adds (some 50 µs): waking an idle thread can
// cost tens of microseconds, more than a batch-1 layer's whole product.
func gemv(threads int, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	parallelFor(threads, n, max(16, (1<<20)/max(m*k, 1)), func(lo, hi int) {
		for i := 0; i < m; i++ {
			ai := a[i*lda : i*lda+k]
			ci := c[i*ldc+lo : i*ldc+hi]
			if transB {
				for j := range ci {
					d := alpha * simd.Dot(ai, b[(lo+j)*ldb:(lo+j)*ldb+k])
					if beta != 0 {
						d += beta * ci[j]
					}
					ci[j] = d
				}
				continue
			}
			if beta == 0 {
				clear(ci)
			} else if beta != 1 {
				simd.Scale(beta, ci)
			}
			for p, v := range ai {
				simd.Axpy(alpha*v, b[p*ldb+lo:p*ldb+hi], ci)
			}
		}
	})
}

// transposeCopy returns the cols×rows transpose of the rows×cols matrix x
// (row stride ld) as a new contiguous matrix.
func transposeCopy(x []float32, rows, cols, ld int) []float32 {
	t := make([]float32, rows*cols)
	const bs = 32
	for i0 := 0; i0 < rows; i0 += bs {
		i1 := min(i0+bs, rows)
		for j0 := 0; j0 < cols; j0 += bs {
			j1 := min(j0+bs, cols)
			for i := i0; i < i1; i++ {
				row := x[i*ld : i*ld+cols]
				for j := j0; j < j1; j++ {
					t[j*rows+i] = row[j]
				}
			}
		}
	}
	return t
}

package infer

import "github.com/onnx-rebasin/onnx-rebasin/simd"

// This file is the interpreter's only entry point to matrix multiplication:
// Gemm, MatMul, Conv and ConvTranspose all come through sgemm, which calls
// package simd's packed SGEMM (AVX2/AVX-512/NEON, or its own generic Go
// path). goSgemm below is a portable blocked Go kernel kept as a fallback:
// using it instead is a one-line change in sgemm.

// sgemm computes C = alpha·op(A)·op(B) + beta·C for row-major matrices, where
// op(A) is m×k (A is stored k×m when transA), op(B) is k×n (B is stored n×k
// when transB) and lda, ldb, ldc are the row strides. With beta == 0, C is
// overwritten (NaNs in it do not propagate). The result does not depend on
// how the work is split over goroutines. threads bounds goSgemm's
// goroutines; simd.Gemm sizes its own worker pool from GOMAXPROCS.
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
// to there, packing costs as much as the product (attention heads'
// 16×16×16 products took 0.8 µs through Gemm, 0.1 µs without packing).
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

// Blocking of the portable kernel: a kc-long slice of the k dimension is
// summed per pass, over tiles of mc rows of op(A) and nc columns of op(B).
const (
	gemmKC = 256
	gemmMC = 64
	gemmNC = 64
)

// goSgemm is the portable implementation of sgemm. It brings op(A) into
// m×k row-major form and op(B) into n×k row-major form (a transpose of
// op(B)), so that every output element is a dot product of two contiguous
// rows; each one is accumulated sequentially over k, so the result is
// independent of blocking and thread count.
func goSgemm(threads int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m <= 0 || n <= 0 {
		return
	}
	scaleC(threads, m, n, beta, c, ldc)
	if k <= 0 || alpha == 0 {
		return
	}
	// Rows of op(A): A itself unless transposed.
	ar, lar := a, lda
	if transA {
		ar, lar = transposeCopy(a, k, m, lda), k
	}
	// Rows of op(B)ᵀ: B itself when transB.
	br, lbr := b, ldb
	if !transB {
		br, lbr = transposeCopy(b, k, n, ldb), k
	}
	// Split the output into row blocks, or column blocks when there are
	// few rows (batch-1 inference).
	if m >= 2*gemmMC || m >= n {
		blocks := (m + 1) / 2
		parallelFor(threads, blocks, 8, func(lo, hi int) {
			i0, i1 := 2*lo, min(2*hi, m)
			dotTiles(i0, i1, 0, n, k, alpha, ar, lar, br, lbr, c, ldc)
		})
	} else {
		blocks := (n + 3) / 4
		parallelFor(threads, blocks, 16, func(lo, hi int) {
			j0, j1 := 4*lo, min(4*hi, n)
			dotTiles(0, m, j0, j1, k, alpha, ar, lar, br, lbr, c, ldc)
		})
	}
}

// scaleC applies beta to C: zeroes it when beta == 0.
func scaleC(threads, m, n int, beta float32, c []float32, ldc int) {
	if beta == 1 {
		return
	}
	parallelFor(threads, m, 64, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			row := c[i*ldc : i*ldc+n]
			if beta == 0 {
				clear(row)
				continue
			}
			for j := range row {
				row[j] *= beta
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

// dotTiles adds alpha·Σ_p A[i,p]·B[j,p] to C[i,j] for i in [i0,i1), j in
// [j0,j1), with A and B given by rows (strides la, lb).
func dotTiles(i0, i1, j0, j1, k int, alpha float32, a []float32, la int, b []float32, lb int, c []float32, ldc int) {
	for p0 := 0; p0 < k; p0 += gemmKC {
		kc := min(gemmKC, k-p0)
		for ib := i0; ib < i1; ib += gemmMC {
			ie := min(ib+gemmMC, i1)
			for jb := j0; jb < j1; jb += gemmNC {
				je := min(jb+gemmNC, j1)
				i := ib
				for ; i+2 <= ie; i += 2 {
					a0 := a[i*la+p0 : i*la+p0+kc]
					a1 := a[(i+1)*la+p0 : (i+1)*la+p0+kc]
					c0 := c[i*ldc : i*ldc+j1]
					c1 := c[(i+1)*ldc : (i+1)*ldc+j1]
					j := jb
					for ; j+4 <= je; j += 4 {
						s := dot2x4(a0, a1,
							b[j*lb+p0:j*lb+p0+kc], b[(j+1)*lb+p0:(j+1)*lb+p0+kc],
							b[(j+2)*lb+p0:(j+2)*lb+p0+kc], b[(j+3)*lb+p0:(j+3)*lb+p0+kc])
						c0[j] += alpha * s[0]
						c0[j+1] += alpha * s[1]
						c0[j+2] += alpha * s[2]
						c0[j+3] += alpha * s[3]
						c1[j] += alpha * s[4]
						c1[j+1] += alpha * s[5]
						c1[j+2] += alpha * s[6]
						c1[j+3] += alpha * s[7]
					}
					for ; j < je; j++ {
						bj := b[j*lb+p0 : j*lb+p0+kc]
						c0[j] += alpha * dot1(a0, bj)
						c1[j] += alpha * dot1(a1, bj)
					}
				}
				for ; i < ie; i++ {
					a0 := a[i*la+p0 : i*la+p0+kc]
					c0 := c[i*ldc : i*ldc+j1]
					j := jb
					for ; j+4 <= je; j += 4 {
						s := dot1x4(a0,
							b[j*lb+p0:j*lb+p0+kc], b[(j+1)*lb+p0:(j+1)*lb+p0+kc],
							b[(j+2)*lb+p0:(j+2)*lb+p0+kc], b[(j+3)*lb+p0:(j+3)*lb+p0+kc])
						c0[j] += alpha * s[0]
						c0[j+1] += alpha * s[1]
						c0[j+2] += alpha * s[2]
						c0[j+3] += alpha * s[3]
					}
					for ; j < je; j++ {
						c0[j] += alpha * dot1(a0, b[j*lb+p0:j*lb+p0+kc])
					}
				}
			}
		}
	}
}

// The dot kernels accumulate each product sequentially in p, so every
// output element sees the same order of operations in every kernel.

func dot1(a, b []float32) float32 {
	b = b[:len(a)]
	var s float32
	for p, x := range a {
		s += x * b[p]
	}
	return s
}

func dot1x4(a, b0, b1, b2, b3 []float32) [4]float32 {
	n := len(a)
	b0, b1, b2, b3 = b0[:n], b1[:n], b2[:n], b3[:n]
	var s0, s1, s2, s3 float32
	for p, x := range a {
		s0 += x * b0[p]
		s1 += x * b1[p]
		s2 += x * b2[p]
		s3 += x * b3[p]
	}
	return [4]float32{s0, s1, s2, s3}
}

func dot2x4(a0, a1, b0, b1, b2, b3 []float32) [8]float32 {
	n := len(a0)
	a1 = a1[:n]
	b0, b1, b2, b3 = b0[:n], b1[:n], b2[:n], b3[:n]
	var s00, s01, s02, s03, s10, s11, s12, s13 float32
	for p := 0; p < n; p++ {
		x, y := a0[p], a1[p]
		v0, v1, v2, v3 := b0[p], b1[p], b2[p], b3[p]
		s00 += x * v0
		s01 += x * v1
		s02 += x * v2
		s03 += x * v3
		s10 += y * v0
		s11 += y * v1
		s12 += y * v2
		s13 += y * v3
	}
	return [8]float32{s00, s01, s02, s03, s10, s11, s12, s13}
}

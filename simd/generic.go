package simd

// Pure-Go kernels: the generic implementation, and the reference every
// assembly path is tested against.

func dotGeneric(x, y []float32) float32 {
	y = y[:len(x)]
	// Four partial sums, like the vector code, so that long dot products
	// do not serialise on one dependency chain.
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(x); i += 4 {
		s0 += x[i] * y[i]
		s1 += x[i+1] * y[i+1]
		s2 += x[i+2] * y[i+2]
		s3 += x[i+3] * y[i+3]
	}
	for ; i < len(x); i++ {
		s0 += x[i] * y[i]
	}
	return (s0 + s1) + (s2 + s3)
}

func dotF64Generic(x, y []float32) float64 {
	y = y[:len(x)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		s0 += float64(x[i]) * float64(y[i])
		s1 += float64(x[i+1]) * float64(y[i+1])
		s2 += float64(x[i+2]) * float64(y[i+2])
		s3 += float64(x[i+3]) * float64(y[i+3])
	}
	for ; i < len(x); i++ {
		s0 += float64(x[i]) * float64(y[i])
	}
	return (s0 + s1) + (s2 + s3)
}

func axpyGeneric(alpha float32, x, y []float32) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] += alpha * v
	}
}

// scaleShiftGeneric: the conversion rounds the product, so that no
// compiler fuses it with the sum (Go fuses on arm64 otherwise).
func scaleShiftGeneric(dst, src []float32, a, b float32) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] = float32(v*a) + b
	}
}

func scaleGeneric(alpha float32, x []float32) {
	for i := range x {
		x[i] *= alpha
	}
}

// genericKC is the k-block of the generic GEMM. It does not have to match
// the assembly paths: the generic path is only required to be close.
const genericKC = 256

// microGeneric is the 4×4 pure-Go GEMM micro-kernel, with the same contract
// as the assembly ones (see microKernel): sixteen scalar accumulators that
// the compiler can keep in registers.
func microGeneric[T float32 | float64](k int, a, b, c []T, ldc int, alpha, beta T) {
	a = a[:4*k]
	b = b[:4*k]
	var c00, c01, c02, c03, c10, c11, c12, c13 T
	var c20, c21, c22, c23, c30, c31, c32, c33 T
	for p := 0; p < 4*k; p += 4 {
		aa := a[p : p+4 : p+4]
		bb := b[p : p+4 : p+4]
		a0, a1, a2, a3 := aa[0], aa[1], aa[2], aa[3]
		b0, b1, b2, b3 := bb[0], bb[1], bb[2], bb[3]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
		c30 += a3 * b0
		c31 += a3 * b1
		c32 += a3 * b2
		c33 += a3 * b3
	}
	acc := [16]T{c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33}
	for i := 0; i < 4; i++ {
		r := c[i*ldc : i*ldc+4 : i*ldc+4]
		q := acc[4*i : 4*i+4 : 4*i+4]
		switch beta {
		case 0:
			r[0], r[1], r[2], r[3] = alpha*q[0], alpha*q[1], alpha*q[2], alpha*q[3]
		case 1:
			r[0] += alpha * q[0]
			r[1] += alpha * q[1]
			r[2] += alpha * q[2]
			r[3] += alpha * q[3]
		default:
			r[0] = alpha*q[0] + beta*r[0]
			r[1] = alpha*q[1] + beta*r[1]
			r[2] = alpha*q[2] + beta*r[2]
			r[3] = alpha*q[3] + beta*r[3]
		}
	}
}

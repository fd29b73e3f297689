//go:build !noasm && !appengine && !gccgo

package simd

// Hand-written NEON kernels in simd_arm64.s.

//go:noescape
func dotNEON(x, y []float32) float32

//go:noescape
func dotF64NEON(x, y []float32) float64

//go:noescape
func axpyNEON(alpha float32, x, y []float32)

//go:noescape
func scaleNEON(alpha float32, x []float32)

// scaleShiftNEON sets dst[i] = src[i]*a + b (FMUL, then FADD: no fused
// multiply-add) for i < len(src).
//
//go:noescape
func scaleShiftNEON(dst, src []float32, a, b float32)

// sgemmKernelNEON is the 6×16 float32 micro-kernel (contract: microKernel).
//
//go:noescape
func sgemmKernelNEON(k int, a, b, c []float32, ldc int, alpha, beta float32)

// dgemmKernelNEON is the 6×8 float64 micro-kernel (contract: microKernel).
//
//go:noescape
func dgemmKernelNEON(k int, a, b, c []float64, ldc int, alpha, beta float64)

// kcNEON equals kcAVX on amd64, so that NEON results match the AVX2 and
// AVX-512 ones bit for bit (TestGemmGolden).
const kcNEON = 256

var neonImpl = &impl{
	name:   "neon",
	dot:    dotNEON,
	dotF64: dotF64NEON,
	axpy:   axpyNEON,
	scale:  scaleNEON,
	sgemm:  newMicroKernel(6, 16, kcNEON, sgemmKernelNEON),
	dgemm:  newMicroKernel(6, 8, kcNEON, dgemmKernelNEON),

	// No in-place NEON kernel yet: PackedA copies B slivers and runs the
	// packed one; the pooling kernels are the Go ones.
	strided:    stridedFromPacked(newMicroKernel(6, 16, kcNEON, sgemmKernelNEON)),
	relu:       reluGeneric,
	scaleShift: scaleShiftNEON,
	maxPool2x2: maxPool2x2Generic,
	exp:        expGeneric,
	erf:        erfGeneric,
}

// archImpls: Advanced SIMD (NEON) is part of every arm64 (ARMv8-A) CPU,
// so it needs no feature check.
func archImpls() []*impl { return []*impl{neonImpl} }

// stridedFromPacked wraps a path's packed float32 kernel as a PackedA
// kernel without an in-place variant.
func stridedFromPacked(mk *microKernel[float32]) []*stridedKernel {
	return []*stridedKernel{{mr: mk.mr, nr: mk.nr, kc: mk.kc, cost: 1, packed: mk.fn}}
}

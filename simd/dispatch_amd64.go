//go:build !noasm && !appengine && !gccgo

package simd

import "github.com/klauspost/cpuid/v2"

// Kernel shapes must match the genGemm calls in _gen/main.go.

// kcAVX is the k-block of every vector path. It is the same for AVX2,
// AVX-512 and NEON so that those paths agree bit for bit (the k-block fixes
// the summation order); 256 keeps a 32-wide float32 B sliver (32 KiB) plus an
// A sliver within a 48 KiB L1.
const kcAVX = 256

var avx2Impl = &impl{
	name:   "avx2",
	dot:    dotAVX2,
	dotF64: dotF64AVX2,
	axpy:   axpyAVX2,
	scale:  scaleAVX2,
	sgemm:  newMicroKernel(6, 16, kcAVX, sgemmKernelAVX2),
	dgemm:  newMicroKernel(6, 8, kcAVX, dgemmKernelAVX2),

	transpose: transposers{f32: transposeAVX, f64: transposeF64AVX},
	sumSq:     sumSqF64AVX2,

	strided:    []*stridedKernel{{mr: 6, nr: 16, kc: kcAVX, cost: 1, fn: sgemmStridedAVX2, ind: sgemmIndirectAVX2}},
	relu:       reluAVX2,
	scaleShift: scaleShiftAVX2,
	maxPool2x2: maxPool2x2AVX,

	maxPool2x2Rows: maxPool2x2RowsAVX2,
	copyRows:       copyRowsAVX2,
	copyRowsEven:   copyRowsEvenAVX2,
	exp:            expAVX,
	erf:            erfAVX,
	small:          sgemmSmallAVX2,
	smallAdd:       sgemmSmallAddAVX2,
	binary:         binaryAVX2,
}

// The AVX-512 path keeps the AVX2 vector kernels: they are bound by memory
// bandwidth, not by vector width. Only the GEMM micro-kernels differ.
var avx512Impl = func() *impl {
	im := *avx2Impl
	im.name = "avx512"
	im.sgemm = newMicroKernel(14, 32, kcAVX, sgemmKernelAVX512)
	im.dgemm = newMicroKernel(14, 16, kcAVX, dgemmKernelAVX512)
	// 8×32 issues more broadcasts per FMA than 14×32, yet measured faster
	// per useful FMA even at 64 rows (214 against 187 GFLOP/s, 64×288×224
	// on Zen 5), and it pads 16 rows to 16 rather than 28: it is preferred
	// unless 14 rows fit m much better (m = 14, 28, 42).
	im.strided = []*stridedKernel{
		{mr: 14, nr: 32, kc: kcAVX, cost: 1, fn: sgemmStridedAVX512, ind: sgemmIndirectAVX512},
		{mr: 8, nr: 32, kc: kcAVX, cost: 0.95, fn: sgemmStridedAVX512x8, ind: sgemmIndirectAVX512x8},
	}
	return &im
}()

// maxPool2x2AVX runs the assembly on whole groups of 8 outputs and the Go
// rule on the rest.
func maxPool2x2AVX(dst, r0, r1 []float32) {
	n := len(dst) &^ 7
	if n > 0 {
		maxPool2x2AVX2(dst[:n], r0, r1)
	}
	if n < len(dst) {
		maxPool2x2Generic(dst[n:], r0[2*n:], r1[2*n:])
	}
}

func archImpls() []*impl {
	var l []*impl
	// cpuid also checks that the OS saves the YMM/ZMM state (XCR0).
	if !cpuid.CPU.Supports(cpuid.AVX2, cpuid.FMA3) {
		return nil
	}
	if cpuid.CPU.Supports(cpuid.AVX512F) {
		l = append(l, avx512Impl)
	}
	return append(l, avx2Impl)
}

func expAVX(dst, src []float32) { vec8(expAVX2, dst, src) }
func erfAVX(dst, src []float32) { vec8(erfAVX2, dst, src) }

var binaryAVX2 = [4]binaryKernels{
	OpAdd: {addVVAVX2, addVSAVX2, addSVAVX2},
	OpSub: {subVVAVX2, subVSAVX2, subSVAVX2},
	OpMul: {mulVVAVX2, mulVSAVX2, mulSVAVX2},
	OpDiv: {divVVAVX2, divVSAVX2, divSVAVX2},
}

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

	transpose: transposeAVX,
}

// The AVX-512 path keeps the AVX2 vector kernels: they are bound by memory
// bandwidth, not by vector width.
var avx512Impl = &impl{
	name:   "avx512",
	dot:    dotAVX2,
	dotF64: dotF64AVX2,
	axpy:   axpyAVX2,
	scale:  scaleAVX2,
	sgemm:  newMicroKernel(14, 32, kcAVX, sgemmKernelAVX512),
	dgemm:  newMicroKernel(14, 16, kcAVX, dgemmKernelAVX512),

	transpose: transposeAVX,
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

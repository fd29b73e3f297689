package simd

import (
	"os"

	"github.com/klauspost/cpuid/v2"
)

// impl is one complete implementation of the package's kernels. The public
// functions call through active; tests call every entry of available().
type impl struct {
	name   string
	dot    func(x, y []float32) float32
	dotF64 func(x, y []float32) float64
	axpy   func(alpha float32, x, y []float32)
	scale  func(alpha float32, x []float32)
	sgemm  *microKernel[float32]
	dgemm  *microKernel[float64] // float64 accumulation for GemmF64Acc

	transpose transposers // packing helpers; nil fields: pure Go
	// sumSq returns Σx and Σx² in float64, bit for bit dotF64(x, ones) and
	// dotF64(x, x) (nil: those two calls).
	sumSq func(x []float32) (sum, sq float64)

	strided []*stridedKernel // PackedA kernels, at least one
	relu    func(dst, src []float32)
	// scaleShift sets dst[i] = src[i]*a + b, the product rounded first.
	scaleShift func(dst, src []float32, a, b float32)
	maxPool2x2 func(dst, r0, r1 []float32) // len(r0), len(r1) >= 2*len(dst)
	// maxPool2x2Rows does what it can of MaxPool2x2Rows and returns the
	// rows done (nil: Go only).
	maxPool2x2Rows func(dst, src []float32, rows, outW, ld int) int
	copyRows       func(dst, src []float32, rows, w, dstStride, srcStride int) // w >= 8; nil: Go
	copyRowsEven   func(dst, src []float32, rows, w, dstStride, srcStride int) // w >= 8; nil: Go
	exp, erf       func(dst, src []float32)

	// small and smallAdd are GemmSmall's kernels (beta 0 and 1) for n a
	// multiple of 8 and 1 <= k <= kc (nil: GemmSmall calls gemm).
	small, smallAdd func(m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int)

	binary [4]binaryKernels // by BinaryOp; zero: Go only
}

// genericImpl is the pure-Go implementation, available everywhere.
var genericImpl = &impl{
	name:   "generic",
	dot:    dotGeneric,
	dotF64: dotF64Generic,
	axpy:   axpyGeneric,
	scale:  scaleGeneric,
	sgemm:  newMicroKernel(4, 4, genericKC, microGeneric[float32]),
	dgemm:  newMicroKernel(4, 4, genericKC, microGeneric[float64]),

	strided:    []*stridedKernel{{mr: 4, nr: 4, kc: genericKC, cost: 1, fn: stridedGeneric, ind: indirectGeneric}},
	relu:       reluGeneric,
	scaleShift: scaleShiftGeneric,
	maxPool2x2: maxPool2x2Generic,
	exp:        expGeneric,
	erf:        erfGeneric,
}

// active is the implementation used by the public functions, chosen once.
var active = choose(available(), os.Getenv("ONNX_REBASIN_NOASM"), os.Getenv("ONNX_REBASIN_SIMD"))

// available lists the implementations this machine can run, best first; the
// last one is always genericImpl. archImpls is defined per architecture and
// build tag (dispatch_amd64.go, simd_arm64.go, simd_noasm.go).
func available() []*impl {
	return append(archImpls(), genericImpl)
}

// choose picks the implementation: the best available one, unless noasm is
// "1" (generic) or want names an available implementation.
func choose(impls []*impl, noasm, want string) *impl {
	if noasm == "1" {
		return genericImpl
	}
	for _, im := range impls {
		if im.name == want {
			return im
		}
	}
	return impls[0]
}

// Cache sizes in bytes used to size the GEMM blocks, from cpuid where it
// knows them (x86; often not on arm64) with conservative defaults otherwise.
var (
	cacheL1 = cacheSize(cpuid.CPU.Cache.L1D, 32<<10)
	cacheL2 = cacheSize(cpuid.CPU.Cache.L2, 256<<10)
	cacheL3 = cacheSize(cpuid.CPU.Cache.L3, 0)
)

func cacheSize(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

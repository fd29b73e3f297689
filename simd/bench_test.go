package simd

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// Benchmarks report GFLOP/s (2·m·n·k per product). "threads=1" runs with
// GOMAXPROCS=1, "threads=all" with GOMAXPROCS=NumCPU. The path measured is
// Path(); ONNX_REBASIN_SIMD=avx2 (say) measures another one. For example:
//
//	go test ./simd -run '^$' -bench 'Sgemm/NN/n=1024' -benchtime 20x
//
// bench/sgemm/run.sh compares with OpenBLAS through numpy.

var benchSizes = []int{256, 512, 1024, 2048}

func benchThreads() []struct {
	name  string
	procs int
} {
	return []struct {
		name  string
		procs int
	}{{"threads=1", 1}, {"threads=all", runtime.NumCPU()}}
}

func benchMatrices(n int) (a, b, c []float32) {
	g := randVals(uint64(n))
	a = make([]float32, n*n)
	b = make([]float32, n*n)
	c = make([]float32, n*n)
	for i := range a {
		a[i] = g(i)
		b[i] = g(i)
	}
	return a, b, c
}

func reportGFLOPs(b *testing.B, m, n, k int) {
	b.ReportMetric(2*float64(m)*float64(n)*float64(k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// BenchmarkSgemm measures C = A·B (NN) and C = A·Bᵀ (NT), square n×n.
func BenchmarkSgemm(b *testing.B) {
	for _, form := range []struct {
		name   string
		transB bool
	}{{"NN", false}, {"NT", true}} {
		for _, n := range benchSizes {
			for _, th := range benchThreads() {
				b.Run(fmt.Sprintf("%s/n=%d/%s", form.name, n, th.name), func(b *testing.B) {
					defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(th.procs))
					x, y, z := benchMatrices(n)
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						Gemm(false, form.transB, n, n, n, 1, x, n, y, n, 0, z, n)
					}
					reportGFLOPs(b, n, n, n)
				})
			}
		}
	}
}

// BenchmarkGonumSgemm is the same product with gonum's pure-Go Sgemm, the
// baseline the package is meant to beat by an order of magnitude.
func BenchmarkGonumSgemm(b *testing.B) {
	for _, n := range benchSizes {
		for _, th := range benchThreads() {
			b.Run(fmt.Sprintf("NN/n=%d/%s", n, th.name), func(b *testing.B) {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(th.procs))
				x, y, z := benchMatrices(n)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					gonum.Implementation{}.Sgemm(blas.NoTrans, blas.NoTrans, n, n, n, 1, x, n, y, n, 0, z, n)
				}
				reportGFLOPs(b, n, n, n)
			})
		}
	}
}

// BenchmarkGemmF64Acc measures the float64-accumulating product A·Bᵀ.
func BenchmarkGemmF64Acc(b *testing.B) {
	for _, n := range []int{512, 1024} {
		for _, th := range benchThreads() {
			b.Run(fmt.Sprintf("NT/n=%d/%s", n, th.name), func(b *testing.B) {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(th.procs))
				x, y, _ := benchMatrices(n)
				z := make([]float64, n*n)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					GemmF64Acc(false, true, n, n, n, x, n, y, n, z, n)
				}
				reportGFLOPs(b, n, n, n)
			})
		}
	}
}

// BenchmarkGemmF64AccRuns measures cross products of the activation
// statistics' shape: c channels of two models' activations (outer images ×
// c channels × inner positions, float32), read in place, summed in float64
// (GemmF64AccRuns, as package activation did before 2026-12-05; weight
// matching's delta updates still do) and in float32 (GemmRuns, what
// activation's channelStats.add now runs per chunk). With few channels the
// packing of the runs costs as much as the products.
func BenchmarkGemmF64AccRuns(b *testing.B) {
	for _, sh := range []struct{ outer, c, inner int }{{64, 16, 784}, {64, 64, 196}, {64, 128, 49}} {
		n := sh.outer * sh.c * sh.inner
		gen := rand.New(rand.NewPCG(1, 2))
		xa, xb := make([]float32, n), make([]float32, n)
		for i := range xa {
			xa[i], xb[i] = float32(gen.NormFloat64()), float32(gen.NormFloat64())
		}
		runs := make([]Run, sh.outer)
		for o := range runs {
			runs[o] = Run{Col: o * sh.inner, Off: o * sh.c * sh.inner, Len: sh.inner}
		}
		a, bm := RunMatrix{Data: xa, RowStride: sh.inner, Runs: runs}, RunMatrix{Data: xb, RowStride: sh.inner, Runs: runs}
		b.Run(fmt.Sprintf("f64/c=%d/inner=%d", sh.c, sh.inner), func(b *testing.B) {
			cross := make([]float64, sh.c*sh.c)
			b.SetBytes(int64(8 * n))
			for b.Loop() {
				GemmF64AccRuns(0, sh.c, sh.c, sh.outer*sh.inner, a, bm, cross, sh.c)
			}
		})
		b.Run(fmt.Sprintf("f32/c=%d/inner=%d", sh.c, sh.inner), func(b *testing.B) {
			cross := make([]float32, sh.c*sh.c)
			b.SetBytes(int64(8 * n))
			for b.Loop() {
				GemmRuns(0, sh.c, sh.c, sh.outer*sh.inner, a, bm, cross, sh.c)
			}
		})
	}
}

func BenchmarkVector(b *testing.B) {
	for _, n := range []int{64, 4096} {
		x, y, _ := benchMatrices(64)
		x, y = append(x, x...)[:n], append(y, y...)[:n]
		if n > len(x) {
			x, y = make([]float32, n), make([]float32, n)
		}
		b.Run(fmt.Sprintf("Dot/n=%d", n), func(b *testing.B) {
			b.SetBytes(int64(8 * n))
			var s float32
			for i := 0; i < b.N; i++ {
				s += Dot(x, y)
			}
			sink = s
		})
		b.Run(fmt.Sprintf("DotF64/n=%d", n), func(b *testing.B) {
			b.SetBytes(int64(8 * n))
			var s float64
			for i := 0; i < b.N; i++ {
				s += DotF64(x, y)
			}
			sink = float32(s)
		})
		b.Run(fmt.Sprintf("SumSqF64/n=%d", n), func(b *testing.B) {
			b.SetBytes(int64(4 * n))
			var s, q float64
			for i := 0; i < b.N; i++ {
				s1, q1 := SumSqF64(x)
				s, q = s+s1, q+q1
			}
			sink = float32(s + q)
		})
		b.Run(fmt.Sprintf("Axpy/n=%d", n), func(b *testing.B) {
			b.SetBytes(int64(8 * n))
			for i := 0; i < b.N; i++ {
				Axpy(1e-9, x, y)
			}
		})
	}
}

var sink float32

// BenchmarkMicroKernel measures each path's GEMM micro-kernel alone, on
// packed panels that stay in cache: the ceiling for Gemm on that path.
func BenchmarkMicroKernel(b *testing.B) {
	for _, im := range available() {
		mk := im.sgemm
		b.Run(fmt.Sprintf("%s/%dx%d/kc=%d", im.name, mk.mr, mk.nr, mk.kc), func(b *testing.B) {
			pa := getBuf[float32](poolA, mk.kc*mk.mr).s
			pb := getBuf[float32](poolB, mk.kc*mk.nr).s
			c := make([]float32, mk.mr*mk.nr)
			for i := range pa {
				pa[i] = 1e-3
			}
			for i := range pb {
				pb[i] = 1e-3
			}
			for i := 0; i < b.N; i++ {
				mk.fn(mk.kc, pa, pb, c, mk.nr, 1, 1)
			}
			reportGFLOPs(b, mk.mr, mk.nr, mk.kc)
		})
	}
}

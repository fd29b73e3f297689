package lap_test

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/lap"
	"github.com/onnx-rebasin/onnx-rebasin/lap/laptest"
)

// Benchmark matrices are expensive to build at n = 4096 (the weight-matching
// product is 137 GFLOP), so each is built once per process. Set
// LAP_BENCH_DIR to a folder of raw little-endian float64 files named
// <kind>_<n>.f64 (bench/lap/lapbench gen writes them) to use those instead,
// as the scipy comparison does.
var benchCache sync.Map // "kind/n" -> []float64

func benchMatrix(b *testing.B, kind string, n int) []float64 {
	key := fmt.Sprintf("%s/%d", kind, n)
	if c, ok := benchCache.Load(key); ok {
		return c.([]float64)
	}
	var c []float64
	if dir := os.Getenv("LAP_BENCH_DIR"); dir != "" {
		var err error
		c, err = laptest.ReadMatrix(filepath.Join(dir, fmt.Sprintf("%s_%d.f64", kind, n)), n)
		if err != nil {
			b.Fatal(err)
		}
	} else {
		c = laptest.Generate(kind, n, 1)
	}
	benchCache.Store(key, c)
	return c
}

func BenchmarkSolve(b *testing.B) {
	for _, kind := range laptest.Kinds {
		for _, n := range []int{512, 1024, 2048, 4096} {
			b.Run(fmt.Sprintf("%s/n=%d", kind, n), func(b *testing.B) {
				cost := benchMatrix(b, kind, n)
				var s lap.Solver
				b.ResetTimer()
				for b.Loop() {
					if _, _, err := s.Solve(n, cost); err != nil {
						b.Fatal(err)
					}
				}
				st := s.Stats()
				b.ReportMetric(float64(st.Seeded)/float64(n), "seeded/n")
				b.ReportMetric(float64(st.Entries)/float64(n*n), "entries/n²")
			})
		}
	}
}

// BenchmarkSolveWarm re-solves a weight-matching matrix after every entry
// moved by noise of rel × the entries' standard deviation, from the
// previous solution's permutation and duals, as a later sweep of weight
// matching does; "cold" solves the same perturbed matrix from scratch.
func BenchmarkSolveWarm(b *testing.B) {
	for _, n := range []int{512, 1024, 2048} {
		base := benchMatrix(b, "wm", n)
		var s lap.Solver
		perm, _, err := s.Solve(n, base)
		if err != nil {
			b.Fatal(err)
		}
		_, v := s.Duals()
		std := stdDev(base)
		for _, rel := range []float64{0.001, 0.01, 0.1} {
			cost := perturb(base, 1, rel*std, false, 3)
			for _, mode := range []string{"warm", "cold"} {
				b.Run(fmt.Sprintf("n=%d/noise=%g/%s", n, rel, mode), func(b *testing.B) {
					var s lap.Solver
					for b.Loop() {
						if mode == "warm" {
							_, _, err = s.SolveWarm(n, cost, perm, v)
						} else {
							_, _, err = s.Solve(n, cost)
						}
						if err != nil {
							b.Fatal(err)
						}
					}
					st := s.Stats()
					b.ReportMetric(float64(st.Seeded)/float64(n), "seeded/n")
					b.ReportMetric(float64(st.Entries)/float64(n*n), "entries/n²")
				})
			}
		}
	}
}

func stdDev(x []float64) float64 {
	m := 0.0
	for _, v := range x {
		m += v
	}
	m /= float64(len(x))
	ss := 0.0
	for _, v := range x {
		ss += (v - m) * (v - m)
	}
	return math.Sqrt(ss / float64(len(x)))
}

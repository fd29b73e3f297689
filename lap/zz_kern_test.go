package lap

import (
	"math/rand/v2"
	"testing"
)

func benchKernel(b *testing.B, vec bool, rows int) {
	n := 2048
	r := rand.New(rand.NewPCG(1, 2))
	cost := make([]float64, rows*n)
	for k := range cost {
		cost[k] = r.Float64()
	}
	v, d := make([]float64, n), make([]float64, n)
	pred := make([]int32, n)
	for k := range v {
		v[k] = 1
		d[k] = 0.05 + 0.5*r.Float64()
	}
	b.ResetTimer()
	it := 0
	for b.Loop() {
		row := cost[(it%rows)*n : (it%rows)*n+n]
		it++
		if vec {
			relaxVector(row, v, d, pred, 3, 0.3)
		} else {
			relaxGeneric(row, v, d, pred, 3, 0.3, 0, inf, -1)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/elem")
}

func BenchmarkZZKernVecHot(b *testing.B)  { benchKernel(b, true, 1) }
func BenchmarkZZKernGoHot(b *testing.B)   { benchKernel(b, false, 1) }
func BenchmarkZZKernVecCold(b *testing.B) { benchKernel(b, true, 4096) }
func BenchmarkZZKernGoCold(b *testing.B)  { benchKernel(b, false, 4096) }

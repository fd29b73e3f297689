package lap_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/lap"
	"github.com/onnx-rebasin/onnx-rebasin/lap/laptest"
)

func TestZZGap(t *testing.T) {
	for _, n := range []int{300, 1024} {
		for _, k := range []string{"wm", "uniform"} {
			cost := laptest.Generate(k, n, 1)
			var s lap.Solver
			perm, _, _ := s.Solve(n, cost)
			_, v := s.Duals()
			maxRel, cnt := 0.0, 0
			for i := 0; i < n; i++ {
				b := math.Inf(1)
				for j := 0; j < n; j++ {
					b = min(b, v[j]-cost[i*n+j])
				}
				p := perm[i]
				gap := v[p] - cost[i*n+p] - b
				if gap > 0 {
					cnt++
					rel := gap / math.Max(math.Abs(v[p]), math.Abs(cost[i*n+p])) / 0x1p-52
					maxRel = max(maxRel, rel)
				}
			}
			fmt.Printf("n=%d %s nonzero gaps %d, max gap in ulps of magnitude %.1f\n", n, k, cnt, maxRel)
		}
	}
}

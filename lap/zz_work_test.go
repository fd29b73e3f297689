package lap_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/lap"
	"github.com/onnx-rebasin/onnx-rebasin/lap/laptest"
)

// work proxy: ARR entries weight a, Dijkstra weight 1
func TestZZWork(t *testing.T) {
	cfgs := os.Getenv("ZZWORK")
	if cfgs == "" {
		t.Skip()
	}
	for _, n := range []int{512, 1024, 2048} {
		for _, k := range []string{"uniform", "wm"} {
			for seed := uint64(1); seed <= 3; seed++ {
				var c []float64
				if seed == 1 {
					c, _ = laptest.ReadMatrix(fmt.Sprintf("/tmp/lapexp/m/%s_%d.f64", k, n), n)
				} else if k == "uniform" {
					c = laptest.Uniform(n, seed)
				} else {
					c, _ = laptest.WeightMatching(n, n/2, laptest.WeightMatchingNoise(n, n/2), seed)
				}
				line := fmt.Sprintf("n=%d %-8s s%d:", n, k, seed)
				for _, cs := range strings.Split(cfgs, " ") {
					var cfg [4]int
					for i, f := range strings.Split(cs, ",") {
						cfg[i], _ = strconv.Atoi(f)
					}
					restore := lap.SetTunables(cfg[0], cfg[1], cfg[2], cfg[3])
					var s lap.Solver
					s.Solve(n, c)
					st := s.Stats()
					arr := float64(st.ARRSteps) * float64(n)
					dij := float64(st.Entries) - arr
					line += fmt.Sprintf("  %v arr=%5.1f dij=%5.1f", cfg[:3], arr/float64(n*n), dij/float64(n*n))
					restore()
				}
				fmt.Println(line)
			}
		}
	}
}

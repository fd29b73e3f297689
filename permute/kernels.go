package permute

import (
	"github.com/onnx-rebasin/onnx-rebasin/lap"
	"github.com/onnx-rebasin/onnx-rebasin/simd"
)

// dot64 is Σ a[i]·b[i] in float64.
func dot64(a, b []float32) float64 { return simd.DotF64(a, b) }

// assigner solves the linear assignment steps of weight matching, keeping
// each group's column duals so that later sweeps, whose cost matrices
// change little, start near the optimum.
type assigner struct {
	solver lap.Solver
	duals  map[int][]float64
}

func newAssigner() *assigner { return &assigner{duals: map[int][]float64{}} }

// solve maximises Σ cost[i·n+p[i]] over permutations p for group g,
// warm-started from prev and the duals of g's previous solve.
func (s *assigner) solve(g, n int, cost []float64, prev []int) ([]int, float64, error) {
	var p []int
	var total float64
	var err error
	if prev == nil || s.duals[g] == nil {
		p, total, err = s.solver.Solve(n, cost)
	} else {
		p, total, err = s.solver.SolveWarm(n, cost, prev, s.duals[g])
	}
	if err != nil {
		return nil, 0, err
	}
	_, v := s.solver.Duals()
	s.duals[g] = v
	return p, total, nil
}

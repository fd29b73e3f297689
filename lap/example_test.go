package lap_test

import (
	"fmt"

	"github.com/onnx-rebasin/onnx-rebasin/lap"
)

func ExampleSolve() {
	// Similarity of 3 units of model A (rows) to 3 units of model B
	// (columns); find the matching with the largest total similarity.
	cost := []float64{
		0.9, 0.8, 0.1,
		0.8, 0.2, 0.1,
		0.1, 0.3, 0.7,
	}
	perm, total, err := lap.Solve(3, cost)
	if err != nil {
		panic(err)
	}
	fmt.Println(perm, fmt.Sprintf("%.1f", total))
	// Output: [1 0 2] 2.3
}

func ExampleSolver_SolveWarm() {
	var s lap.Solver
	cost := []float64{
		4, 1, 0,
		1, 5, 2,
		0, 3, 6,
	}
	perm, total, _ := s.Solve(3, cost)
	fmt.Println(perm, total)

	// The next sweep sees a slightly different matrix: start from the
	// previous permutation and column duals.
	_, v := s.Duals()
	cost[1*3+2] = 9 // row 1 now strongly prefers column 2
	perm, total, _ = s.SolveWarm(3, cost, perm, v)
	fmt.Println(perm, total)
	// Output:
	// [0 1 2] 15
	// [0 2 1] 16
}

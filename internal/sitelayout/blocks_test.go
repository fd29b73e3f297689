package sitelayout

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/internal/testkit"
	"github.com/onnx-rebasin/onnx-rebasin/lap"
)

// TestBlockSolveBruteForce: BlockSolve finds the best block-structured
// permutations with one shared block permutation, as enumerating every σ
// and every within-block permutation does.
func TestBlockSolveBruteForce(t *testing.T) {
	const H = 3
	cases := []struct {
		name   string
		sizes  []int
		pinned [][]int
	}{
		{"one group of 3 × 2", []int{6}, [][]int{nil}},
		{"two groups sharing σ", []int{6, 9}, [][]int{nil, nil}},
		{"a free and a fixed group", []int{6, 6}, [][]int{nil, {0, 1}}},
		{"a free group and one whose blocks are pinned to one τ", []int{9, 9}, [][]int{nil, {2, 0, 1}}},
	}
	r := rand.New(rand.NewPCG(1, 2))
	var solver lap.Solver
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for trial := 0; trial < 20; trial++ {
				costs := make([][]float64, len(tc.sizes))
				for g, n := range tc.sizes {
					costs[g] = make([]float64, n*n)
					for i := range costs[g] {
						costs[g][i] = math.Round(r.NormFloat64()*8) / 4 // ties happen
					}
				}
				perms, total, err := BlockSolve(&solver, H, tc.sizes, costs, tc.pinned)
				if err != nil {
					t.Fatal(err)
				}
				got := 0.0
				for g, p := range perms {
					if _, ok := BlockSigma(p, tc.sizes[g]/H); !ok {
						t.Fatalf("group %d: %v moves units between blocks", g, p)
					}
					for i, j := range p {
						got += costs[g][i*tc.sizes[g]+j]
					}
				}
				if math.Abs(got-total) > 1e-9 {
					t.Fatalf("reported total %v, permutations score %v", total, got)
				}
				// Brute force: for each σ, each group's best per block.
				best := math.Inf(-1)
				for _, sigma := range testkit.AllPerms(H) {
					sum := 0.0
					for g, n := range tc.sizes {
						d := n / H
						for b, c := range sigma {
							blockBest := math.Inf(-1)
							for _, tau := range testkit.AllPerms(d) {
								if tc.pinned[g] != nil && !slices.Equal(tau, tc.pinned[g]) {
									continue
								}
								v := 0.0
								for i, j := range tau {
									v += costs[g][(b*d+i)*n+c*d+j]
								}
								blockBest = max(blockBest, v)
							}
							sum += blockBest
						}
					}
					best = max(best, sum)
				}
				if math.Abs(best-total) > 1e-9 {
					t.Fatalf("trial %d: BlockSolve total %v, best %v", trial, total, best)
				}
				for g, p := range perms {
					d := tc.sizes[g] / H
					if sigma, _ := BlockSigma(p, d); tc.pinned[g] != nil && !slices.Equal(p, BlockPerm(sigma, SameBlocks(H, tc.pinned[g]), d)) {
						t.Fatalf("group %d is pinned to %v within blocks, got %v", g, tc.pinned[g], p)
					}
				}
			}
		})
	}
}

package permute

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/lap"
)

// allPerms returns every permutation of 0..n-1.
func allPerms(n int) [][]int {
	if n == 0 {
		return [][]int{{}}
	}
	var out [][]int
	for _, p := range allPerms(n - 1) {
		for pos := 0; pos <= len(p); pos++ {
			q := append(append(append([]int{}, p[:pos]...), n-1), p[pos:]...)
			out = append(out, q)
		}
	}
	return out
}

// TestBlockSolveBruteForce: blockSolve finds the best block-structured
// permutations with one shared block permutation, as enumerating every σ
// and every within-block permutation does.
func TestBlockSolveBruteForce(t *testing.T) {
	const H = 3
	cases := []struct {
		name  string
		sizes []int
		fixed []bool
	}{
		{"one group of 3 × 2", []int{6}, []bool{false}},
		{"two groups sharing σ", []int{6, 9}, []bool{false, false}},
		{"a free and a fixed group", []int{6, 6}, []bool{false, true}},
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
				perms, total, err := blockSolve(&solver, H, tc.sizes, costs, tc.fixed)
				if err != nil {
					t.Fatal(err)
				}
				got := 0.0
				for g, p := range perms {
					if _, ok := blockSigma(p, tc.sizes[g]/H); !ok {
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
				for _, sigma := range allPerms(H) {
					sum := 0.0
					for g, n := range tc.sizes {
						d := n / H
						for b, c := range sigma {
							blockBest := math.Inf(-1)
							for _, tau := range allPerms(d) {
								if tc.fixed[g] && !isIdentity(tau) {
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
					t.Fatalf("trial %d: blockSolve total %v, best %v", trial, total, best)
				}
				for g, p := range perms {
					if sigma, _ := blockSigma(p, tc.sizes[g]/H); tc.fixed[g] && !isIdentity(sub(p, sigma, tc.sizes[g]/H)) {
						t.Fatalf("group %d is fixed within blocks, got %v", g, p)
					}
				}
			}
		})
	}
}

// sub returns p's units relative to their blocks' starts (0..d-1 each).
func sub(p, sigma []int, d int) []int {
	out := make([]int, len(p))
	for i, j := range p {
		out[i] = i/d*d + j - sigma[i/d]*d
	}
	return out
}

// TestRandomAndCheckBlocks: Random draws block-structured permutations
// with one σ per set; Check rejects permutations that break a block, give
// a set's groups different σ, or move units within a fixed block.
func TestRandomAndCheckBlocks(t *testing.T) {
	a := &graph.Analysis{
		Groups: []graph.Group{
			{ID: 0, Size: 5},
			{ID: 1, Size: 6, Blocks: 3},
			{ID: 2, Size: 9, Blocks: 3},
			{ID: 3, Size: 6, Blocks: 3, FixedWithin: true},
		},
		BlockSets: [][]int{{1, 2, 3}},
	}
	for seed := uint64(0); seed < 20; seed++ {
		p := Random(a, seed)
		if err := p.Check(a); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
	bad := map[string]func(p Perms){
		"unit across blocks":   func(p Perms) { p[1] = []int{0, 2, 1, 3, 4, 5} },
		"two block perms":      func(p Perms) { p[2] = []int{3, 4, 5, 0, 1, 2, 6, 7, 8} },
		"moved in fixed block": func(p Perms) { p[3] = []int{1, 0, 2, 3, 4, 5} },
	}
	for name, breakIt := range bad {
		p := Identity(a)
		breakIt(p)
		if err := p.Check(a); err == nil {
			t.Errorf("%s: Check accepted %v", name, p)
		}
	}
}

package permute

import (
	"math"
	"math/rand/v2"
	"slices"
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
				perms, total, err := blockSolve(&solver, H, tc.sizes, costs, tc.pinned)
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
					t.Fatalf("trial %d: blockSolve total %v, best %v", trial, total, best)
				}
				for g, p := range perms {
					d := tc.sizes[g] / H
					if sigma, _ := blockSigma(p, d); tc.pinned[g] != nil && !slices.Equal(p, blockPerm(sigma, sameBlocks(H, tc.pinned[g]), d)) {
						t.Fatalf("group %d is pinned to %v within blocks, got %v", g, tc.pinned[g], p)
					}
				}
			}
		})
	}
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
			{ID: 4, Size: 9, Blocks: 3, SharedWithin: true},
		},
		BlockSets: [][]int{{1, 2, 3, 4}},
	}
	for seed := uint64(0); seed < 20; seed++ {
		p := Random(a, seed)
		if err := p.Check(a); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
	bad := map[string]func(p Perms){
		"unit across blocks":              func(p Perms) { p[1] = []int{0, 2, 1, 3, 4, 5} },
		"two block perms":                 func(p Perms) { p[2] = []int{3, 4, 5, 0, 1, 2, 6, 7, 8} },
		"moved in fixed block":            func(p Perms) { p[3] = []int{1, 0, 2, 3, 4, 5} },
		"blocks unlike in a shared group": func(p Perms) { p[4] = []int{1, 0, 2, 3, 4, 5, 6, 7, 8} },
	}
	for name, breakIt := range bad {
		p := Identity(a)
		breakIt(p)
		if err := p.Check(a); err == nil {
			t.Errorf("%s: Check accepted %v", name, p)
		}
	}
}

// TestSharedWithinDescent runs the descent from the identity on the
// grouped-conv model against a permuted copy, so that both parts of the
// block step move: the objective the descent keeps (the sum of the exact
// gains it accepted, Within weights included) must be the result's, no
// sweep may lower it, and at the end no shared within-block permutation of
// a small group does better (enumerated).
func TestSharedWithinDescent(t *testing.T) {
	a, ga := loadAnalyze(t, "../testmodels/gconv.onnx")
	shared := 0
	for _, g := range ga.Groups {
		if g.SharedWithin {
			shared++
		}
	}
	if shared == 0 {
		t.Fatal("gconv.onnx has no group whose blocks share their within-block permutation")
	}
	for _, seed := range []uint64{1, 2, 3} {
		b := a.Clone()
		if err := Apply(b, ga, Random(ga, seed)); err != nil {
			t.Fatal(err)
		}
		res, err := WeightMatch(a, b, ga, MatchOptions{Seed: seed, IdentityStart: true})
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i < len(res.Sweeps); i++ {
			if res.Sweeps[i].Objective < res.Sweeps[i-1].Objective {
				t.Fatalf("seed %d: objective decreased: %v", seed, res.Sweeps)
			}
		}
		kept := res.Sweeps[len(res.Sweeps)-1].Objective
		if math.Abs(kept-res.ObjectiveAfter) > 1e-9*math.Abs(res.ObjectiveAfter) {
			t.Errorf("seed %d: objective kept by the descent %v, of its result %v", seed, kept, res.ObjectiveAfter)
		}
		mt, err := newMatcher(a, b, ga)
		if err != nil {
			t.Fatal(err)
		}
		for g, grp := range ga.Groups {
			d := grp.Size / max(grp.Blocks, 1)
			if !grp.SharedWithin || d > 6 {
				continue
			}
			sigma, _ := blockSigma(res.Perms[g], d)
			p := clonePerms(res.Perms)
			for _, tau := range allPerms(d) {
				p[g] = blockPerm(sigma, sameBlocks(grp.Blocks, tau), d)
				if o := mt.objective(p); o > res.ObjectiveAfter+1e-9*math.Abs(res.ObjectiveAfter) {
					t.Errorf("seed %d, group %d: within-block permutation %v scores %v > %v", seed, g, tau, o, res.ObjectiveAfter)
					break
				}
			}
		}
		t.Logf("seed %d: %d sweeps, objective %.4f -> %.4f", seed, len(res.Sweeps), res.ObjectiveBefore, res.ObjectiveAfter)
	}
}

package sitelayout

import (
	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/lap"
)

// Block-structured groups (attention heads, see graph.Group.Blocks) keep
// flat permutations, so that Apply and the merges treat them like any
// other group; the permutation of a group of H blocks of d units must be
// p[b·d+i] = σ[b]·d + τ_b[i], with one σ for all the groups of a block set.

// BlockPerm is the flat permutation of H = len(sigma) blocks of d units
// with block permutation sigma and within-block permutations tau[b].
func BlockPerm(sigma []int, tau [][]int, d int) []int {
	p := make([]int, len(sigma)*d)
	for b, s := range sigma {
		for i, t := range tau[b] {
			p[b*d+i] = s*d + t
		}
	}
	return p
}

// IdentityBlocks returns h identity permutations of d units.
func IdentityBlocks(h, d int) [][]int {
	tau := make([][]int, h)
	for b := range tau {
		tau[b] = IdentityPerm(d)
	}
	return tau
}

// WithinOf returns block 0's within-block permutation of p (d units per
// block): the one every block of a SharedWithin group uses.
func WithinOf(p []int, d int) []int {
	tau := make([]int, d)
	for i := range tau {
		tau[i] = p[i] % d
	}
	return tau
}

// SameBlocks returns h references to one within-block permutation tau.
func SameBlocks(h int, tau []int) [][]int {
	t := make([][]int, h)
	for b := range t {
		t[b] = tau
	}
	return t
}

// BlockSigma returns the block permutation of p, a permutation of blocks
// of d units, and false if p moves some unit out of its block.
func BlockSigma(p []int, d int) ([]int, bool) {
	if d <= 0 || len(p)%d != 0 {
		return nil, false
	}
	sigma := make([]int, len(p)/d)
	for b := range sigma {
		sigma[b] = p[b*d] / d
		for i := 0; i < d; i++ {
			if p[b*d+i]/d != sigma[b] {
				return nil, false
			}
		}
	}
	return sigma, true
}

// SetsOf returns, per group, the index of its block set in a.BlockSets, or -1.
func SetsOf(a *graph.Analysis) []int {
	s := make([]int, len(a.Groups))
	for i := range s {
		s[i] = -1
	}
	for k, set := range a.BlockSets {
		for _, g := range set {
			if g >= 0 && g < len(s) {
				s[g] = k
			}
		}
	}
	return s
}

// BlockSolve maximises Σ over the groups of a block set of Σ_i
// cost_g[i, p_g(i)] over block-structured permutations with one block
// permutation σ: for every pair of blocks (b, c) and every group it solves
// the assignment of b's units to c's exactly, their values summed are the
// score of mapping block c to b, and σ is the assignment that maximises
// the total score. sizes[g] is group g's units, costs[g] its sizes[g]²
// matrix (row i = unit i of A, column j = unit j of B). A group with
// pinned[g] set moves the units of every block by that permutation (the
// identity for FixedWithin); its block-pair score is the sum of the costs
// it picks. The result is optimal: any such permutation scores at most
// the total.
func BlockSolve(solver *lap.Solver, blocks int, sizes []int, costs [][]float64, pinned [][]int) (perms [][]int, total float64, err error) {
	H := blocks
	score := make([]float64, H*H)
	taus := make([][][]int, len(costs)) // [group][b*H+c]
	for g, cost := range costs {
		n := sizes[g]
		d := n / H
		taus[g] = make([][]int, H*H)
		sub := make([]float64, d*d)
		for b := 0; b < H; b++ {
			for c := 0; c < H; c++ {
				if tau := pinned[g]; tau != nil {
					for i, j := range tau {
						score[b*H+c] += cost[(b*d+i)*n+c*d+j]
					}
					taus[g][b*H+c] = tau
					continue
				}
				for i := 0; i < d; i++ {
					copy(sub[i*d:(i+1)*d], cost[(b*d+i)*n+c*d:(b*d+i)*n+c*d+d])
				}
				p, v, err := solver.Solve(d, sub)
				if err != nil {
					return nil, 0, err
				}
				taus[g][b*H+c] = p
				score[b*H+c] += v
			}
		}
	}
	sigma, _, err := solver.Solve(H, score)
	if err != nil {
		return nil, 0, err
	}
	perms = make([][]int, len(costs))
	for g := range costs {
		d := sizes[g] / H
		tau := make([][]int, H)
		for b, c := range sigma {
			tau[b] = taus[g][b*H+c]
		}
		perms[g] = BlockPerm(sigma, tau, d)
		for i, j := range perms[g] {
			total += costs[g][i*sizes[g]+j]
		}
	}
	return perms, total, nil
}

// SharedWithin returns the permutation of a SharedWithin group of blocks
// blocks with block permutation sigma that maximises Σ_i cost[i, p(i)] +
// Σ_i extra[i, τ(i)] (extra: d×d, may be nil), with τ the one within-block
// permutation of every block, and that maximum.
func SharedWithin(solver *lap.Solver, n, blocks int, sigma []int, cost, extra []float64) ([]int, float64, error) {
	d := n / blocks
	t := make([]float64, d*d)
	copy(t, extra)
	for b, c := range sigma {
		for i := 0; i < d; i++ {
			row := cost[(b*d+i)*n+c*d : (b*d+i)*n+c*d+d]
			for j, v := range row {
				t[i*d+j] += v
			}
		}
	}
	tau, total, err := solver.Solve(d, t)
	if err != nil {
		return nil, 0, err
	}
	return BlockPerm(sigma, SameBlocks(blocks, tau), d), total, nil
}

// SolveSet is BlockSolve for a block set of groups: FixedWithin groups
// keep their units in place, SharedWithin groups are first solved freely
// and then given the best shared within-block permutation for the block
// permutation found (one step of alternating maximisation: a start, not
// an optimum). The signature start and activation matching use it.
func SolveSet(solver *lap.Solver, groups []graph.Group, set []int, costs [][]float64) ([][]int, error) {
	H := groups[set[0]].Blocks
	sizes := make([]int, len(set))
	pinned := make([][]int, len(set))
	for k, g := range set {
		sizes[k] = groups[g].Size
		if groups[g].FixedWithin {
			pinned[k] = IdentityPerm(sizes[k] / H)
		}
	}
	ps, _, err := BlockSolve(solver, H, sizes, costs, pinned)
	if err != nil {
		return nil, err
	}
	for k, g := range set {
		if !groups[g].SharedWithin {
			continue
		}
		sigma, _ := BlockSigma(ps[k], sizes[k]/H)
		if ps[k], _, err = SharedWithin(solver, sizes[k], H, sigma, costs[k], nil); err != nil {
			return nil, err
		}
	}
	return ps, nil
}

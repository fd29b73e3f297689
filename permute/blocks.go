package permute

import (
	"fmt"
	"math"
	"slices"

	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/lap"
)

// Block-structured groups (attention heads, see graph.Group.Blocks) keep
// flat permutations, so that Apply and the merges treat them like any
// other group; the permutation of a group of H blocks of d units must be
// p[b·d+i] = σ[b]·d + τ_b[i], with one σ for all the groups of a block set.

// blockPerm is the flat permutation of H = len(sigma) blocks of d units
// with block permutation sigma and within-block permutations tau[b].
func blockPerm(sigma []int, tau [][]int, d int) []int {
	p := make([]int, len(sigma)*d)
	for b, s := range sigma {
		for i, t := range tau[b] {
			p[b*d+i] = s*d + t
		}
	}
	return p
}

// identityBlocks returns h identity permutations of d units.
func identityBlocks(h, d int) [][]int {
	tau := make([][]int, h)
	for b := range tau {
		tau[b] = identityPerm(d)
	}
	return tau
}

// blockSigma returns the block permutation of p, a permutation of blocks
// of d units, and false if p moves some unit out of its block.
func blockSigma(p []int, d int) ([]int, bool) {
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

// checkBlocks verifies that p moves whole blocks of every block-structured
// group of a, with one block permutation per block set.
func (p Perms) checkBlocks(a *graph.Analysis) error {
	inSet := make([]bool, len(a.Groups))
	for _, set := range a.BlockSets {
		var first []int
		for _, g := range set {
			if g < 0 || g >= len(a.Groups) || a.Groups[g].Blocks < 2 {
				return fmt.Errorf("block set %v: group %d is not block-structured", set, g)
			}
			inSet[g] = true
			grp := a.Groups[g]
			sigma, ok := blockSigma(p[g], grp.Size/grp.Blocks)
			if !ok || len(sigma) != grp.Blocks {
				return fmt.Errorf("group %d: the permutation moves units between its %d blocks", g, grp.Blocks)
			}
			if grp.FixedWithin && !slices.Equal(p[g], blockPerm(sigma, identityBlocks(len(sigma), grp.Size/grp.Blocks), grp.Size/grp.Blocks)) {
				return fmt.Errorf("group %d: the permutation moves units within their blocks, which must stay in place", g)
			}
			if first == nil {
				first = sigma
			} else if !slices.Equal(first, sigma) {
				return fmt.Errorf("group %d: its blocks move unlike those of group %d, which shares their permutation", g, set[0])
			}
		}
	}
	for g, grp := range a.Groups {
		if grp.Blocks > 1 && !inSet[g] {
			return fmt.Errorf("group %d has %d blocks but is in no block set", g, grp.Blocks)
		}
	}
	return nil
}

// setsOf returns, per group, the index of its block set in a.BlockSets, or -1.
func setsOf(a *graph.Analysis) []int {
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

// blockSolve maximises Σ over the groups of a block set of Σ_i
// cost_g[i, p_g(i)] over block-structured permutations with one block
// permutation σ: for every pair of blocks (b, c) and every group it solves
// the assignment of b's units to c's exactly, their values summed are the
// score of mapping block c to b, and σ is the assignment that maximises
// the total score. sizes[g] is group g's units, costs[g] its sizes[g]²
// matrix (row i = unit i of A, column j = unit j of B); a group with
// fixed[g] keeps its units in place within blocks (its block-pair score is
// the sum of the matched units' costs). The result is optimal: any
// block-structured permutation scores at most the total.
func blockSolve(solver *lap.Solver, blocks int, sizes []int, costs [][]float64, fixed []bool) (perms [][]int, total float64, err error) {
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
				if fixed[g] {
					for i := 0; i < d; i++ {
						score[b*H+c] += cost[(b*d+i)*n+c*d+i]
					}
					taus[g][b*H+c] = identityPerm(d)
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
		perms[g] = blockPerm(sigma, tau, d)
		for i, j := range perms[g] {
			total += costs[g][i*sizes[g]+j]
		}
	}
	return perms, total, nil
}

// blockStep is one coordinate step of weight matching on block set set:
// every member's cost with all other groups fixed, then blockSolve. It
// returns the new permutations and their exact gain, or nil when the step
// does not strictly improve the objective (the same rule as a flat
// group's step). The members share no weight on different axes (checked
// by newMatcher), so their gains add up exactly.
func (mt *matcher) blockStep(set []int, perms Perms, objective float64, solver *lap.Solver) ([][]int, float64, error) {
	sizes := make([]int, len(set))
	costs := make([][]float64, len(set))
	fixed := make([]bool, len(set))
	old := 0.0
	for k, g := range set {
		sizes[k], fixed[k] = mt.groups[g].Size, mt.groups[g].FixedWithin
		costs[k] = mt.groupCost(g, perms)
		for i, j := range perms[g] {
			old += costs[k][i*sizes[k]+j]
		}
	}
	ps, total, err := blockSolve(solver, mt.groups[set[0]].Blocks, sizes, costs, fixed)
	if err != nil {
		return nil, 0, err
	}
	same := true
	for k, g := range set {
		same = same && equalPerm(ps[k], perms[g])
	}
	if same || total <= old+1e-12*math.Abs(old) {
		return nil, 0, nil
	}
	gain := 0.0
	for k, g := range set {
		if !equalPerm(ps[k], perms[g]) {
			gain += mt.exactGain(g, perms, ps[k])
		}
	}
	if gain <= 1e-12*math.Abs(objective) {
		return nil, 0, nil
	}
	return ps, gain, nil
}

// checkSets makes sure that no two groups of a block set share a weight on
// different axes: a joint step would then not be a sum of their terms.
func (mt *matcher) checkSets(sets [][]int) error {
	for _, set := range sets {
		for _, g := range set {
			for _, si := range mt.byGroup[g] {
				s := &mt.sites[si]
				for _, sj := range mt.uses[s.use].sites {
					t := &mt.sites[sj]
					if t.group != g && slices.Contains(set, t.group) && t.axis != s.axis {
						return fmt.Errorf("groups %d and %d share a block permutation and weight %q on different axes", g, t.group, mt.uses[s.use].tensor)
					}
				}
			}
		}
	}
	return nil
}

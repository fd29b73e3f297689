package permute

import (
	"fmt"
	"math"
	"slices"

	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/lap"
	"github.com/onnx-rebasin/onnx-rebasin/simd"
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

// withinOf returns block 0's within-block permutation of p (d units per
// block): the one every block of a SharedWithin group uses.
func withinOf(p []int, d int) []int {
	tau := make([]int, d)
	for i := range tau {
		tau[i] = p[i] % d
	}
	return tau
}

// sameBlocks returns h references to one within-block permutation tau.
func sameBlocks(h int, tau []int) [][]int {
	t := make([][]int, h)
	for b := range t {
		t[b] = tau
	}
	return t
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
			d := grp.Size / grp.Blocks
			if grp.FixedWithin && !slices.Equal(p[g], blockPerm(sigma, identityBlocks(len(sigma), d), d)) {
				return fmt.Errorf("group %d: the permutation moves units within their blocks, which must stay in place", g)
			}
			if tau := withinOf(p[g], d); grp.SharedWithin && !slices.Equal(p[g], blockPerm(sigma, sameBlocks(len(sigma), tau), d)) {
				return fmt.Errorf("group %d: its blocks move their units differently, but must share one permutation", g)
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
// matrix (row i = unit i of A, column j = unit j of B). A group with
// pinned[g] set moves the units of every block by that permutation (the
// identity for FixedWithin); its block-pair score is the sum of the costs
// it picks. The result is optimal: any such permutation scores at most
// the total.
func blockSolve(solver *lap.Solver, blocks int, sizes []int, costs [][]float64, pinned [][]int) (perms [][]int, total float64, err error) {
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
		perms[g] = blockPerm(sigma, tau, d)
		for i, j := range perms[g] {
			total += costs[g][i*sizes[g]+j]
		}
	}
	return perms, total, nil
}

// sharedWithin returns the permutation of a SharedWithin group of blocks
// blocks with block permutation sigma that maximises Σ_i cost[i, p(i)] +
// Σ_i extra[i, τ(i)] (extra: d×d, may be nil), with τ the one within-block
// permutation of every block, and that maximum.
func sharedWithin(solver *lap.Solver, n, blocks int, sigma []int, cost, extra []float64) ([]int, float64, error) {
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
	return blockPerm(sigma, sameBlocks(blocks, tau), d), total, nil
}

// solveSet is blockSolve for a block set of groups: FixedWithin groups
// keep their units in place, SharedWithin groups are first solved freely
// and then given the best shared within-block permutation for the block
// permutation found (one step of alternating maximisation: a start, not
// an optimum). The signature start and activation matching use it.
func solveSet(solver *lap.Solver, groups []graph.Group, set []int, costs [][]float64) ([][]int, error) {
	H := groups[set[0]].Blocks
	sizes := make([]int, len(set))
	pinned := make([][]int, len(set))
	for k, g := range set {
		sizes[k] = groups[g].Size
		if groups[g].FixedWithin {
			pinned[k] = identityPerm(sizes[k] / H)
		}
	}
	ps, _, err := blockSolve(solver, H, sizes, costs, pinned)
	if err != nil {
		return nil, err
	}
	for k, g := range set {
		if !groups[g].SharedWithin {
			continue
		}
		sigma, _ := blockSigma(ps[k], sizes[k]/H)
		if ps[k], _, err = sharedWithin(solver, sizes[k], H, sigma, costs[k], nil); err != nil {
			return nil, err
		}
	}
	return ps, nil
}

// blockStep is one coordinate step of weight matching on block set set,
// in two parts, each taken only if it strictly improves the objective
// (the same rule as a flat group's step), on perms in place:
//
//  1. every member's cost with all other groups fixed, then blockSolve,
//     with the within-block permutation of SharedWithin groups held;
//  2. for each SharedWithin group, its within-block permutation for the
//     block permutation now held, on its cost plus that of the weights
//     that hold one block of it (Within sites).
//
// The members' costs hold every term the first part changes once (a
// Within site is in no group's cost there, and does not move), so their
// gains add up exactly; the second part's gain adds the Within weights'
// exact change. It returns the total gain and whether anything moved.
func (mt *matcher) blockStep(set []int, perms Perms, objective float64, solver *lap.Solver) (float64, bool, error) {
	H := mt.groups[set[0]].Blocks
	sizes := make([]int, len(set))
	costs := make([][]float64, len(set))
	pinned := make([][]int, len(set))
	old := 0.0
	for k, g := range set {
		sizes[k] = mt.groups[g].Size
		d := sizes[k] / H
		switch {
		case mt.groups[g].FixedWithin:
			pinned[k] = identityPerm(d)
		case mt.groups[g].SharedWithin:
			pinned[k] = withinOf(perms[g], d)
		}
		costs[k] = mt.groupCost(g, perms)
		for i, j := range perms[g] {
			old += costs[k][i*sizes[k]+j]
		}
	}
	ps, total, err := blockSolve(solver, H, sizes, costs, pinned)
	if err != nil {
		return 0, false, err
	}
	gain, moved := 0.0, false
	same := true
	for k, g := range set {
		same = same && equalPerm(ps[k], perms[g])
	}
	if !same && total > old+1e-12*math.Abs(old) {
		g1 := 0.0
		for k, g := range set {
			if !equalPerm(ps[k], perms[g]) {
				g1 += mt.exactGain(g, perms, ps[k])
			}
		}
		if g1 > 1e-12*math.Abs(objective) {
			for k, g := range set {
				perms[g] = ps[k]
			}
			gain, moved = g1, true
		}
	}
	for _, g := range set {
		if !mt.groups[g].SharedWithin {
			continue
		}
		n, d := mt.groups[g].Size, mt.groups[g].Size/H
		cost := mt.groupCost(g, perms)
		sigma, _ := blockSigma(perms[g], d)
		extra := mt.withinCost(g, perms)
		p, best, err := sharedWithin(solver, n, H, sigma, cost, extra)
		if err != nil {
			return 0, false, err
		}
		cur := 0.0
		for i, j := range perms[g] {
			cur += cost[i*n+j]
		}
		for i, j := range withinOf(perms[g], d) {
			cur += extra[i*d+j]
		}
		if equalPerm(p, perms[g]) || best <= cur+1e-12*math.Abs(cur) {
			continue
		}
		g2 := mt.exactGain(g, perms, p)
		if !mt.repeated[g] { // else exactGain took every weight g touches
			g2 += mt.withinGain(g, perms, p)
		}
		if g2 > 1e-12*math.Abs(objective+gain) {
			perms[g] = p
			gain += g2
			moved = true
		}
	}
	return gain, moved, nil
}

// withinCost is the d×d matrix of the Within sites of group g (d units per
// block): entry (i, j) is the gain of giving unit i of every block B's
// unit j, with every other permutation applied.
func (mt *matcher) withinCost(g int, perms Perms) []float64 {
	d := mt.groups[g].Size / mt.groups[g].Blocks
	out := make([]float64, d*d)
	tmp := make([]float32, d*d)
	for _, si := range mt.withinOf[g] {
		s := &mt.sites[si]
		use := &mt.uses[s.use]
		mt.setMaps(use, perms)
		col := colOffsets(use.dims, s.axis, 1, use.maps, nil)
		simd.GemmRuns(mt.gemmWorkers(), d, d, s.cols, s.runMatrix(use.a, s.aRuns), s.runMatrix(use.b, runsOf(col, nil)), tmp, d)
		for i, v := range tmp {
			out[i] += float64(v)
		}
	}
	return out
}

// withinGain is the exact change of the objective's terms of g's Within
// sites' weights if g's permutation became p.
func (mt *matcher) withinGain(g int, perms Perms, p []int) float64 {
	var uses []int
	for _, si := range mt.withinOf[g] {
		if u := mt.sites[si].use; !slices.Contains(uses, u) {
			uses = append(uses, u)
		}
	}
	before := 0.0
	for _, u := range uses {
		before += mt.useObjective(u, perms, &mt.useBuf)
	}
	prev := perms[g]
	perms[g] = p
	after := 0.0
	for _, u := range uses {
		after += mt.useObjective(u, perms, &mt.useBuf)
	}
	perms[g] = prev
	return after - before
}

// checkSets makes sure that no two groups of a block set share a weight on
// different axes (Within sites aside, see blockStep): a joint step would
// then not be a sum of their terms.
func (mt *matcher) checkSets(sets [][]int) error {
	for _, set := range sets {
		for _, g := range set {
			for _, si := range mt.byGroup[g] {
				s := &mt.sites[si]
				for _, sj := range mt.uses[s.use].sites {
					t := &mt.sites[sj]
					if t.group != g && slices.Contains(set, t.group) && t.axis != s.axis && t.within == 0 {
						return fmt.Errorf("groups %d and %d share a block permutation and weight %q on different axes", g, t.group, mt.uses[s.use].tensor)
					}
				}
			}
		}
	}
	return nil
}

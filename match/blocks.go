package match

import (
	"fmt"
	"math"
	"slices"

	"github.com/onnx-rebasin/onnx-rebasin/internal/sitelayout"
	"github.com/onnx-rebasin/onnx-rebasin/lap"
	"github.com/onnx-rebasin/onnx-rebasin/permute"
	"github.com/onnx-rebasin/onnx-rebasin/simd"
)

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
func (mt *matcher) blockStep(set []int, perms permute.Perms, objective float64, solver *lap.Solver) (float64, bool, error) {
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
			pinned[k] = sitelayout.IdentityPerm(d)
		case mt.groups[g].SharedWithin:
			pinned[k] = sitelayout.WithinOf(perms[g], d)
		}
		costs[k] = mt.groupCost(g, perms)
		for i, j := range perms[g] {
			old += costs[k][i*sizes[k]+j]
		}
	}
	ps, total, err := sitelayout.BlockSolve(solver, H, sizes, costs, pinned)
	if err != nil {
		return 0, false, err
	}
	gain, moved := 0.0, false
	same := true
	for k, g := range set {
		same = same && slices.Equal(ps[k], perms[g])
	}
	if !same && total > old+1e-12*math.Abs(old) {
		g1 := 0.0
		for k, g := range set {
			if !slices.Equal(ps[k], perms[g]) {
				g1 += mt.exactGain(g, perms, ps[k])
			}
		}
		if g1 > 1e-12*math.Abs(objective) {
			for k, g := range set {
				mt.assign(perms, g, ps[k])
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
		sigma, _ := sitelayout.BlockSigma(perms[g], d)
		extra := mt.withinCost(g, perms)
		p, best, err := sitelayout.SharedWithin(solver, n, H, sigma, cost, extra)
		if err != nil {
			return 0, false, err
		}
		cur := 0.0
		for i, j := range perms[g] {
			cur += cost[i*n+j]
		}
		for i, j := range sitelayout.WithinOf(perms[g], d) {
			cur += extra[i*d+j]
		}
		if slices.Equal(p, perms[g]) || best <= cur+1e-12*math.Abs(cur) {
			continue
		}
		g2 := mt.exactGain(g, perms, p)
		if !mt.repeated[g] { // else exactGain took every weight g touches
			g2 += mt.withinGain(g, perms, p)
		}
		if g2 > 1e-12*math.Abs(objective+gain) {
			mt.assign(perms, g, p)
			gain += g2
			moved = true
		}
	}
	return gain, moved, nil
}

// withinCost is the d×d matrix of the Within sites of group g (d units per
// block): entry (i, j) is the gain of giving unit i of every block B's
// unit j, with every other permutation applied.
func (mt *matcher) withinCost(g int, perms permute.Perms) []float64 {
	d := mt.groups[g].Size / mt.groups[g].Blocks
	out := make([]float64, d*d)
	tmp := make([]float32, d*d)
	for _, si := range mt.withinOf[g] {
		s := &mt.sites[si]
		use := &mt.uses[s.use]
		mt.setMaps(use, perms)
		col := sitelayout.ColOffsets(use.dims, s.axis, 1, use.maps, nil)
		simd.GemmRuns(mt.gemmWorkers(), d, d, s.cols, s.runMatrix(use.a, s.aRuns), s.runMatrix(use.b, sitelayout.RunsOf(col, nil)), tmp, d)
		for i, v := range tmp {
			out[i] += float64(v)
		}
	}
	return out
}

// withinGain is the exact change of the objective's terms of g's Within
// sites' weights if g's permutation became p.
func (mt *matcher) withinGain(g int, perms permute.Perms, p []int) float64 {
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

package permute

import (
	"fmt"
	"slices"

	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/internal/sitelayout"
)

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
			sigma, ok := sitelayout.BlockSigma(p[g], grp.Size/grp.Blocks)
			if !ok || len(sigma) != grp.Blocks {
				return fmt.Errorf("group %d: the permutation moves units between its %d blocks", g, grp.Blocks)
			}
			d := grp.Size / grp.Blocks
			if grp.FixedWithin && !slices.Equal(p[g], sitelayout.BlockPerm(sigma, sitelayout.IdentityBlocks(len(sigma), d), d)) {
				return fmt.Errorf("group %d: the permutation moves units within their blocks, which must stay in place", g)
			}
			if tau := sitelayout.WithinOf(p[g], d); grp.SharedWithin && !slices.Equal(p[g], sitelayout.BlockPerm(sigma, sitelayout.SameBlocks(len(sigma), tau), d)) {
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

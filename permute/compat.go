package permute

import (
	"fmt"
	"slices"

	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
)

// SameArchitecture reports, as an error saying where, how two models differ
// in anything that alignment and merging rely on: what they compute (op
// types, attributes, wiring, and the element type and dims of the weight
// each node input reads, see graph.Correspond) and their permutation
// groups. Form does not count: names, Identity aliases of shared tensors
// (PyTorch shares equal tensors, e.g. fresh BatchNorm vectors), weights in
// Constant nodes or stored in fp16/bf16 behind a Cast, and attributes an
// opset writes differently. Apply gives layers that share a tensor copies
// of their own where needed.
func SameArchitecture(a, b *onnx.Model, ga, gb *graph.Analysis) error {
	onB, err := ga.For(b)
	if err != nil {
		return err
	}
	if len(onB.Groups) != len(gb.Groups) {
		return fmt.Errorf("%s has %d permutation groups, %s has %d", a.Name, len(ga.Groups), b.Name, len(gb.Groups))
	}
	// b's own analysis must find the groups of a's, site for site (in
	// any order: the order of groups follows the order of nodes in the file).
	own := map[string]int{}
	for _, g := range gb.Groups {
		own[groupKey(g)]++
	}
	for i, g := range onB.Groups {
		k := groupKey(g)
		if own[k] == 0 {
			return fmt.Errorf("permutation group %d of %s (%d units) is not a group of %s", i, a.Name, g.Size, b.Name)
		}
		own[k]--
	}
	return nil
}

// groupKey identifies a group by its size and weight sites.
func groupKey(g graph.Group) string {
	sites := make([]string, len(g.Weights))
	for i, w := range g.Weights {
		sites[i] = fmt.Sprintf("%d/%d/%d/%d/%d/%d", w.Node, w.Input, w.Axis, w.Block, w.Offset, w.Repeat)
	}
	slices.Sort(sites)
	return fmt.Sprint(g.Size, sites)
}

package graph_test

import (
	"slices"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/graph"
)

// TestRestrict: dropped groups go, the others are renumbered in order, and
// block sets keep their remaining members.
func TestRestrict(t *testing.T) {
	a := &graph.Analysis{
		Groups: []graph.Group{
			{ID: 0, Size: 8}, {ID: 1, Size: 4, Blocks: 2}, {ID: 2, Size: 3}, {ID: 3, Size: 4, Blocks: 2}, {ID: 4, Size: 6, Blocks: 3},
		},
		BlockSets:       [][]int{{1, 3}, {4}},
		PermutableUnits: 25,
	}
	r := a.Restrict(func(g graph.Group) bool { return g.ID != 1 && g.ID != 4 })
	var ids, sizes []int
	for _, g := range r.Groups {
		ids, sizes = append(ids, g.ID), append(sizes, g.Size)
	}
	if !slices.Equal(ids, []int{0, 1, 2}) || !slices.Equal(sizes, []int{8, 3, 4}) {
		t.Errorf("groups: ids %v sizes %v", ids, sizes)
	}
	if len(r.BlockSets) != 1 || !slices.Equal(r.BlockSets[0], []int{2}) {
		t.Errorf("block sets %v, want [[2]]", r.BlockSets)
	}
	if r.PermutableUnits != 15 {
		t.Errorf("PermutableUnits %d, want 15", r.PermutableUnits)
	}
	if len(a.Groups) != 5 || a.Groups[3].ID != 3 || len(a.BlockSets) != 2 {
		t.Error("Restrict changed its receiver")
	}
}

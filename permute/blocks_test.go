package permute

import (
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/graph"
)

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

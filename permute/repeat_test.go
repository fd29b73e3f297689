package permute

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/internal/ortref"
	"github.com/onnx-rebasin/onnx-rebasin/internal/sitelayout"
	"github.com/onnx-rebasin/onnx-rebasin/internal/testkit"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

// TestRepeatedHeadsMove: in grouped-query (attn_gqa: 4 query heads, 2 K/V
// heads) and multi-query attention (attn_mqa: 1 K/V head), the query rows
// and the output projection's input columns are sites of the K·Q and V·O
// groups with every K/V head repeated once per query head that shares it.
// Permuting only those groups moves the query rows exactly as the layout
// says (row (b·g+j)·d+i takes row (b'·g+j)·d+i' for K/V unit b'·d+i' =
// p[b·d+i]) and keeps the function, as judged by ONNX Runtime; leaving the
// query rows in place while their K/V units move changes it.
func TestRepeatedHeadsMove(t *testing.T) {
	ort := ortref.Require(t)
	for _, tc := range []struct {
		name    string
		repeat  int // query heads per K/V head
		blocks  int // K/V heads
		queries int // groups with repeated sites (K·Q and V·O of two attentions)
	}{{"attn_gqa", 2, 2, 4}, {"attn_mqa", 4, 1, 4}} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join("..", "testmodels", tc.name+".onnx")
			orig, ga := testkit.LoadAnalyze(t, path)
			var repeated []int
			for _, g := range ga.Groups {
				for _, s := range g.Weights {
					if s.Repeat > 1 && !slices.Contains(repeated, g.ID) {
						repeated = append(repeated, g.ID)
						if s.Repeat != tc.repeat || max(g.Blocks, 1) != tc.blocks {
							t.Errorf("group %d: %d blocks, site %q repeated %d times; want %d blocks, %d times", g.ID, g.Blocks, s.Tensor, s.Repeat, tc.blocks, tc.repeat)
						}
					}
				}
			}
			if len(repeated) != tc.queries {
				t.Fatalf("%d groups with repeated sites, want %d", len(repeated), tc.queries)
			}
			inputs := testkit.RandomInputs(t, orig, 3, 5)
			moved := 0
			for _, seed := range []uint64{1, 2, 3, 4} {
				// Only the attention groups move, so that the other axes
				// of the query weights stay in place.
				random := Random(ga, seed)
				p := Identity(ga)
				for _, g := range repeated {
					p[g] = random[g]
					if set := sitelayout.SetsOf(ga)[g]; set >= 0 {
						for _, h := range ga.BlockSets[set] {
							p[h] = random[h]
						}
					}
				}
				m := orig.Clone()
				if err := Apply(m, ga, p); err != nil {
					t.Fatal(err)
				}
				src, srcM := graph.NewSources(orig), graph.NewSources(m)
				for _, g := range repeated {
					grp := ga.Groups[g]
					d := grp.Size / max(grp.Blocks, 1)
					if blocks, ok := sitelayout.BlockSigma(p[g], d); ok && !sitelayout.IsIdentity(blocks) {
						moved++
					}
					for _, s := range grp.Weights {
						if s.Repeat > 1 {
							checkRepeatedSite(t, fmt.Sprintf("seed %d group %d", seed, g), s, d, p[g],
								sitelayout.UseTensor(orig, src, s), sitelayout.UseTensor(m, srcM, s), orig, m)
						}
					}
				}
				out := filepath.Join(t.TempDir(), fmt.Sprintf("p%d.onnx", seed))
				if err := m.Save(out); err != nil {
					t.Fatal(err)
				}
				if err := ort.CompareModels(path, out, inputs, 1e-4, 1e-3); err != nil {
					t.Fatalf("seed %d: permuted model computes something else: %v", seed, err)
				}
				// The same permutation with the query sites left out:
				// K and V move, the query rows do not.
				broken := *ga
				broken.Groups = slices.Clone(ga.Groups)
				for _, g := range repeated {
					grp := &broken.Groups[g]
					grp.Weights = slices.DeleteFunc(slices.Clone(grp.Weights), func(s graph.WeightSite) bool { return s.Repeat > 1 })
				}
				bm := orig.Clone()
				if err := Apply(bm, &broken, p); err != nil {
					t.Fatal(err)
				}
				bout := filepath.Join(t.TempDir(), fmt.Sprintf("b%d.onnx", seed))
				if err := bm.Save(bout); err != nil {
					t.Fatal(err)
				}
				if err := ort.CompareModels(path, bout, inputs, 1e-4, 1e-3); err == nil {
					t.Errorf("seed %d: moving K/V without their query rows kept the function", seed)
				}
			}
			if tc.blocks > 1 && moved == 0 {
				t.Errorf("no seed moved the K/V heads")
			}
		})
	}
}

// checkRepeatedSite checks that site s (d units per block, each block
// s.Repeat times on the axis) of tensor after is before with unit u's
// copies taken from unit p[u]'s, the other axes in place.
func checkRepeatedSite(t *testing.T, what string, s graph.WeightSite, d int, p []int, before, after *onnxpb.TensorProto, mb, ma *onnx.Model) {
	t.Helper()
	fb, err := mb.Float32View(before)
	if err != nil {
		t.Fatal(err)
	}
	fa, err := ma.Float32View(after)
	if err != nil {
		t.Fatal(err)
	}
	dims := make([]int, len(before.Dims))
	for i, x := range before.Dims {
		dims[i] = int(x)
	}
	st := sitelayout.Strides(dims)
	from := sitelayout.IdentityPerm(dims[s.Axis])
	for u, v := range p {
		for j := 0; j < s.Repeat; j++ {
			for k := 0; k < max(s.Block, 1); k++ {
				from[sitelayout.UnitIndex(u, j, d, s.Repeat, max(s.Block, 1), s.Offset)+k] = sitelayout.UnitIndex(v, j, d, s.Repeat, max(s.Block, 1), s.Offset) + k
			}
		}
	}
	for i := range fa {
		k := i / st[s.Axis] % dims[s.Axis]
		src := i + (from[k]-k)*st[s.Axis]
		if fa[i] != fb[src] {
			t.Fatalf("%s: %q element %d is %g, want %g (index %d on axis %d from %d)", what, s.Tensor, i, fa[i], fb[src], k, s.Axis, from[k])
		}
	}
}

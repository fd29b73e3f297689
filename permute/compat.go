package permute

import (
	"errors"
	"fmt"
	"slices"

	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
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

func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// checkFit checks that the permutation groups of ga fit every one of
// models: each group member is a weight of the model, holds the group on
// its axis, and has the same dims in all the models. Functions that take
// an analysis of one model and apply it to others call it first, so that
// models of another architecture (other widths, say) give an error rather
// than a panic in the kernels.
func checkFit(ga *graph.Analysis, models ...*onnx.Model) error {
	if ga == nil {
		return errors.New("no analysis given")
	}
	type modelSites struct {
		on  *graph.Analysis // ga in the model's own form
		src *graph.Sources
	}
	ms := make([]modelSites, len(models))
	for i, m := range models {
		if m == nil || m.Proto.GetGraph() == nil {
			return fmt.Errorf("model %d has no graph", i+1)
		}
		on, err := ga.For(m)
		if err != nil {
			return fmt.Errorf("%s: %w", m.Name, err)
		}
		ms[i] = modelSites{on, graph.NewSources(m)}
	}
	for gi, grp := range ga.Groups {
		for k, s := range grp.Weights {
			var first *onnxpb.TensorProto
			for i, m := range models {
				site := ms[i].on.Groups[gi].Weights[k]
				t := useTensor(m, ms[i].src, site)
				if t == nil {
					return fmt.Errorf("%s: permutation group %d: node %d input %d does not read a weight", m.Name, gi, site.Node, site.Input)
				}
				units := grp.Size
				if s.Within {
					units = grp.Size / max(grp.Blocks, 1) // one block's units (a grouped convolution's weight)
				}
				if s.Axis < 0 || s.Axis >= len(t.Dims) || s.Offset < 0 ||
					int64(s.Offset)+int64(units)*int64(max(s.Block, 1))*int64(max(s.Repeat, 1)) > t.Dims[s.Axis] {
					return fmt.Errorf("%s: weight %q %v does not hold permutation group %d (%d units) on axis %d", m.Name, t.GetName(), t.Dims, gi, units, s.Axis)
				}
				if first == nil {
					first = t
				} else if !slices.Equal(t.Dims, first.Dims) {
					return fmt.Errorf("weight %q is %v in %s but %q is %v in %s", first.GetName(), first.Dims, models[0].Name, t.GetName(), t.Dims, m.Name)
				}
			}
		}
	}
	return nil
}

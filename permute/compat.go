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
// in anything that alignment and merging rely on: the node sequence (op
// types, and the values each node reads and writes), the element type and
// dims of the weight each node input reads, and the permutation groups.
// Weights are compared by the node inputs that read them, not by name: an
// exporter may give one tensor to several layers whose values happen to be
// equal (PyTorch does for freshly initialised BatchNorm parameters), and
// Apply gives such layers copies of their own.
func SameArchitecture(a, b *onnx.Model, ga, gb *graph.Analysis) error {
	na, nb := a.Proto.GetGraph().GetNode(), b.Proto.GetGraph().GetNode()
	if len(na) != len(nb) {
		return fmt.Errorf("%s has %d nodes, %s has %d", a.Name, len(na), b.Name, len(nb))
	}
	wa, wb := a.Weights(), b.Weights()
	ia, ib := identityInputs(na), identityInputs(nb)
	for i := range na {
		x, y := na[i], nb[i]
		if x.GetOpType() != y.GetOpType() || x.GetDomain() != y.GetDomain() {
			return fmt.Errorf("node %d is %s (%q) in %s but %s (%q) in %s", i, x.GetOpType(), x.GetName(), a.Name, y.GetOpType(), y.GetName(), b.Name)
		}
		if len(x.Input) != len(y.Input) || !slices.Equal(x.Output, y.Output) {
			return fmt.Errorf("node %d (%s %q) is wired differently in %s and %s", i, x.GetOpType(), x.GetName(), a.Name, b.Name)
		}
		for k := range x.Input {
			ta, tb := weightBehind(ia, wa, x.Input[k]), weightBehind(ib, wb, y.Input[k])
			switch {
			case ta == "" && tb == "":
				if x.Input[k] != y.Input[k] {
					return fmt.Errorf("node %d (%s %q) input %d reads %q in %s but %q in %s", i, x.GetOpType(), x.GetName(), k, x.Input[k], a.Name, y.Input[k], b.Name)
				}
			case ta == "" || tb == "":
				return fmt.Errorf("node %d (%s %q) input %d reads a weight in only one of %s and %s", i, x.GetOpType(), x.GetName(), k, a.Name, b.Name)
			default:
				tx, ty := wa[ta], wb[tb]
				if onnx.DataType(tx) != onnx.DataType(ty) || !slices.Equal(tx.Dims, ty.Dims) {
					return fmt.Errorf("weight %q (node %d input %d) is %v%v in %s but %v%v in %s", ta, i, k, onnx.DataType(tx), tx.Dims, a.Name, onnx.DataType(ty), ty.Dims, b.Name)
				}
			}
		}
	}
	if len(ga.Groups) != len(gb.Groups) {
		return fmt.Errorf("%s has %d permutation groups, %s has %d", a.Name, len(ga.Groups), b.Name, len(gb.Groups))
	}
	for i := range ga.Groups {
		if ga.Groups[i].Size != gb.Groups[i].Size || len(ga.Groups[i].Weights) != len(gb.Groups[i].Weights) {
			return fmt.Errorf("permutation group %d differs: %d units in %s, %d in %s", i, ga.Groups[i].Size, a.Name, gb.Groups[i].Size, b.Name)
		}
	}
	return nil
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
	type modelWeights struct {
		nodes      []*onnxpb.NodeProto
		weights    map[string]*onnxpb.TensorProto
		identityIn map[string]string
	}
	ms := make([]modelWeights, len(models))
	for i, m := range models {
		if m == nil || m.Proto.GetGraph() == nil {
			return fmt.Errorf("model %d has no graph", i+1)
		}
		nodes := m.Proto.Graph.Node
		ms[i] = modelWeights{nodes, m.Weights(), identityInputs(nodes)}
	}
	for gi, grp := range ga.Groups {
		for _, s := range grp.Weights {
			var first *onnxpb.TensorProto
			for i, m := range models {
				mw := ms[i]
				if s.Node < 0 || s.Node >= len(mw.nodes) || s.Input < 0 || s.Input >= len(mw.nodes[s.Node].Input) {
					return fmt.Errorf("%s: permutation group %d: node %d input %d is not in the model", m.Name, gi, s.Node, s.Input)
				}
				t := mw.weights[weightBehind(mw.identityIn, mw.weights, mw.nodes[s.Node].Input[s.Input])]
				if t == nil {
					return fmt.Errorf("%s: permutation group %d: node %d input %d does not read a weight", m.Name, gi, s.Node, s.Input)
				}
				if s.Axis < 0 || s.Axis >= len(t.Dims) || s.Offset < 0 ||
					int64(s.Offset)+int64(grp.Size)*int64(max(s.Block, 1)) > t.Dims[s.Axis] {
					return fmt.Errorf("%s: weight %q %v does not hold permutation group %d (%d units) on axis %d", m.Name, t.GetName(), t.Dims, gi, grp.Size, s.Axis)
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

package permute

import (
	"fmt"
	"slices"

	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
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

package permute

import (
	"fmt"
	"slices"

	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
)

// SameArchitecture reports, as an error saying where, how two models differ
// in anything that alignment and merging rely on: the node sequence (op
// types, inputs and outputs), the weights' names, element types and dims,
// and the permutation groups.
func SameArchitecture(a, b *onnx.Model, ga, gb *graph.Analysis) error {
	na, nb := a.Proto.GetGraph().GetNode(), b.Proto.GetGraph().GetNode()
	if len(na) != len(nb) {
		return fmt.Errorf("%s has %d nodes, %s has %d", a.Name, len(na), b.Name, len(nb))
	}
	for i := range na {
		x, y := na[i], nb[i]
		if x.GetOpType() != y.GetOpType() || x.GetDomain() != y.GetDomain() {
			return fmt.Errorf("node %d is %s (%q) in %s but %s (%q) in %s", i, x.GetOpType(), x.GetName(), a.Name, y.GetOpType(), y.GetName(), b.Name)
		}
		if !slices.Equal(x.Input, y.Input) || !slices.Equal(x.Output, y.Output) {
			return fmt.Errorf("node %d (%s %q) is wired differently in %s and %s", i, x.GetOpType(), x.GetName(), a.Name, b.Name)
		}
	}
	wa, wb := a.Weights(), b.Weights()
	for _, name := range sortedNames(wa) {
		x, y := wa[name], wb[name]
		if y == nil {
			return fmt.Errorf("weight %q is in %s but not in %s", name, a.Name, b.Name)
		}
		if onnx.DataType(x) != onnx.DataType(y) || !slices.Equal(x.Dims, y.Dims) {
			return fmt.Errorf("weight %q is %v%v in %s but %v%v in %s", name, onnx.DataType(x), x.Dims, a.Name, onnx.DataType(y), y.Dims, b.Name)
		}
	}
	for _, name := range sortedNames(wb) {
		if wa[name] == nil {
			return fmt.Errorf("weight %q is in %s but not in %s", name, b.Name, a.Name)
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

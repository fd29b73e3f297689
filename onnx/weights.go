package onnx

import "github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"

// Weights returns the constant tensors of the main graph by the name of the
// value they define: graph initializers and the tensor held by each Constant
// node's value attribute (exporters put weights there too). A Constant node
// shadows an initializer of the same name, as a node output would.
func (m *Model) Weights() map[string]*onnxpb.TensorProto {
	g := m.Proto.GetGraph()
	w := make(map[string]*onnxpb.TensorProto, len(g.GetInitializer()))
	for _, t := range g.GetInitializer() {
		w[t.GetName()] = t
	}
	for _, n := range g.GetNode() {
		if n.GetOpType() != "Constant" || (n.GetDomain() != "" && n.GetDomain() != "ai.onnx") || len(n.Output) != 1 {
			continue
		}
		for _, a := range n.Attribute {
			if a.GetName() == "value" && a.T != nil {
				w[n.Output[0]] = a.T
			}
		}
	}
	return w
}

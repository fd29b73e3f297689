package graph

import (
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

// Sources resolves the values of a model's main graph to the constant
// tensors behind them. A value holds a weight if it is an initializer or a
// Constant node's output, or the output of a forwarder whose input holds
// one. Forwarders are the nodes that pass a constant on unchanged in
// everything a permutation can see: Identity (exporters alias deduplicated
// tensors through it) and Cast from one floating-point type to another
// (models that store their weights in fp16 or bf16 and compute in float32).
// Both act on each element alone, so permuting the tensor behind them
// permutes what they output, exactly; and a float-to-float Cast keeps the
// values up to rounding, so matching and averaging may read the stored
// tensor. Other per-element ops on constants (Neg, Sqrt, ...) also commute
// with permutations but change the values a layer sees, so what they
// output is treated as computed, not as a weight.
type Sources struct {
	weights map[string]*onnxpb.TensorProto
	nodes   []*onnxpb.NodeProto
	// producer maps a node output to its node.
	producer map[string]int
	// tensor maps each resolved value to the tensor behind it, "" for
	// values that hold no weight.
	tensor map[string]string
	// elem is the element type each weight value has where it is read:
	// the type of the last Cast on its chain, else the tensor's.
	elem      map[string]onnxpb.TensorProto_DataType
	forwarder map[int]bool
}

// NewSources resolves every value m's main graph reads or defines.
func NewSources(m *onnx.Model) *Sources {
	g := m.Proto.GetGraph()
	s := &Sources{
		weights:   m.Weights(),
		nodes:     g.GetNode(),
		producer:  map[string]int{},
		tensor:    map[string]string{},
		elem:      map[string]onnxpb.TensorProto_DataType{},
		forwarder: map[int]bool{},
	}
	for i, n := range s.nodes {
		for _, o := range n.GetOutput() {
			if _, dup := s.producer[o]; o != "" && !dup {
				s.producer[o] = i
			}
		}
	}
	for _, n := range s.nodes {
		for _, in := range n.GetInput() {
			s.resolve(in, 0)
		}
		for _, o := range n.GetOutput() {
			s.resolve(o, 0)
		}
	}
	for _, o := range g.GetOutput() {
		s.resolve(o.GetName(), 0)
	}
	return s
}

// resolve returns the tensor behind value v ("" if v holds no weight),
// memoised; depth bounds the chains a cyclic (malformed) graph could make.
func (s *Sources) resolve(v string, depth int) string {
	if t, ok := s.tensor[v]; ok {
		return t
	}
	if t := s.weights[v]; t != nil {
		s.tensor[v], s.elem[v] = v, onnx.DataType(t)
		return v
	}
	i, ok := s.producer[v]
	if !ok || depth > len(s.nodes) {
		s.tensor[v] = ""
		return ""
	}
	s.tensor[v] = "" // while resolving: a cycle reaches no weight
	n := s.nodes[i]
	if len(n.GetInput()) != 1 || len(n.GetOutput()) != 1 {
		return ""
	}
	src := s.resolve(n.GetInput()[0], depth+1)
	if src == "" {
		return ""
	}
	elem := s.elem[n.GetInput()[0]]
	switch {
	case isOp(n, "Identity"):
	case isOp(n, "Cast"):
		to := onnxpb.TensorProto_DataType(attrInt(n, "to", 0))
		if !onnx.IsFloat(elem) || !onnx.IsFloat(to) {
			return ""
		}
		elem = to
	default:
		return ""
	}
	s.tensor[v], s.elem[v] = src, elem
	s.forwarder[i] = true
	return src
}

// Name returns the name of the tensor behind value v, or "" if v holds no
// weight.
func (s *Sources) Name(v string) string { return s.resolve(v, 0) }

// Tensor returns the tensor behind value v, or nil.
func (s *Sources) Tensor(v string) *onnxpb.TensorProto { return s.weights[s.resolve(v, 0)] }

// ElemType returns the element type value v has where it is read (after
// the Casts on its chain); v must hold a weight.
func (s *Sources) ElemType(v string) onnxpb.TensorProto_DataType {
	s.resolve(v, 0)
	return s.elem[v]
}

// Forwarder reports whether node i only forwards a weight (see Sources).
func (s *Sources) Forwarder(i int) bool { return s.forwarder[i] }

// Weights returns the constant tensors by name (onnx.Model.Weights).
func (s *Sources) Weights() map[string]*onnxpb.TensorProto { return s.weights }

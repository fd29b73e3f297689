package graph

import (
	"container/heap"
	"fmt"
	"strconv"

	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

// view is the main graph of a model with the indexes the analysis needs:
// who produces and who reads each value, which values are weights, and an
// order in which every node comes after the producers of its inputs.
type view struct {
	m     *onnx.Model
	g     *onnxpb.GraphProto
	nodes []*onnxpb.NodeProto
	opset int64 // version of the default ("ai.onnx") domain

	// weights are the constant tensors by the value they define
	// (initializers and Constant node values, see onnx.Model.Weights).
	weights map[string]*onnxpb.TensorProto
	// source maps every value that is a weight to the tensor it holds:
	// weights map to themselves, forwarder outputs to the tensor behind
	// their chain (see Sources).
	source  map[string]string
	sources *Sources
	// producer maps a node output to the index of its node.
	producer map[string]int
	// inputs are the graph inputs that are not weights: the model's real inputs.
	inputs map[string]bool
	// outputs are the graph outputs in declaration order.
	outputs []string
	// order lists node indexes in topological order.
	order []int
	// implicit holds, per node, the outer values its subgraphs read
	// (If/Loop/Scan bodies may read any value of the main graph).
	implicit [][]string
	// forwarders are the nodes that pass a weight on (see Sources): they
	// compute nothing the analysis must constrain.
	forwarders map[int]bool
}

// defaultOpset is assumed when a model imports no default-domain opset.
const defaultOpset = 21

func newView(m *onnx.Model) (*view, error) {
	if m == nil || m.Proto == nil || m.Proto.GetGraph() == nil {
		return nil, fmt.Errorf("model has no graph")
	}
	g := m.Proto.GetGraph()
	v := &view{
		m:          m,
		g:          g,
		nodes:      g.GetNode(),
		opset:      0,
		weights:    m.Weights(),
		source:     map[string]string{},
		producer:   map[string]int{},
		inputs:     map[string]bool{},
		forwarders: map[int]bool{},
	}
	for _, op := range m.Proto.GetOpsetImport() {
		if d := op.GetDomain(); d == "" || d == "ai.onnx" {
			v.opset = op.GetVersion()
		}
	}
	if v.opset <= 0 {
		v.opset = defaultOpset
	}

	isInit := map[string]bool{}
	for _, t := range g.GetInitializer() {
		isInit[t.GetName()] = true
	}
	for i, n := range v.nodes {
		if n == nil {
			return nil, fmt.Errorf("node #%d is empty", i)
		}
		for _, o := range n.GetOutput() {
			if o == "" {
				continue // an optional output left out
			}
			if j, dup := v.producer[o]; dup {
				return nil, fmt.Errorf("value %q is produced by both %s and %s", o, v.nodeName(j), v.nodeName(i))
			}
			if isInit[o] && !v.isConstant(i) {
				return nil, fmt.Errorf("value %q is both an initializer and an output of %s", o, v.nodeName(i))
			}
			v.producer[o] = i
		}
	}
	for _, in := range g.GetInput() {
		name := in.GetName()
		if _, ok := v.producer[name]; ok {
			return nil, fmt.Errorf("graph input %q is also an output of %s", name, v.nodeName(v.producer[name]))
		}
		// An initializer listed among the inputs (IR < 4 exporters list
		// them all) is a default that a caller could override; it is
		// treated as the weight it is meant to be.
		if !isInit[name] {
			v.inputs[name] = true
		}
	}
	for _, o := range g.GetOutput() {
		v.outputs = append(v.outputs, o.GetName())
	}

	v.implicit = make([][]string, len(v.nodes))
	for i, n := range v.nodes {
		for _, a := range n.GetAttribute() {
			var subs []*onnxpb.GraphProto
			if a.GetG() != nil {
				subs = append(subs, a.GetG())
			}
			subs = append(subs, a.GetGraphs()...)
			for _, sg := range subs {
				v.implicit[i] = append(v.implicit[i], freeVars(sg, 0)...)
			}
		}
	}

	if err := v.checkDefined(isInit); err != nil {
		return nil, err
	}
	if err := v.sort(); err != nil {
		return nil, err
	}

	// Weights and the chains of forwarders (Identity, float Casts) that
	// pass them on.
	v.sources = NewSources(m)
	for name := range v.weights {
		v.source[name] = name
	}
	for _, i := range v.order {
		for _, o := range v.nodes[i].GetOutput() {
			if src := v.sources.Name(o); src != "" {
				v.source[o] = src
			}
		}
		if v.sources.Forwarder(i) {
			v.forwarders[i] = true
		}
	}
	return v, nil
}

// isConstant reports whether node i is a Constant whose value m.Weights
// picks up (such a node may shadow an initializer of the same name).
func (v *view) isConstant(i int) bool {
	n := v.nodes[i]
	return isOp(n, "Constant")
}

// checkDefined refuses node inputs and graph outputs that nothing defines.
func (v *view) checkDefined(isInit map[string]bool) error {
	defined := func(name string) bool {
		if _, ok := v.producer[name]; ok {
			return true
		}
		return isInit[name] || v.inputs[name] || v.weights[name] != nil
	}
	for i, n := range v.nodes {
		for _, in := range n.GetInput() {
			if in != "" && !defined(in) {
				return fmt.Errorf("%s reads %q, which is not a graph input, initializer or node output", v.nodeName(i), in)
			}
		}
		for _, in := range v.implicit[i] {
			if !defined(in) {
				return fmt.Errorf("a subgraph of %s reads %q, which is not defined", v.nodeName(i), in)
			}
		}
	}
	for _, o := range v.outputs {
		if !defined(o) {
			return fmt.Errorf("graph output %q is not defined", o)
		}
	}
	return nil
}

// deps returns the values node i needs before it can run.
func (v *view) deps(i int) []string {
	return append(append([]string(nil), v.nodes[i].GetInput()...), v.implicit[i]...)
}

// sort computes a topological order (Kahn's algorithm, lowest node index
// first among the ready ones, so graph order is kept when it is valid).
func (v *view) sort() error {
	indeg := make([]int, len(v.nodes))
	users := make([][]int, len(v.nodes))
	for i := range v.nodes {
		for _, in := range v.deps(i) {
			if p, ok := v.producer[in]; ok && in != "" {
				indeg[i]++
				users[p] = append(users[p], i)
			}
		}
	}
	ready := &intHeap{}
	for i, d := range indeg {
		if d == 0 {
			heap.Push(ready, i)
		}
	}
	v.order = make([]int, 0, len(v.nodes))
	for ready.Len() > 0 {
		i := heap.Pop(ready).(int)
		v.order = append(v.order, i)
		for _, u := range users[i] {
			if indeg[u]--; indeg[u] == 0 {
				heap.Push(ready, u)
			}
		}
	}
	if len(v.order) != len(v.nodes) {
		for i, d := range indeg {
			if d > 0 {
				return fmt.Errorf("the graph has a cycle through %s", v.nodeName(i))
			}
		}
	}
	return nil
}

type intHeap []int

func (h intHeap) Len() int           { return len(h) }
func (h intHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h intHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *intHeap) Push(x any)        { *h = append(*h, x.(int)) }
func (h *intHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// freeVars returns the names a subgraph (and its nested subgraphs) reads
// without defining them: values of an enclosing scope.
func freeVars(g *onnxpb.GraphProto, depth int) []string {
	if g == nil || depth > 64 {
		return nil
	}
	def := map[string]bool{}
	for _, in := range g.GetInput() {
		def[in.GetName()] = true
	}
	for _, t := range g.GetInitializer() {
		def[t.GetName()] = true
	}
	for _, sp := range g.GetSparseInitializer() {
		def[sp.GetValues().GetName()] = true
	}
	for _, n := range g.GetNode() {
		for _, o := range n.GetOutput() {
			def[o] = true
		}
	}
	seen := map[string]bool{}
	var free []string
	use := func(name string) {
		if name != "" && !def[name] && !seen[name] {
			seen[name] = true
			free = append(free, name)
		}
	}
	for _, n := range g.GetNode() {
		for _, in := range n.GetInput() {
			use(in)
		}
		for _, a := range n.GetAttribute() {
			if a.GetG() != nil {
				for _, f := range freeVars(a.GetG(), depth+1) {
					use(f)
				}
			}
			for _, sg := range a.GetGraphs() {
				for _, f := range freeVars(sg, depth+1) {
					use(f)
				}
			}
		}
	}
	for _, o := range g.GetOutput() {
		use(o.GetName())
	}
	return free
}

// nodeName names node i for messages: its name, or its index and op.
func (v *view) nodeName(i int) string {
	n := v.nodes[i]
	if n.GetName() != "" {
		return fmt.Sprintf("node %q", n.GetName())
	}
	return "node #" + strconv.Itoa(i) + " (" + opName(n) + ")"
}

// label is the short form of a node used in reasons: `Gemm "/fc1/Gemm"`.
func (v *view) label(i int) string {
	n := v.nodes[i]
	if n.GetName() != "" {
		return fmt.Sprintf("%s %q", opName(n), n.GetName())
	}
	return fmt.Sprintf("%s #%d", opName(n), i)
}

// isWeight reports whether value name holds a constant tensor.
func (v *view) isWeight(name string) bool {
	_, ok := v.source[name]
	return ok
}

// opName is the op type qualified by a non-default domain.
func opName(n *onnxpb.NodeProto) string {
	if d := n.GetDomain(); d != "" && d != "ai.onnx" {
		return d + "." + n.GetOpType()
	}
	return n.GetOpType()
}

// isOp reports whether n is the default-domain operator op.
func isOp(n *onnxpb.NodeProto, op string) bool {
	d := n.GetDomain()
	return (d == "" || d == "ai.onnx") && n.GetOpType() == op
}

// attr returns n's attribute called name, or nil.
func attr(n *onnxpb.NodeProto, name string) *onnxpb.AttributeProto {
	for _, a := range n.GetAttribute() {
		if a != nil && a.GetName() == name {
			return a
		}
	}
	return nil
}

func attrInt(n *onnxpb.NodeProto, name string, def int64) int64 {
	if a := attr(n, name); a != nil {
		return a.GetI()
	}
	return def
}

func attrInts(n *onnxpb.NodeProto, name string) ([]int64, bool) {
	if a := attr(n, name); a != nil {
		return a.GetInts(), true
	}
	return nil, false
}

func attrString(n *onnxpb.NodeProto, name, def string) string {
	if a := attr(n, name); a != nil {
		return string(a.GetS())
	}
	return def
}

// input returns n's i-th input name, or "" when it is absent.
func input(n *onnxpb.NodeProto, i int) string {
	if i < len(n.GetInput()) {
		return n.GetInput()[i]
	}
	return ""
}

// output returns n's i-th output name, or "" when it is absent.
func output(n *onnxpb.NodeProto, i int) string {
	if i < len(n.GetOutput()) {
		return n.GetOutput()[i]
	}
	return ""
}

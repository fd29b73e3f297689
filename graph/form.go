package graph

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

// Two files hold the same architecture when they compute the same thing,
// whatever their form: exporters name values and nodes freely, alias equal
// tensors through Identity nodes (PyTorch does for untrained BatchNorm
// vectors), store weights as initializers or Constant nodes, in fp16 with a
// Cast before use, and write attributes at their defaults or leave them out,
// or as inputs in later opsets. A skeleton is a graph with all that taken
// out: its computing nodes (not the weight forwarders and holders, see
// Sources) in an order fixed by the wiring alone, each with its op, its
// attributes in a canonical form, and for each input where it comes from:
// a graph input by position, a node by position and output index, or a
// weight by element type (as read) and dims. Two skeletons are compared
// position by position, and the positions give the correspondence of
// nodes and values.

type refKind uint8

const (
	refAbsent refKind = iota // an optional input left out
	refInput                 // a graph input
	refNode                  // a node output
	refWeight                // a constant tensor
	refOuter                 // marks the start of a node's implicit (subgraph) inputs
)

// valueRef says where a node input (or graph output) comes from.
type valueRef struct {
	kind refKind
	// pos is the graph input's position (refInput) or the producer's
	// position in the skeleton (refNode); out the producer's output index.
	pos, out int
	// weight is the element type as read and the dims of a weight, and the
	// values of a small non-float one (shape constants).
	weight string
	name   string // the value's name in its graph, for messages
}

func (r valueRef) same(o valueRef) bool {
	return r.kind == o.kind && r.pos == o.pos && r.out == o.out && r.weight == o.weight
}

type skelNode struct {
	label string // for messages
	op    string // domain-qualified op type and canonical attributes
	ins   []valueRef
	ports []nodeInput // where each of ins is read in the graph ({-1, -1} for none)
	outs  []string
}

type skeleton struct {
	model   string // file name, for messages
	nodes   []skelNode
	inputs  []string // the graph's real inputs, in order
	outputs []valueRef
}

// computes reports whether node i computes something: it is neither a
// forwarder of a weight nor a Constant that holds one.
func (v *view) computes(i int) bool {
	n := v.nodes[i]
	return !v.forwarders[i] && !(isOp(n, "Constant") && v.isWeight(output(n, 0)))
}

func newSkeleton(v *view) *skeleton {
	s := &skeleton{model: v.m.Name}
	inputPos := map[string]int{}
	for _, in := range v.g.GetInput() {
		if v.inputs[in.GetName()] {
			inputPos[in.GetName()] = len(s.inputs)
			s.inputs = append(s.inputs, in.GetName())
		}
	}
	// A LayerNormalization spelled out in elementary ops counts as one
	// node, its final Add; the others are left out.
	lns := v.spelledLayerNorms()
	inLN := map[int]bool{}
	for last, ln := range lns {
		for _, i := range ln.nodes {
			inLN[i] = i != last
		}
	}
	computes := func(i int) bool { return v.computes(i) && !inLN[i] }
	deps := func(i int) []string {
		if ln := lns[i]; ln != nil {
			return []string{ln.x, input(v.nodes[ln.gamma.node], ln.gamma.input), input(v.nodes[ln.beta.node], ln.beta.input)}
		}
		return v.deps(i)
	}
	// Canonical order: depth-first post-order from the graph outputs in
	// their order, each node's inputs in their order; then nodes no output
	// depends on, in topological order.
	pos := map[int]int{}
	var order []int
	state := make([]uint8, len(v.nodes)) // 0 unseen, 1 on the stack, 2 placed
	visit := func(root int) {
		type frame struct {
			i, k int
			deps []string
		}
		state[root] = 1
		stack := []frame{{root, 0, deps(root)}}
		for len(stack) > 0 {
			f := &stack[len(stack)-1]
			if f.k < len(f.deps) {
				d := f.deps[f.k]
				f.k++
				if p, ok := v.producer[d]; ok && d != "" && !v.isWeight(d) && state[p] == 0 && computes(p) {
					state[p] = 1
					stack = append(stack, frame{p, 0, deps(p)})
				}
				continue
			}
			state[f.i] = 2
			pos[f.i] = len(order)
			order = append(order, f.i)
			stack = stack[:len(stack)-1]
		}
	}
	for _, o := range v.outputs {
		if p, ok := v.producer[o]; ok && !v.isWeight(o) && state[p] == 0 && computes(p) {
			visit(p)
		}
	}
	for _, i := range v.order {
		if state[i] == 0 && computes(i) {
			visit(i)
		}
	}
	ref := func(name string) valueRef {
		switch {
		case name == "":
			return valueRef{kind: refAbsent}
		case v.isWeight(name):
			return valueRef{kind: refWeight, weight: v.weightKey(name), name: name}
		}
		if p, ok := v.producer[name]; ok {
			return valueRef{kind: refNode, pos: pos[p], out: slices.Index(v.nodes[p].GetOutput(), name), name: name}
		}
		return valueRef{kind: refInput, pos: inputPos[name], name: name}
	}
	for _, i := range order {
		n := v.nodes[i]
		if ln := lns[i]; ln != nil {
			sn := skelNode{label: v.label(i), op: ln.key(), outs: n.GetOutput(),
				ports: []nodeInput{{ln.nodes[0], 0}, ln.gamma, ln.beta}}
			for _, d := range deps(i) {
				sn.ins = append(sn.ins, ref(d))
			}
			s.nodes = append(s.nodes, sn)
			continue
		}
		op, moved := v.opKey(n)
		sn := skelNode{label: v.label(i), op: op, outs: n.GetOutput()}
		for k, in := range n.GetInput() {
			if k != moved {
				sn.ins = append(sn.ins, ref(in))
				sn.ports = append(sn.ports, nodeInput{i, k})
			}
		}
		for len(sn.ins) > 0 && sn.ins[len(sn.ins)-1].kind == refAbsent {
			// trailing optional inputs left out
			sn.ins, sn.ports = sn.ins[:len(sn.ins)-1], sn.ports[:len(sn.ports)-1]
		}
		if len(v.implicit[i]) > 0 {
			sn.ins = append(sn.ins, valueRef{kind: refOuter})
			sn.ports = append(sn.ports, nodeInput{-1, -1})
			for _, in := range v.implicit[i] {
				sn.ins = append(sn.ins, ref(in))
				sn.ports = append(sn.ports, nodeInput{-1, -1})
			}
		}
		s.nodes = append(s.nodes, sn)
	}
	for _, o := range v.outputs {
		s.outputs = append(s.outputs, ref(o))
	}
	return s
}

// maxKeyValues bounds the non-float weights whose values a skeleton
// compares (shape constants are small).
const maxKeyValues = 1 << 12

// weightKey describes weight value name as its reader sees it.
func (v *view) weightKey(name string) string {
	t := v.sources.Tensor(name)
	key := fmt.Sprintf("%v%v", v.sources.ElemType(name), t.GetDims())
	if dt := onnx.DataType(t); !onnx.IsFloat(dt) {
		if n, err := onnx.NumElements(t.GetDims()); err == nil && n <= maxKeyValues {
			if raw, err := v.m.TensorBytes(t); err == nil {
				key += fmt.Sprintf(" %v=%x", dt, raw)
			}
		}
	}
	return key
}

// movedToInput lists the attributes that later opsets take as an input
// (index 1): the same node written for either opset compares equal.
var movedToInput = map[string]string{
	"Squeeze": "axes", "Unsqueeze": "axes", "Split": "split",
	"ReduceMean": "axes", "ReduceSum": "axes", "ReduceMax": "axes", "ReduceMin": "axes", "ReduceProd": "axes",
	"ReduceL1": "axes", "ReduceL2": "axes", "ReduceLogSum": "axes", "ReduceLogSumExp": "axes", "ReduceSumSquare": "axes",
}

// attrDefaults are the schema defaults of attributes that exporters write
// out or leave out depending on version, in attrKey's encoding.
var attrDefaults = map[string]map[string]string{
	"BatchNormalization":    {"epsilon": "f:1e-05", "training_mode": "i:0"},
	"InstanceNormalization": {"epsilon": "f:1e-05"},
	"LayerNormalization":    {"axis": "i:-1", "epsilon": "f:1e-05", "stash_type": "i:1"},
	"Gemm":                  {"alpha": "f:1", "beta": "f:1", "transA": "i:0", "transB": "i:0"},
	"Conv":                  {"group": "i:1", "auto_pad": `s:"NOTSET"`},
	"ConvTranspose":         {"group": "i:1", "auto_pad": `s:"NOTSET"`},
	"MaxPool":               {"auto_pad": `s:"NOTSET"`, "ceil_mode": "i:0", "storage_order": "i:0"},
	"AveragePool":           {"auto_pad": `s:"NOTSET"`, "ceil_mode": "i:0", "count_include_pad": "i:0"},
	"Flatten":               {"axis": "i:1"},
	"LeakyRelu":             {"alpha": "f:0.01"},
	"Elu":                   {"alpha": "f:1"},
	"Gelu":                  {"approximate": `s:"none"`},
	"Split":                 {"axis": "i:0"},
	"Gather":                {"axis": "i:0"},
	"Cast":                  {"saturate": "i:1"},
	"Pad":                   {"mode": `s:"constant"`},
	"Reshape":               {"allowzero": "i:0"},
}

// ignoredAttrs do not change what a node computes in inference.
var ignoredAttrs = map[string][]string{"BatchNormalization": {"momentum"}}

// opKey is n's op type and attributes in a canonical form: defaults filled
// in, all-default strides, dilations and pads dropped, an attribute a
// later opset takes as a constant input read from there (moved is that
// input's index, -1 if none).
func (v *view) opKey(n *onnxpb.NodeProto) (key string, moved int) {
	moved = -1
	attrs := map[string]string{}
	for _, a := range n.GetAttribute() {
		attrs[a.GetName()] = v.attrKey(a)
	}
	std := n.GetDomain() == "" || n.GetDomain() == "ai.onnx"
	op := n.GetOpType()
	if std {
		if name, ok := movedToInput[op]; ok {
			if _, has := attrs[name]; !has {
				if t := v.sources.Tensor(input(n, 1)); t != nil && isIntType(onnx.DataType(t)) {
					if vals, err := v.m.Int64s(t); err == nil {
						attrs[name], moved = fmt.Sprintf("ints:%v", vals), 1
					}
				}
			}
		}
		defaults := attrDefaults[op]
		if reduceOps[op] {
			defaults = map[string]string{"keepdims": "i:1", "noop_with_empty_axes": "i:0"}
		}
		if op == "Softmax" || op == "LogSoftmax" || op == "Hardmax" {
			defaults = map[string]string{"axis": "i:-1"}
			if v.opset < 13 {
				defaults["axis"] = "i:1"
			}
		}
		for name, def := range defaults {
			if _, has := attrs[name]; !has {
				attrs[name] = def
			}
		}
		for _, name := range ignoredAttrs[op] {
			delete(attrs, name)
		}
		switch op {
		case "Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool":
			for name, def := range map[string]int64{"strides": 1, "dilations": 1, "pads": 0} {
				if vals, ok := attrInts(n, name); ok && !slices.ContainsFunc(vals, func(x int64) bool { return x != def }) {
					delete(attrs, name)
				}
			}
		}
	}
	names := make([]string, 0, len(attrs))
	for name := range attrs {
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString(opName(n))
	for _, name := range names {
		fmt.Fprintf(&b, " %s=%s", name, attrs[name])
	}
	return b.String(), moved
}

// attrKey encodes an attribute's value.
func (v *view) attrKey(a *onnxpb.AttributeProto) string {
	switch a.GetType() {
	case onnxpb.AttributeProto_FLOAT:
		return fmt.Sprintf("f:%v", a.GetF())
	case onnxpb.AttributeProto_INT:
		return fmt.Sprintf("i:%d", a.GetI())
	case onnxpb.AttributeProto_STRING:
		return fmt.Sprintf("s:%q", a.GetS())
	case onnxpb.AttributeProto_INTS:
		return fmt.Sprintf("ints:%v", a.GetInts())
	case onnxpb.AttributeProto_FLOATS:
		return fmt.Sprintf("floats:%v", a.GetFloats())
	case onnxpb.AttributeProto_STRINGS:
		return fmt.Sprintf("strings:%q", a.GetStrings())
	case onnxpb.AttributeProto_TENSOR:
		if a.GetT() == nil {
			break
		}
		if raw, err := v.m.TensorBytes(a.GetT()); err == nil {
			return fmt.Sprintf("t:%v%v=%x", onnx.DataType(a.GetT()), a.GetT().GetDims(), raw)
		}
	}
	// Subgraphs and the rest: the encoded value, names included.
	c := proto.Clone(a).(*onnxpb.AttributeProto)
	c.Name, c.DocString = nil, nil
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(c)
	return fmt.Sprintf("p:%x", b)
}

// describe says where r comes from, in the graph of s.
func (s *skeleton) describe(r valueRef) string {
	switch r.kind {
	case refAbsent:
		return "nothing"
	case refInput:
		return fmt.Sprintf("graph input %q", r.name)
	case refNode:
		return fmt.Sprintf("output %d of %s", r.out, s.nodes[r.pos].label)
	case refWeight:
		return fmt.Sprintf("weight %q %s", r.name, r.weight)
	}
	return "values of the enclosing graph"
}

// Correspondence pairs the node inputs and values of two models that
// compute the same thing (see Correspond).
type Correspondence struct {
	input map[nodeInput]nodeInput
	value map[string]string
}

// Input returns the node input of the second model that reads what input
// k of node i of the first reads; ok is false for inputs that have no
// counterpart (forwarders, attributes another opset takes as inputs, the
// constants inside a LayerNormalization spelled out in elementary ops).
func (c *Correspondence) Input(i, k int) (j, l int, ok bool) {
	p, ok := c.input[nodeInput{i, k}]
	return p.node, p.input, ok
}

// Value returns the name of the second model's value that holds what the
// first model's value name holds (graph inputs and node outputs that are
// not weights).
func (c *Correspondence) Value(name string) (string, bool) {
	n, ok := c.value[name]
	return n, ok
}

// Correspond compares the computations of a and b and pairs their node
// inputs and values, or says where they differ. Names, the order of nodes in the
// file, how weights are stored (initializers or Constant nodes, aliased
// through Identity, in fp16/bf16 behind a Cast) and how an opset writes an
// attribute do not matter; op types, attributes, wiring, the element type
// and dims of each weight as read (and the values of integer ones) do.
func Correspond(a, b *onnx.Model) (*Correspondence, error) {
	va, err := newView(a)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", a.Name, ErrMalformed, err)
	}
	vb, err := newView(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", b.Name, ErrMalformed, err)
	}
	return newSkeleton(va).match(newSkeleton(vb))
}

func (s *skeleton) match(o *skeleton) (*Correspondence, error) {
	if len(s.inputs) != len(o.inputs) {
		return nil, fmt.Errorf("%s has %d inputs, %s has %d", s.model, len(s.inputs), o.model, len(o.inputs))
	}
	if len(s.outputs) != len(o.outputs) {
		return nil, fmt.Errorf("%s has %d outputs, %s has %d", s.model, len(s.outputs), o.model, len(o.outputs))
	}
	c := &Correspondence{input: map[nodeInput]nodeInput{}, value: map[string]string{}}
	for k, in := range s.inputs {
		c.value[in] = o.inputs[k]
	}
	for p := range min(len(s.nodes), len(o.nodes)) {
		x, y := &s.nodes[p], &o.nodes[p]
		if x.op != y.op {
			return nil, fmt.Errorf("%s in %s is %s, but %s in %s is %s", x.label, s.model, x.op, y.label, o.model, y.op)
		}
		if len(x.ins) != len(y.ins) || len(x.outs) != len(y.outs) {
			return nil, fmt.Errorf("%s in %s has %d inputs and %d outputs, %s in %s has %d and %d",
				x.label, s.model, len(x.ins), len(x.outs), y.label, o.model, len(y.ins), len(y.outs))
		}
		for k := range x.ins {
			if !x.ins[k].same(y.ins[k]) {
				return nil, fmt.Errorf("%s in %s reads %s at input %d, but %s in %s reads %s",
					x.label, s.model, s.describe(x.ins[k]), k, y.label, o.model, o.describe(y.ins[k]))
			}
			if x.ports[k].node >= 0 {
				c.input[x.ports[k]] = y.ports[k]
			}
		}
		for k := range x.outs {
			if (x.outs[k] == "") != (y.outs[k] == "") {
				return nil, fmt.Errorf("%s in %s and %s in %s differ in which outputs they compute", x.label, s.model, y.label, o.model)
			}
			if x.outs[k] != "" {
				c.value[x.outs[k]] = y.outs[k]
			}
		}
	}
	if len(s.nodes) != len(o.nodes) {
		return nil, fmt.Errorf("%s has %d computing nodes, %s has %d (weight holders and forwarders not counted)", s.model, len(s.nodes), o.model, len(o.nodes))
	}
	for k := range s.outputs {
		if !s.outputs[k].same(o.outputs[k]) {
			return nil, fmt.Errorf("graph output %d is %s in %s but %s in %s", k, s.describe(s.outputs[k]), s.model, o.describe(o.outputs[k]), o.model)
		}
	}
	return c, nil
}

// For returns the analysis re-expressed for m, a model that computes what
// the analysed model computes in another form (see Correspond): the same
// groups in the same order, whose weight sites name m's nodes, inputs and
// tensors and whose activation sites name m's values (activation sites
// without a counterpart in m are left out). It is how one
// analysis serves every model of an architecture.
func (a *Analysis) For(m *onnx.Model) (*Analysis, error) {
	if a.skel == nil {
		return nil, errors.New("the analysis has no graph to compare with (not made by Analyze)")
	}
	v, err := newView(m)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", m.Name, ErrMalformed, err)
	}
	s := newSkeleton(v)
	c, err := a.skel.match(s)
	if err != nil {
		return nil, err
	}
	out := &Analysis{Frozen: a.Frozen, PermutableUnits: a.PermutableUnits, HiddenUnits: a.HiddenUnits,
		BlockSets: a.BlockSets, shapes: map[string][]int64{}, skel: s}
	for name, d := range a.shapes {
		if nb, ok := c.value[name]; ok {
			out.shapes[nb] = d
		}
	}
	for _, g := range a.Groups {
		ng := g
		ng.Weights = make([]WeightSite, len(g.Weights))
		for k, w := range g.Weights {
			ni, ii, ok := c.Input(w.Node, w.Input)
			if !ok {
				return nil, fmt.Errorf("%s: no node input corresponds to weight %q of group %d", m.Name, w.Value, g.ID)
			}
			w.Node, w.Input, w.Value = ni, ii, v.nodes[ni].GetInput()[ii]
			if w.Tensor = v.source[w.Value]; w.Tensor == "" {
				return nil, fmt.Errorf("%s: input %d of %s reads no weight", m.Name, w.Input, v.label(ni))
			}
			ng.Weights[k] = w
		}
		// Values inside a LayerNormalization spelled out in elementary
		// ops have no counterpart in a LayerNormalization node.
		ng.Activations = nil
		for _, s := range g.Activations {
			var ok bool
			if s.Value, ok = c.value[s.Value]; ok {
				ng.Activations = append(ng.Activations, s)
			}
		}
		out.Groups = append(out.Groups, ng)
	}
	return out, nil
}

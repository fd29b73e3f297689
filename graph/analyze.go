// Package graph reads an ONNX graph and infers permutation groups: the sets
// of channel dimensions (hidden units) that can be reordered together, with
// the weights next to them, without changing the function the model
// computes.
//
// The analysis works from the graph alone. It builds a view of the graph
// (producers, consumers, weights, a topological order), infers shapes,
// and then applies one rule per operator to join channel axes in a
// union-find: Gemm and MatMul tie a weight's input axis to the features
// they read and its output axis to the units they produce, element-wise
// ops tie their operands' axes, normalisations tie their per-channel
// parameters, Flatten and Concat describe how channels are laid out in the
// wider axis they make. Whatever no rule proves safe is frozen: every axis
// of an operator the rules do not know, graph inputs and outputs, and every
// class joined to a frozen axis. Correctness comes before completeness.
package graph

import (
	"errors"
	"fmt"
	"sort"

	"google.golang.org/protobuf/proto"

	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

// Analysis is the result of Analyze.
type Analysis struct {
	// Groups are the permutable classes, ordered by the first node (in
	// topological order) that touches them; Group.ID is the index.
	Groups []Group
	// Frozen lists one entry per class of channels that holds weights but
	// must not be permuted, with the first reason found: classes that reach
	// a graph input or output, and hidden classes a rule froze.
	Frozen []FrozenAxis
	// PermutableUnits is the sum of the group sizes and of the units that
	// move as their copies (Group.Repeated).
	PermutableUnits int
	// HiddenUnits counts the hidden units of the model: PermutableUnits plus
	// the sizes of frozen classes that are the output units of a layer
	// (the output axis of a Gemm, MatMul, Conv or ConvTranspose weight) and
	// touch no graph input or output. PermutableUnits / HiddenUnits is how
	// much of the network the analysis can permute.
	HiddenUnits int
	// BlockSets lists the groups whose block permutations are one (the
	// Q·K and V·O groups of one attention), by group ID. Every group with
	// Blocks > 1 is in exactly one set.
	BlockSets [][]int `json:"block_sets,omitempty"`

	shapes map[string][]int64
	// skel is the analysed graph's computation, to re-express the
	// analysis for other forms of it (see For).
	skel *skeleton
}

// Shape returns the inferred shape of a value: static dims, -1 for dims
// that are not known statically (the batch, usually), and ok false when
// even the rank is unknown.
func (a *Analysis) Shape(value string) (dims []int64, ok bool) {
	d, ok := a.shapes[value]
	if !ok {
		return nil, false
	}
	out := make([]int64, len(d))
	for k, e := range d {
		out[k] = max(e, dimUnknown)
	}
	return out, true
}

// Summary is a one-line overview, e.g.
// "groups: 7 (1664 permutable units / 1674 hidden units), frozen: 2 axes".
func (a *Analysis) Summary() string {
	axes := "axes"
	if len(a.Frozen) == 1 {
		axes = "axis"
	}
	return fmt.Sprintf("groups: %d (%d permutable units / %d hidden units), frozen: %d %s",
		len(a.Groups), a.PermutableUnits, a.HiddenUnits, len(a.Frozen), axes)
}

// ErrMalformed is wrapped by errors for graphs that are not valid
// dataflow graphs (cycles, undefined values, duplicate definitions).
var ErrMalformed = errors.New("malformed graph")

// Analyze infers the permutation groups of m's main graph. It never
// changes m. An error means the graph is malformed or its shapes
// contradict each other; anything the rules merely do not understand is
// frozen instead.
func Analyze(m *onnx.Model) (*Analysis, error) {
	v, err := newView(m)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	s, err := inferShapes(v)
	if err != nil {
		return nil, err
	}
	a := &analyzer{
		v:   v,
		s:   s,
		act: map[axisKey]layout{},
		wts: map[useKey]layout{},
		pos: map[int]int{},

		repeatUsed: map[int]bool{},
	}
	for p, i := range v.order {
		a.pos[i] = p
	}
	repeats := findRepeats(v, s)
	skip := map[int]bool{}
	for _, op := range repeats {
		for _, i := range op.inner {
			skip[i] = true
		}
	}
	// Graph inputs are fixed: the caller feeds them in their order.
	for _, in := range v.g.GetInput() {
		name := in.GetName()
		if !v.inputs[name] {
			continue
		}
		d, _ := s.shape(name)
		for k, e := range d {
			el := a.u.add(channels(e), nil, -1)
			a.u.freeze(el, name, k, fmt.Sprintf("graph input %q", name), true)
			a.act[axisKey{name, k}] = layout{{el, channels(e), 1, 0}}
		}
	}
	for _, i := range v.order {
		n := v.nodes[i]
		if v.forwarders[i] || (isOp(n, "Constant") && v.isWeight(output(n, 0))) || skip[i] {
			continue // weights, not computations; or inside a repeat
		}
		c := &nodeCtx{a: a, ni: i, pos: a.pos[i], n: n, label: v.label(i), handled: map[port]bool{}}
		if op, ok := repeats[i]; ok {
			// The whole repeat subgraph as one node: src in, the
			// repeated value out.
			c.n = &onnxpb.NodeProto{OpType: proto.String("Repeat"), Input: []string{op.src}, Output: []string{output(n, 0)}}
			c.repeatAxis(op)
		} else {
			c.run()
		}
		c.finish()
		if a.err != nil {
			return nil, a.err
		}
	}
	// Graph outputs are fixed: the caller reads them in their order.
	for _, name := range v.outputs {
		if v.isWeight(name) {
			continue
		}
		d, _ := s.shape(name)
		for k := range d {
			if l, ok := a.act[axisKey{name, k}]; ok {
				for _, p := range l {
					a.u.freeze(p.elem, name, k, fmt.Sprintf("graph output %q", name), true)
				}
			}
		}
	}
	a.resolveParts()
	a.resolveHeads()
	a.syncExpansions()
	a.resolveBlocks()
	a.resolveRepeats()
	if a.err != nil {
		return nil, a.err
	}
	res := a.result()
	res.skel = newSkeleton(v)
	return res, nil
}

// result turns the classes into groups and frozen entries.
func (a *analyzer) result() *Analysis {
	type class struct {
		root   int
		weight []WeightSite
		acts   []ActivationSite
	}
	classes := map[int]*class{}
	get := func(e int) *class {
		r := a.u.find(e)
		c, ok := classes[r]
		if !ok {
			c = &class{root: r}
			classes[r] = c
		}
		return c
	}
	// Expanded classes (query sides of grouped-query attention) join
	// the class they move with, each unit repeated.
	type into struct {
		root  int
		times int
	}
	expanded := map[int]into{}
	repeated := map[int]int{} // class root -> units of classes expanded into it
	for _, x := range a.expansions {
		f, t := a.u.find(x.flat), a.u.find(x.into)
		if _, done := expanded[f]; done || a.u.els[t].frozen || f == t {
			continue
		}
		expanded[f] = into{t, int(x.times)}
		if sz := a.u.els[f].size; isStatic(sz) && a.u.els[f].units {
			repeated[t] += int(sz)
		}
	}
	for e := range a.u.els {
		if s := a.u.els[e].site; s != nil {
			site := *s
			if x, ok := expanded[a.u.find(e)]; ok {
				site.Repeat = x.times
				e = x.root
			}
			c := get(e)
			c.weight = append(c.weight, site)
		}
	}
	// Activation sites in topological order of their producers.
	order := map[string]int{}
	for _, in := range a.v.g.GetInput() {
		order[in.GetName()] = -1
	}
	for p, i := range a.v.order {
		for _, o := range a.v.nodes[i].GetOutput() {
			order[o] = p
		}
	}
	keys := make([]axisKey, 0, len(a.act))
	for k := range a.act {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		ki, kj := keys[i], keys[j]
		if order[ki.value] != order[kj.value] {
			return order[ki.value] < order[kj.value]
		}
		if ki.value != kj.value {
			return ki.value < kj.value
		}
		return ki.axis < kj.axis
	})
	for _, k := range keys {
		if !a.v.inputs[k.value] {
			if _, produced := a.v.producer[k.value]; !produced {
				continue
			}
		}
		for _, p := range a.act[k] {
			r, rep := a.u.find(p.elem), 0
			if x, ok := expanded[r]; ok {
				r, rep = x.root, x.times
			}
			if c, ok := classes[r]; ok {
				c.acts = append(c.acts, ActivationSite{Value: k.value, Axis: k.axis, Block: int(p.block), Offset: int(p.offset), Repeat: rep})
			}
		}
	}

	var list []*class
	for _, c := range classes {
		list = append(list, c)
	}
	sort.Slice(list, func(i, j int) bool {
		ri, rj := a.u.els[list[i].root], a.u.els[list[j].root]
		if ri.firstNode != rj.firstNode {
			return ri.firstNode < rj.firstNode
		}
		return list[i].root < list[j].root
	})

	res := &Analysis{shapes: a.s.dims}
	var rootOf []int // group ID -> class root
	for _, c := range list {
		r := &a.u.els[c.root]
		size := r.size
		if isStatic(size) && size <= 1 {
			continue // nothing to permute
		}
		if !r.frozen && !isStatic(size) {
			r.frozen, r.why = true, "the number of channels is not known"
			r.whyValue, r.whyAxis = c.weight[0].Tensor, c.weight[0].Axis
		}
		if r.frozen {
			f := FrozenAxis{Value: r.whyValue, Axis: r.whyAxis, Size: int(max(size, 0)), Reason: r.why}
			if f.Value == "" { // frozen where no single port was to blame
				f.Value, f.Axis = c.weight[0].Tensor, c.weight[0].Axis
				if len(c.acts) > 0 {
					f.Value, f.Axis = c.acts[0].Value, c.acts[0].Axis
				}
			}
			res.Frozen = append(res.Frozen, f)
			if r.units && !r.io && isStatic(size) {
				res.HiddenUnits += int(size)
			}
			continue
		}
		if ws := a.withinSites[c.root]; len(ws) > 0 {
			c.weight = append(c.weight, ws...)
		}
		sort.Slice(c.weight, func(i, j int) bool {
			wi, wj := c.weight[i], c.weight[j]
			if wi.Node != wj.Node {
				return a.pos[wi.Node] < a.pos[wj.Node]
			}
			if wi.Input != wj.Input {
				return wi.Input < wj.Input
			}
			if wi.Axis != wj.Axis {
				return wi.Axis < wj.Axis
			}
			return wi.Offset < wj.Offset
		})
		g := Group{ID: len(res.Groups), Size: int(size), Weights: c.weight, Activations: c.acts, Reasons: dedupe(r.reasons)}
		if h, ok := a.blocks[c.root]; ok {
			g.Blocks, g.FixedWithin = int(h), a.fixedWithin[c.root]
			g.SharedWithin = len(a.withinSites[c.root]) > 0
		}
		g.Repeated = repeated[c.root]
		g.Layers = r.layers
		res.Groups = append(res.Groups, g)
		rootOf = append(rootOf, c.root)
		res.PermutableUnits += g.Size + g.Repeated
		res.HiddenUnits += g.Size + g.Repeated
	}
	a.blockSets(res, rootOf)
	return res
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

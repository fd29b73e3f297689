package graph

import (
	"fmt"
	"slices"

	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

// The rules. Each node sees its input and output axes as ports. A rule ties
// ports whose channels must move together (tie), declares ports the node is
// invariant to (free: a reduction over the axis, a broadcast size-1 axis),
// or freezes ports it cannot permute. Every activation port a rule leaves
// alone is frozen afterwards: an operator is only trusted along the axes a
// rule proves it equivariant on. Weight ports a rule leaves alone are simply
// not permuted by that use.
//
// An axis is described by a layout: the parts it is made of, each a class
// of n channels at some Offset, channel c occupying Block consecutive
// indices. A plain axis is one part with block 1; Flatten scales a part's
// block by the size of the axes merged behind it; Concat lays the parts of
// its inputs end to end.

type part struct {
	elem          int
	n             int64 // channels of the class, dimUnknown if not known
	block, offset int64
}

type layout []part

// total returns how many indices the layout spans, if known.
func (l layout) total() (int64, bool) {
	var t int64
	for _, p := range l {
		if !isStatic(p.n) {
			return 0, false
		}
		t += p.n * p.block
	}
	return t, true
}

// scaled is the layout of an axis merged with inner axes of f indices.
func (l layout) scaled(f int64) layout {
	out := make(layout, len(l))
	for i, p := range l {
		out[i] = part{p.elem, p.n, p.block * f, p.offset * f}
	}
	return out
}

type axisKey struct {
	value string
	axis  int
}

type useKey struct{ node, input, axis int }

// analyzer holds the state of one analysis.
type analyzer struct {
	v   *view
	s   *shapes
	u   unionFind
	act map[axisKey]layout // activation axes (node outputs and graph inputs)
	wts map[useKey]layout  // axes of weight uses
	pos map[int]int        // node index -> position in topological order
	err error

	heads       []headRec            // attention head splits and merges (heads.go)
	parts       []axisPart           // Slice and Split outputs that are parts of an axis
	cut         map[int]bool         // class roots resolveParts split into parts
	ties        []blockTie           // classes that share a block permutation
	blocks      map[int]int64        // class root -> number of blocks (heads)
	fixedWithin map[int]bool         // class root -> units keep their place in their block
	withinSites map[int][]WeightSite // class root -> sites of one block's units (grouped conv weights)
	blockSet    map[int]int          // class root -> root that names its block set
	repeats     []repeatRec          // repeated heads (repeat.go)
	expansions  []expansion          // query-side flat classes that move with K/V classes (repeat.go)
	repeatUsed  map[int]bool         // repeated heads roots resolveHeads gave a meaning
}

// port is one axis of one input or output of the node under analysis.
type port struct {
	out  bool
	idx  int
	axis int
}

func in(i, axis int) port  { return port{false, i, axis} }
func out(i, axis int) port { return port{true, i, axis} }

// nodeCtx applies the rules to one node.
type nodeCtx struct {
	a       *analyzer
	ni, pos int
	n       *onnxpb.NodeProto
	label   string
	why     string // reason for freezing the ports no rule handled
	handled map[port]bool
}

func (c *nodeCtx) name(p port) string {
	if p.out {
		return output(c.n, p.idx)
	}
	return input(c.n, p.idx)
}

// rankOf returns the rank of input or output i, if known.
func (c *nodeCtx) rankOf(isOut bool, i int) (int, bool) {
	name := c.name(port{isOut, i, 0})
	if name == "" {
		return 0, false
	}
	d, ok := c.a.s.shape(name)
	return len(d), ok
}

func (c *nodeCtx) inRank(i int) (int, bool)  { return c.rankOf(false, i) }
func (c *nodeCtx) outRank(i int) (int, bool) { return c.rankOf(true, i) }

// valid reports whether p names an existing axis of a value of known rank.
func (c *nodeCtx) valid(p port) bool {
	r, ok := c.rankOf(p.out, p.idx)
	return ok && p.axis >= 0 && p.axis < r
}

// dim returns the size of port p (dimUnknown when p is not valid).
func (c *nodeCtx) dim(p port) int64 {
	if !c.valid(p) {
		return dimUnknown
	}
	d, _ := c.a.s.shape(c.name(p))
	return d[p.axis]
}

func (c *nodeCtx) isWeight(p port) bool { return !p.out && c.a.v.isWeight(c.name(p)) }

func (c *nodeCtx) fail(err error) {
	if c.a.err == nil {
		c.a.err = fmt.Errorf("%s: %w", c.a.v.nodeName(c.ni), err)
	}
}

func (c *nodeCtx) union(a, b int, why string) {
	if err := c.a.u.union(a, b, why); err != nil {
		c.fail(err)
	}
}

func channels(d int64) int64 {
	if isStatic(d) {
		return d
	}
	return dimUnknown
}

// layoutOf returns the layout of p. With create, an output or weight axis
// that has none yet gets a fresh class of its own.
func (c *nodeCtx) layoutOf(p port, create bool) (layout, bool) {
	name := c.name(p)
	switch {
	case c.isWeight(p):
		k := useKey{c.ni, p.idx, p.axis}
		if l, ok := c.a.wts[k]; ok {
			return l, true
		}
		if !create {
			return nil, false
		}
		d := channels(c.dim(p))
		site := &WeightSite{Node: c.ni, Input: p.idx, Value: name, Tensor: c.a.v.source[name], Axis: p.axis, Block: 1,
			Statistic: statisticInput(c.n, p.idx)}
		l := layout{{c.a.u.add(d, site, c.pos), d, 1, 0}}
		c.a.wts[k] = l
		return l, true
	default:
		k := axisKey{name, p.axis}
		if l, ok := c.a.act[k]; ok {
			return l, true
		}
		if !p.out {
			// Every produced axis gets a layout when its producer is
			// analysed; one without is from a producer no rule covered.
			d := channels(c.dim(p))
			e := c.a.u.add(d, nil, c.pos)
			c.a.u.freeze(e, name, p.axis, fmt.Sprintf("%q has no known producer shape", name), false)
			l := layout{{e, d, 1, 0}}
			c.a.act[k] = l
			return l, true
		}
		if !create {
			return nil, false
		}
		d := channels(c.dim(p))
		l := layout{{c.a.u.add(d, nil, c.pos), d, 1, 0}}
		c.a.act[k] = l
		return l, true
	}
}

// tie makes p and q one set of channels.
func (c *nodeCtx) tie(p, q port, what string) {
	c.handled[p], c.handled[q] = true, true
	pv, qv := c.valid(p), c.valid(q)
	if !pv || !qv {
		why := c.label + ": the other side of this axis has an unknown shape"
		if pv {
			c.freeze(p, why)
		}
		if qv {
			c.freeze(q, why)
		}
		return
	}
	why := ""
	if what != "" {
		why = c.label + " " + what
	}
	lp, okp := c.layoutOf(p, false)
	lq, okq := c.layoutOf(q, false)
	switch {
	case okp && okq:
		c.join(lp, lq, why)
	case okq:
		c.adopt(p, lq, why)
	case okp:
		c.adopt(q, lp, why)
	case p.out:
		lp, _ = c.layoutOf(p, true)
		c.adopt(q, lp, why)
	default:
		lq, _ = c.layoutOf(q, true)
		c.adopt(p, lq, why)
	}
}

// adopt gives p, an output or weight axis without a layout, the layout l.
// An output shares l's classes; a weight gets one site per part of l.
func (c *nodeCtx) adopt(p port, l layout, why string) {
	d := c.dim(p)
	if t, ok := l.total(); ok && isStatic(d) && t != d {
		c.fail(fmt.Errorf("%w: axis %d of %q has %d entries, but is tied to %d channels", ErrShape, p.axis, c.name(p), d, t))
		return
	}
	if p.out {
		c.a.act[axisKey{c.name(p), p.axis}] = l
		return
	}
	if !c.isWeight(p) {
		lp, _ := c.layoutOf(p, true) // a frozen stand-in
		c.join(lp, l, why)
		return
	}
	name := c.name(p)
	nl := make(layout, len(l))
	for i, pt := range l {
		n := pt.n
		if !isStatic(n) && len(l) == 1 && isStatic(d) && pt.block > 0 && d%pt.block == 0 {
			n = d / pt.block
		}
		site := &WeightSite{Node: c.ni, Input: p.idx, Value: name, Tensor: c.a.v.source[name], Axis: p.axis,
			Block: int(pt.block), Offset: int(pt.offset), Statistic: statisticInput(c.n, p.idx)}
		e := c.a.u.add(n, site, c.pos)
		nl[i] = part{e, n, pt.block, pt.offset}
		c.union(e, pt.elem, why)
	}
	c.a.wts[useKey{c.ni, p.idx, p.axis}] = nl
}

// join unites two layouts part by part; layouts of different structure
// cannot be permuted consistently and are frozen.
func (c *nodeCtx) join(l, m layout, why string) {
	same := len(l) == len(m)
	for i := 0; same && i < len(l); i++ {
		same = l[i].block == m[i].block && l[i].offset == m[i].offset
	}
	if !same {
		for _, p := range append(append(layout{}, l...), m...) {
			c.a.u.freeze(p.elem, "", 0, c.label+" joins axes of different channel structure", false)
		}
		return
	}
	for i := range l {
		c.union(l[i].elem, m[i].elem, why)
	}
}

// setOut gives output port p the layout l (or ties it to l).
func (c *nodeCtx) setOut(p port, l layout, why string) {
	c.handled[p] = true
	if !c.valid(p) {
		for _, pt := range l {
			c.a.u.freeze(pt.elem, "", 0, c.label+": output shape unknown", false)
		}
		return
	}
	if lp, ok := c.layoutOf(p, false); ok {
		c.join(lp, l, why)
		return
	}
	c.adopt(p, l, why)
}

// freeze marks p as not permutable.
func (c *nodeCtx) freeze(p port, why string) {
	c.handled[p] = true
	if !c.valid(p) {
		return
	}
	if c.isWeight(p) {
		if l, ok := c.layoutOf(p, false); ok {
			for _, pt := range l {
				c.a.u.freeze(pt.elem, c.name(p), p.axis, why, false)
			}
		}
		return
	}
	l, _ := c.layoutOf(p, true)
	for _, pt := range l {
		c.a.u.freeze(pt.elem, c.name(p), p.axis, why, false)
	}
}

// free declares that the node's result does not change when p is permuted
// (p is reduced over, or has size 1). A free output axis gets its own class.
func (c *nodeCtx) free(p port) {
	c.handled[p] = true
	if p.out && c.valid(p) {
		c.layoutOf(p, true)
	}
}

// markUnits records that p holds the output units of a layer.
func (c *nodeCtx) markUnits(p port) {
	c.markLayer(p, true)
}

// markLayer counts the node as a layer that computes p's channels with
// weights of its own (Group.Layers), once per class; units says that p
// holds its output units (not so for a depthwise convolution, whose
// channels are its input's).
func (c *nodeCtx) markLayer(p port, units bool) {
	l, ok := c.layoutOf(p, false)
	if !ok {
		return
	}
	counted := map[int]bool{}
	for _, pt := range l {
		r := c.a.u.find(pt.elem)
		c.a.u.els[r].units = c.a.u.els[r].units || units
		if !counted[r] {
			counted[r] = true
			c.a.u.els[r].layers++
		}
	}
}

// weightDerived reports whether value name is a weight, possibly
// transposed, cast or reshaped (a Linear layer exported as MatMul).
func (c *nodeCtx) weightDerived(name string) bool {
	for range 8 {
		if c.a.v.isWeight(name) {
			return true
		}
		pi, ok := c.a.v.producer[name]
		if !ok {
			return false
		}
		n := c.a.v.nodes[pi]
		switch {
		case isOp(n, "Transpose"), isOp(n, "Cast"), isOp(n, "Identity"), isOp(n, "Reshape"),
			isOp(n, "Unsqueeze"), isOp(n, "Squeeze"), isOp(n, "Flatten"):
			name = input(n, 0)
		default:
			return false
		}
	}
	return false
}

// finish freezes every port of the node that no rule handled.
func (c *nodeCtx) finish() {
	why := c.why
	if why == "" {
		why = c.label + " cannot permute this axis"
	}
	for i, name := range c.n.GetInput() {
		if name == "" || c.a.v.isWeight(name) {
			continue
		}
		r, ok := c.inRank(i)
		if !ok {
			continue
		}
		for k := range r {
			if !c.handled[in(i, k)] {
				c.freeze(in(i, k), why)
			}
		}
	}
	for _, name := range c.a.v.implicit[c.ni] {
		if c.a.v.isWeight(name) {
			continue
		}
		d, _ := c.a.s.shape(name)
		for k := range d {
			if l, ok := c.a.act[axisKey{name, k}]; ok {
				for _, pt := range l {
					c.a.u.freeze(pt.elem, name, k, c.label+" reads it in a subgraph", false)
				}
			}
		}
	}
	for j := range c.n.GetOutput() {
		r, ok := c.outRank(j)
		if !ok {
			continue
		}
		for k := range r {
			if !c.handled[out(j, k)] {
				c.freeze(out(j, k), why)
			}
		}
	}
}

// Ops that apply a function to each element on its own; all operands
// broadcast (numpy rules) and every axis passes through.
var elementwiseOps = map[string]bool{
	"Relu": true, "Sigmoid": true, "Tanh": true, "Erf": true, "LeakyRelu": true, "Elu": true, "Selu": true,
	"Celu": true, "HardSigmoid": true, "HardSwish": true, "Softplus": true, "Softsign": true, "Gelu": true,
	"Sqrt": true, "Exp": true, "Log": true, "Neg": true, "Abs": true, "Reciprocal": true, "Floor": true,
	"Ceil": true, "Round": true, "Sign": true, "Mish": true, "ThresholdedRelu": true, "Not": true,
	"IsNaN": true, "IsInf": true, "Identity": true, "Cast": true, "Dropout": true, "Clip": true,
	"Sin": true, "Cos": true, "Tan": true, "Asin": true, "Acos": true, "Atan": true, "Sinh": true,
	"Cosh": true, "Asinh": true, "Acosh": true, "Atanh": true, "Shrink": true, "BitwiseNot": true,
	// Normalisations over a set of elements are equivariant under any
	// permutation of any axis: the statistics are symmetric functions.
	"LpNormalization": true, "MeanVarianceNormalization": true,
}

// run applies the rule for the node's op.
func (c *nodeCtx) run() {
	n := c.n
	if d := n.GetDomain(); d != "" && d != "ai.onnx" {
		c.why = fmt.Sprintf("unknown op %q at %s", opName(n), c.a.v.nodeName(c.ni))
		return
	}
	op := n.GetOpType()
	switch {
	case elementwiseOps[op] || broadcastShape[op]:
		c.elementwise(op)
		return
	case reduceOps[op]:
		c.reduce()
		return
	}
	switch op {
	case "CastLike":
		c.passAll(0, 0, "")
		if r, ok := c.inRank(1); ok {
			for k := range r {
				c.free(in(1, k)) // only its type is read
			}
		}
	case "Gemm":
		c.gemm()
	case "MatMul":
		c.matmul()
	case "Conv":
		c.conv(false)
	case "ConvTranspose":
		c.conv(true)
	case "BatchNormalization":
		c.batchNorm()
	case "InstanceNormalization":
		c.instanceNorm()
	case "LayerNormalization":
		c.layerNorm()
	case "GroupNormalization":
		c.groupNorm()
	case "MaxPool", "AveragePool", "LpPool":
		c.pool()
	case "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool":
		c.globalPool()
	case "Softmax", "LogSoftmax":
		c.softmax()
	case "LRN":
		if r, ok := c.outRank(0); ok {
			for k := range r {
				if k != 1 {
					c.tie(out(0, k), in(0, k), "")
				}
			}
		}
		c.freeze(in(0, 1), c.label+" mixes neighbouring channels")
		c.freeze(out(0, 1), c.label+" mixes neighbouring channels")
	case "Flatten":
		c.flatten()
	case "Reshape":
		c.reshape()
	case "Transpose":
		c.transpose()
	case "Concat":
		c.concat()
	case "Split":
		c.split()
	case "Slice":
		c.slice()
	case "Unsqueeze", "Squeeze":
		c.squeeze(op == "Unsqueeze")
	case "Gather":
		c.gather()
	case "Shape", "Size":
		// Shapes do not change when a tensor is permuted.
		if r, ok := c.inRank(0); ok {
			for k := range r {
				c.free(in(0, k))
			}
		}
	case "Expand":
		c.expand()
	case "Tile":
		c.tile()
	case "Pad":
		c.pad()
	case "Resize":
		c.resize()
	case "ConstantOfShape":
		// Every element holds the same value: any permutation of any
		// axis leaves it unchanged.
		if r, ok := c.outRank(0); ok {
			for k := range r {
				c.free(out(0, k))
			}
		}
	default:
		c.why = fmt.Sprintf("unsupported op %q at %s", op, c.a.v.nodeName(c.ni))
	}
}

// passAll ties every axis of output j to the same axis of input i.
func (c *nodeCtx) passAll(j, i int, what string) {
	r, ok := c.outRank(j)
	if !ok {
		return
	}
	for k := range r {
		c.tie(out(j, k), in(i, k), what)
	}
}

// bcast ties output axes outs to the input axes ins that broadcast into
// them: inputs of the output's size join, size-1 inputs are free (their
// single value is broadcast), and sizes that are unknown freeze the axis.
func (c *nodeCtx) bcast(outs []port, ins []port) {
	if len(outs) == 0 {
		return
	}
	d := c.dim(outs[0])
	var acts, wts []port
	bad := false
	for _, p := range ins {
		e := c.dim(p)
		switch {
		case e == 1 && d != 1:
			c.free(p)
		case sameDim(e, d) || !isStatic(e) && !isStatic(d) && c.headsAxis(p):
			// A heads axis holds whole multiples of its heads, so it is
			// never a broadcast size 1: its size is the output's.
			if c.isWeight(p) {
				wts = append(wts, p)
			} else {
				acts = append(acts, p)
			}
		default:
			bad = true
		}
	}
	if bad || len(acts)+len(wts) == 0 {
		why := c.label + " broadcasts this axis with an unknown size"
		for _, p := range append(append([]port{}, outs...), ins...) {
			if !c.handled[p] {
				c.freeze(p, why)
			}
		}
		return
	}
	members := append(acts, wts...)
	for i, p := range members {
		what := ""
		switch {
		case i >= len(acts):
			what = fmt.Sprintf("per-channel weight %q", c.name(p))
		case i > 0:
			what = "ties its inputs"
		}
		for _, o := range outs {
			c.tie(o, p, what)
		}
	}
}

// elementwise handles ops that compute each output element from the
// elements at the same (broadcast) position of their inputs.
func (c *nodeCtx) elementwise(op string) {
	ins := []int{}
	for i, name := range c.n.GetInput() {
		if name == "" {
			continue
		}
		if _, ok := c.inRank(i); !ok {
			return // alignment unknown: everything freezes
		}
		ins = append(ins, i)
	}
	outs := []int{}
	for j, name := range c.n.GetOutput() {
		if name != "" {
			outs = append(outs, j)
		}
	}
	if len(outs) == 0 || len(ins) == 0 {
		return
	}
	if op == "Dropout" || op == "Clip" {
		// Only the data input is element-wise; ratio, training_mode, min
		// and max are scalars (free when they are).
		for _, i := range ins[1:] {
			if r, _ := c.inRank(i); r != 0 {
				return
			}
		}
		ins = ins[:1]
	}
	R, ok := c.outRank(outs[0])
	if !ok {
		return
	}
	for _, j := range outs[1:] {
		if r, ok := c.outRank(j); !ok || r != R {
			return
		}
	}
	for k := range R {
		var ops []port
		for _, j := range outs {
			ops = append(ops, out(j, k))
		}
		var ips []port
		for _, i := range ins {
			r, _ := c.inRank(i)
			if kk := k - (R - r); kk >= 0 {
				ips = append(ips, in(i, kk))
			}
		}
		c.bcast(ops, ips)
	}
}

func (c *nodeCtx) gemm() {
	fa, ba := 1, 0
	if attrInt(c.n, "transA", 0) != 0 {
		fa, ba = 0, 1
	}
	bi, bo := 0, 1
	if attrInt(c.n, "transB", 0) != 0 {
		bi, bo = 1, 0
	}
	c.tie(out(0, 0), in(0, ba), "")
	c.tie(in(0, fa), in(1, bi), "input features")
	c.tie(out(0, 1), in(1, bo), "output units")
	if c.weightDerived(input(c.n, 1)) {
		c.markUnits(out(0, 1))
	}
	if input(c.n, 2) == "" {
		return
	}
	if r, ok := c.inRank(2); ok && r <= 2 {
		for k := range r {
			c.bcast([]port{out(0, 2-r+k)}, []port{in(2, k)})
		}
	}
}

func (c *nodeCtx) matmul() {
	ra, aok := c.inRank(0)
	rb, bok := c.inRank(1)
	ro, ook := c.outRank(0)
	if !aok || !bok || !ook || ra == 0 || rb == 0 {
		return
	}
	switch {
	case ra == 1 && rb == 1:
		c.tie(in(0, 0), in(1, 0), "contracts")
	case ra == 1:
		c.tie(in(0, 0), in(1, rb-2), "contracts")
		c.tie(out(0, ro-1), in(1, rb-1), "output units")
		for k := 0; k < rb-2; k++ {
			c.tie(out(0, k), in(1, k), "")
		}
	case rb == 1:
		c.tie(in(0, ra-1), in(1, 0), "contracts")
		for k := 0; k < ra-1; k++ {
			c.tie(out(0, k), in(0, k), "")
		}
	default:
		c.tie(in(0, ra-1), in(1, rb-2), "input features")
		c.tie(out(0, ro-2), in(0, ra-2), "")
		c.tie(out(0, ro-1), in(1, rb-1), "output units")
		if c.weightDerived(input(c.n, 1)) {
			c.markUnits(out(0, ro-1))
		}
		for k := 0; k < ro-2; k++ {
			var ips []port
			if kk := k - (ro - ra); kk >= 0 {
				ips = append(ips, in(0, kk))
			}
			if kk := k - (ro - rb); kk >= 0 {
				ips = append(ips, in(1, kk))
			}
			c.bcast([]port{out(0, k)}, ips)
		}
	}
}

func (c *nodeCtx) conv(transpose bool) {
	r, ok := c.inRank(0)
	if !ok || r < 3 {
		return
	}
	c.tie(out(0, 0), in(0, 0), "")
	for k := 2; k < r; k++ {
		c.freeze(in(0, k), c.label+" spatial axis")
		c.freeze(out(0, k), c.label+" spatial axis")
	}
	g := attrInt(c.n, "group", 1)
	ch := c.dim(in(0, 1))
	wIn, wOut := 1, 0 // Conv weight: M × C/group × k...
	if transpose {
		wIn, wOut = 0, 1 // ConvTranspose weight: C × M/group × k...
	}
	// Depthwise: one input channel per group and one output channel per
	// group (W axis 1 has size 1 for both Conv and ConvTranspose).
	depthwise := isStatic(ch) && g == ch && g > 1 && c.dim(in(1, 1)) == 1 && sameDim(c.dim(out(0, 1)), ch)
	switch {
	case g == 1:
		c.tie(in(0, 1), in(1, wIn), "input channels")
		c.tie(out(0, 1), in(1, wOut), "output channels")
		c.markUnits(out(0, 1))
	case depthwise:
		// Depthwise: channel c of the output reads only channel c of the
		// input, so both are one class with the filters.
		c.tie(out(0, 1), in(0, 1), "depthwise channels")
		c.markLayer(out(0, 1), false)
		c.tie(in(1, 0), out(0, 1), "depthwise filters")
	case c.groupedConv(g, transpose):
	default:
		why := fmt.Sprintf("%s is a grouped convolution (group=%d)", c.label, g)
		c.freeze(in(0, 1), why)
		c.freeze(out(0, 1), why)
		return
	}
	if input(c.n, 2) != "" {
		if r, ok := c.inRank(2); ok && r == 1 {
			c.tie(in(2, 0), out(0, 1), "bias")
		}
	}
}

// statisticInput reports whether input i of n holds statistics of the data
// (BatchNormalization's running mean and variance, inputs 3 and 4) rather
// than learned weights.
func statisticInput(n *onnxpb.NodeProto, i int) bool {
	return n.GetOpType() == "BatchNormalization" && (i == 3 || i == 4)
}

func (c *nodeCtx) batchNorm() {
	r, ok := c.inRank(0)
	if !ok || r < 2 {
		return
	}
	c.passAll(0, 0, "")
	if a := attr(c.n, "spatial"); a != nil && a.GetI() == 0 {
		why := c.label + " normalises per activation (spatial=0)"
		c.freeze(in(0, 1), why)
		c.freeze(out(0, 1), why)
		return
	}
	for i := 1; i <= 4; i++ {
		if input(c.n, i) == "" {
			continue
		}
		if pr, ok := c.inRank(i); ok && pr == 1 {
			c.tie(in(i, 0), in(0, 1), "channel parameters")
		} else {
			c.freeze(in(0, 1), c.label+" has a parameter that is not per channel")
		}
	}
	for j := 1; j < len(c.n.GetOutput()); j++ {
		if output(c.n, j) != "" {
			c.tie(out(j, 0), in(0, 1), "running statistics")
		}
	}
}

func (c *nodeCtx) instanceNorm() {
	r, ok := c.inRank(0)
	if !ok || r < 2 {
		return
	}
	// Statistics are over the spatial axes, per sample and channel: every
	// axis passes through.
	c.passAll(0, 0, "")
	for i := 1; i <= 2; i++ {
		if pr, ok := c.inRank(i); ok && pr == 1 {
			c.tie(in(i, 0), in(0, 1), "channel parameters")
		} else {
			c.freeze(in(0, 1), c.label+" has a parameter that is not per channel")
		}
	}
}

func (c *nodeCtx) layerNorm() {
	r, ok := c.inRank(0)
	if !ok || r == 0 {
		return
	}
	a, err := normAxis(attrInt(c.n, "axis", -1), r)
	if err != nil {
		return
	}
	for k := range a {
		c.tie(out(0, k), in(0, k), "")
		for j := 1; j < len(c.n.GetOutput()); j++ {
			if output(c.n, j) != "" {
				c.tie(out(j, k), in(0, k), "")
			}
		}
	}
	for j := 1; j < len(c.n.GetOutput()); j++ {
		for k := a; k < r; k++ {
			if output(c.n, j) != "" {
				c.free(out(j, k)) // statistics have size 1 there
			}
		}
	}
	if a != r-1 {
		why := c.label + " normalises over several axes"
		for k := a; k < r; k++ {
			c.freeze(in(0, k), why)
			c.freeze(out(0, k), why)
		}
		return
	}
	// One normalised axis: mean and variance are symmetric in it, so it
	// permutes freely with the scale and bias.
	c.tie(out(0, r-1), in(0, r-1), "")
	for i := 1; i <= 2; i++ {
		if input(c.n, i) == "" {
			continue
		}
		pr, ok := c.inRank(i)
		switch {
		case ok && pr == 1 && c.dim(in(i, 0)) == 1 && c.dim(in(0, r-1)) != 1:
			c.free(in(i, 0))
		case ok && pr == 1:
			c.tie(in(i, 0), in(0, r-1), "scale and bias")
		default:
			c.freeze(in(0, r-1), c.label+" has a scale or bias that is not 1-D")
			c.freeze(out(0, r-1), c.label+" has a scale or bias that is not 1-D")
		}
	}
}

func (c *nodeCtx) groupNorm() {
	r, ok := c.inRank(0)
	if !ok || r < 2 {
		return
	}
	c.tie(out(0, 0), in(0, 0), "")
	for k := 2; k < r; k++ {
		c.tie(out(0, k), in(0, k), "")
	}
	g := attrInt(c.n, "num_groups", 0)
	ch := c.dim(in(0, 1))
	if !(g == 1 || isStatic(ch) && g == ch) {
		why := fmt.Sprintf("%s normalises groups of channels (num_groups=%d)", c.label, g)
		c.freeze(in(0, 1), why)
		c.freeze(out(0, 1), why)
		return
	}
	c.tie(out(0, 1), in(0, 1), "")
	for i := 1; i <= 2; i++ {
		if pr, ok := c.inRank(i); ok && pr == 1 {
			c.bcast([]port{out(0, 1)}, []port{in(i, 0)})
		} else {
			c.freeze(out(0, 1), c.label+" has a scale or bias that is not 1-D")
		}
	}
}

func (c *nodeCtx) pool() {
	r, ok := c.inRank(0)
	if !ok || r < 3 {
		return
	}
	if output(c.n, 1) != "" {
		c.why = c.label + ": its Indices output encodes positions across channels"
		return
	}
	c.tie(out(0, 0), in(0, 0), "")
	c.tie(out(0, 1), in(0, 1), "")
	for k := 2; k < r; k++ {
		c.freeze(in(0, k), c.label+" spatial axis")
		c.freeze(out(0, k), c.label+" spatial axis")
	}
}

func (c *nodeCtx) globalPool() {
	r, ok := c.inRank(0)
	if !ok || r < 2 {
		return
	}
	c.tie(out(0, 0), in(0, 0), "")
	c.tie(out(0, 1), in(0, 1), "")
	for k := 2; k < r; k++ {
		c.free(in(0, k)) // pooled over: invariant
		c.free(out(0, k))
	}
}

func (c *nodeCtx) reduce() {
	r, ok := c.inRank(0)
	if !ok {
		return
	}
	axes, known, err := c.a.s.reduceAxes(c.n, r)
	if err != nil || !known {
		return
	}
	if axes == nil { // noop_with_empty_axes: the identity
		c.passAll(0, 0, "")
		return
	}
	red := map[int]bool{}
	for _, a := range axes {
		red[a] = true
	}
	keep := attrInt(c.n, "keepdims", 1) != 0
	j := 0
	for k := range r {
		switch {
		case !red[k]:
			c.tie(out(0, j), in(0, k), "")
			j++
		default:
			// A symmetric reduction: permuting the axis changes nothing.
			c.free(in(0, k))
			if keep {
				c.free(out(0, j))
				j++
			}
		}
	}
}

func (c *nodeCtx) softmax() {
	r, ok := c.inRank(0)
	if !ok {
		return
	}
	def := int64(-1)
	if c.a.v.opset < 13 {
		def = 1
	}
	a, err := normAxis(attrInt(c.n, "axis", def), r)
	if err != nil {
		return
	}
	for k := range r {
		if c.a.v.opset < 13 && k >= a && a != r-1 {
			why := fmt.Sprintf("%s (opset %d) normalises over axes %d.. flattened together", c.label, c.a.v.opset, a)
			c.freeze(in(0, k), why)
			c.freeze(out(0, k), why)
			continue
		}
		c.tie(out(0, k), in(0, k), "")
	}
}

// merge makes output axis o the flattening of input axes ins (outermost
// first): the first axis larger than 1 carries its channels, in blocks of
// the size of the axes after it, which are frozen.
func (c *nodeCtx) merge(o port, ins []port) {
	c.handled[o] = true
	for _, p := range ins {
		c.handled[p] = true
	}
	carrier := -1
	for i, p := range ins {
		if c.dim(p) != 1 {
			carrier = i
			break
		}
	}
	if carrier < 0 {
		for _, p := range ins {
			c.free(p)
		}
		c.free(o)
		return
	}
	inner := int64(1)
	for _, p := range ins[carrier+1:] {
		d := c.dim(p)
		if !isStatic(d) || (d != 0 && inner > maxDim/d) {
			why := c.label + " merges axes of unknown size"
			for _, q := range ins {
				c.freeze(q, why)
			}
			c.freeze(o, why)
			return
		}
		inner *= d
	}
	for _, p := range ins[carrier+1:] {
		if c.dim(p) != 1 {
			c.freeze(p, c.label+" merges this axis into an outer one")
		}
	}
	if inner == 1 {
		c.tie(o, ins[carrier], "")
		return
	}
	if !c.valid(ins[carrier]) {
		c.freeze(o, c.label+": input shape unknown")
		return
	}
	l, _ := c.layoutOf(ins[carrier], true)
	c.setOut(o, l.scaled(inner), "")
}

func (c *nodeCtx) flatten() {
	r, ok := c.inRank(0)
	if !ok {
		return
	}
	a := attrInt(c.n, "axis", 1)
	if a < 0 {
		a += int64(r)
	}
	if a < 0 || a > int64(r) {
		return
	}
	var outer, inner []port
	for k := range r {
		if int64(k) < a {
			outer = append(outer, in(0, k))
		} else {
			inner = append(inner, in(0, k))
		}
	}
	c.merge(out(0, 0), outer)
	c.merge(out(0, 1), inner)
}

// reshape matches input and output axes by their sizes (row-major order is
// kept): an axis of equal size at equal prefix products is the same axis,
// a run of input axes whose product is one output axis merges, and anything
// else (an axis split in several) freezes. Size-1 axes come and go freely.
// Matching runs from the front until a size is unknown, then from the back
// (torch folds the batch into another axis with sizes only known at run
// time, e.g. (T, N·H, D) -> (T·N, H·D)).
func (c *nodeCtx) reshape() {
	x, xok := c.a.s.shape(input(c.n, 0))
	y, yok := c.a.s.shape(output(c.n, 0))
	if !xok || !yok {
		return
	}
	c.why = c.label + " reshapes this axis"
	i, j := c.reshapeRun(x, y, 0, len(x), 0, len(y), 1)
	bi, bj := c.reshapeRun(x, y, len(x)-1, i-1, len(y)-1, j-1, -1)
	c.foldedHeads(x, y, i, bi, j, bj)
}

// reshapeRun matches axes from x[i] and y[j] in direction dir (1: from the
// front, -1: from the back) up to (not including) xe and ye, and returns
// where it stopped.
func (c *nodeCtx) reshapeRun(x, y []int64, i, xe, j, ye, dir int) (int, int) {
	for {
		for i != xe && x[i] == 1 {
			c.free(in(0, i))
			i += dir
		}
		for j != ye && y[j] == 1 {
			c.free(out(0, j))
			j += dir
		}
		if i == xe || j == ye {
			return i, j
		}
		if !isStatic(x[i]) || !isStatic(y[j]) {
			if sameDim(x[i], y[j]) {
				c.tie(out(0, j), in(0, i), "")
				i, j = i+dir, j+dir
				continue
			}
			return i, j
		}
		if x[i] == 0 || y[j] == 0 {
			return i, j
		}
		gi, gj := []int{i}, []int{j}
		pi, pj := x[i], y[j]
		ni, nj := i+dir, j+dir
		for pi != pj {
			if pi < pj {
				if ni == xe || !isStatic(x[ni]) || x[ni] == 0 || pi > maxDim/max(x[ni], 1) {
					return i, j
				}
				pi *= x[ni]
				gi = append(gi, ni)
				ni += dir
			} else {
				if nj == ye || !isStatic(y[nj]) || y[nj] == 0 || pj > maxDim/max(y[nj], 1) {
					return i, j
				}
				pj *= y[nj]
				gj = append(gj, nj)
				nj += dir
			}
		}
		i, j = ni, nj
		if dir < 0 { // outermost first
			slices.Reverse(gi)
			slices.Reverse(gj)
		}
		switch {
		case len(gi) == 1 && len(gj) == 1:
			c.tie(out(0, gj[0]), in(0, gi[0]), "")
		case len(gi) == 2 && len(gj) == 1 && c.mergeHeads(in(0, gi[0]), in(0, gi[1]), out(0, gj[0])):
		case len(gi) == 1 && len(gj) == 2 && c.splitHeads(in(0, gi[0]), out(0, gj[0]), out(0, gj[1])):
		case len(gj) == 1:
			var ins []port
			for _, k := range gi {
				ins = append(ins, in(0, k))
			}
			c.merge(out(0, gj[0]), ins)
		default:
			why := c.label + " splits this axis"
			for _, k := range gi {
				c.freeze(in(0, k), why)
			}
			for _, k := range gj {
				c.freeze(out(0, k), why)
			}
		}
	}
}

func (c *nodeCtx) transpose() {
	r, ok := c.inRank(0)
	if !ok {
		return
	}
	perm, err := transposePerm(c.n, r)
	if err != nil {
		return
	}
	for k, p := range perm {
		c.tie(out(0, k), in(0, p), "")
	}
}

func (c *nodeCtx) concat() {
	R, ok := c.outRank(0)
	if !ok {
		return
	}
	var ins []int
	for i, name := range c.n.GetInput() {
		if name == "" {
			continue
		}
		if r, ok := c.inRank(i); !ok || r != R {
			return
		}
		ins = append(ins, i)
	}
	a, err := normAxis(attrInt(c.n, "axis", 0), R)
	if err != nil || len(ins) == 0 {
		return
	}
	for k := range R {
		if k == a {
			continue
		}
		var ips []port
		for _, i := range ins {
			ips = append(ips, in(i, k))
		}
		c.bcast([]port{out(0, k)}, ips)
	}
	// The concatenated axis holds the inputs' channels side by side: each
	// keeps its own classes, at its offset.
	var l layout
	var off int64
	for _, i := range ins {
		d := c.dim(in(i, a))
		if !isStatic(d) {
			why := c.label + " concatenates inputs of unknown size"
			for _, i := range ins {
				c.freeze(in(i, a), why)
			}
			c.freeze(out(0, a), why)
			return
		}
		c.handled[in(i, a)] = true
		if d == 0 {
			continue
		}
		li, _ := c.layoutOf(in(i, a), true)
		for _, pt := range li {
			l = append(l, part{pt.elem, pt.n, pt.block, pt.offset + off})
		}
		off += d
	}
	c.setOut(out(0, a), l, "")
}

func (c *nodeCtx) split() {
	r, ok := c.inRank(0)
	if !ok {
		return
	}
	a, err := normAxis(attrInt(c.n, "axis", 0), r)
	if err != nil {
		return
	}
	why := c.label + " splits this axis"
	if c.splitParts(a) {
		why = ""
	} else {
		c.freeze(in(0, a), why)
	}
	for j := range c.n.GetOutput() {
		if output(c.n, j) == "" {
			continue
		}
		for k := range r {
			if k == a {
				if why != "" {
					c.freeze(out(j, k), why)
				}
			} else {
				c.tie(out(j, k), in(0, k), "")
			}
		}
	}
}

func (c *nodeCtx) slice() {
	x, ok := c.a.s.shape(input(c.n, 0))
	if !ok {
		return
	}
	p, known, err := c.a.s.sliceParams(c.n, len(x))
	if err != nil || !known {
		return
	}
	for k, d := range x {
		if fullSlice(d, p[k]) && sameDim(d, c.dim(out(0, k))) {
			c.tie(out(0, k), in(0, k), "")
		} else if st, n := sliceLen(d, p[k]); !(isStatic(d) && p[k].step == 1 && c.cutAxis(in(0, k), out(0, k), st, n)) {
			c.freeze(in(0, k), c.label+" slices this axis")
			c.freeze(out(0, k), c.label+" slices this axis")
		}
	}
}

func (c *nodeCtx) squeeze(unsqueeze bool) {
	x, xok := c.a.s.shape(input(c.n, 0))
	y, yok := c.a.s.shape(output(c.n, 0))
	if !xok || !yok {
		return
	}
	// The kept axes keep their order; the others have size 1.
	long, short := y, x
	if !unsqueeze {
		long, short = x, y
	}
	if len(long)-len(short) < 0 {
		return
	}
	raw, ok := c.a.s.squeezeAxes(c.n)
	if !ok {
		return
	}
	extra := map[int]bool{}
	if raw == nil && !unsqueeze {
		for k, d := range x {
			if d == 1 {
				extra[k] = true
			}
		}
	} else {
		ax, err := normAxes(raw, len(long))
		if err != nil {
			return
		}
		for _, a := range ax {
			extra[a] = true
		}
	}
	if len(long)-len(extra) != len(short) {
		return
	}
	j := 0
	for k := range long {
		lp, sp := out(0, k), in(0, j)
		if !unsqueeze {
			lp, sp = in(0, k), out(0, j)
		}
		if extra[k] {
			c.free(lp)
			continue
		}
		c.tie(lp, sp, "")
		j++
	}
}

func (c *nodeCtx) gather() {
	r, ok := c.inRank(0)
	q, qok := c.inRank(1)
	if !ok || !qok {
		return
	}
	a, err := normAxis(attrInt(c.n, "axis", 0), r)
	if err != nil {
		return
	}
	for k := range a {
		c.tie(out(0, k), in(0, k), "")
	}
	for k := a + 1; k < r; k++ {
		c.tie(out(0, k-1+q), in(0, k), "")
	}
	why := c.label + " gathers along this axis"
	c.freeze(in(0, a), why)
	for k := range q {
		c.freeze(in(1, k), why)
		c.freeze(out(0, a+k), why)
	}
}

func (c *nodeCtx) expand() {
	r, ok := c.inRank(0)
	R, ook := c.outRank(0)
	if !ok || !ook || R < r {
		return
	}
	why := c.label + " broadcasts this axis"
	for k := range R {
		kk := k - (R - r)
		switch {
		case kk >= 0 && sameDim(c.dim(in(0, kk)), c.dim(out(0, k))):
			c.tie(out(0, k), in(0, kk), "")
		case kk >= 0:
			c.freeze(in(0, kk), why)
			c.freeze(out(0, k), why)
		default:
			c.freeze(out(0, k), why)
		}
	}
}

func (c *nodeCtx) tile() {
	r, ok := c.inRank(0)
	reps, rok := c.a.s.literalInts(input(c.n, 1))
	if !ok || !rok || len(reps) != r {
		return
	}
	for k := range r {
		if reps[k] == 1 {
			c.tie(out(0, k), in(0, k), "")
		} else {
			c.freeze(in(0, k), c.label+" repeats this axis")
			c.freeze(out(0, k), c.label+" repeats this axis")
		}
	}
}

func (c *nodeCtx) pad() {
	r, ok := c.inRank(0)
	if !ok {
		return
	}
	pads, known, err := c.a.s.padAmounts(c.n, r)
	if err != nil || !known {
		return
	}
	for k := range r {
		if pads[k] == 0 && pads[k+r] == 0 {
			c.tie(out(0, k), in(0, k), "")
		} else {
			c.freeze(in(0, k), c.label+" pads this axis")
			c.freeze(out(0, k), c.label+" pads this axis")
		}
	}
}

// resize passes the batch and channel axes when they keep their size
// exactly (scale 1 maps each index to itself in every coordinate mode but
// tf_crop_and_resize); spatial axes freeze.
func (c *nodeCtx) resize() {
	r, ok := c.inRank(0)
	x, _ := c.a.s.shape(input(c.n, 0))
	if !ok || r < 2 {
		return
	}
	if _, ok := attrInts(c.n, "axes"); ok || attrString(c.n, "coordinate_transformation_mode", "") == "tf_crop_and_resize" {
		return
	}
	scales, sizes := c.a.s.resizeTarget(c.n, x)
	for k := range 2 {
		keeps := len(scales) == r && scales[k] == 1 || len(sizes) == r && isStatic(x[k]) && sizes[k] == x[k]
		if keeps && sameDim(c.dim(in(0, k)), c.dim(out(0, k))) {
			c.tie(out(0, k), in(0, k), "")
		}
	}
}

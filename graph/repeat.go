package graph

import (
	"fmt"

	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

// Repeated heads: grouped-query and multi-query attention.
//
// Grouped-query attention computes H_kv key/value heads and lets g query
// heads share each: before the score and value MatMuls the K and V heads
// are repeated, head k becoming heads k·g ... k·g+g-1. torch exports
// repeat_interleave as a Split of the heads axis into pieces, and per piece
// Unsqueeze (a new axis after the heads), Expand (that axis to g) and a
// Reshape that merges the two, then a Concat of the pieces; the hand-written
// form (Hugging Face's repeat_kv) is the same without Split and Concat.
// findRepeats recognises both forms as one repeat of an axis, and the
// rules see them as a single node (repeatAxis) whose output axis is a class
// of its own, recorded with the class it repeats (a repeatRec).
// resolveHeads then lets a within-head class meet both the K/V heads and
// the query heads that repeat them: the query side's flat class (Q's
// output units, the output projection's inputs) moves with the K/V side's,
// each K/V unit standing for its g copies (WeightSite.Repeat). Query heads
// keep their order within their set.

// repeatOp is a subgraph that repeats every index of axis axis of value
// src times times in a row.
type repeatOp struct {
	src   string
	axis  int
	times int64
	// inner are the nodes of the subgraph but the last (whose output is
	// the repeated value): the rules skip them.
	inner []int
}

// repeatRec records that class dst holds every index of class src times
// times in a row (see repeatOp).
type repeatRec struct {
	src, dst int // elements
	times    int64
	label    string
}

// findRepeats returns the repeat subgraphs of v by their last node. Every
// value inside one must be read by the next node of the subgraph alone.
func findRepeats(v *view, s *shapes) map[int]repeatOp {
	readers := map[string]int{}
	for i, n := range v.nodes {
		for _, in := range n.GetInput() {
			readers[in]++
		}
		for _, in := range v.implicit[i] {
			readers[in]++
		}
	}
	for _, o := range v.outputs {
		readers[o]++
	}
	producer := func(name, op string) (int, *onnxpb.NodeProto, bool) {
		i, ok := v.producer[name]
		if !ok || readers[name] != 1 || !isOp(v.nodes[i], op) || v.isWeight(name) {
			return 0, nil, false
		}
		return i, v.nodes[i], true
	}
	// chain matches Unsqueeze -> Expand -> Reshape ending at value y: it
	// returns the Unsqueeze's input, the repeated axis and the count.
	chain := func(y string) (x string, axis int, times int64, nodes []int, ok bool) {
		ri, rn, ok := producer(y, "Reshape")
		if !ok {
			return "", 0, 0, nil, false
		}
		ei, en, ok := producer(input(rn, 0), "Expand")
		if !ok {
			return "", 0, 0, nil, false
		}
		ui, un, ok := producer(input(en, 0), "Unsqueeze")
		if !ok {
			return "", 0, 0, nil, false
		}
		x = input(un, 0)
		if v.isWeight(x) {
			return "", 0, 0, nil, false // a constant: nothing to permute
		}
		xd, ok1 := s.shape(x)
		ud, ok2 := s.shape(input(en, 0))
		ed, ok3 := s.shape(input(rn, 0))
		yd, ok4 := s.shape(y)
		raw, ok5 := s.squeezeAxes(un)
		if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || len(raw) != 1 || len(ud) != len(xd)+1 || len(ed) != len(ud) || len(yd) != len(xd) {
			return "", 0, 0, nil, false
		}
		ax, err := normAxes(raw, len(ud))
		if err != nil || ax[0] == 0 {
			return "", 0, 0, nil, false
		}
		a := ax[0] - 1 // the axis repeated: the new axis follows it
		g := ed[a+1]
		if ud[a+1] != 1 || !isStatic(g) || g < 2 || !isStatic(xd[a]) || xd[a] > maxDim/g || yd[a] != xd[a]*g {
			return "", 0, 0, nil, false
		}
		for k := range ud {
			if k != a+1 && !sameDim(ud[k], ed[k]) {
				return "", 0, 0, nil, false
			}
		}
		for k := range xd {
			if k != a && !sameDim(xd[k], yd[k]) {
				return "", 0, 0, nil, false
			}
		}
		return x, a, g, []int{ui, ei, ri}, true
	}
	ops := map[int]repeatOp{}
	inside := map[int]bool{}
	// Split -> chains -> Concat first: its chains are not repeats on
	// their own.
	for _, i := range v.order {
		n := v.nodes[i]
		if !isOp(n, "Concat") {
			continue
		}
		var split *onnxpb.NodeProto
		si := -1
		var nodes []int
		var times int64
		axis := -1
		ok := len(n.GetInput()) > 0
		for j, in := range n.GetInput() {
			if !ok {
				break
			}
			x, a, g, ns, cok := chain(in)
			if !cok || (axis >= 0 && (a != axis || g != times)) {
				ok = false
				break
			}
			axis, times = a, g
			pi, ok2 := v.producer[x]
			if !ok2 || readers[x] != 1 || !isOp(v.nodes[pi], "Split") || (si >= 0 && pi != si) || output(v.nodes[pi], j) != x {
				ok = false
				break
			}
			si, split = pi, v.nodes[pi]
			nodes = append(nodes, ns...)
		}
		if !ok || split == nil || len(split.GetOutput()) != len(n.GetInput()) || v.isWeight(input(split, 0)) {
			continue
		}
		sd, _ := s.shape(input(split, 0))
		r := len(sd)
		ca, err1 := normAxis(attrInt(n, "axis", 0), r)
		sa, err2 := normAxis(attrInt(split, "axis", 0), r)
		if err1 != nil || err2 != nil || ca != axis || sa != axis {
			continue
		}
		ops[i] = repeatOp{src: input(split, 0), axis: axis, times: times, inner: append(nodes, si)}
		for _, k := range ops[i].inner {
			inside[k] = true
		}
	}
	for _, i := range v.order {
		n := v.nodes[i]
		if !isOp(n, "Reshape") || inside[i] {
			continue
		}
		if x, a, g, ns, ok := chain(output(n, 0)); ok {
			ops[i] = repeatOp{src: x, axis: a, times: g, inner: ns[:2]}
		}
	}
	return ops
}

// repeatAxis is the rule for a repeat subgraph, seen as one node with
// input src and the repeated value as output: every other axis passes
// through, and the repeated axis becomes a class of its own, recorded
// with the class it repeats.
func (c *nodeCtx) repeatAxis(op repeatOp) {
	r, ok := c.inRank(0)
	if ro, ook := c.outRank(0); !ok || !ook || r != ro {
		return
	}
	for k := range r {
		if k != op.axis {
			c.tie(out(0, k), in(0, k), "")
		}
	}
	why := fmt.Sprintf("%s repeats this axis %d times", c.label, op.times)
	p, o := in(0, op.axis), out(0, op.axis)
	l, ok := c.layoutOf(p, true)
	if !ok || c.isWeight(p) || len(l) != 1 || l[0].block != 1 || l[0].offset != 0 || !isStatic(c.dim(p)) || !c.valid(o) {
		c.freeze(p, why)
		c.freeze(o, why)
		return
	}
	c.handled[p] = true
	n := c.dim(o)
	e := c.a.u.add(n, nil, c.pos)
	c.setOut(o, layout{{e, n, 1, 0}}, "")
	c.a.repeats = append(c.a.repeats, repeatRec{src: l[0].elem, dst: e, times: op.times,
		label: fmt.Sprintf("%s repeats each of %d K/V heads %d times", c.label, c.dim(p), op.times)})
}

// expansion says that the flat class of flat (the query side of a
// grouped-query attention) moves with the class of into: unit b·d+i of
// into (d units per block) stands for its units (b·times+j)·d+i, j < times.
type expansion struct {
	flat, into int // elements
	times      int64
}

// syncExpansions freezes a class whenever the class it moves with, or a
// class that moves with it, is frozen: neither can move without the other.
func (a *analyzer) syncExpansions() {
	u := &a.u
	for changed := true; changed; {
		changed = false
		for _, x := range a.expansions {
			f, t := u.root(x.flat), u.root(x.into)
			switch {
			case f.frozen && !t.frozen:
				u.freeze(x.into, f.whyValue, f.whyAxis, f.why, false)
				changed = true
			case t.frozen && !f.frozen:
				u.freeze(x.flat, t.whyValue, t.whyAxis, t.why, false)
				changed = true
			}
		}
	}
}

// resolveRepeats freezes the classes of every repeat that resolveHeads
// did not use (a repeat that is not of attention heads: its copies could
// not follow a permutation of what they copy), and then keeps expanded
// classes frozen with what they move with (resolveBlocks may have frozen
// a block set).
func (a *analyzer) resolveRepeats() {
	u := &a.u
	for _, r := range a.repeats {
		if !a.repeatUsed[u.find(r.dst)] {
			why := r.label + ", which only attention heads may be"
			u.freeze(r.src, "", 0, why, false)
			u.freeze(r.dst, "", 0, why, false)
		}
	}
	a.syncExpansions()
}

package graph

import (
	"fmt"
	"slices"
	"sort"
)

// Attention heads, and axes cut into parts.
//
// A Reshape that splits a plain axis of H·d channels into a heads axis (H)
// and a within-head axis (d), as attention does before its score MatMul,
// gives the two new axes classes of their own and records them with the
// flat class they came from (a headRec); a Reshape that merges such a pair
// back records the flat class it makes. The rules then carry the heads and
// within-head classes through Transpose, the score and value MatMuls (batch
// and contracted axes), scaling, masks and Softmax like any other axis.
// Afterwards resolveHeads checks that every value with a within-head axis
// also has the heads axis paired with it, and that neither class is frozen,
// cut or holds a weight. Then a permutation that maps head σ(h) to head h
// and permutes the units within each head on its own (τ_h) moves every
// value consistently: a within-head axis is only ever read together with
// its heads axis, so element (h, i) of a value is unit h·d+i of the flat
// class. Every flat class of one within-head class is one group of H blocks
// of d units; the groups whose heads classes are one share σ (a block set:
// Q and K share one within-head class, V and the output projection
// another, all four one heads class). A within-head class that fails keeps
// its units in place (τ = id, FixedWithin: rotary embeddings) while σ
// still moves the heads; a heads class that fails freezes the flat
// classes, as before. Grouped convolutions tie their input and output
// blocks directly (groupedConv); resolveBlocks turns all the ties into
// block sets.
//
// A Slice or Split that cuts a plain axis into pieces records each output
// as a part of the input's class (an axisPart). resolveParts then gives
// every site of that class one site per part, at the part's offset, so a
// packed projection (in_proj of torch's MultiheadAttention: Q, K and V
// side by side) becomes three classes.

// headRec is one split of a flat axis into heads × within-head axes, or one
// merge of such a pair back into a flat axis.
type headRec struct {
	flat, heads, within int   // elements
	h, d                int64 // heads, units per head
	label               string
}

// axisPart is an output of a Slice or Split: n channels from start on of a
// plain input axis.
type axisPart struct {
	whole, part int // elements
	start, n    int64
	label       string
}

// splitHeads handles a Reshape that splits input axis p into output axes
// ph (heads) and pd (units per head). It reports false, doing nothing, when
// p is not a plain axis of known size.
func (c *nodeCtx) splitHeads(p, ph, pd port) bool {
	return c.splitHeadsAs(p, ph, pd, c.dim(ph), c.dim(pd))
}

// splitHeadsAs is splitHeads for h heads of d units (ph may be an axis
// that also holds the batch, see foldedHeads).
func (c *nodeCtx) splitHeadsAs(p, ph, pd port, h, d int64) bool {
	if !isStatic(h) || !isStatic(d) || h < 2 || d < 2 || c.dim(p) != h*d || c.isWeight(p) || !c.valid(ph) || !c.valid(pd) {
		return false
	}
	l, ok := c.layoutOf(p, true)
	if !ok || len(l) != 1 || l[0].block != 1 || l[0].offset != 0 {
		return false
	}
	c.handled[p] = true
	he, de := c.a.u.add(h, nil, c.pos), c.a.u.add(d, nil, c.pos)
	c.setOut(ph, layout{{he, h, 1, 0}}, "")
	c.setOut(pd, layout{{de, d, 1, 0}}, "")
	c.a.heads = append(c.a.heads, headRec{flat: l[0].elem, heads: he, within: de, h: h, d: d,
		label: fmt.Sprintf("%s splits %d channels into %d heads × %d", c.label, h*d, h, d)})
	return true
}

// mergeHeads handles a Reshape that merges input axes ph and pd into
// output axis o. It reports false, doing nothing, unless ph is a heads axis
// and pd a within-head axis of an earlier split.
func (c *nodeCtx) mergeHeads(ph, pd, o port) bool {
	return c.mergeHeadsAs(ph, pd, o, c.dim(ph), c.dim(pd))
}

// mergeHeadsAs is mergeHeads for h heads of d units (ph may be an axis
// that also holds the batch, see foldedHeads).
func (c *nodeCtx) mergeHeadsAs(ph, pd, o port, h, d int64) bool {
	lh, okh := c.layoutOf(ph, false)
	ld, okd := c.layoutOf(pd, false)
	if !okh || !okd || len(lh) != 1 || len(ld) != 1 || lh[0].block != 1 || ld[0].block != 1 ||
		lh[0].offset != 0 || ld[0].offset != 0 {
		return false
	}
	u := &c.a.u
	isHeads, isWithin := false, false
	for _, r := range c.a.heads {
		isHeads = isHeads || u.find(r.heads) == u.find(lh[0].elem)
		isWithin = isWithin || u.find(r.within) == u.find(ld[0].elem)
	}
	for _, r := range c.a.repeats {
		// Repeated heads of one K/V head (multi-query attention): its
		// units per head were never split from a flat axis.
		isWithin = isWithin || u.find(r.dst) == u.find(lh[0].elem)
	}
	if !isHeads || !isWithin || !isStatic(h) || !isStatic(d) || !sameDim(c.dim(o), h*d) {
		return false
	}
	c.handled[ph], c.handled[pd] = true, true
	fe := u.add(h*d, nil, c.pos)
	c.setOut(o, layout{{fe, h * d, 1, 0}}, "")
	c.a.heads = append(c.a.heads, headRec{flat: fe, heads: lh[0].elem, within: ld[0].elem, h: h, d: d,
		label: fmt.Sprintf("%s merges %d heads × %d", c.label, h, d)})
	return true
}

// cutAxis makes output port o the n channels from start on of input port
// p (a Slice or Split). It reports false, doing nothing, when p is not a
// plain activation axis of known size.
func (c *nodeCtx) cutAxis(p, o port, start, n int64) bool {
	d := c.dim(p)
	if c.isWeight(p) || !isStatic(d) || n <= 0 || start < 0 || start+n > d || !sameDim(c.dim(o), n) {
		return false
	}
	l, ok := c.layoutOf(p, true)
	if !ok || len(l) != 1 || l[0].block != 1 || l[0].offset != 0 || !sameDim(l[0].n, d) {
		return false
	}
	c.handled[p] = true
	pe := c.a.u.add(n, nil, c.pos)
	c.setOut(o, layout{{pe, n, 1, 0}}, "")
	c.a.parts = append(c.a.parts, axisPart{whole: l[0].elem, part: pe, start: start, n: n,
		label: fmt.Sprintf("%s takes channels %d..%d", c.label, start, start+n-1)})
	return true
}

// resolveParts splits every class that Slice or Split cut into parts
// (see axisPart): its weight sites and activation layouts are replaced by
// one per part. A class whose parts do not tile it exactly, or that a part
// rejoined, freezes with its parts.
func (a *analyzer) resolveParts() {
	u := &a.u
	byWhole := map[int][]axisPart{}
	var roots []int
	for _, p := range a.parts {
		r := u.find(p.whole)
		if byWhole[r] == nil {
			roots = append(roots, r)
		}
		byWhole[r] = append(byWhole[r], p)
	}
	for _, r := range roots {
		ps := byWhole[r]
		sort.SliceStable(ps, func(i, j int) bool { return ps[i].start < ps[j].start })
		// Parts of the same range are the same channels.
		var tiles []axisPart
		for _, p := range ps {
			if k := len(tiles) - 1; k >= 0 && tiles[k].start == p.start && tiles[k].n == p.n {
				if err := u.union(tiles[k].part, p.part, p.label); err != nil && a.err == nil {
					a.err = err
				}
				continue
			}
			tiles = append(tiles, p)
		}
		why := ""
		var end int64
		for _, p := range tiles {
			if p.start != end || u.find(p.part) == u.find(r) {
				why = p.label + ", which leaves the axis in pieces that overlap or do not cover it"
			}
			end = p.start + p.n
		}
		if root := u.root(r); why == "" && (!isStatic(root.size) || end != root.size) {
			why = tiles[0].label + ", which leaves the rest of the axis in no part"
		}
		if root := u.root(r); why == "" && root.frozen {
			for _, p := range tiles {
				u.freeze(p.part, root.whyValue, root.whyAxis, root.why, root.io)
			}
			continue
		}
		if why != "" {
			u.freeze(r, "", 0, why, false)
			for _, p := range tiles {
				u.freeze(p.part, "", 0, why, false)
			}
			continue
		}
		if a.cut == nil {
			a.cut = map[int]bool{}
		}
		a.cut[u.find(r)] = true
		a.splitClass(u.find(r), tiles)
	}
}

// splitClass replaces class r by its parts: every weight site of r becomes
// one site per part, every activation layout part of r one part per part.
func (a *analyzer) splitClass(r int, tiles []axisPart) {
	u := &a.u
	n := len(u.els)
	for e := 0; e < n; e++ {
		s := u.els[e].site
		if s == nil || u.find(e) != r {
			continue
		}
		for _, p := range tiles {
			ns := *s
			ns.Offset = s.Offset + int(p.start)*max(s.Block, 1)
			ne := u.add(p.n, &ns, u.els[e].firstNode)
			if err := u.union(ne, p.part, p.label); err != nil && a.err == nil {
				a.err = err
			}
		}
		u.els[e].site = nil
	}
	for k, l := range a.act {
		var nl layout
		changed := false
		for _, pt := range l {
			if u.find(pt.elem) != r {
				nl = append(nl, pt)
				continue
			}
			changed = true
			for _, p := range tiles {
				nl = append(nl, part{p.part, p.n, pt.block, pt.offset + p.start*pt.block})
			}
		}
		if changed {
			a.act[k] = nl
		}
	}
}

// resolveHeads checks the recorded head splits and merges (see headRec)
// and the repeated heads (see repeatRec): valid ones join their flat
// classes into block groups, the others freeze them. It fills a.ties and
// a.expansions.
func (a *analyzer) resolveHeads() {
	u := &a.u
	if len(a.heads) == 0 {
		return
	}
	// Why a heads class cannot move (the records on it freeze), and why a
	// within-head class cannot (its heads still move, units stay in place
	// within them: whatever reads the units, e.g. rotary embeddings that
	// mix pairs of them, then reads them where they were).
	headsBad, withinBad := map[int]string{}, map[int]string{}
	// Repeated heads: the query heads of grouped-query attention repeat
	// the K/V heads (repOf: query heads root -> the repeat). base maps a
	// heads class to the heads its permutation derives from: one
	// permutation σ per base (a family of heads).
	repOf := map[int]repeatRec{}
	isSrc := map[int]bool{}
	for _, r := range a.repeats {
		// K and V are repeated into the same query heads: their heads
		// are one (as the score and value MatMuls make them in
		// multi-head attention).
		sr, tr := u.find(r.src), u.find(r.dst)
		if p, ok := repOf[tr]; ok && p.times == r.times && u.root(p.src).size == u.root(sr).size {
			if err := u.union(p.src, r.src, r.label); err != nil && a.err == nil {
				a.err = err
			}
		}
		repOf[tr] = r
	}
	clear(repOf)
	isHeads := map[int]bool{}
	for _, r := range a.heads {
		isHeads[u.find(r.heads)] = true
	}
	for _, r := range a.repeats {
		sr, tr := u.find(r.src), u.find(r.dst)
		isSrc[sr] = true
		if p, ok := repOf[tr]; (ok && (u.find(p.src) != sr || p.times != r.times)) || sr == tr {
			note(headsBad, tr, r.label+", but the repeated heads are other heads too")
			note(headsBad, sr, r.label+", but the repeated heads are other heads too")
		}
		repOf[tr] = r
	}
	base := func(h int) int {
		if r, ok := repOf[h]; ok {
			return u.find(r.src)
		}
		return h
	}
	for _, r := range a.repeats {
		sr, tr := u.find(r.src), u.find(r.dst)
		switch {
		case !isHeads[tr]:
			note(headsBad, sr, r.label+", but the repeated heads meet no query heads")
		case !isHeads[sr] && u.root(sr).size != 1:
			note(headsBad, tr, r.label+", but what it repeats are not heads")
		case isSrc[tr]:
			note(headsBad, sr, r.label+", but the heads are repeated twice")
		}
	}
	// One heads class (with its repeats) per within-head class.
	pairOf := map[int]int{} // within-head root -> the base of its heads
	for _, r := range a.heads {
		hr, dr := u.find(r.heads), u.find(r.within)
		if p, ok := pairOf[dr]; ok && p != base(hr) {
			why := r.label + ", but its units per head meet another heads axis"
			note(headsBad, base(hr), why)
			note(headsBad, p, why)
		}
		pairOf[dr] = base(hr)
		if hr == dr {
			note(headsBad, hr, r.label+", but the heads and the units per head are tied together")
		}
	}
	// A single K/V head (multi-query attention): its units per head are
	// the flat K/V units, and values may hold them without a heads axis.
	single := func(dr int) bool {
		b, ok := pairOf[dr]
		return ok && !isHeads[b] && u.root(b).size == 1
	}
	for _, r := range a.heads {
		hr, dr := u.find(r.heads), u.find(r.within)
		for _, x := range []struct {
			root int
			bad  map[int]string
		}{{hr, headsBad}, {dr, withinBad}} {
			switch el := u.root(x.root); {
			case el.frozen:
				note(x.bad, x.root, el.why)
			case el.hasSite && !(x.root == dr && single(dr)):
				note(x.bad, x.root, r.label+", but a weight is laid out along them")
			case a.cut[x.root]:
				note(x.bad, x.root, r.label+", but a Slice or Split cuts them into parts")
			}
		}
	}
	// Every value with a within-head axis must hold its heads axis (or a
	// repeat of it) once.
	type seen struct{ heads, within []int }
	perValue := map[string]*seen{}
	var values []string
	for _, k := range a.actKeys() {
		l := a.act[k]
		for _, pt := range l {
			r := u.find(pt.elem)
			_, w := pairOf[r]
			_, rep := repOf[r]
			heads := isHeads[r] || rep || isSrc[r]
			if !heads && !w {
				continue
			}
			s := perValue[k.value]
			if s == nil {
				s = &seen{}
				perValue[k.value] = s
				values = append(values, k.value)
			}
			plain := len(l) == 1 && pt.block == 1 && pt.offset == 0
			if heads {
				s.heads = append(s.heads, base(r))
				if !plain {
					note(headsBad, base(r), fmt.Sprintf("%q lays out heads in blocks", k.value))
				}
			} else {
				s.within = append(s.within, r)
				if !plain {
					note(withinBad, r, fmt.Sprintf("%q lays out units per head in blocks", k.value))
				}
			}
		}
	}
	for _, v := range values {
		s := perValue[v]
		for _, d := range s.within {
			n := countOf(s.heads, pairOf[d])
			if (n != 1 && !(n == 0 && single(d))) || countOf(s.within, d) != 1 {
				note(withinBad, d, fmt.Sprintf("%q has units per head without their heads axis", v))
			}
		}
		for _, h := range s.heads {
			if countOf(s.heads, h) != 1 {
				note(headsBad, h, fmt.Sprintf("%q has two axes of the same heads", v))
			}
		}
	}
	// Query heads move with the flat units of their K/V heads: there must
	// be such units.
	hasFlat := map[int]bool{} // within-head root
	for _, r := range a.heads {
		if hr := u.find(r.heads); base(hr) == hr {
			hasFlat[u.find(r.within)] = true
		}
	}
	for _, r := range a.heads {
		hr, dr := u.find(r.heads), u.find(r.within)
		if base(hr) != hr && !hasFlat[dr] && !single(dr) {
			note(headsBad, base(hr), r.label+", but the heads it repeats are never a flat axis")
		}
	}
	// A bad heads class makes its family bad. Records on a bad family
	// freeze, with their within-head class and every other family it
	// meets.
	famBad := map[int]string{}
	var heads []int
	for _, r := range a.heads {
		heads = append(heads, u.find(r.heads))
	}
	for _, r := range a.repeats {
		heads = append(heads, u.find(r.src), u.find(r.dst))
	}
	for _, h := range heads {
		if why, ok := headsBad[h]; ok {
			note(famBad, base(h), why)
		}
	}
	for changed := true; changed; {
		changed = false
		for _, r := range a.heads {
			hb, dr := base(u.find(r.heads)), u.find(r.within)
			why, ok := famBad[hb]
			if !ok {
				continue
			}
			if ph := pairOf[dr]; ph != hb {
				if _, done := famBad[ph]; !done {
					famBad[ph], changed = why, true
				}
			}
		}
	}
	// The others: one flat class per within-head class (fixed within the
	// heads if the within-head class is bad), one block set per family;
	// the query side's flat classes move with the K/V side's.
	firstFlat := map[int]int{} // within-head root -> flat element
	byHeads := map[int]*blockTie{}
	var order []int
	type querySide struct {
		rec    headRec
		within int
	}
	var queries []querySide
	for _, r := range a.heads {
		hr, dr := u.find(r.heads), u.find(r.within)
		if why, ok := famBad[base(hr)]; ok {
			why = r.label + ": " + why
			u.freeze(r.flat, "", 0, why, false)
			u.freeze(hr, "", 0, why, false)
			u.freeze(dr, "", 0, why, false)
			continue
		}
		why, fixed := withinBad[dr]
		if fixed {
			u.freeze(dr, "", 0, r.label+": units stay in place within the heads: "+why, false)
		}
		if base(hr) != hr {
			queries = append(queries, querySide{r, dr})
			continue
		}
		if f, ok := firstFlat[dr]; ok {
			if err := u.union(f, r.flat, r.label); err != nil && a.err == nil {
				a.err = err
			}
		} else {
			firstFlat[dr] = r.flat
			u.root(r.flat).reasons = append(u.root(r.flat).reasons, r.label)
		}
		t := byHeads[hr]
		if t == nil {
			t = &blockTie{blocks: r.h, label: r.label}
			byHeads[hr] = t
			order = append(order, hr)
		}
		t.elems = append(t.elems, r.flat)
		t.fixed = append(t.fixed, fixed)
	}
	for _, hr := range order {
		a.ties = append(a.ties, *byHeads[hr])
	}
	for _, q := range queries {
		into, ok := firstFlat[q.within]
		if !ok {
			into = q.within // a single K/V head: its units per head are its flat units
		}
		rep := repOf[u.find(q.rec.heads)]
		why := fmt.Sprintf("%s, which %s: query heads move with their K/V head, in order", q.rec.label, rep.label)
		u.root(into).reasons = append(u.root(into).reasons, why)
		a.expansions = append(a.expansions, expansion{flat: q.rec.flat, into: into, times: rep.times})
		a.repeatUsed[u.find(rep.dst)] = true
	}
}

// blockTie says that the classes of elems are block-structured, blocks
// blocks each, and share one block permutation; fixed[i] says that the
// units of elems[i]'s class keep their place within their block, and
// within[i] lists weight sites that hold one block's units of that class
// (a grouped convolution's weight): its blocks then share one within-block
// permutation that moves those sites too (unless the class is fixed).
type blockTie struct {
	elems  []int
	fixed  []bool
	within [][]WeightSite
	blocks int64
	label  string
}

// resolveBlocks turns the block ties into a.blocks, a.fixedWithin and
// a.blockSet. Classes tied to each other (directly or through a class in
// two ties) are one set. A set whose classes disagree on the number of
// blocks, or with a frozen class, freezes: σ is one permutation for all.
func (a *analyzer) resolveBlocks() {
	u := &a.u
	if len(a.ties) == 0 {
		return
	}
	parent := map[int]int{} // set union-find over class roots
	var find func(x int) int
	find = func(x int) int {
		if p, ok := parent[x]; ok && p != x {
			r := find(p)
			parent[x] = r
			return r
		}
		return x
	}
	blocks := map[int]int64{}
	fixed := map[int]bool{}
	within := map[int][]WeightSite{}
	why := map[int]string{} // class root -> why its set freezes
	var roots []int
	for _, t := range a.ties {
		first := -1
		for i, e := range t.elems {
			r := u.find(e)
			if _, ok := parent[r]; !ok {
				parent[r] = r
				roots = append(roots, r)
			}
			if b, ok := blocks[r]; ok && b != t.blocks {
				why[r] = t.label + ", but the same channels are cut into other blocks elsewhere"
			}
			blocks[r] = t.blocks
			fixed[r] = fixed[r] || t.fixed[i]
			if i < len(t.within) {
				within[r] = append(within[r], t.within[i]...)
			}
			if el := u.root(r); el.frozen {
				why[r] = el.why
			} else if sz := el.size; !isStatic(sz) || t.blocks < 2 || sz%t.blocks != 0 {
				why[r] = t.label + ", but the channels are not whole blocks"
			}
			if first < 0 {
				first = r
			} else if x, y := find(first), find(r); x != y {
				parent[y] = x
			}
		}
	}
	setWhy := map[int]string{}
	for _, r := range roots {
		if w, ok := why[r]; ok {
			if _, done := setWhy[find(r)]; !done {
				setWhy[find(r)] = w
			}
		}
	}
	a.blocks, a.fixedWithin, a.blockSet, a.withinSites = map[int]int64{}, map[int]bool{}, map[int]int{}, map[int][]WeightSite{}
	for _, r := range roots {
		if w, ok := setWhy[find(r)]; ok {
			u.freeze(r, "", 0, w, false)
			continue
		}
		a.blocks[r], a.fixedWithin[r], a.blockSet[r] = blocks[r], fixed[r], find(r)
		if !fixed[r] && len(within[r]) > 0 {
			// One within-block permutation for every block; units in
			// place need no site (the weight stays as it is).
			a.withinSites[r] = within[r]
		}
	}
}

// note records why class r cannot move, keeping the first reason.
func note(bad map[int]string, r int, why string) {
	if _, ok := bad[r]; !ok {
		bad[r] = why
	}
}

// actKeys returns the activation axes in a fixed order (value, axis), so
// that the reasons found first do not depend on map order.
func (a *analyzer) actKeys() []axisKey {
	keys := make([]axisKey, 0, len(a.act))
	for k := range a.act {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].value != keys[j].value {
			return keys[i].value < keys[j].value
		}
		return keys[i].axis < keys[j].axis
	})
	return keys
}

func countOf(s []int, x int) int {
	n := 0
	for _, y := range s {
		if y == x {
			n++
		}
	}
	return n
}

// blockSets lists, for the groups of res, the IDs of the groups that share
// a block permutation, each list in group order; rootOf maps a group ID to
// its class root.
func (a *analyzer) blockSets(res *Analysis, rootOf []int) {
	idx := map[int]int{}
	for id, r := range rootOf {
		s, ok := a.blockSet[r]
		if !ok {
			continue
		}
		k, ok := idx[s]
		if !ok {
			k = len(res.BlockSets)
			idx[s] = k
			res.BlockSets = append(res.BlockSets, nil)
		}
		res.BlockSets[k] = append(res.BlockSets[k], id)
	}
	for _, s := range res.BlockSets {
		slices.Sort(s)
	}
}

// splitParts makes each output of a Split a part of input axis a (see
// cutAxis); it reports false, doing nothing, unless every output is a
// non-empty part of known size.
func (c *nodeCtx) splitParts(a int) bool {
	d := c.dim(in(0, a))
	sizes, ok := c.a.s.splitSizes(c.n, d)
	if !ok || !isStatic(d) || len(sizes) != len(c.n.GetOutput()) || c.isWeight(in(0, a)) {
		return false
	}
	l, ok := c.layoutOf(in(0, a), true)
	if !ok || len(l) != 1 || l[0].block != 1 || l[0].offset != 0 {
		return false
	}
	for j, n := range sizes {
		if output(c.n, j) == "" || n <= 0 || !sameDim(c.dim(out(j, a)), n) {
			return false
		}
	}
	var start int64
	for j, n := range sizes {
		c.cutAxis(in(0, a), out(j, a), start, n)
		start += n
	}
	return true
}

// headsAxis reports whether port p is an axis of a heads class.
func (c *nodeCtx) headsAxis(p port) bool {
	l, ok := c.a.act[axisKey{c.name(p), p.axis}]
	if p.out || c.isWeight(p) || !ok || len(l) != 1 {
		return false
	}
	return c.a.headsOf(l[0].elem) != nil
}

// headsOf returns the record whose heads class holds element e, if any.
func (a *analyzer) headsOf(e int) *headRec {
	for i := range a.heads {
		if a.u.find(a.heads[i].heads) == a.u.find(e) {
			return &a.heads[i]
		}
	}
	return nil
}

// foldedHeads handles what a Reshape's size matching left over, input
// axes x[i..bi] and output axes y[j..bj], in the two forms torch's
// MultiheadAttention exports, where the heads share an axis with the batch
// (sizes only known at run time):
//
//   - (B, H·d) -> (B·H, d): heads split off into the axis of the batch;
//   - (..., B·H, d) -> (..., H·d): merged back, the batch going outwards.
//
// Both keep row-major order, so the heads are the fastest index of the
// B·H axis, and every op the rules let through treats that axis alike for
// every index: the heads class describes it as it does a plain heads axis.
// The batch axis (and whatever else merges with it) freezes.
func (c *nodeCtx) foldedHeads(x, y []int64, i, bi, j, bj int) {
	if bi < i || bj < j {
		return
	}
	why := c.label + " merges this axis with attention heads"
	switch {
	case bi == i+1 && bj == j+1 && !isStatic(x[i]) && !isStatic(y[j]) && isStatic(x[bi]) && isStatic(y[bj]) &&
		y[bj] > 1 && x[bi]%y[bj] == 0 && x[bi]/y[bj] > 1:
		if c.splitHeadsAs(in(0, bi), out(0, j), out(0, bj), x[bi]/y[bj], y[bj]) {
			c.freeze(in(0, i), why)
		}
	case bi > i && isStatic(x[bi]) && isStatic(y[bj]) && x[bi] > 1 && y[bj]%x[bi] == 0:
		l, ok := c.a.act[axisKey{input(c.n, 0), bi - 1}]
		if !ok || len(l) != 1 {
			return
		}
		r := c.a.headsOf(l[0].elem)
		if r == nil || r.h != y[bj]/x[bi] || !c.mergeHeadsAs(in(0, bi-1), in(0, bi), out(0, bj), r.h, x[bi]) {
			return
		}
		for k := i; k < bi-1; k++ {
			c.freeze(in(0, k), why)
		}
		for k := j; k < bj; k++ {
			c.freeze(out(0, k), why)
		}
	}
}

// groupedConv handles a Conv or ConvTranspose with 1 < g groups: its input
// and output channels are g blocks each, block b of the output reading
// block b of the input only, so one block permutation σ moves both. The
// weight's axis of one block's channels (axis 1: the input channels of a
// Conv, the output channels of a ConvTranspose) is read alike by every
// block, so those channels move within their blocks by one permutation
// that all blocks share, which also moves that axis; the others move
// freely within their block with the weight's full axis 0. It reports
// false, doing nothing, when the channel counts are unknown or the input
// axis is not plain.
func (c *nodeCtx) groupedConv(g int64, transpose bool) bool {
	ch, m := c.dim(in(0, 1)), c.dim(out(0, 1))
	if g < 2 || !isStatic(ch) || !isStatic(m) || ch%g != 0 || m%g != 0 || !c.valid(out(0, 1)) {
		return false
	}
	li, ok := c.layoutOf(in(0, 1), true)
	if !ok || len(li) != 1 || li[0].block != 1 || li[0].offset != 0 || !sameDim(li[0].n, ch) {
		return false
	}
	label := fmt.Sprintf("%s is a grouped convolution (group=%d)", c.label, g)
	if transpose {
		c.tie(in(0, 1), in(1, 0), "input channels")
		c.layoutOf(out(0, 1), true)
		c.handled[out(0, 1)] = true
	} else {
		c.tie(out(0, 1), in(1, 0), "output channels")
		c.markUnits(out(0, 1))
		c.handled[in(0, 1)] = true
	}
	lo, ok := c.layoutOf(out(0, 1), false)
	if !ok || len(lo) != 1 {
		return false
	}
	t := blockTie{elems: []int{li[0].elem, lo[0].elem}, fixed: []bool{false, false}, within: make([][]WeightSite, 2),
		blocks: g, label: label}
	shared := 0 // which class the weight's axis 1 holds one block of
	if transpose {
		shared = 1
	}
	if n := map[bool]int64{false: ch / g, true: m / g}[transpose]; c.dim(in(1, 1)) == n && c.isWeight(in(1, 1)) {
		name := input(c.n, 1)
		t.within[shared] = []WeightSite{{Node: c.ni, Input: 1, Value: name, Tensor: c.a.v.source[name], Axis: 1, Block: 1, Within: true}}
	} else {
		t.fixed[shared] = true // a weight that is computed: leave it as it is
	}
	c.a.ties = append(c.a.ties, t)
	return true
}

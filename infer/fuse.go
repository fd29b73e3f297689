package infer

import (
	"math"
	"slices"
)

// Operator fusion. ONNX exporters write Conv → BatchNormalization → Relu as
// three nodes; run as written, the two elementwise passes each stream the
// whole activation through memory again (at batch 256, as much time as the
// convolution itself). fuse builds a second program in which such chains
// are one node:
//
//   - an inference-mode BatchNormalization after a Conv with constant
//     weights is folded into them: W'[o] = W[o]·a[o], b'[o] = (b[o] − μ[o])·a[o] + β[o]
//     with a = γ/√(σ² + ε), computed in float64 and rounded once, on the
//     fused program's first run (see fuseConv);
//   - an Add of another value computed earlier (a residual connection),
//     then a Relu, or a Clip with bounds known at NewSession, become the
//     Conv's epilogue, applied to each image's output while it is in cache;
//   - a 2×2, stride-2 MaxPool with every window inside the input (after
//     the activation, or right after the Conv) is applied in the same
//     epilogue, so the full-size activation is never written to memory.
//
// A link is fused only when nothing else can observe the value it removes:
// the value has exactly one reader (the next node of the chain, as its
// first input; either input of the Add), is not a graph output, and the
// node producing it has no other used outputs. Runs with OnValue, BatchNormStatistics or a Capture
// of a removed value execute the unfused program, so every hook keeps its
// per-node meaning.

// fuse sets s.fused and s.elided when at least one chain can be fused.
func (s *Session) fuse() {
	readers := make([]int, len(s.names))
	reader := make([]*node, len(s.names))
	for _, nd := range s.nodes {
		for _, i := range nd.in {
			if i >= 0 {
				readers[i]++
				reader[i] = nd
			}
		}
	}
	isOutput := map[int]bool{}
	for _, i := range s.outSlot {
		isOutput[i] = true
	}
	// next returns the single node reading v as its first input, if v may
	// be fused away.
	next := func(v int) *node {
		if v < 0 || readers[v] != 1 || isOutput[v] || s.consts[v] != nil {
			return nil
		}
		nd := reader[v]
		if len(nd.in) == 0 || nd.in[0] != v {
			return nil
		}
		for j, o := range nd.out {
			if j > 0 && o >= 0 {
				return nil // a second output someone may read
			}
		}
		return nd
	}
	// single returns the only reader of v (as any input) when v may be
	// fused away.
	single := func(v int) *node {
		if v < 0 || readers[v] != 1 || isOutput[v] || s.consts[v] != nil {
			return nil
		}
		return reader[v]
	}
	pos := map[*node]int{}
	for k, nd := range s.nodes {
		pos[nd] = k
	}
	producedAt := make([]int, len(s.names)) // slot -> program position of its producer, -1: input
	for i := range producedAt {
		producedAt[i] = -1
	}
	for k, nd := range s.nodes {
		for _, o := range nd.out {
			if o >= 0 {
				producedAt[o] = k
			}
		}
	}
	before := func(v int, nd *node) bool { return producedAt[v] < pos[nd] }
	skip := map[*node]bool{}
	elided := map[int]bool{}
	var prog []*node
	fusedAny := false
	for _, nd := range s.nodes {
		if skip[nd] {
			continue
		}
		cp := *nd
		cp.release, cp.dying = nil, nil
		if nd.op == "Conv" && nd.conv != nil && nd.conv.packed != nil && len(nd.out) == 1 && nd.out[0] >= 0 {
			if op, out, removed, res := s.fuseConv(nd, next, single, before); op != nil {
				if res >= 0 {
					op.resIdx = len(cp.in)
					cp.in = append(slices.Clone(cp.in), res)
				}
				cp.run = op.kernel()
				cp.conv = op
				cp.out = []int{out}
				for _, r := range removed {
					skip[r] = true
				}
				// Every value between the Conv and the chain's end.
				elided[nd.out[0]] = true
				for _, r := range removed {
					if r.out[0] != out {
						elided[r.out[0]] = true
					}
				}
				fusedAny = true
			}
		}
		prog = append(prog, &cp)
	}
	if fusedAny {
		s.fused, s.elided = prog, elided
	}
}

// fuseConv returns the fused operation for the chain starting at Conv node
// nd, the value it ends with and the nodes it absorbs; op is nil when
// nothing follows nd that can be fused.
func (s *Session) fuseConv(nd *node, next func(int) *node, readersOf func(int) *node, computedBefore func(v int, nd *node) bool) (op *convOp, out int, removed []*node, resSlot int) {
	base := nd.conv
	m := base.conv.Shape[0]
	cur := nd.out[0]
	var fold func() (*Tensor, []float32) // the folded weights and bias, if a BatchNormalization folds
	if bn := next(cur); bn != nil && bn.op == "BatchNormalization" && bn.bn != nil && bn.bn.foldable && len(bn.in) == 5 {
		var p [4][]float32 // scale, B, mean, var
		ok := true
		for j := range p {
			t := s.consts[bn.in[j+1]]
			if t == nil || t.DType != Float32 || len(t.F) != m {
				ok = false
				break
			}
			p[j] = t.F
		}
		if ok {
			eps := bn.bn.eps
			fold = func() (*Tensor, []float32) {
				return foldBatchNorm(base.conv, base.bias, p[0], p[1], p[2], p[3], eps)
			}
			cur = bn.out[0]
			removed = append(removed, bn)
		}
	}
	// A residual Add: the other operand must be computed before the Conv
	// runs (the fused node takes its place in the program).
	resSlot, resFirst := -1, false
	if a := readersOf(cur); a != nil && a.op == "Add" && len(a.in) == 2 && a.in[0] != a.in[1] && s.dtypes[cur] == Float32 {
		other, first := a.in[1], false
		if a.in[1] == cur {
			other, first = a.in[0], true
		}
		if other >= 0 && s.dtypes[other] == Float32 && (s.consts[other] != nil || computedBefore(other, nd)) {
			resSlot, resFirst = other, first
			cur = a.out[0]
			removed = append(removed, a)
		}
	}
	act := activation{}
	if a := next(cur); a != nil && s.dtypes[cur] == Float32 {
		switch {
		case a.op == "Relu":
			act = activation{kind: actRelu}
		case a.op == "Clip" && a.act != nil:
			act = *a.act
		}
		if act.kind != actNone {
			cur = a.out[0]
			removed = append(removed, a)
		}
	}
	pool := false
	if p := next(cur); p != nil && resSlot < 0 && p.op == "MaxPool" && p.maxPool2 && len(base.conv.Shape) == 4 && s.dtypes[cur] == Float32 {
		pool = true
		cur = p.out[0]
		removed = append(removed, p)
	}
	if len(removed) == 0 {
		return nil, 0, nil, -1
	}
	op = &convOp{attrs: base.attrs, group: base.group, act: act, pool: pool, resFirst: resFirst}
	if fold == nil {
		// The Conv's own weights: share its packing.
		op.conv, op.bias, op.packed = base.conv, base.bias, base.packed
	} else {
		// Folded and packed on the fused program's first run: a session
		// whose runs all observe intermediate values (activation
		// matching, REPAIR) never uses it, and the folded, packed weights
		// are as large as the model. The folded weights have the Conv's
		// shape and a bias per output channel, which base's packing
		// accepted, so prepare packs them too.
		op.build = func() { op.prepare(fold()) }
	}
	return op, cur, removed, resSlot
}

// foldBatchNorm returns the weights and bias of a Conv followed by an
// inference-mode BatchNormalization: per output channel o, with
// a = scale/√(var + eps), W'[o] = W[o]·a and b'[o] = (b[o] − mean)·a + B
// (b = 0 without a bias), in float64 and rounded once to float32.
func foldBatchNorm(wt *Tensor, bias, scale, shift, mean, vr []float32, eps float64) (*Tensor, []float32) {
	m := wt.Shape[0]
	per := len(wt.F) / m
	w2 := &Tensor{Shape: append([]int{}, wt.Shape...), DType: Float32, F: make([]float32, len(wt.F))}
	b2 := make([]float32, m)
	for o := 0; o < m; o++ {
		a := float64(scale[o]) / math.Sqrt(float64(vr[o])+eps)
		for i, v := range wt.F[o*per : (o+1)*per] {
			w2.F[o*per+i] = float32(float64(v) * a)
		}
		b := 0.0
		if bias != nil {
			b = float64(bias[o])
		}
		b2[o] = float32((b-float64(mean[o]))*a + float64(shift[o]))
	}
	return w2, b2
}

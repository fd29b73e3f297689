package graph

import (
	"fmt"
	"slices"

	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

// spelledLayerNorm is a LayerNormalization over the last axis written out
// in elementary ops, as PyTorch exports nn.LayerNorm below opset 17 (which
// has no LayerNormalization):
//
//	m = ReduceMean(x, axes=[-1]); d = Sub(x, m); v = ReduceMean(Pow(d, 2), axes=[-1])
//	y = Add(Mul(Div(d, Sqrt(Add(v, eps))), γ), β)
//
// A skeleton shows it as the one LayerNormalization node it computes, so
// that exports at opset 13 and 17 compare equal.
type spelledLayerNorm struct {
	x, out      string
	gamma, beta nodeInput // where γ and β are read
	eps         float32
	nodes       []int // the nine nodes; the last (the final Add) stands for all
}

// nodeInput is one input of one node.
type nodeInput struct{ node, input int }

// spelledLayerNorms finds the spelled-out LayerNormalizations of the graph,
// by their final node.
func (v *view) spelledLayerNorms() map[int]*spelledLayerNorm {
	readers := map[string][]int{}
	for i, n := range v.nodes {
		if v.computes(i) {
			for _, in := range n.GetInput() {
				readers[in] = append(readers[in], i)
			}
		}
	}
	for _, o := range v.outputs {
		readers[o] = append(readers[o], -1)
	}
	// only returns the single computing reader of value name, if op.
	only := func(name, op string) (int, *onnxpb.NodeProto) {
		if r := readers[name]; len(r) == 1 && r[0] >= 0 && isOp(v.nodes[r[0]], op) && len(v.nodes[r[0]].GetOutput()) == 1 {
			return r[0], v.nodes[r[0]]
		}
		return -1, nil
	}
	scalar := func(name string) (float64, bool) {
		t := v.sources.Tensor(name)
		if t == nil || !onnx.IsFloat(onnx.DataType(t)) {
			return 0, false
		}
		if n, err := onnx.NumElements(t.GetDims()); err != nil || n != 1 {
			return 0, false
		}
		vals, err := v.m.Float64s(t)
		if err != nil || len(vals) != 1 {
			return 0, false
		}
		return vals[0], true
	}
	lastAxisMean := func(n *onnxpb.NodeProto) bool {
		if !isOp(n, "ReduceMean") || attrInt(n, "keepdims", 1) != 1 {
			return false
		}
		axes, ok := attrInts(n, "axes")
		if !ok {
			t := v.sources.Tensor(input(n, 1))
			if t == nil {
				return false
			}
			var err error
			if axes, err = v.m.Int64s(t); err != nil {
				return false
			}
		}
		return slices.Equal(axes, []int64{-1})
	}
	found := map[int]*spelledLayerNorm{}
	for r1, mean := range v.nodes {
		if !v.computes(r1) || !lastAxisMean(mean) || len(mean.GetOutput()) != 1 {
			continue
		}
		x := input(mean, 0)
		s, sub := only(output(mean, 0), "Sub")
		if sub == nil || input(sub, 0) != x || input(sub, 1) != output(mean, 0) {
			continue
		}
		d := output(sub, 0)
		rs := readers[d]
		if len(rs) != 2 || rs[0] < 0 || rs[1] < 0 {
			continue
		}
		p, div := rs[0], rs[1]
		if !isOp(v.nodes[p], "Pow") {
			p, div = div, p
		}
		pow, dv := v.nodes[p], v.nodes[div]
		if !isOp(pow, "Pow") || !isOp(dv, "Div") || input(pow, 0) != d || input(dv, 0) != d || len(pow.GetOutput()) != 1 {
			continue
		}
		if e, ok := scalar(input(pow, 1)); !ok || e != 2 {
			continue
		}
		r2, varMean := only(output(pow, 0), "ReduceMean")
		if varMean == nil || !lastAxisMean(varMean) {
			continue
		}
		a1, addEps := only(output(varMean, 0), "Add")
		if addEps == nil || input(addEps, 0) != output(varMean, 0) {
			continue
		}
		eps, ok := scalar(input(addEps, 1))
		if !ok {
			continue
		}
		q, sqrt := only(output(addEps, 0), "Sqrt")
		if sqrt == nil || input(dv, 1) != output(sqrt, 0) || len(readers[output(sqrt, 0)]) != 1 {
			continue
		}
		m, mul := only(output(dv, 0), "Mul")
		if mul == nil || input(mul, 0) != output(dv, 0) || !v.isWeight(input(mul, 1)) {
			continue
		}
		a2, addBeta := only(output(mul, 0), "Add")
		if addBeta == nil || input(addBeta, 0) != output(mul, 0) || !v.isWeight(input(addBeta, 1)) {
			continue
		}
		found[a2] = &spelledLayerNorm{x: x, out: output(addBeta, 0), gamma: nodeInput{m, 1}, beta: nodeInput{a2, 1},
			eps: float32(eps), nodes: []int{r1, s, p, r2, a1, q, div, m, a2}}
	}
	return found
}

// key is the op key of the LayerNormalization node ln computes (as opKey
// writes it for one).
func (ln *spelledLayerNorm) key() string {
	return fmt.Sprintf("LayerNormalization axis=i:-1 epsilon=f:%v stash_type=i:1", ln.eps)
}

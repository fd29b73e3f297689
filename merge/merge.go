// Package merge averages models of one architecture weight by weight, and
// merges N models after aligning them to each other (weight matching, then
// the average).
package merge

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/internal/sitelayout"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

// Average returns a copy of models[0] whose floating-point weights are the
// weighted average Σ wᵢ·Wᵢ of the models' (weights are normalised to sum to
// one). The models must share one architecture and already be aligned.
// Weights are matched by the node inputs that read them, so the models may
// name or share them differently; where models[0] shares a tensor between
// inputs that another model keeps apart, the output gets a copy per input
// group.
// Averaging runs in float64 and is written back in each tensor's own type,
// so fp16/bf16 models lose nothing to intermediate rounding. The output
// keeps models[0]'s graph and storage: where models[0] stores a weight in
// float32 and another model in fp16 behind a Cast (or the other way
// round), the average is written in models[0]'s type. Tensors of
// other types (e.g. int64 shape constants) must be identical in all models.
func Average(models []*onnx.Model, weights []float64) (*onnx.Model, error) {
	if len(models) == 0 {
		return nil, fmt.Errorf("no models to average")
	}
	if weights == nil {
		weights = make([]float64, len(models))
		for i := range weights {
			weights[i] = 1
		}
	}
	if len(weights) != len(models) {
		return nil, fmt.Errorf("%d weights for %d models", len(weights), len(models))
	}
	sum := 0.0
	for _, w := range weights {
		if math.IsNaN(w) || math.IsInf(w, 0) {
			return nil, fmt.Errorf("weight %v is not finite", w)
		}
		sum += w
	}
	if sum == 0 {
		return nil, fmt.Errorf("weights sum to zero")
	}
	out := models[0].Clone()
	og := out.Proto.GetGraph()
	nodes := og.GetNode()
	srcs := make([]*graph.Sources, len(models))
	all := make([]map[string]*onnxpb.TensorProto, len(models))
	corr := make([]*graph.Correspondence, len(models))
	for i, m := range models {
		srcs[i] = graph.NewSources(m)
		all[i] = srcs[i].Weights()
		if i > 0 {
			c, err := graph.Correspond(models[0], m)
			if err != nil {
				return nil, err
			}
			corr[i] = c
		}
	}
	so := graph.NewSources(out)
	ow := so.Weights()
	// Weights are averaged by the node inputs that read them, so models
	// may name, share and store their weights differently (see
	// permute.SameArchitecture): sourcesAt gives, for an input that reads the
	// output's tensor name, the tensor each model reads there.
	readers := map[string][]sitelayout.NodeInput{}
	for ni, n := range nodes {
		if so.Forwarder(ni) {
			continue // a forwarder, not a reader
		}
		for ii, in := range n.Input {
			if tn := so.Name(in); tn != "" {
				readers[tn] = append(readers[tn], sitelayout.NodeInput{Node: ni, Input: ii})
			}
		}
	}
	isOutput := map[string]bool{}
	for _, o := range og.GetOutput() {
		isOutput[so.Name(o.GetName())] = true
	}
	sourcesAt := func(name string, u sitelayout.NodeInput) ([]string, error) {
		src := make([]string, len(models))
		src[0] = name
		for i := 1; i < len(models); i++ {
			if u.Node < 0 {
				src[i] = srcs[i].Name(name) // not read by a node: by name
			} else if ni, ii, ok := corr[i].Input(u.Node, u.Input); ok {
				src[i] = srcs[i].Name(models[i].Proto.Graph.Node[ni].Input[ii])
			} else {
				// An input with no counterpart (a constant inside an op
				// another opset spells out, an attribute it takes as an
				// input): part of the computation both models agree
				// on, not a learned weight.
				return nil, nil
			}
			if src[i] == "" {
				if u.Node < 0 {
					return nil, fmt.Errorf("weight %q is in %s but not in %s", name, models[0].Name, models[i].Name)
				}
				return nil, fmt.Errorf("node %d input %d reads weight %q in %s but no weight in %s", u.Node, u.Input, name, models[0].Name, models[i].Name)
			}
		}
		return src, nil
	}
	names := sitelayout.NamesOf(out)
	for _, name := range slices.Sorted(maps.Keys(ow)) {
		rs := readers[name]
		if len(rs) == 0 {
			// Read by no node (a graph output, or left unread, e.g. by
			// permute.Apply's copies): averaged with the tensors of that name,
			// kept as it is if some model has none (it computes nothing).
			if !readByName(name, srcs) {
				if isOutput[name] {
					return nil, fmt.Errorf("weight %q is a graph output of %s but not a weight of every model", name, models[0].Name)
				}
				continue
			}
			rs = []sitelayout.NodeInput{{Node: -1, Input: -1}}
		}
		// Readers that read the same tensors in every model share one
		// average; if the models disagree, each further set of sources
		// gets its own copy of the tensor in the output, in the element
		// type its readers read (see permute.Apply).
		var keys []string
		groups := map[string][]sitelayout.NodeInput{}
		srcOf := map[string][]string{}
		for _, u := range rs {
			src, err := sourcesAt(name, u)
			if err != nil {
				return nil, err
			}
			if src == nil {
				continue // kept as models[0] has it
			}
			k := strings.Join(src, "\x00")
			if u.Node >= 0 {
				k += "\x00" + so.ElemType(nodes[u.Node].Input[u.Input]).String()
			}
			if groups[k] == nil {
				keys = append(keys, k)
				srcOf[k] = src
			}
			groups[k] = append(groups[k], u)
		}
		for gi, k := range keys {
			target := ow[name]
			if gi > 0 {
				u := groups[k][0]
				dt := so.ElemType(nodes[u.Node].Input[u.Input])
				var err error
				if target, err = sitelayout.CopyAs(out, ow[name], names.Unique(name+"_merged"+strconv.Itoa(gi)), dt); err != nil {
					return nil, err
				}
				for _, u := range groups[k] {
					nodes[u.Node].Input[u.Input] = target.GetName()
				}
			}
			if err := averageInto(out, target, models, all, srcOf[k], weights, sum); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// readByName reports whether every model has a weight called name.
func readByName(name string, srcs []*graph.Sources) bool {
	for _, s := range srcs {
		if s.Name(name) == "" {
			return false
		}
	}
	return true
}

// averageInto sets target (a tensor of out) to Σ weights[i]/sum ·
// models[i]'s tensor src[i], in float64, or, for a tensor that is not
// floating point, checks that all the models have the same bytes.
func averageInto(out *onnx.Model, target *onnxpb.TensorProto, models []*onnx.Model, all []map[string]*onnxpb.TensorProto, src []string, weights []float64, sum float64) error {
	t0 := all[0][src[0]]
	if !onnx.IsFloat(onnx.DataType(t0)) {
		ref, err := models[0].TensorBytes(t0)
		if err != nil {
			return err
		}
		for i := 1; i < len(models); i++ {
			other, err := models[i].TensorBytes(all[i][src[i]])
			if err != nil {
				return err
			}
			if !bytes.Equal(ref, other) {
				return fmt.Errorf("non-float weight %q (%v) differs between %s and %s; cannot average it", src[0], onnx.DataType(t0), models[0].Name, models[i].Name)
			}
		}
		return nil
	}
	acc, err := models[0].Float64s(t0)
	if err != nil {
		return err
	}
	for k := range acc {
		acc[k] *= weights[0] / sum
	}
	for i := 1; i < len(models); i++ {
		v, err := models[i].Float64s(all[i][src[i]])
		if err != nil {
			return err
		}
		if t := all[i][src[i]]; len(v) != len(acc) || !slices.Equal(t.Dims, t0.Dims) {
			return fmt.Errorf("weight %q is %v in %s, but %q is %v in %s", src[0], t0.Dims, models[0].Name, src[i], t.Dims, models[i].Name)
		}
		f := weights[i] / sum
		for k := range acc {
			acc[k] += f * v[k]
		}
	}
	return out.SetFloat64s(target, acc)
}

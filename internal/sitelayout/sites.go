// Package sitelayout holds what the permuting packages share about weight
// sites: finding the tensor a site reads, checking that an analysis fits a
// model, the memory layout of a permuted axis (offsets, contiguous runs,
// gathers), block-structured permutations and their exact block-set
// assignment.
package sitelayout

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

// NodeInput is one node input that reads a weight tensor (Node -1: a
// graph output that is a weight).
type NodeInput struct{ Node, Input int }

// CheckFit checks that the permutation groups of ga fit every one of
// models: each group member is a weight of the model, holds the group on
// its axis, and has the same dims in all the models. Functions that take
// an analysis of one model and apply it to others call it first, so that
// models of another architecture (other widths, say) give an error rather
// than a panic in the kernels.
func CheckFit(ga *graph.Analysis, models ...*onnx.Model) error {
	if ga == nil {
		return errors.New("no analysis given")
	}
	type modelSites struct {
		on  *graph.Analysis // ga in the model's own form
		src *graph.Sources
	}
	ms := make([]modelSites, len(models))
	for i, m := range models {
		if m == nil || m.Proto.GetGraph() == nil {
			return fmt.Errorf("model %d has no graph", i+1)
		}
		on, err := ga.For(m)
		if err != nil {
			return fmt.Errorf("%s: %w", m.Name, err)
		}
		ms[i] = modelSites{on, graph.NewSources(m)}
	}
	for gi, grp := range ga.Groups {
		for k, s := range grp.Weights {
			var first *onnxpb.TensorProto
			for i, m := range models {
				site := ms[i].on.Groups[gi].Weights[k]
				t := UseTensor(m, ms[i].src, site)
				if t == nil {
					return fmt.Errorf("%s: permutation group %d: node %d input %d does not read a weight", m.Name, gi, site.Node, site.Input)
				}
				units := grp.Size
				if s.Within {
					units = grp.Size / max(grp.Blocks, 1) // one block's units (a grouped convolution's weight)
				}
				if s.Axis < 0 || s.Axis >= len(t.Dims) || s.Offset < 0 ||
					int64(s.Offset)+int64(units)*int64(max(s.Block, 1))*int64(max(s.Repeat, 1)) > t.Dims[s.Axis] {
					return fmt.Errorf("%s: weight %q %v does not hold permutation group %d (%d units) on axis %d", m.Name, t.GetName(), t.Dims, gi, units, s.Axis)
				}
				if first == nil {
					first = t
				} else if !slices.Equal(t.Dims, first.Dims) {
					return fmt.Errorf("weight %q is %v in %s but %q is %v in %s", first.GetName(), first.Dims, models[0].Name, t.GetName(), t.Dims, m.Name)
				}
			}
		}
	}
	return nil
}

// IsIdentity reports whether p[i] == i for all i: an identity permutation,
// or column offsets that read a matrix in order.
func IsIdentity(p []int) bool {
	for i, j := range p {
		if i != j {
			return false
		}
	}
	return true
}

// UseTensor returns the tensor that node s.Node reads at input s.Input,
// looking through forwarders (see graph.Sources). It is s.Tensor in the
// model the analysis was made on, and the right copy in a model where
// Apply split a shared tensor between users.
func UseTensor(m *onnx.Model, src *graph.Sources, s graph.WeightSite) *onnxpb.TensorProto {
	nodes := m.Proto.GetGraph().GetNode()
	if s.Node < 0 || s.Node >= len(nodes) || s.Input < 0 || s.Input >= len(nodes[s.Node].Input) {
		return nil
	}
	return src.Tensor(nodes[s.Node].Input[s.Input])
}

// ContextErr is ctx's error, nil for a nil ctx.
func ContextErr(ctx context.Context) error {
	if ctx == nil {
		return nil
	}
	return ctx.Err()
}

// IdentityPerm returns the identity permutation of n units.
func IdentityPerm(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	return p
}

// CopyAs adds to m a copy of tensor t named name, of element type dt: t's
// own type (a bit-exact copy) or the floating-point type a Cast of t
// gives, with the values that Cast computes (rounded to nearest even).
func CopyAs(m *onnx.Model, t *onnxpb.TensorProto, name string, dt onnxpb.TensorProto_DataType) (*onnxpb.TensorProto, error) {
	if dt == onnx.DataType(t) {
		return m.CopyTensor(t, name), nil
	}
	v, err := m.Float64s(t)
	if err != nil {
		return nil, err
	}
	c := &onnxpb.TensorProto{Name: proto.String(name), Dims: slices.Clone(t.Dims), DataType: proto.Int32(int32(dt)), RawData: []byte{}}
	if err := m.SetFloat64s(c, v); err != nil {
		return nil, err
	}
	m.Proto.Graph.Initializer = append(m.Proto.Graph.Initializer, c)
	return c, nil
}

// UniqueName returns base, or base with a suffix, that names no value of m.
func UniqueName(m *onnx.Model, base string) string {
	return NamesOf(m).Unique(base)
}

// Names is a set of value names of a model. A command that adds many
// values keeps one and names each with Unique: building the set anew for
// every name (UniqueName) was quadratic, a quarter of applying
// permutations to DenseNet-121, which copies dozens of shared weights.
type Names map[string]bool

// NamesOf returns the names of m's initializers, node outputs and inputs.
func NamesOf(m *onnx.Model) Names {
	used := Names{}
	g := m.Proto.GetGraph()
	for _, t := range g.GetInitializer() {
		used[t.GetName()] = true
	}
	for _, n := range g.GetNode() {
		for _, o := range n.Output {
			used[o] = true
		}
	}
	for _, v := range g.GetInput() {
		used[v.GetName()] = true
	}
	return used
}

// Unique returns base, or base with a suffix, that is not in ns, and
// adds it to ns.
func (ns Names) Unique(base string) string {
	name := base
	for i := 2; ns[name]; i++ {
		name = base + "_" + strconv.Itoa(i)
	}
	ns[name] = true
	return name
}

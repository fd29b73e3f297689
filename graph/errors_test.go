package graph_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

func TestMalformedGraphs(t *testing.T) {
	cases := []struct {
		name  string
		build func() *builder
		err   string
		is    error
	}{
		{
			name: "cycle",
			build: func() *builder {
				return newBuilder(17).in("x", -1, 4).out("y").
					node("Add", "x,b", "a").node("Relu", "a", "b").node("Relu", "b", "y")
			},
			err: "cycle", is: graph.ErrMalformed,
		},
		{
			name: "self loop",
			build: func() *builder {
				return newBuilder(17).in("x", -1, 4).out("y").node("Add", "x,y", "y")
			},
			err: "cycle", is: graph.ErrMalformed,
		},
		{
			name: "dangling input",
			build: func() *builder {
				return newBuilder(17).in("x", -1, 4).out("y").node("Add", "x,ghost", "y")
			},
			err: `node "y" reads "ghost", which is not a graph input, initializer or node output`, is: graph.ErrMalformed,
		},
		{
			name: "undefined graph output",
			build: func() *builder {
				return newBuilder(17).in("x", -1, 4).out("y", "z").node("Relu", "x", "y")
			},
			err: `graph output "z" is not defined`, is: graph.ErrMalformed,
		},
		{
			name: "two producers",
			build: func() *builder {
				return newBuilder(17).in("x", -1, 4).out("y").node("Relu", "x", "y").node("Tanh", "x", "y")
			},
			err: `"y" is produced by both`, is: graph.ErrMalformed,
		},
		{
			name: "node output shadows a graph input",
			build: func() *builder {
				return newBuilder(17).in("x", -1, 4).out("y").node("Relu", "y", "x").node("Relu", "x", "y")
			},
			err: `graph input "x" is also an output`, is: graph.ErrMalformed,
		},
		{
			name: "subgraph reads an undefined value",
			build: func() *builder {
				body := &onnxpb.GraphProto{Name: proto.String("then"),
					Node:   []*onnxpb.NodeProto{{OpType: proto.String("Relu"), Input: []string{"nowhere"}, Output: []string{"t"}}},
					Output: []*onnxpb.ValueInfoProto{valueInfo("t", onnxpb.TensorProto_FLOAT, nil)}}
				return newBuilder(17).in("x", -1, 4).in("c").out("y").
					node("If", "c", "y", &onnxpb.AttributeProto{Name: proto.String("then_branch"), G: body, Type: onnxpb.AttributeProto_GRAPH.Enum()},
						&onnxpb.AttributeProto{Name: proto.String("else_branch"), G: body, Type: onnxpb.AttributeProto_GRAPH.Enum()})
			},
			err: `a subgraph of node "y" reads "nowhere"`, is: graph.ErrMalformed,
		},
		{
			name: "add of incompatible shapes",
			build: func() *builder {
				return newBuilder(17).in("x", -1, 4).in("z", -1, 5).out("y").node("Add", "x,z", "y")
			},
			err: "dimensions 4 and 5 do not broadcast", is: graph.ErrShape,
		},
		{
			name: "gemm inner dimensions",
			build: func() *builder {
				return newBuilder(17).in("x", -1, 4).out("y").w("W", 6, 5).node("Gemm", "x,W", "y", ai("transB", 1))
			},
			err: "Gemm inner dimensions 4 and 5 differ", is: graph.ErrShape,
		},
		{
			name: "gemm weight of rank 3",
			build: func() *builder {
				return newBuilder(17).in("x", -1, 4).out("y").w("W", 6, 4, 1).node("Gemm", "x,W", "y")
			},
			err: "Gemm needs rank-2 A and B", is: graph.ErrShape,
		},
		{
			name: "conv channels",
			build: func() *builder {
				return newBuilder(17).in("x", -1, 3, 5, 5).out("y").w("W", 6, 4, 3, 3).node("Conv", "x,W", "y")
			},
			err: "3 input channels", is: graph.ErrShape,
		},
		{
			name: "conv weight rank",
			build: func() *builder {
				return newBuilder(17).in("x", -1, 3, 5, 5).out("y").w("W", 6, 3).node("Conv", "x,W", "y")
			},
			err: "do not make a convolution", is: graph.ErrShape,
		},
		{
			name: "concat axis out of range",
			build: func() *builder {
				return newBuilder(17).in("x", -1, 4).out("y").node("Concat", "x,x", "y", ai("axis", 5))
			},
			err: "axis 5 is out of range for rank 2",
		},
		{
			name: "transpose perm not a permutation",
			build: func() *builder {
				return newBuilder(17).in("x", -1, 4).out("y").node("Transpose", "x", "y", ais("perm", 0, 0))
			},
			err: "is not a permutation",
		},
		{
			name: "reshape to a different size",
			build: func() *builder {
				return newBuilder(17).in("x", 2, 4).out("y").ints("s", 3, 3).node("Reshape", "x,s", "y")
			},
			err: "cannot reshape", is: graph.ErrShape,
		},
		{
			name: "value_info contradicts the inferred shape",
			build: func() *builder {
				return newBuilder(17).in("x", -1, 4).out("y").w("W", 4, 6).
					node("MatMul", "x,W", "h").vi("h", -1, 7).node("Relu", "h", "y")
			},
			err: `"h" dimension 1 is 6, but value_info declares 7`, is: graph.ErrShape,
		},
		{
			name: "batch norm parameter of the wrong size",
			build: func() *builder {
				return newBuilder(17).in("x", -1, 3, 4, 4).out("y").w("W", 8, 3, 1, 1).
					w("s", 7).w("b", 8).w("m", 8).w("var", 8).
					node("Conv", "x,W", "c").node("BatchNormalization", "c,s,b,m,var", "y")
			},
			err: `axis 0 of "s" has 7 entries, but is tied to 8 channels`, is: graph.ErrShape,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := graph.Analyze(tc.build().model())
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("got %v, want an error containing %q", err, tc.err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans several lines: %q", err)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %q does not wrap %v", err, tc.is)
			}
		})
	}
}

func TestNoGraph(t *testing.T) {
	for _, m := range []*onnx.Model{nil, {}, {Proto: &onnxpb.ModelProto{}}} {
		if _, err := graph.Analyze(m); err == nil {
			t.Errorf("%v: no error", m)
		}
	}
}

// mutate changes one random thing of a graph: drops, scrambles or
// replaces attributes, reshapes or retypes initializers, rewires inputs,
// renames ops, removes nodes.
func mutate(r *rand.Rand, g *onnxpb.GraphProto) string {
	if len(g.Node) == 0 {
		return "no nodes"
	}
	n := g.Node[r.IntN(len(g.Node))]
	names := []string{""}
	for _, in := range g.Input {
		names = append(names, in.GetName())
	}
	for _, t := range g.Initializer {
		names = append(names, t.GetName())
	}
	for _, x := range g.Node {
		names = append(names, x.Output...)
	}
	ops := []string{"Relu", "Add", "Gemm", "MatMul", "Conv", "ConvTranspose", "BatchNormalization", "Flatten", "Reshape",
		"Concat", "Split", "Slice", "Transpose", "Softmax", "LayerNormalization", "ReduceMean", "Gather", "Unsqueeze",
		"Squeeze", "MaxPool", "GlobalAveragePool", "Expand", "Pad", "Tile", "Resize", "GroupNormalization", "Shape", "Where"}
	switch k := r.IntN(9); k {
	case 0:
		if len(n.Attribute) > 0 {
			i := r.IntN(len(n.Attribute))
			n.Attribute = append(n.Attribute[:i], n.Attribute[i+1:]...)
			return "drop attribute of " + n.GetName()
		}
		n.Attribute = append(n.Attribute, ais("perm", int64(r.IntN(5)-2), int64(r.IntN(5)-2)), ai("axis", int64(r.IntN(11)-5)))
		return "add attributes to " + n.GetName()
	case 1:
		for _, a := range n.Attribute {
			a.I = proto.Int64(int64(r.IntN(21) - 10))
			for i := range a.Ints {
				a.Ints[i] = int64(r.IntN(21) - 10)
			}
			if r.IntN(3) == 0 {
				a.Ints = append(a.Ints, int64(r.IntN(7)-3))
			}
		}
		return "scramble attributes of " + n.GetName()
	case 2:
		if len(g.Initializer) > 0 {
			t := g.Initializer[r.IntN(len(g.Initializer))]
			total := int64(1)
			for _, d := range t.Dims {
				total *= d
			}
			switch r.IntN(3) {
			case 0:
				t.Dims = []int64{total}
			case 1:
				t.Dims = append([]int64{1}, t.Dims...)
			default:
				if len(t.Dims) > 1 {
					t.Dims[0], t.Dims[len(t.Dims)-1] = t.Dims[len(t.Dims)-1], t.Dims[0]
				}
			}
			return "reshape initializer " + t.GetName()
		}
	case 3:
		if len(n.Input) > 0 {
			n.Input[r.IntN(len(n.Input))] = names[r.IntN(len(names))]
			return "rewire an input of " + n.GetName()
		}
	case 4:
		n.OpType = proto.String(ops[r.IntN(len(ops))])
		return "change op of " + n.GetName() + " to " + n.GetOpType()
	case 5:
		i := r.IntN(len(g.Node))
		g.Node = append(g.Node[:i], g.Node[i+1:]...)
		return "remove a node"
	case 6:
		if len(n.Input) > 1 {
			n.Input = n.Input[:len(n.Input)-1]
			return "drop last input of " + n.GetName()
		}
	case 7:
		n.Input = append(n.Input, names[r.IntN(len(names))])
		return "add an input to " + n.GetName()
	case 8:
		for _, a := range n.Attribute {
			a.Ints = nil
			a.T = nil
		}
		return "clear list attributes of " + n.GetName()
	}
	return "nothing"
}

// TestMutationsNeverPanic analyses thousands of randomly broken variants of
// the rule test graphs: each must give a result or an error, never a panic.
func TestMutationsNeverPanic(t *testing.T) {
	r := rand.New(rand.NewPCG(42, 43))
	rounds := 150
	if testing.Short() {
		rounds = 20
	}
	analysed := 0
	for _, tc := range ruleCases() {
		base := tc.build().proto()
		for i := range rounds {
			mp := proto.Clone(base).(*onnxpb.ModelProto)
			var what []string
			for range 1 + r.IntN(3) {
				what = append(what, mutate(r, mp.Graph))
			}
			data, err := proto.Marshal(mp)
			if err != nil {
				t.Fatal(err)
			}
			m, err := onnx.Parse(data, "mutant", "")
			if err != nil {
				continue // refused at load time already
			}
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("%s, mutant %d (%s): panic: %v", tc.name, i, strings.Join(what, "; "), p)
					}
				}()
				a, err := graph.Analyze(m)
				if err == nil {
					_ = a.Summary()
				} else if strings.Contains(err.Error(), "\n") {
					t.Errorf("multi-line error %q", err)
				}
			}()
			analysed++
		}
	}
	t.Logf("%d mutants analysed", analysed)
}

// FuzzAnalyze feeds arbitrary bytes that parse as a model to Analyze; the
// seeds are the rule test graphs.
func FuzzAnalyze(f *testing.F) {
	for _, tc := range ruleCases() {
		data, err := proto.Marshal(tc.build().proto())
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := onnx.Parse(data, "fuzz", "")
		if err != nil {
			return
		}
		if a, err := graph.Analyze(m); err == nil {
			_ = fmt.Sprint(a.Summary())
		}
	})
}

package graph_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/internal/ortref"
	"github.com/onnx-rebasin/onnx-rebasin/npy"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
	"github.com/onnx-rebasin/onnx-rebasin/permute"
)

func TestMain(m *testing.M) {
	code := m.Run()
	ortref.Shutdown()
	os.Exit(code)
}

// ruleCase is one small graph with the exact groups and frozen entries
// the analysis must find.
type ruleCase struct {
	name  string
	build func() *builder
	// groups as rendered by describeGroups, in order.
	groups []string
	// frozen entries "value#axis(size)" each followed by "~" and a part of
	// the reason, in order.
	frozen []string
	// err, when set, is part of the error Analyze must return.
	err string
	// noORT skips the ONNX Runtime check (custom ops the runtime lacks).
	noORT bool
}

// Common pieces.

// mlp2 builds x(N,in) -> Gemm -> act... -> Gemm -> y with hidden width h.
func convIn(b *builder, c int64) *builder { return b.in("x", -1, c, 6, 6) }

func ruleCases() []ruleCase {
	return []ruleCase{
		{
			name: "gemm transB (torch Linear)",
			build: func() *builder {
				return newBuilder(17).in("x", -1, 4).out("y").
					w("W1", 6, 4).w("B1", 6).w("W2", 3, 6).w("B2", 3).
					node("Gemm", "x,W1,B1", "h", ai("transB", 1)).
					node("Relu", "h", "r").
					node("Gemm", "r,W2,B2", "y", ai("transB", 1))
			},
			groups: []string{"6: W1#0 B1#0 W2#1"},
			frozen: []string{`x#1(4)~graph input "x"`, `y#1(3)~graph output "y"`},
		},
		{
			name: "gemm plain, transA, 2-D bias",
			build: func() *builder {
				return newBuilder(17).in("x", -1, 4).out("y").
					w("W1", 4, 6).w("B1", 1, 6).w("W2", 6, 3).
					node("Transpose", "x", "xt").
					node("Gemm", "xt,W1,B1", "h", ai("transA", 1)).
					node("Tanh", "h", "r").
					node("Gemm", "r,W2", "y")
			},
			groups: []string{"6: W1#1 B1#1 W2#0"},
			frozen: []string{`x#1(4)~graph input`, `y#1(3)~graph output`},
		},
		{
			name: "matmul with initializer and bias add",
			build: func() *builder {
				return newBuilder(17).in("x", -1, 5, 4).out("y").
					w("W1", 4, 6).w("B1", 6).w("W2", 6, 3).
					node("MatMul", "x,W1", "m").
					node("Add", "B1,m", "h").
					node("Relu", "h", "r").
					node("MatMul", "r,W2", "y")
			},
			groups: []string{"6: W1#1 B1#0 W2#0"},
			frozen: []string{`x#2(4)~graph input`, `y#2(3)~graph output`},
		},
		{
			name: "matmul behind a transpose of an initializer",
			build: func() *builder {
				return newBuilder(17).in("x", -1, 4).out("y").
					w("Wt", 6, 4).w("W2t", 3, 6).
					node("Transpose", "Wt", "W", ais("perm", 1, 0)).
					node("MatMul", "x,W", "h").
					node("Sigmoid", "h", "r").
					node("Transpose", "W2t", "W2").
					node("MatMul", "r,W2", "y")
			},
			groups: []string{"6: Wt#0 W2t#1"},
			frozen: []string{`x#1(4)~graph input`, `y#1(3)~graph output`},
		},
		{
			name: "single-head attention: matmul of two activations",
			build: func() *builder {
				return newBuilder(17).in("x", -1, 5, 4).out("y").
					w("Wq", 4, 8).w("Wk", 4, 8).w("Wv", 4, 6).w("Wo", 6, 4).
					node("MatMul", "x,Wq", "q").
					node("MatMul", "x,Wk", "k").
					node("MatMul", "x,Wv", "v").
					node("Transpose", "k", "kt", ais("perm", 0, 2, 1)).
					node("MatMul", "q,kt", "s").
					node("Softmax", "s", "p", ai("axis", -1)).
					node("MatMul", "p,v", "a").
					node("MatMul", "a,Wo", "o").
					node("Add", "x,o", "y")
			},
			groups: []string{"8: Wq#1 Wk#1", "6: Wv#1 Wo#0"},
			frozen: []string{`x#2(4)~graph input`},
		},
		{
			name: "conv, relu, conv",
			build: func() *builder {
				return convIn(newBuilder(17), 3).out("y").
					w("W1", 8, 3, 3, 3).w("B1", 8).w("W2", 4, 8, 1, 1).
					node("Conv", "x,W1,B1", "c", ais("pads", 1, 1, 1, 1)).
					node("Relu", "c", "r").
					node("Conv", "r,W2", "y")
			},
			groups: []string{"8: W1#0 B1#0 W2#1"},
			frozen: []string{`x#1(3)~graph input`, `y#1(4)~graph output`},
		},
		{
			name: "conv transpose: weight axes C × M",
			build: func() *builder {
				return newBuilder(17).in("x", -1, 3, 4, 4).out("y").
					w("W1", 3, 8, 2, 2).w("B1", 8).w("W2", 4, 8, 1, 1).
					node("ConvTranspose", "x,W1,B1", "c", ais("strides", 2, 2)).
					node("Relu", "c", "r").
					node("Conv", "r,W2", "y")
			},
			groups: []string{"8: W1#1 B1#0 W2#1"},
			frozen: []string{`x#1(3)~graph input`, `y#1(4)~graph output`},
		},
		{
			name: "depthwise conv shares its input's group",
			build: func() *builder {
				return convIn(newBuilder(17), 3).out("y").
					w("Wa", 8, 3, 1, 1).w("Wd", 8, 1, 3, 3).w("Bd", 8).w("Wb", 4, 8, 1, 1).
					node("Conv", "x,Wa", "a").
					node("Relu", "a", "ra").
					node("Conv", "ra,Wd,Bd", "d", ai("group", 8), ais("pads", 1, 1, 1, 1)).
					node("Clip", "d", "rd").
					node("Conv", "rd,Wb", "y")
			},
			groups: []string{"8: Wa#0 Wd#0 Bd#0 Wb#1"},
			frozen: []string{`x#1(3)~graph input`, `y#1(4)~graph output`},
		},
		{
			name: "grouped conv: input and output blocks move together, input channels alike in every block",
			build: func() *builder {
				return convIn(newBuilder(17), 3).out("y").
					w("Wa", 8, 3, 1, 1).w("Wg", 6, 4, 3, 3).w("Wb", 4, 6, 1, 1).
					node("Conv", "x,Wa", "a").
					node("Relu", "a", "ra").
					node("Conv", "ra,Wg", "g", ai("group", 2)).
					node("Relu", "g", "rg").
					node("Conv", "rg,Wb", "y")
			},
			groups: []string{"8 (2 blocks, shared within): Wa#0 Wg#1/within", "6 (2 blocks): Wg#0 Wb#1"},
			frozen: []string{`x#1(3)~graph input`, `y#1(4)~graph output`},
		},
		{
			name: "grouped conv transpose: output channels move alike in every block",
			build: func() *builder {
				return convIn(newBuilder(17), 3).out("y").
					w("Wa", 4, 3, 1, 1).w("Wt", 4, 3, 2, 2).w("bt", 6).w("Wb", 5, 6, 1, 1).
					node("Conv", "x,Wa", "a").
					node("ConvTranspose", "a,Wt,bt", "t", ai("group", 2)).
					node("Conv", "t,Wb", "y")
			},
			groups: []string{"4 (2 blocks): Wa#0 Wt#0", "6 (2 blocks, shared within): Wt#1/within bt#0 Wb#1"},
			frozen: []string{`x#1(3)~graph input`, `y#1(5)~graph output`},
		},
		attentionCase("attention heads: Q·K and V·O groups share the head permutation", "",
			[]string{residual6, "4 (2 blocks): Wq#1 Wk#1", "4 (2 blocks): Wv#1 Wo#0"}, nil),
		attentionCase("attention with a per-head bias on the scores freezes the heads", "Add",
			[]string{residual6}, []string{`qa#2(4)~a weight is laid out along them`,
				`ka#2(4)~a weight is laid out along them`, `va#2(4)~a weight is laid out along them`,
				`q4#2(2)~a weight is laid out along them`, `vo#2(4)~a weight is laid out along them`}),
		// Σ over heads of the heads' dot products is the dot product of the
		// flat Q and K rows: the same permutation still holds.
		attentionCase("attention scores summed over the heads stay permutable", "ReduceSum",
			[]string{residual6, "4 (2 blocks): Wq#1 Wk#1", "4 (2 blocks): Wv#1 Wo#0"}, nil),
		// A weight along the units of every head (as rotary embeddings'
		// cos and sin): σ still moves the heads, their units stay put.
		attentionCase("a query scaled per unit keeps Q·K units in place within the heads", "ScaleQ",
			[]string{residual6, "4 (2 blocks, fixed within): Wq#1 Wk#1", "4 (2 blocks): Wv#1 Wo#0"},
			[]string{`q4#3(2)~units stay in place within the heads`}),
		// Grouped-query attention in the hand-written form (Hugging Face's
		// repeat_kv: Unsqueeze, Expand, Reshape): the query rows and the
		// output projection's inputs move with their K/V head, each K/V
		// unit standing for its copies.
		repeatKVCase("grouped-query attention (repeat_kv): query heads move with their K/V head", 2,
			[]string{residual8, "4 (2 blocks): Wq#1/r2 Wk#1", "4 (2 blocks): Wv#1 Wo#0/r2"}),
		repeatKVCase("multi-query attention (repeat_kv): one K/V head, plain groups", 1,
			[]string{residual8, "2: Wq#1/r4 Wk#1", "2: Wv#1 Wo#0/r4"}),
		{
			// Copies of channels that are not attention heads: the copies
			// could not follow a permutation of the channels.
			name: "channels repeated outside attention freeze",
			build: func() *builder {
				return newBuilder(17).in("x", -1, 4).out("y").
					w("W1", 4, 3).w("W2", 6, 5).ints("ax2", 2).ints("ex", 1, 3, 2).ints("flat", 0, 6).
					node("MatMul", "x,W1", "h").
					node("Unsqueeze", "h,ax2", "hu").
					node("Expand", "hu,ex", "he").
					node("Reshape", "he,flat", "hr").
					node("MatMul", "hr,W2", "y")
			},
			frozen: []string{`x#1(4)~graph input`, `h#1(3)~which only attention heads may be`,
				`hr#1(6)~which only attention heads may be`, `y#1(5)~graph output`},
		},
		attentionCase("a query averaged over the heads freezes them", "ReduceMeanQ",
			[]string{residual6}, []string{`qa#2(4)~meet another heads axis`, `ka#2(4)~meet another heads axis`,
				`va#2(4)~meet another heads axis`, `vo#2(4)~meet another heads axis`}),
		{
			name: "batch norm ties scale, bias, mean and var",
			build: func() *builder {
				return convIn(newBuilder(17), 3).out("y").
					w("W1", 8, 3, 3, 3).w("s", 8).w("b", 8).w("m", 8).w("var", 8).w("W2", 4, 8, 1, 1).
					node("Conv", "x,W1", "c").
					node("BatchNormalization", "c,s,b,m,var", "n").
					node("Relu", "n", "r").
					node("Conv", "r,W2", "y")
			},
			groups: []string{"8: W1#0 s#0 b#0 m#0 var#0 W2#1"},
			frozen: []string{`x#1(3)~graph input`, `y#1(4)~graph output`},
		},
		{
			name: "instance norm",
			build: func() *builder {
				return convIn(newBuilder(17), 3).out("y").
					w("W1", 8, 3, 3, 3).w("s", 8).w("b", 8).w("W2", 4, 8, 1, 1).
					node("Conv", "x,W1", "c").
					node("InstanceNormalization", "c,s,b", "n").
					node("Relu", "n", "r").
					node("Conv", "r,W2", "y")
			},
			groups: []string{"8: W1#0 s#0 b#0 W2#1"},
			frozen: []string{`x#1(3)~graph input`, `y#1(4)~graph output`},
		},
		{
			name: "group norm with 1 and C groups, frozen with 2",
			build: func() *builder {
				return convIn(newBuilder(18), 3).out("y").
					w("W1", 8, 3, 1, 1).w("s1", 1).w("b1", 1).
					w("W2", 8, 8, 1, 1).w("s2", 8).w("b2", 8).
					w("W3", 8, 8, 1, 1).w("s3", 2).w("b3", 2).w("W4", 4, 8, 1, 1).
					node("Conv", "x,W1", "c1").
					node("GroupNormalization", "c1,s1,b1", "n1", ai("num_groups", 1)).
					node("Conv", "n1,W2", "c2").
					node("GroupNormalization", "c2,s2,b2", "n2", ai("num_groups", 8)).
					node("Conv", "n2,W3", "c3").
					node("GroupNormalization", "c3,s3,b3", "n3", ai("num_groups", 2)).
					node("Conv", "n3,W4", "y")
			},
			groups: []string{"8: W1#0 W2#1", "8: W2#0 s2#0 b2#0 W3#1"},
			frozen: []string{`x#1(3)~graph input`, `c3#1(8)~num_groups=2`, `n3#1(8)~num_groups=2`, `y#1(4)~graph output`},
		},
		{
			name: "layer norm over the last axis",
			build: func() *builder {
				return newBuilder(17).in("x", -1, 5, 4).out("y").
					w("W1", 4, 6).w("g", 6).w("b", 6).w("W2", 6, 3).
					w("W3", 4, 6).w("g3", 5, 6).w("b3", 5, 6).w("W4", 6, 3).
					node("MatMul", "x,W1", "h").
					node("LayerNormalization", "h,g,b", "n", ai("axis", -1)).
					node("MatMul", "n,W2", "y1").
					node("MatMul", "x,W3", "h3").
					node("LayerNormalization", "h3,g3,b3", "n3", ai("axis", 1)).
					node("MatMul", "n3,W4", "y2").
					node("Add", "y1,y2", "y")
			},
			groups: []string{"6: W1#1 g#0 b#0 W2#0"},
			frozen: []string{`x#2(4)~graph input`, `y#2(3)~graph output`, `h3#2(6)~normalises over several axes`,
				`n3#2(6)~normalises over several axes`},
		},
		{
			name: "decomposed layer norm (opset 13)",
			build: func() *builder {
				return newBuilder(13).in("x", -1, 5, 4).out("y").
					w("W1", 4, 6).w("g", 6).w("b", 6).w("W2", 6, 3).scalar("two", 2).scalar("eps", 1e-5).
					node("MatMul", "x,W1", "h").
					node("ReduceMean", "h", "mu", ais("axes", -1)).
					node("Sub", "h,mu", "d").
					node("Pow", "d,two", "d2").
					node("ReduceMean", "d2", "var", ais("axes", -1)).
					node("Add", "var,eps", "ve").
					node("Sqrt", "ve", "sd").
					node("Div", "d,sd", "nrm").
					node("Mul", "nrm,g", "sc").
					node("Add", "sc,b", "n").
					node("MatMul", "n,W2", "y")
			},
			groups: []string{"6: W1#1 g#0 b#0 W2#0"},
			frozen: []string{`x#2(4)~graph input`, `y#2(3)~graph output`},
		},
		{
			name: "erf GELU, tanh GELU and SiLU subgraphs",
			build: func() *builder {
				return newBuilder(17).in("x", -1, 4).out("y").
					w("W1", 4, 6).w("B1", 6).w("W2", 6, 5).w("W3", 5, 7).w("W4", 7, 3).
					scalar("sqrt2", 1.4142135).scalar("one", 1).scalar("half", 0.5).
					scalar("c", 0.044715).scalar("three", 3).scalar("k", 0.7978846).
					// erf GELU: h * 0.5 * (1 + erf(h / sqrt2))
					node("MatMul", "x,W1", "m").node("Add", "m,B1", "h").
					node("Div", "h,sqrt2", "e1").node("Erf", "e1", "e2").node("Add", "e2,one", "e3").
					node("Mul", "h,e3", "e4").node("Mul", "e4,half", "g1").
					// tanh GELU: 0.5 * h * (1 + tanh(k * (h + c * h^3)))
					node("MatMul", "g1,W2", "h2").
					node("Pow", "h2,three", "t1").node("Mul", "t1,c", "t2").node("Add", "h2,t2", "t3").
					node("Mul", "t3,k", "t4").node("Tanh", "t4", "t5").node("Add", "one,t5", "t6").
					node("Mul", "half,h2", "t7").node("Mul", "t7,t6", "g2").
					// SiLU: h * sigmoid(h)
					node("MatMul", "g2,W3", "h3").node("Sigmoid", "h3", "s1").node("Mul", "h3,s1", "g3").
					node("MatMul", "g3,W4", "y")
			},
			groups: []string{"6: W1#1 B1#0 W2#0", "5: W2#1 W3#0", "7: W3#1 W4#0"},
			frozen: []string{`x#1(4)~graph input`, `y#1(3)~graph output`},
		},
		{
			name: "per-channel constants, PRelu, broadcast size-1 axis",
			build: func() *builder {
				return convIn(newBuilder(17), 3).out("y").
					w("W1", 8, 3, 1, 1).w("s", 8, 1, 1).w("t", 1, 8, 1, 1).w("slope", 8, 1, 1).w("W2", 4, 8, 1, 1).
					node("Conv", "x,W1", "c").
					node("Mul", "c,s", "cs").
					node("Add", "t,cs", "ct").
					node("PRelu", "ct,slope", "p").
					node("ReduceMean", "p", "mu", ais("axes", 1)).
					node("Sub", "p,mu", "d").
					node("Conv", "d,W2", "y")
			},
			groups: []string{"8: W1#0 s#0 t#1 slope#0 W2#1"},
			frozen: []string{`x#1(3)~graph input`, `y#1(4)~graph output`},
		},
		{
			name: "residual blocks tie the stream",
			build: func() *builder {
				return convIn(newBuilder(17), 3).out("y").
					w("Ws", 8, 3, 3, 3).w("Wa1", 6, 8, 3, 3).w("Wa2", 8, 6, 3, 3).
					w("Wb1", 5, 8, 3, 3).w("Wb2", 8, 5, 3, 3).w("Wo", 4, 8, 1, 1).
					node("Conv", "x,Ws", "s", ais("pads", 1, 1, 1, 1)).
					node("Relu", "s", "s0").
					node("Conv", "s0,Wa1", "a1", ais("pads", 1, 1, 1, 1)).
					node("Relu", "a1", "a1r").
					node("Conv", "a1r,Wa2", "a2", ais("pads", 1, 1, 1, 1)).
					node("Add", "a2,s0", "s1").
					node("Relu", "s1", "s1r").
					node("Conv", "s1r,Wb1", "b1", ais("pads", 1, 1, 1, 1)).
					node("Relu", "b1", "b1r").
					node("Conv", "b1r,Wb2", "b2", ais("pads", 1, 1, 1, 1)).
					node("Add", "s1r,b2", "s2").
					node("Conv", "s2,Wo", "y")
			},
			groups: []string{"8: Ws#0 Wa1#1 Wa2#0 Wb1#1 Wb2#0 Wo#1", "6: Wa1#0 Wa2#1", "5: Wb1#0 Wb2#1"},
			frozen: []string{`x#1(3)~graph input`, `y#1(4)~graph output`},
		},
		{
			name: "squeeze-excite gate",
			build: func() *builder {
				return convIn(newBuilder(17), 3).out("y").
					w("W1", 8, 3, 1, 1).w("Se1", 4, 8, 1, 1).w("Sb1", 4).w("Se2", 8, 4, 1, 1).w("Sb2", 8).w("W2", 4, 8, 1, 1).
					node("Conv", "x,W1", "h").
					node("GlobalAveragePool", "h", "p").
					node("Conv", "p,Se1,Sb1", "e1").
					node("Relu", "e1", "e1r").
					node("Conv", "e1r,Se2,Sb2", "e2").
					node("HardSigmoid", "e2", "gate").
					node("Mul", "h,gate", "hg").
					node("Conv", "hg,W2", "y")
			},
			groups: []string{"8: W1#0 Se1#1 Se2#0 Sb2#0 W2#1", "4: Se1#0 Sb1#0 Se2#1"},
			frozen: []string{`x#1(3)~graph input`, `y#1(4)~graph output`},
		},
		{
			name: "pools pass channels; MaxPool indices freeze",
			build: func() *builder {
				return convIn(newBuilder(17), 3).out("y", "idx").
					w("W1", 8, 3, 1, 1).w("W2", 5, 8, 1, 1).w("W3", 6, 5, 1, 1).w("Wf", 4, 6).
					node("Conv", "x,W1", "c").
					node("MaxPool", "c", "p1", ais("kernel_shape", 2, 2), ais("strides", 2, 2)).
					node("AveragePool", "p1", "p2", ais("kernel_shape", 2, 2), ais("pads", 1, 1, 0, 0)).
					node("LpPool", "p2", "p3", ais("kernel_shape", 1, 1)).
					node("Conv", "p3,W2", "c2").
					node("MaxPool", "c2", "p4,idx", ais("kernel_shape", 2, 2)).
					node("Conv", "p4,W3", "c3").
					node("GlobalMaxPool", "c3", "g").
					node("Flatten", "g", "f").
					node("Gemm", "f,Wf", "y", ai("transB", 1))
			},
			groups: []string{"8: W1#0 W2#1", "6: W3#0 Wf#1"},
			frozen: []string{`x#1(3)~graph input`, `c2#1(5)~Indices output`, `p4#1(5)~Indices output`, `y#1(4)~graph output`},
			noORT:  true, // Indices is an int64 output; CompareModels compares floats
		},
		{
			name: "flatten expands channels into blocks",
			build: func() *builder {
				return newBuilder(17).in("x", -1, 3, 4, 4).out("y").
					w("W1", 8, 3, 3, 3).w("B1", 8).w("Wf", 5, 128).w("Bf", 5).w("W2", 2, 5).
					node("Conv", "x,W1,B1", "c", ais("pads", 1, 1, 1, 1)).
					node("Relu", "c", "r").
					node("Flatten", "r", "f").
					node("Gemm", "f,Wf,Bf", "h", ai("transB", 1)).
					node("Relu", "h", "hr").
					node("Gemm", "hr,W2", "y", ai("transB", 1))
			},
			groups: []string{"8: W1#0 B1#0 Wf#1/b16", "5: Wf#0 Bf#0 W2#1"},
			frozen: []string{`x#1(3)~graph input`, `y#1(2)~graph output`},
		},
		{
			name: "shape contradiction: MatMul inner dimensions",
			build: func() *builder {
				return newBuilder(13).in("x", -1, 3, 4, 4).out("y").
					w("W1", 8, 3, 3, 3).w("Wf", 5, 128).int0("zero", 0).ints("ax0", 0).ints("m1", -1).
					node("Conv", "x,W1", "c", ais("pads", 1, 1, 1, 1)).
					node("Shape", "c", "sh").
					node("Gather", "sh,zero", "n0", ai("axis", 0)).
					node("Unsqueeze", "n0,ax0", "n1").
					node("Concat", "n1,m1", "target", ai("axis", 0)).
					node("Reshape", "c,target", "f").
					node("MatMul", "f,Wf", "y0").
					node("ReduceSum", "y0", "y", ais("axes", 1), ai("keepdims", 1))
			},
			err: "MatMul inner dimensions 128 and 5 differ",
		},
		{
			name: "torch x.view(x.size(0), -1), valid",
			build: func() *builder {
				return newBuilder(13).in("x", -1, 3, 4, 4).out("y").
					w("W1", 8, 3, 3, 3).w("Wf", 128, 5).int0("zero", 0).ints("ax0", 0).ints("m1", -1).
					node("Conv", "x,W1", "c", ais("pads", 1, 1, 1, 1)).
					node("Shape", "c", "sh").
					node("Gather", "sh,zero", "n0", ai("axis", 0)).
					node("Unsqueeze", "n0,ax0", "n1").
					node("Concat", "n1,m1", "target", ai("axis", 0)).
					node("Reshape", "c,target", "f").
					node("MatMul", "f,Wf", "y")
			},
			groups: []string{"8: W1#0 Wf#0/b16"},
			frozen: []string{`x#1(3)~graph input`, `y#1(5)~graph output`},
		},
		{
			name: "reshape adding size-1 axes; a split into heads that reach a graph output freezes",
			build: func() *builder {
				return newBuilder(17).in("x", -1, 4).out("y", "z").
					w("W1", 4, 8).w("W2", 6, 8, 1, 1).w("W3", 4, 6).w("W4", 3, 2).w("W5", 6, 3).
					ints("s1", 0, 8, 1, 1).ints("s2", 0, 2, 3).
					node("MatMul", "x,W1", "h").
					node("Reshape", "h,s1", "h4").
					node("Conv", "h4,W2", "c").
					node("Flatten", "c", "f").
					node("MatMul", "f,W5", "y").
					node("MatMul", "x,W3", "k").
					node("Reshape", "k,s2", "k3").
					node("MatMul", "k3,W4", "z")
			},
			groups: []string{"8: W1#1 W2#1", "6: W2#0 W5#0"},
			frozen: []string{`x#1(4)~graph input`, `y#1(3)~graph output`, `k#1(6)~graph output "z"`,
				`k3#2(3)~graph output "z"`, `z#2(2)~graph output`},
		},
		{
			name: "concat on channels keeps parts",
			build: func() *builder {
				return convIn(newBuilder(17), 3).out("y").
					w("Wa", 4, 3, 1, 1).w("Wb", 6, 3, 1, 1).w("s", 10).w("b", 10).w("m", 10).w("var", 10).w("Wc", 5, 10, 1, 1).
					node("Conv", "x,Wa", "a").
					node("Conv", "x,Wb", "b_").
					node("Concat", "a,b_", "cat", ai("axis", 1)).
					node("BatchNormalization", "cat,s,b,m,var", "n").
					node("Conv", "n,Wc", "y")
			},
			groups: []string{"4: Wa#0 s#0 b#0 m#0 var#0 Wc#1", "6: Wb#0 s#0@4 b#0@4 m#0@4 var#0@4 Wc#1@4"},
			frozen: []string{`x#1(3)~graph input`, `y#1(5)~graph output`},
		},
		{
			name: "split on channels makes parts; a slice that leaves channels out freezes; slice on space passes",
			build: func() *builder {
				return convIn(newBuilder(17), 3).out("y", "z", "u", "v").
					w("W1", 8, 3, 1, 1).w("Wy", 2, 4, 1, 1).w("Wz", 2, 4, 1, 1).
					w("W2", 6, 3, 1, 1).w("Wu", 2, 3, 1, 1).w("W3", 7, 3, 1, 1).w("Wv", 2, 7, 1, 1).
					ints("st", 0).ints("en", 3).ints("ax", 1).ints("st2", 1).ints("en2", 5).ints("ax2", 2).
					node("Conv", "x,W1", "c").
					node("Split", "c", "c1,c2", ai("axis", 1)).
					node("Conv", "c1,Wy", "y").
					node("Conv", "c2,Wz", "z").
					node("Conv", "x,W2", "d").
					node("Slice", "d,st,en,ax", "ds").
					node("Conv", "ds,Wu", "u").
					node("Conv", "x,W3", "e").
					node("Slice", "e,st2,en2,ax2", "es").
					node("Conv", "es,Wv", "v")
			},
			groups: []string{"4: W1#0 Wy#1", "4: W1#0@4 Wz#1", "7: W3#0 Wv#1"},
			frozen: []string{`x#1(3)~graph input`, `y#1(2)~graph output`, `z#1(2)~graph output`,
				`d#1(6)~leaves the rest of the axis in no part`, `ds#1(3)~leaves the rest of the axis in no part`,
				`u#1(2)~graph output`, `v#1(2)~graph output`},
		},
		{
			name: "transpose to channels-last",
			build: func() *builder {
				return convIn(newBuilder(17), 3).out("y").
					w("W1", 8, 3, 1, 1).w("W2", 8, 5).
					node("Conv", "x,W1", "c").
					node("Transpose", "c", "t", ais("perm", 0, 2, 3, 1)).
					node("MatMul", "t,W2", "y")
			},
			groups: []string{"8: W1#0 W2#0"},
			frozen: []string{`x#1(3)~graph input`, `y#3(5)~graph output`},
		},
		{
			name: "softmax: opset 13 ties, opset 11 freezes unless last axis",
			build: func() *builder {
				return newBuilder(11).in("x", -1, 5, 4).out("y", "z").
					w("W1", 4, 6).w("W2", 6, 3).w("W3", 4, 7).w("W4", 7, 3).
					node("MatMul", "x,W1", "h").
					node("Softmax", "h", "s", ai("axis", 1)).
					node("MatMul", "s,W2", "y").
					node("MatMul", "x,W3", "k").
					node("LogSoftmax", "k", "l", ai("axis", 2)).
					node("MatMul", "l,W4", "z")
			},
			groups: []string{"7: W3#1 W4#0"},
			frozen: []string{`x#2(4)~graph input`, `h#2(6)~(opset 11) normalises over axes 1..`,
				`s#2(6)~(opset 11) normalises over axes 1..`, `y#2(3)~graph output`, `z#2(3)~graph output`},
		},
		{
			name: "softmax over the channel axis, opset 13",
			build: func() *builder {
				return newBuilder(13).in("x", -1, 5, 4).out("y").
					w("W1", 4, 6).w("W2", 6, 3).
					node("MatMul", "x,W1", "h").
					node("Softmax", "h", "s", ai("axis", 1)).
					node("MatMul", "s,W2", "y")
			},
			groups: []string{"6: W1#1 W2#0"},
			frozen: []string{`x#2(4)~graph input`, `y#2(3)~graph output`},
		},
		{
			name: "unknown op freezes both sides",
			build: func() *builder {
				b := newBuilder(17).in("x", -1, 4).out("y").
					w("W1", 4, 6).w("W2", 6, 5).w("W3", 5, 3).
					node("MatMul", "x,W1", "h").
					node("com.microsoft.Foo", "h", "f").vi("f", -1, 6).
					node("MatMul", "f,W2", "g").
					node("Relu", "g", "gr").
					node("MatMul", "gr,W3", "y")
				b.extra = append(b.extra, &onnxpb.OperatorSetIdProto{Domain: strp("com.microsoft"), Version: i64p(1)})
				return b
			},
			groups: []string{"5: W2#1 W3#0"},
			frozen: []string{`x#1(4)~graph input`, `h#1(6)~unknown op "com.microsoft.Foo" at node "f"`,
				`f#1(6)~unknown op "com.microsoft.Foo" at node "f"`, `y#1(3)~graph output`},
			noORT: true,
		},
		{
			name: "gather, expand, tile, pad on channels freeze",
			build: func() *builder {
				return convIn(newBuilder(17), 3).out("y").
					w("W1", 8, 3, 1, 1).w("W2", 8, 3, 1, 1).w("W3", 8, 3, 1, 1).w("W4", 8, 3, 1, 1).w("W5", 8, 3, 1, 1).
					ints("idx", 0, 2, 1, 3, 4, 5, 7, 6).ints("rep", 1, 1, 2, 1).ints("pads", 0, 0, 1, 0, 0, 0, 1, 0).
					ints("pads2", 0, 1, 0, 0, 0, 1, 0, 0).ints("shp", 2, 8, 6, 6).
					w("Wa", 2, 8, 1, 1).w("Wb", 2, 8, 1, 1).w("Wc", 2, 8, 1, 1).w("Wd", 2, 10, 1, 1).
					node("Conv", "x,W1", "c1").
					node("Gather", "c1,idx", "g", ai("axis", 1)).
					node("Conv", "g,Wa", "ya").
					node("Conv", "x,W2", "c2").
					node("Tile", "c2,rep", "t").
					node("Conv", "t,Wb", "yb0").
					node("ReduceMean", "yb0", "yb", ais("axes", 2)).
					node("Conv", "x,W3", "c3").
					node("Pad", "c3,pads", "p").
					node("Conv", "p,Wc", "yc0").
					node("ReduceMean", "yc0", "yc", ais("axes", 2)).
					node("Conv", "x,W4", "c4").
					node("Pad", "c4,pads2", "p2").
					node("Conv", "p2,Wd", "yd").
					node("Conv", "x,W5", "c5").
					node("ReduceMean", "c5", "c5m", ais("axes", 1)).
					node("Expand", "c5m,shp", "ex").
					node("Conv", "ex,Wa", "ye").
					node("Add", "ya,yb", "s1").node("Add", "s1,yc", "s2").node("Add", "s2,yd", "s3").node("Add", "s3,ye", "y")
			},
			groups: []string{"8: W2#0 Wb#1", "8: W3#0 Wc#1", "8: W5#0"},
			frozen: []string{`x#1(3)~graph input`, `c1#1(8)~gathers along this axis`, `g#1(8)~gathers along this axis`,
				`y#1(2)~graph output`, `c4#1(8)~pads this axis`, `p2#1(10)~pads this axis`, `ex#1(8)~broadcasts this axis`},
		},
		{
			name: "a hidden activation that is a graph output freezes its group",
			build: func() *builder {
				return newBuilder(17).in("x", -1, 4).out("y", "h").
					w("W1", 4, 6).w("W2", 6, 3).
					node("MatMul", "x,W1", "h").
					node("Relu", "h", "r").
					node("MatMul", "r,W2", "y")
			},
			frozen: []string{`x#1(4)~graph input`, `h#1(6)~graph output "h"`, `y#1(3)~graph output`},
		},
		{
			name: "shared initializer: one site per use, in different groups",
			build: func() *builder {
				return convIn(newBuilder(17), 3).out("y").
					w("W1", 8, 3, 1, 1).w("W2", 8, 8, 1, 1).w("W3", 4, 8, 1, 1).w("s", 8).w("b", 8).w("m", 8).w("var", 8).
					node("Conv", "x,W1", "c1").
					node("BatchNormalization", "c1,s,b,m,var", "n1").
					node("Identity", "m", "m_id").
					node("Conv", "n1,W2", "c2").
					node("BatchNormalization", "c2,s,b,m_id,var", "n2").
					node("Conv", "n2,W3", "y")
			},
			groups: []string{"8: W1#0 s#0 b#0 m#0 var#0 W2#1", "8: W2#0 s#0 b#0 m_id>m#0 var#0 W3#1"},
			frozen: []string{`x#1(3)~graph input`, `y#1(4)~graph output`},
		},
		{
			name: "Identity-forwarded and Constant-node weights",
			build: func() *builder {
				return newBuilder(17).in("x", -1, 4).out("y").
					w("W1", 6, 4).
					node("Identity", "W1", "W1a").
					node("Identity", "W1a", "W1b").
					constant("B1", 6).
					constant("W2", 6, 3).
					node("Gemm", "x,W1b,B1", "h", ai("transB", 1)).
					node("Relu", "h", "r").
					node("MatMul", "r,W2", "y")
			},
			groups: []string{"6: W1b>W1#0 B1#0 W2#0"},
			frozen: []string{`x#1(4)~graph input`, `y#1(3)~graph output`},
		},
		{
			name: "squeeze and unsqueeze, attribute and input forms",
			build: func() *builder {
				return newBuilder(13).in("x", -1, 4).out("y").
					w("W1", 4, 6).w("W2", 5, 6, 1, 1).w("W3", 5, 3).ints("ax", 2, 3).
					node("MatMul", "x,W1", "h").
					node("Unsqueeze", "h,ax", "h4").
					node("Conv", "h4,W2", "c").
					node("Squeeze", "c,ax", "s").
					node("MatMul", "s,W3", "y")
			},
			groups: []string{"6: W1#1 W2#1", "5: W2#0 W3#0"},
			frozen: []string{`x#1(4)~graph input`, `y#1(3)~graph output`},
		},
		{
			name: "squeeze and unsqueeze before opset 13",
			build: func() *builder {
				return newBuilder(11).in("x", -1, 4).out("y").
					w("W1", 4, 6).w("W2", 5, 6, 1, 1).w("W3", 5, 3).
					node("MatMul", "x,W1", "h").
					node("Unsqueeze", "h", "h4", ais("axes", 2, 3)).
					node("Conv", "h4,W2", "c").
					node("Squeeze", "c", "s", ais("axes", -1, -2)).
					node("MatMul", "s,W3", "y")
			},
			groups: []string{"6: W1#1 W2#1", "5: W2#0 W3#0"},
			frozen: []string{`x#1(4)~graph input`, `y#1(3)~graph output`},
		},
		{
			name: "reductions over space keep channels",
			build: func() *builder {
				return convIn(newBuilder(17), 3).out("y").
					w("W1", 8, 3, 1, 1).w("W2", 8, 5).
					node("Conv", "x,W1", "c").
					node("ReduceMax", "c", "r", ais("axes", 2, 3), ai("keepdims", 0)).
					node("Dropout", "r", "d").
					node("MatMul", "d,W2", "y")
			},
			groups: []string{"8: W1#0 W2#0"},
			frozen: []string{`x#1(3)~graph input`, `y#1(5)~graph output`},
		},
		{
			name: "ReduceSum with axes input (opset 13)",
			build: func() *builder {
				return convIn(newBuilder(13), 3).out("y").
					w("W1", 8, 3, 1, 1).w("W2", 8, 5).ints("ax", 2, 3).
					node("Conv", "x,W1", "c").
					node("ReduceSum", "c,ax", "r", ai("keepdims", 0)).
					node("MatMul", "r,W2", "y")
			},
			groups: []string{"8: W1#0 W2#0"},
			frozen: []string{`x#1(3)~graph input`, `y#1(5)~graph output`},
		},
		{
			name: "concat of a weight along tokens (class token) and broadcasting matmul",
			build: func() *builder {
				return newBuilder(17).in("x", 2, 5, 4).out("y").
					w("W1", 4, 6).w("cls", 2, 1, 6).w("pos", 1, 6, 6).w("W2", 6, 3).
					node("MatMul", "x,W1", "h").
					node("Concat", "cls,h", "t", ai("axis", 1)).
					node("Add", "t,pos", "tp").
					node("ReduceMean", "tp", "m", ais("axes", 1), ai("keepdims", 0)).
					node("MatMul", "m,W2", "y")
			},
			groups: []string{"6: W1#1 cls#2 pos#2 W2#0"},
			frozen: []string{`x#0(2)~graph input`, `x#1(5)~graph input`, `x#2(4)~graph input`, `y#1(3)~graph output`},
		},
		{
			name: "resize keeps channels at scale 1; LRN mixes channels",
			build: func() *builder {
				b := convIn(newBuilder(13), 3).out("y", "z").
					w("W1", 8, 3, 1, 1).w("W2", 4, 8, 1, 1).w("W3", 7, 3, 1, 1).w("W4", 4, 7, 1, 1).
					node("Conv", "x,W1", "c").
					node("Resize", "c,,sc", "r", as("mode", "linear")).
					node("Conv", "r,W2", "y").
					node("Conv", "x,W3", "d").
					node("LRN", "d", "l", ai("size", 3)).
					node("Conv", "l,W4", "z")
				b.g.Initializer = append(b.g.Initializer, &onnxpb.TensorProto{Name: strp("sc"), Dims: []int64{4},
					DataType: i32p(int32(onnxpb.TensorProto_FLOAT)), FloatData: []float32{1, 1, 2, 2}})
				return b
			},
			groups: []string{"8: W1#0 W2#1"},
			frozen: []string{`x#1(3)~graph input`, `y#1(4)~graph output`, `d#1(7)~mixes neighbouring channels`,
				`l#1(7)~mixes neighbouring channels`, `z#1(4)~graph output`},
		},
		{
			name: "a value read inside a subgraph freezes; Einsum is not supported",
			build: func() *builder {
				body := &onnxpb.GraphProto{Name: strp("then"),
					Node:   []*onnxpb.NodeProto{{OpType: strp("Relu"), Input: []string{"h"}, Output: []string{"t"}}},
					Output: []*onnxpb.ValueInfoProto{valueInfo("t", onnxpb.TensorProto_FLOAT, nil)}}
				return newBuilder(17).in("x", -1, 4).in("cond").out("y", "z", "e").
					w("W1", 4, 6).w("W2", 6, 3).w("W3", 4, 5).w("W4", 5, 3).
					node("MatMul", "x,W1", "h").
					node("If", "cond", "branch", &onnxpb.AttributeProto{Name: strp("then_branch"), G: body, Type: onnxpb.AttributeProto_GRAPH.Enum()},
						&onnxpb.AttributeProto{Name: strp("else_branch"), G: body, Type: onnxpb.AttributeProto_GRAPH.Enum()}).
					node("MatMul", "h,W2", "y").
					node("Relu", "branch", "z").
					node("MatMul", "x,W3", "k").
					node("Einsum", "k", "e0", as("equation", "ij->ij")).
					node("MatMul", "e0,W4", "e")
			},
			frozen: []string{`x#1(4)~graph input`, `h#1(6)~reads it in a subgraph`, `y#1(3)~graph output`,
				`k#1(5)~unsupported op "Einsum" at node "e0"`},
			noORT: true,
		},
	}
}

func i32p(v int32) *int32 { return &v }

func strp(s string) *string { return &s }
func i64p(v int64) *int64   { return &v }

func TestRules(t *testing.T) {
	var ort *ortref.Runner
	for _, tc := range ruleCases() {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.build().model()
			a, err := graph.Analyze(m)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := describeGroups(a); !slices.Equal(got, tc.groups) {
				t.Errorf("groups:\n got %q\nwant %q", got, tc.groups)
			}
			checkFrozen(t, a, tc.frozen)
			checkCounts(t, a)
			for _, g := range a.Groups {
				if len(g.Reasons) == 0 {
					t.Errorf("group %d has no reasons", g.ID)
				}
			}
			if tc.noORT || len(a.Groups) == 0 {
				return
			}
			if ort == nil {
				ort = ortref.Require(t)
			}
			checkInvariance(t, ort, m, a)
		})
	}
}

func checkFrozen(t *testing.T, a *graph.Analysis, want []string) {
	t.Helper()
	got := describeFrozen(a)
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		at, reason, _ := strings.Cut(want[i], "~")
		ok = strings.HasPrefix(got[i], at+": ") && strings.Contains(got[i], reason)
	}
	if !ok {
		t.Errorf("frozen:\n got %q\nwant %q", got, want)
	}
}

func checkCounts(t *testing.T, a *graph.Analysis) {
	t.Helper()
	sum := 0
	for i, g := range a.Groups {
		sum += g.Size + g.Repeated
		if g.ID != i {
			t.Errorf("group %d has ID %d", i, g.ID)
		}
	}
	if a.PermutableUnits != sum || a.HiddenUnits < sum {
		t.Errorf("PermutableUnits %d, HiddenUnits %d, group sizes add up to %d", a.PermutableUnits, a.HiddenUnits, sum)
	}
}

// checkInvariance permutes every group at random and checks with ONNX
// Runtime that the model still computes the same function.
func checkInvariance(t *testing.T, ort *ortref.Runner, m *onnx.Model, a *graph.Analysis) {
	t.Helper()
	dir := t.TempDir()
	orig := filepath.Join(dir, "orig.onnx")
	if err := m.Save(orig); err != nil {
		t.Fatal(err)
	}
	inputs := map[string]*npy.Array{}
	r := rand.New(rand.NewPCG(3, 4))
	for _, in := range m.Proto.GetGraph().GetInput() {
		var shape []int
		n := 1
		for _, d := range in.GetType().GetTensorType().GetShape().GetDim() {
			k := int(d.GetDimValue())
			if k <= 0 {
				k = 2
			}
			shape = append(shape, k)
			n *= k
		}
		data := make([]float32, n)
		for i := range data {
			data[i] = float32(r.NormFloat64())
		}
		arr, err := npy.FromFloat32(shape, data)
		if err != nil {
			t.Fatal(err)
		}
		inputs[in.GetName()] = arr
	}
	for seed := uint64(1); seed <= 2; seed++ {
		pm := m.Clone()
		if err := permute.Apply(pm, a, permute.Random(a, seed)); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, fmt.Sprintf("perm%d.onnx", seed))
		if err := pm.Save(path); err != nil {
			t.Fatal(err)
		}
		if err := ort.CompareModels(orig, path, inputs, 1e-4, 1e-3); err != nil {
			t.Fatalf("seed %d: the permuted model computes something else: %v", seed, err)
		}
	}
}

// residual8 is repeatKVCase's residual stream.
const residual8 = "8: Wi#1 Wq#0 Wk#0 Wv#0 Wo#1 Wy#0"

// repeatKVCase is attention with 4 query heads of 2 units and kv K/V heads
// (x: N×3×8), the K/V heads repeated for the query heads as Hugging Face's
// repeat_kv writes it: Unsqueeze a new axis after the heads, Expand it to
// the number of query heads per K/V head, Reshape the two into one.
func repeatKVCase(name string, kv int64, groups []string) ruleCase {
	g := 4 / kv
	build := func() *builder {
		return newBuilder(17).in("x", -1, 3, 8).out("y").
			w("Wi", 8, 8).w("Wq", 8, 8).w("Wk", 8, 2*kv).w("Wv", 8, 2*kv).w("Wo", 8, 8).w("Wy", 8, 8).
			ints("shq", 0, 3, 4, 2).ints("shkv", 0, 3, kv, 2).ints("ax2", 2).ints("ex", 1, kv, g, 3, 2).
			ints("rep", 0, 4, 3, 2).ints("sm", 0, 3, 8).scalar("scale", 0.5).
			node("MatMul", "x,Wi", "h").
			node("MatMul", "h,Wq", "qa").
			node("MatMul", "h,Wk", "ka").
			node("MatMul", "h,Wv", "va").
			node("Reshape", "qa,shq", "q4").
			node("Reshape", "ka,shkv", "k4").
			node("Reshape", "va,shkv", "v4").
			node("Transpose", "q4", "qh", ais("perm", 0, 2, 1, 3)).
			node("Transpose", "k4", "kh", ais("perm", 0, 2, 1, 3)).
			node("Transpose", "v4", "vh", ais("perm", 0, 2, 1, 3)).
			node("Unsqueeze", "kh,ax2", "ku").
			node("Expand", "ku,ex", "ke").
			node("Reshape", "ke,rep", "kr").
			node("Unsqueeze", "vh,ax2", "vu").
			node("Expand", "vu,ex", "ve").
			node("Reshape", "ve,rep", "vr").
			node("Transpose", "kr", "kt", ais("perm", 0, 1, 3, 2)).
			node("MatMul", "qh,kt", "s0").
			node("Mul", "s0,scale", "s1").
			node("Softmax", "s1", "p", ai("axis", -1)).
			node("MatMul", "p,vr", "o4").
			node("Transpose", "o4", "ot", ais("perm", 0, 2, 1, 3)).
			node("Reshape", "ot,sm", "vo").
			node("MatMul", "vo,Wo", "ao").
			node("Add", "h,ao", "r").
			node("MatMul", "r,Wy", "y")
	}
	return ruleCase{name: name, build: build, groups: groups,
		frozen: []string{`x#2(8)~graph input`, `y#2(8)~graph output`}}
}

// residual6 is attentionCase's residual stream.
const residual6 = "6: Wi#1 Wq#0 Wk#0 Wv#0 Wo#1 Wy#0"

// attentionCase is a two-head attention block (x: N×3×6, heads of 2):
// separate Q, K, V projections, reshape to heads, transpose, scaled scores,
// Softmax, values, transpose back, merge, output projection, and a residual
// stream that is a graph input and output. extra, when set, is an op
// applied to the scores: "Add" adds the per-head weight hb (2×1×1),
// "ReduceSum" sums the scores over the heads (keepdims); "ReduceMeanQ"
// averages the query over the heads before the scores, "ScaleQ" multiplies
// it by the weight wd along the units of each head.
func attentionCase(name, extra string, groups, frozen []string) ruleCase {
	build := func() *builder {
		b := newBuilder(17).in("x", -1, 3, 6).out("y").
			w("Wq", 6, 4).w("Wk", 6, 4).w("Wv", 6, 4).w("Wo", 4, 6).w("Wi", 6, 6).w("Wy", 6, 6).
			ints("sh", 0, 3, 2, 2).ints("sm", 0, 3, 4).scalar("scale", 0.5).w("hb", 2, 1, 1).ints("ax1", 1).
			node("MatMul", "x,Wi", "h").
			node("MatMul", "h,Wq", "qa").
			node("MatMul", "h,Wk", "ka").
			node("MatMul", "h,Wv", "va").
			node("Reshape", "qa,sh", "q4").
			node("Reshape", "ka,sh", "k4").
			node("Reshape", "va,sh", "v4").
			node("Transpose", "q4", "qh", ais("perm", 0, 2, 1, 3)).
			node("Transpose", "k4", "kt", ais("perm", 0, 2, 3, 1)).
			node("Transpose", "v4", "vh", ais("perm", 0, 2, 1, 3))
		switch extra {
		case "ReduceMeanQ":
			b = b.node("ReduceMean", "qh", "qm", ais("axes", 1)).node("MatMul", "qm,kt", "s0")
		case "ScaleQ":
			b = b.w("wd", 2).node("Mul", "qh,wd", "qs").node("MatMul", "qs,kt", "s0")
		default:
			b = b.node("MatMul", "qh,kt", "s0")
		}
		b = b.
			node("Mul", "s0,scale", "s1")
		switch extra {
		case "Add":
			b = b.node("Add", "s1,hb", "s2")
		case "ReduceSum":
			b = b.node("ReduceSum", "s1,ax1", "s2")
		default:
			b = b.node("Identity", "s1", "s2")
		}
		return b.node("Softmax", "s2", "p", ai("axis", -1)).
			node("MatMul", "p,vh", "o4").
			node("Transpose", "o4", "ot", ais("perm", 0, 2, 1, 3)).
			node("Reshape", "ot,sm", "vo").
			node("MatMul", "vo,Wo", "ao").
			node("Add", "h,ao", "r").
			node("MatMul", "r,Wy", "y")
	}
	return ruleCase{name: name, build: build, groups: groups,
		frozen: append([]string{`x#2(6)~graph input`}, append(frozen, `y#2(6)~graph output`)...)}
}

// TestGroupLayers checks Group.Layers, the number of layers that compute a
// group's channels, on rule cases and the trained test models.
func TestGroupLayers(t *testing.T) {
	// Normalisations and Flatten compute no channels of their own.
	rules := map[string][]int{
		"gemm transB (torch Linear)":                       {1},
		"single-head attention: matmul of two activations": {2, 1},
		"conv, relu, conv":                                 {1},
		"depthwise conv shares its input's group":          {2},
		"residual blocks tie the stream":                   {3, 1, 1},
		"batch norm ties scale, bias, mean and var":        {1},
		"flatten expands channels into blocks":             {1, 1},
		"grouped conv: input and output blocks move together, input channels alike in every block": {1, 1},
	}
	found := 0
	for _, tc := range ruleCases() {
		want, ok := rules[tc.name]
		if !ok {
			continue
		}
		found++
		a, err := graph.Analyze(tc.build().model())
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := groupLayers(a); !slices.Equal(got, want) {
			t.Errorf("%s: layers per group %v, want %v", tc.name, got, want)
		}
	}
	if found != len(rules) {
		t.Fatalf("found %d of the %d rule cases named", found, len(rules))
	}
	models := []struct {
		file   string
		layers []int
	}{
		{"mlp_s0.onnx", []int{1, 1, 1}},
		{"cnn_bn_s0.onnx", []int{1, 1, 1}},
		// The stem and every block's second convolution add to a stage's stream.
		{"resnet_s0.onnx", []int{3, 1, 1, 3, 1, 1}},
		// The stream: the patch embedding, and each layer's attention
		// output and second MLP layer; queries and keys: two.
		{"transformer_s0.onnx", []int{5, 2, 1, 1, 2, 1, 1}},
	}
	for _, tc := range models {
		m, err := onnx.Load(filepath.Join("..", "testmodels", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		a, err := graph.Analyze(m)
		if err != nil {
			t.Fatal(err)
		}
		if got := groupLayers(a); !slices.Equal(got, tc.layers) {
			t.Errorf("%s: layers per group %v, want %v", tc.file, got, tc.layers)
		}
	}
}

func groupLayers(a *graph.Analysis) []int {
	var out []int
	for _, g := range a.Groups {
		out = append(out, g.Layers)
	}
	return out
}

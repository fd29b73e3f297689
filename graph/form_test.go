package graph_test

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

func af(name string, v float32) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), F: proto.Float32(v), Type: onnxpb.AttributeProto_FLOAT.Enum()}
}

// buildForm builds X(N×4) → Gemm(W1, b1) → Relu → Unsqueeze → Squeeze →
// Gemm(W2, b2) → Y in variants of form (and a few of substance).
func buildForm(opset int64, change string) *builder {
	b := newBuilder(opset).in("X", -1, 4).out("Y")
	b.w("W2", 3, 5).w("b2", 3)
	switch change {
	case "constant":
		b.constant("W1", 5, 4).constant("b1", 5)
	case "identity":
		b.w("W1raw", 5, 4).w("b1", 5).node("Identity", "W1raw", "W1")
	default:
		b.w("W1", 5, 4).w("b1", 5)
	}
	gemm1 := []*onnxpb.AttributeProto{ai("transB", 1)}
	switch change {
	case "explicit defaults":
		gemm1 = append(gemm1, af("alpha", 1), af("beta", 1), ai("transA", 0))
	case "alpha":
		gemm1 = append(gemm1, af("alpha", 2))
	}
	relu := "Relu"
	if change == "op" {
		relu = "Sigmoid"
	}
	b.node("Gemm", "X,W1,b1", "h", gemm1...).node(relu, "h", "r")
	if opset >= 13 {
		b.ints("axes", 1).node("Unsqueeze", "r,axes", "u").node("Squeeze", "u,axes", "s")
	} else {
		b.node("Unsqueeze", "r", "u", ais("axes", 1)).node("Squeeze", "u", "s", ais("axes", 1))
	}
	if change == "wiring" {
		b.node("Gemm", "r,W2,b2", "Y", ai("transB", 1))
	} else {
		b.node("Gemm", "s,W2,b2", "Y", ai("transB", 1))
	}
	if change == "renamed" { // nodes and intermediate values
		for _, n := range b.g.Node {
			n.Name = proto.String("renamed_" + n.GetName())
			for i, v := range n.Input {
				if v == "h" || v == "r" || v == "u" || v == "s" {
					n.Input[i] = "v_" + v
				}
			}
			if o := n.Output[0]; o != "Y" {
				n.Output[0] = "v_" + o
			}
		}
	}
	return b
}

// TestCorrespond pairs graphs that differ only in form and names the first
// difference of ones that compute differently.
func TestCorrespond(t *testing.T) {
	ref := buildForm(13, "").model()
	for _, tc := range []struct {
		opset  int64
		change string
		want   string // "" = same architecture; else a part of the error
	}{
		{13, "renamed", ""},
		{13, "constant", ""},
		{13, "identity", ""},
		{13, "explicit defaults", ""},
		{11, "", ""}, // Squeeze/Unsqueeze axes as attributes
		{13, "alpha", `Gemm "h" in test is Gemm alpha=f:1`},
		{13, "op", `Relu "r" in test is Relu, but Sigmoid "r"`},
		{13, "wiring", `Unsqueeze "u" in test is Unsqueeze axes=ints:[1], but Gemm "Y"`},
	} {
		t.Run(fmt.Sprintf("%s opset %d", tc.change, tc.opset), func(t *testing.T) {
			m := buildForm(tc.opset, tc.change).model()
			c, err := graph.Correspond(ref, m)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err = %v, want one containing %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// Nodes pair by what they compute, values by position.
			want := "s"
			if tc.change == "renamed" {
				want = "v_s"
			}
			if v, ok := c.Value("s"); !ok || v != want {
				t.Errorf("value s pairs with %q, %v; want %q", v, ok, want)
			}
			if got, want := forAndOwn(t, ref, m); strings.Join(got, "|") != strings.Join(want, "|") {
				t.Errorf("the analysis re-expressed for the other form:\n got %q\nwant %q (its own analysis)", got, want)
			}
		})
	}
}

// forAndOwn describes the groups of ref's analysis re-expressed for m
// (Analysis.For) and those of m's own analysis, to compare.
func forAndOwn(t *testing.T, ref, m *onnx.Model) (got, want []string) {
	t.Helper()
	ga, err := graph.Analyze(ref)
	if err != nil {
		t.Fatal(err)
	}
	gm, err := graph.Analyze(m)
	if err != nil {
		t.Fatal(err)
	}
	onM, err := ga.For(m)
	if err != nil {
		t.Fatal(err)
	}
	return describeGroups(onM), describeGroups(gm)
}

// layerNormGraph builds X(N×3×4) → MatMul W0 → LayerNorm over the last
// axis (8) → MatMul W → Y, as a LayerNormalization node (opset 17) or spelled out in the nine
// ops PyTorch writes below opset 17, with epsilon eps and exponent exp.
func layerNormGraph(spelled bool, eps, exp float32) *onnx.Model {
	if !spelled {
		return newBuilder(17).in("X", -1, 3, 4).out("Y").w("W0", 4, 8).w("g", 8).w("b", 8).w("W", 8, 6).
			node("MatMul", "X,W0", "h").node("LayerNormalization", "h,g,b", "y", ai("axis", -1), af("epsilon", eps)).
			node("MatMul", "y,W", "Y").model()
	}
	return newBuilder(13).in("X", -1, 3, 4).out("Y").w("W0", 4, 8).w("g", 8).w("b", 8).w("W", 8, 6).
		scalar("two", exp).scalar("eps", eps).node("MatMul", "X,W0", "h").
		node("ReduceMean", "h", "m", ais("axes", -1)).node("Sub", "h,m", "d").node("Pow", "d,two", "p").
		node("ReduceMean", "p", "v", ais("axes", -1)).node("Add", "v,eps", "ve").node("Sqrt", "ve", "s").
		node("Div", "d,s", "n").node("Mul", "n,g", "y1").node("Add", "y1,b", "y").
		node("MatMul", "y,W", "Y").model()
}

// TestSpelledLayerNorm pairs a LayerNormalization spelled out in elementary
// ops with the node, and only when the ops compute exactly it.
func TestSpelledLayerNorm(t *testing.T) {
	node := layerNormGraph(false, 1e-5, 2)
	for _, tc := range []struct {
		name     string
		eps, exp float32
		want     string
	}{
		{"same", 1e-5, 2, ""},
		{"other epsilon", 1e-3, 2, "epsilon=f:1e-05"},
		{"cube", 1e-5, 3, `LayerNormalization "y"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spelled := layerNormGraph(true, tc.eps, tc.exp)
			c, err := graph.Correspond(spelled, node)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err = %v, want one containing %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// γ is read by the Mul (node 8, input 1) in one, by the
			// LayerNormalization (node 1, input 1) in the other.
			if j, l, ok := c.Input(8, 1); !ok || j != 1 || l != 1 {
				t.Errorf("the Mul's γ pairs with node %d input %d (%v)", j, l, ok)
			}
			if got, want := forAndOwn(t, spelled, node); strings.Join(got, "|") != strings.Join(want, "|") || len(got) == 0 {
				t.Errorf("the spelled-out analysis on the node:\n got %q\nwant %q", got, want)
			}
		})
	}
}

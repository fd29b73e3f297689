package infer

import (
	"fmt"
	"math"
	"math/rand"
	"slices"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

// gnode is one node of a hand-built test graph.
type gnode struct {
	op      string
	in, out []string
	at      attrs
}

// graphModel builds a model (opset 17) with float32 graph input "x", the
// given float32 initializers, nodes and graph outputs.
func graphModel(inits map[string]*Tensor, nodes []gnode, outputs ...string) *onnx.Model {
	g := &onnxpb.GraphProto{Name: proto.String("g")}
	g.Input = append(g.Input, &onnxpb.ValueInfoProto{Name: proto.String("x"), Type: &onnxpb.TypeProto{
		Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(1)}}}})
	names := make([]string, 0, len(inits))
	for name := range inits {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		t := inits[name]
		tp := &onnxpb.TensorProto{Name: proto.String(name), DataType: proto.Int32(1), FloatData: t.F}
		for _, d := range t.Shape {
			tp.Dims = append(tp.Dims, int64(d))
		}
		g.Initializer = append(g.Initializer, tp)
	}
	for i, n := range nodes {
		// Attributes through opModel's encoder.
		one := opModel(n.op, 17, n.at, nil, 0).Proto.GetGraph().GetNode()[0]
		one.Input, one.Output = n.in, n.out
		one.Name = proto.String(fmt.Sprintf("n%d_%s", i, n.op))
		g.Node = append(g.Node, one)
	}
	for _, o := range outputs {
		g.Output = append(g.Output, &onnxpb.ValueInfoProto{Name: proto.String(o)})
	}
	return &onnx.Model{Proto: &onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(17)}},
		Graph:       g,
	}}
}

// bnInits adds BatchNormalization parameters for m channels (variance
// well away from 0) under prefix.
func bnInits(rng *rand.Rand, inits map[string]*Tensor, prefix string, m int) []string {
	for _, p := range []string{"scale", "B", "mean", "var"} {
		t := randT(rng, m)
		if p == "var" {
			for i := range t.F {
				t.F[i] = 0.5 + float32(rng.Float64())
			}
		}
		inits[prefix+p] = t
	}
	return []string{prefix + "scale", prefix + "B", prefix + "mean", prefix + "var"}
}

func mustSession(t *testing.T, m *onnx.Model, opts ...Option) *Session {
	t.Helper()
	s, err := NewSession(m, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustRun(t *testing.T, s *Session, x *Tensor, opts ...RunOption) map[string]*Tensor {
	t.Helper()
	res, err := s.Run(map[string]*Tensor{"x": x}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// bitsEqual reports whether two float32 tensors are identical bit for bit.
func bitsEqual(a, b *Tensor) bool {
	if a == nil || b == nil || !slices.Equal(a.Shape, b.Shape) {
		return false
	}
	return len(a.F) == len(b.F) && sameBits(a.F, b.F) < 0
}

// fusedOps lists the op types of the fused program's nodes (nil: no
// fused program).
func fusedOps(s *Session) []string {
	if s.fused == nil {
		return nil
	}
	var ops []string
	for _, nd := range s.fused {
		ops = append(ops, nd.op)
	}
	return ops
}

// TestConvConstantWeights checks Conv with constant (packed) weights, the
// paths the models use (wide stride-1 and strided convolutions through
// simd.GemmPackedAOffsets, pointwise and 3-D through im2col and
// simd.GemmPackedA), against the naive definition: padding (asymmetric,
// larger than the kernel), strides 1–3, dilations, groups, 1-D, odd sizes,
// M not a multiple of any tile height, K across a k-block (> 256), batch 1
// and 3, with 1 and 2 threads.
func TestConvConstantWeights(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	type tc struct {
		in            []int
		m, g          int
		k, s, d, pads []int
		bias          bool
	}
	cases := []tc{
		{in: []int{3, 3, 7, 8}, m: 4, g: 1, k: []int{3, 3}, s: []int{1, 1}, d: []int{1, 1}, pads: []int{1, 1, 1, 1}, bias: true},
		{in: []int{1, 1, 28, 28}, m: 32, g: 1, k: []int{3, 3}, s: []int{1, 1}, d: []int{1, 1}, pads: []int{1, 1, 1, 1}, bias: true},
		{in: []int{1, 32, 14, 14}, m: 64, g: 1, k: []int{3, 3}, s: []int{1, 1}, d: []int{1, 1}, pads: []int{1, 1, 1, 1}, bias: true}, // K = 288
		{in: []int{2, 16, 9, 9}, m: 17, g: 1, k: []int{3, 3}, s: []int{2, 2}, d: []int{1, 1}, pads: []int{1, 1, 1, 1}},
		{in: []int{2, 5, 11, 10}, m: 3, g: 1, k: []int{1, 1}, s: []int{2, 2}, d: []int{1, 1}, pads: []int{0, 0, 0, 0}, bias: true},
		{in: []int{1, 4, 9, 7}, m: 6, g: 2, k: []int{3, 2}, s: []int{2, 3}, d: []int{1, 2}, pads: []int{0, 2, 1, 1}},
		{in: []int{3, 6, 10, 10}, m: 6, g: 6, k: []int{3, 3}, s: []int{2, 2}, d: []int{2, 1}, pads: []int{2, 0, 1, 3}, bias: true},
		{in: []int{2, 3, 8, 9}, m: 5, g: 1, k: []int{3, 3}, s: []int{1, 1}, d: []int{2, 3}, pads: []int{2, 3, 2, 3}},
		{in: []int{1, 2, 5, 5}, m: 1, g: 1, k: []int{2, 2}, s: []int{1, 1}, d: []int{1, 1}, pads: []int{4, 0, 0, 3}, bias: true}, // pads beyond the kernel
		{in: []int{2, 3, 13}, m: 9, g: 1, k: []int{4}, s: []int{1}, d: []int{2}, pads: []int{3, 1}, bias: true},                  // 1-D
		{in: []int{2, 3, 13}, m: 9, g: 3, k: []int{3}, s: []int{3}, d: []int{1}, pads: []int{1, 2}},                              // 1-D strided, grouped
		{in: []int{2, 4, 6, 6}, m: 8, g: 1, k: []int{1, 1}, s: []int{1, 1}, d: []int{1, 1}, pads: []int{0, 0, 0, 0}, bias: true}, // pointwise
		{in: []int{1, 2, 5, 6, 4}, m: 4, g: 2, k: []int{2, 3, 2}, s: []int{1, 2, 1}, d: []int{2, 1, 1}, pads: []int{1, 0, 1, 0, 2, 1}},
		{in: []int{1, 3, 7, 7}, m: 5, g: 1, k: []int{7, 7}, s: []int{3, 3}, d: []int{1, 1}, pads: []int{3, 3, 3, 3}, bias: true},
	}
	for i, c := range cases {
		r := len(c.k)
		x := randT(rng, c.in...)
		w := randT(rng, append([]int{c.m, c.in[1] / c.g}, c.k...)...)
		inits := map[string]*Tensor{"w": w}
		in := []string{"x", "w"}
		var b *Tensor
		if c.bias {
			b = randT(rng, c.m)
			inits["b"] = b
			in = append(in, "b")
		}
		m := graphModel(inits, []gnode{{op: "Conv", in: in, out: []string{"y"},
			at: attrs{"kernel_shape": c.k, "strides": c.s, "dilations": c.d, "group": c.g, "pads": c.pads}}}, "y")
		want := naiveConv(x, w, b, c.s, c.d, c.pads[:r], c.pads[r:], c.g)
		var first *Tensor
		for _, threads := range []int{1, 2} {
			s := mustSession(t, m, Threads(threads))
			got := mustRun(t, s, x)["y"]
			check(t, fmt.Sprintf("case %d threads %d", i, threads), got, want, 1e-4)
			if first == nil {
				first = got
			} else if !bitsEqual(first, got) {
				t.Errorf("case %d: results differ between 1 and 2 threads", i)
			}
		}
	}
}

// chainCase is a Conv followed by some of BatchNormalization, an
// activation and a MaxPool.
type chainCase struct {
	name   string
	in     []int // x shape
	m      int   // output channels
	k      int   // square kernel
	s, p   int   // stride, padding
	bn     bool
	act    string // "", "Relu", "Clip"
	pool   bool
	bias   bool
	train  bool // BatchNormalization training_mode=1 (never folded)
	extra  func(nodes []gnode, outs []string) ([]gnode, []string)
	fused  []string // the fused program's op types; nil: no fusion
	capVal string   // a value fused away, to Capture in TestFusionHooks
}

func (c chainCase) model(rng *rand.Rand) *onnx.Model {
	inits := map[string]*Tensor{"w": randT(rng, c.m, c.in[1], c.k, c.k), "bvec": randT(rng, 1, c.m, 1, 1),
		"w1": randT(rng, c.m, c.in[1], 1, 1)}
	in := []string{"x", "w"}
	if c.bias {
		inits["b"] = randT(rng, c.m)
		in = append(in, "b")
	}
	nodes := []gnode{{op: "Conv", in: in, out: []string{"conv"},
		at: attrs{"kernel_shape": []int{c.k, c.k}, "strides": []int{c.s, c.s}, "pads": []int{c.p, c.p, c.p, c.p}}}}
	cur := "conv"
	if c.bn {
		at := attrs{"epsilon": float32(1e-3)}
		if c.train {
			at["training_mode"] = 1
		}
		nodes = append(nodes, gnode{op: "BatchNormalization", in: append([]string{cur}, bnInits(rng, inits, "bn_", c.m)...), out: []string{"bn"}, at: at})
		cur = "bn"
	}
	switch c.act {
	case "Relu":
		nodes = append(nodes, gnode{op: "Relu", in: []string{cur}, out: []string{"act"}})
		cur = "act"
	case "Clip":
		inits["lo"], inits["hi"] = NewFloat32(nil, []float32{-0.5}), NewFloat32(nil, []float32{0.75})
		nodes = append(nodes, gnode{op: "Clip", in: []string{cur, "lo", "hi"}, out: []string{"act"}})
		cur = "act"
	}
	if c.pool {
		nodes = append(nodes, gnode{op: "MaxPool", in: []string{cur}, out: []string{"pool"},
			at: attrs{"kernel_shape": []int{2, 2}, "strides": []int{2, 2}}})
		cur = "pool"
	}
	nodes = append(nodes, gnode{op: "Identity", in: []string{cur}, out: []string{"y"}})
	outs := []string{"y"}
	if c.extra != nil {
		nodes, outs = c.extra(nodes, outs)
	}
	return graphModel(inits, nodes, outs...)
}

// residual inserts an Add of value r between the Conv chain's BN (or
// Conv) and its activation (r first when first).
func residual(r string, first bool) func(n []gnode, o []string) ([]gnode, []string) {
	return func(n []gnode, o []string) ([]gnode, []string) {
		for i, nd := range n {
			if nd.op != "Relu" && nd.op != "Clip" {
				continue
			}
			in := nd.in[0]
			add := gnode{op: "Add", in: []string{in, r}, out: []string{"sum"}}
			if first {
				add.in = []string{r, in}
			}
			n[i].in = append([]string{"sum"}, nd.in[1:]...)
			return append(n[:i], append([]gnode{add}, n[i:]...)...), o
		}
		panic("no activation")
	}
}

var chainCases = []chainCase{
	{name: "conv-bn-relu-pool", in: []int{3, 3, 10, 12}, m: 16, k: 3, s: 1, p: 1, bn: true, act: "Relu", pool: true, bias: true,
		fused: []string{"Conv", "Identity"}, capVal: "bn"},
	{name: "conv-bn-relu no bias", in: []int{2, 4, 9, 7}, m: 5, k: 3, s: 1, p: 1, bn: true, act: "Relu",
		fused: []string{"Conv", "Identity"}, capVal: "bn"},
	{name: "strided conv-bn-clip", in: []int{2, 8, 11, 9}, m: 17, k: 3, s: 2, p: 1, bn: true, act: "Clip", bias: true,
		fused: []string{"Conv", "Identity"}, capVal: "conv"},
	{name: "conv-relu-pool odd sizes", in: []int{1, 2, 9, 11}, m: 33, k: 3, s: 1, p: 1, act: "Relu", pool: true, bias: true,
		fused: []string{"Conv", "Identity"}, capVal: "act"},
	{name: "conv-pool", in: []int{2, 3, 8, 8}, m: 8, k: 3, s: 1, p: 0, pool: true,
		fused: []string{"Conv", "Identity"}, capVal: "conv"},
	{name: "pointwise conv-bn-relu", in: []int{2, 6, 5, 5}, m: 7, k: 1, s: 1, p: 0, bn: true, act: "Relu",
		fused: []string{"Conv", "Identity"}, capVal: "bn"},
	{name: "conv-bn-relu batch 1, K > 256", in: []int{1, 32, 6, 6}, m: 64, k: 3, s: 1, p: 1, bn: true, act: "Relu", pool: true, bias: true,
		fused: []string{"Conv", "Identity"}, capVal: "act"},

	{name: "conv-bn-add-relu (residual second)", in: []int{2, 4, 7, 6}, m: 4, k: 3, s: 1, p: 1, bn: true, act: "Relu", bias: true,
		extra: residual("x", false), fused: []string{"Conv", "Identity"}, capVal: "bn"},
	{name: "strided conv-add-relu (residual first, computed)", in: []int{2, 3, 9, 9}, m: 5, k: 3, s: 2, p: 1, act: "Relu",
		extra: func(n []gnode, o []string) ([]gnode, []string) {
			// r = a 1×1 Conv of a 3×3/2 AveragePool of x.
			n = append([]gnode{
				{op: "AveragePool", in: []string{"x"}, out: []string{"xp"}, at: attrs{"kernel_shape": []int{3, 3}, "strides": []int{2, 2}, "pads": []int{1, 1, 1, 1}}},
				{op: "Conv", in: []string{"xp", "w1"}, out: []string{"r"}, at: attrs{"kernel_shape": []int{1, 1}}},
			}, n...)
			return residual("r", true)(n, o)
		},
		fused: []string{"AveragePool", "Conv", "Conv", "Identity"}, capVal: "conv"},
	{name: "conv-add broadcast residual", in: []int{2, 3, 5, 5}, m: 4, k: 3, s: 1, p: 1, act: "Relu", bias: true,
		extra: residual("bvec", false), fused: []string{"Conv", "Identity"}, capVal: "conv"},

	// Fusion must not happen.
	{name: "residual computed after the conv", in: []int{2, 4, 6, 6}, m: 4, k: 3, s: 1, p: 1, act: "Relu",
		extra: func(n []gnode, o []string) ([]gnode, []string) {
			n, o = residual("late", false)(n, o)
			// "late" is produced after the Conv in the program.
			return append(n[:1], append([]gnode{{op: "Neg", in: []string{"x"}, out: []string{"late"}}}, n[1:]...)...), o
		},
		// Nothing fuses: the Add cannot move up to the Conv, and the Relu
		// follows the Add, not the Conv.
	},
	{name: "bn in training mode", in: []int{2, 3, 6, 6}, m: 4, k: 3, s: 1, p: 1, bn: true, train: true},
	{name: "conv output is a graph output", in: []int{2, 3, 6, 6}, m: 4, k: 3, s: 1, p: 1, bn: true, act: "Relu",
		// Nothing folds into the observed Conv, and only a Conv absorbs
		// the nodes after it.
		extra: func(n []gnode, o []string) ([]gnode, []string) { return n, append(o, "conv") },
	},
	{name: "conv output read twice", in: []int{2, 3, 6, 6}, m: 4, k: 3, s: 1, p: 1, bn: true, act: "Relu",
		extra: func(n []gnode, o []string) ([]gnode, []string) {
			return append(n, gnode{op: "Neg", in: []string{"conv"}, out: []string{"neg"}}), append(o, "neg")
		},
	},
	{name: "activation output is a graph output", in: []int{2, 3, 6, 6}, m: 4, k: 3, s: 1, p: 1, bn: true, act: "Relu", pool: true,
		extra: func(n []gnode, o []string) ([]gnode, []string) { return n, append(o, "act") },
		fused: []string{"Conv", "MaxPool", "Identity"}, // Conv+BN+Relu fuse, the pool reads the observed output
	},
}

// TestFusion compares each fused session with the same model unfused
// (Fusion(false)): equal up to the rounding of the folded weights, and
// checks which nodes were fused, including the cases where nothing may be.
func TestFusion(t *testing.T) {
	for i, c := range chainCases {
		rng := rand.New(rand.NewSource(int64(100 + i)))
		m := c.model(rng)
		x := randT(rng, c.in...)
		for _, threads := range []int{1, 2} {
			fused := mustSession(t, m, Threads(threads))
			plain := mustSession(t, m, Threads(threads), Fusion(false))
			if plain.fused != nil {
				t.Fatalf("%s: Fusion(false) built a fused program", c.name)
			}
			if got := fusedOps(fused); !slices.Equal(got, c.fused) {
				t.Errorf("%s: fused program %v, want %v", c.name, got, c.fused)
			}
			a, b := mustRun(t, fused, x), mustRun(t, plain, x)
			for name, want := range b {
				if c.fused == nil {
					if !bitsEqual(a[name], want) {
						t.Errorf("%s: %s differs although nothing was fused", c.name, name)
					}
					continue
				}
				check(t, c.name+" "+name, a[name], want, 2e-5)
			}
		}
	}
}

// capturableCase is a chain case that fuses away a value it can capture,
// with its model and an input.
type capturableCase struct {
	chainCase
	m *onnx.Model
	x *Tensor
}

// capturableCases returns the chain cases that fuse away a value to
// capture, each with its model and an input drawn from the case's seed.
func capturableCases() []capturableCase {
	var cs []capturableCase
	for i, c := range chainCases {
		if c.fused == nil || c.capVal == "" {
			continue
		}
		rng := rand.New(rand.NewSource(int64(100 + i)))
		m := c.model(rng)
		cs = append(cs, capturableCase{c, m, randT(rng, c.in...)})
	}
	return cs
}

// TestFusionHooks: runs that observe intermediate values execute the
// unfused program, so they see exactly what a session without fusion
// computes; Capture of values the fused program still computes keeps the
// fused program.
func TestFusionHooks(t *testing.T) {
	for _, hc := range capturableCases() {
		c, m, x := hc.chainCase, hc.m, hc.x
		fused := mustSession(t, m)
		plain := mustSession(t, m, Fusion(false))
		want := mustRun(t, plain, x)["y"]
		fusedY := mustRun(t, fused, x)["y"]

		// Capture of a fused-away value: unfused, bit for bit.
		got := mustRun(t, fused, x, Capture(c.capVal))
		wantCap := mustRun(t, plain, x, Capture(c.capVal))
		if !bitsEqual(got["y"], want) || !bitsEqual(got[c.capVal], wantCap[c.capVal]) {
			t.Errorf("%s: Capture(%q) did not run the unfused graph", c.name, c.capVal)
		}
		// Capture of the input or the output only: still fused.
		got = mustRun(t, fused, x, Capture("x", "y"))
		if !bitsEqual(got["y"], fusedY) {
			t.Errorf("%s: Capture of unfused values changed the fused result", c.name)
		}
		// OnValue: every node, unfused.
		var seen []string
		got = mustRun(t, fused, x, OnValue(func(name string, _ *Tensor) { seen = append(seen, name) }))
		if !bitsEqual(got["y"], want) {
			t.Errorf("%s: OnValue run differs from the unfused session", c.name)
		}
		if len(seen) != len(m.Proto.GetGraph().GetNode()) {
			t.Errorf("%s: OnValue saw %v, want every node's output", c.name, seen)
		}
		// Batch statistics: unfused, with the statistics reported.
		if c.bn {
			var sf, sp []BatchNormStats
			got = mustRun(t, fused, x, BatchNormStatistics(func(s BatchNormStats) { sf = append(sf, s) }))
			ref := mustRun(t, plain, x, BatchNormStatistics(func(s BatchNormStats) { sp = append(sp, s) }))
			if !bitsEqual(got["y"], ref["y"]) || len(sf) != 1 || len(sp) != 1 || !slices.Equal(sf[0].Sum, sp[0].Sum) {
				t.Errorf("%s: BatchNormStatistics run differs from the unfused session", c.name)
			}
		}
	}
}

// TestFusionNonConstant: a Conv whose weights are computed, or a Clip
// whose bounds are, fuses nothing (the weights cannot be folded or packed;
// the bounds are unknown at NewSession).
func TestFusionNonConstant(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	inits := map[string]*Tensor{"w": randT(rng, 4, 3, 3, 3), "lo": NewFloat32(nil, []float32{-1})}
	m := graphModel(inits, []gnode{
		{op: "Neg", in: []string{"w"}, out: []string{"w2"}}, // folded at NewSession: still constant
		{op: "Conv", in: []string{"x", "w2"}, out: []string{"c"}, at: attrs{"pads": []int{1, 1, 1, 1}}},
		{op: "ReduceMax", in: []string{"x"}, out: []string{"hi"}, at: attrs{"keepdims": 0}},
		{op: "Clip", in: []string{"c", "lo", "hi"}, out: []string{"y"}},
	}, "y")
	s := mustSession(t, m)
	if s.fused != nil {
		t.Errorf("Clip with a computed bound was fused: %v", fusedOps(s))
	}
	// Weights from a graph input.
	m2 := opModel("Conv", 17, attrs{"pads": []int{1, 1, 1, 1}}, []DType{Float32, Float32}, 1)
	g := m2.Proto.GetGraph()
	g.Node = append(g.Node, &onnxpb.NodeProto{OpType: proto.String("Relu"), Input: []string{"out0"}, Output: []string{"r"}})
	g.Output[0].Name = proto.String("r")
	s2 := mustSession(t, m2)
	if s2.fused != nil {
		t.Errorf("Conv with weights from a graph input was fused: %v", fusedOps(s2))
	}
}

// TestFusionModels: on every test model, the fused session agrees with
// the unfused one (and the CNNs do fuse).
func TestFusionModels(t *testing.T) {
	x, _ := fashion(t, "test", 7)
	for _, path := range smallModels(t) {
		name := modelName(path)
		_, fused := loadSession(t, path)
		_, plain := loadSession(t, path, Fusion(false))
		switch {
		case name[:3] == "cnn" || name[:6] == "resnet":
			if fused.fused == nil {
				t.Errorf("%s: nothing fused", name)
			}
		}
		for _, n := range []int{1, 7} {
			in := batchOf(x, 0, n)
			if fused.Inputs()[0].Shape != nil && len(fused.Inputs()[0].Shape) != 4 {
				var err error
				r, err := randomInput(fused, n, 5)
				if err != nil {
					t.Fatal(err)
				}
				in = r[fused.Inputs()[0].Name]
			}
			feed := map[string]*Tensor{fused.Inputs()[0].Name: in}
			a, err := fused.Run(feed)
			if err != nil {
				t.Fatal(err)
			}
			b, err := plain.Run(feed)
			if err != nil {
				t.Fatal(err)
			}
			for k, want := range b {
				if err := compareTensors(a[k], want, 1e-4, 1e-4); err != nil {
					t.Errorf("%s batch %d %s: fused vs unfused: %v", name, n, k, err)
				}
				var worst float64
				for i := range want.F {
					worst = math.Max(worst, math.Abs(float64(a[k].F[i]-want.F[i])))
				}
				t.Logf("%s batch %d: max |fused - unfused| = %.2g", name, n, worst)
			}
		}
	}
}

// fusedConvs returns the Conv nodes of s's fused program, each with the
// Conv of the unfused program that it replaces.
func fusedConvs(s *Session) (fused, plain []*convOp) {
	byName := map[string]*convOp{}
	for _, nd := range s.nodes {
		if nd.op == "Conv" {
			byName[nd.name] = nd.conv
		}
	}
	for _, nd := range s.fused {
		if nd.op == "Conv" && nd.conv != nil && nd.conv != byName[nd.name] {
			fused, plain = append(fused, nd.conv), append(plain, byName[nd.name])
		}
	}
	return fused, plain
}

// TestFusionBuiltOnFirstUse: a fused Conv that folds a BatchNormalization
// folds and packs its weights on the fused program's first run, not at
// NewSession, so that sessions whose runs all observe fused-away values
// never pay for them; concurrent first runs build it once and all get the
// fused result. One that folds nothing shares the Conv's own packing.
func TestFusionBuiltOnFirstUse(t *testing.T) {
	lazy, shared := 0, 0
	for _, hc := range capturableCases() {
		c, m, x := hc.chainCase, hc.m, hc.x
		s := mustSession(t, m)
		want := mustRun(t, mustSession(t, m), x)["y"] // a session of its own: fused
		ops, bases := fusedConvs(s)
		if len(ops) == 0 {
			t.Fatalf("%s: no fused Conv", c.name)
		}
		for k, op := range ops {
			switch {
			case op.build != nil && op.packed != nil:
				t.Fatalf("%s: folded weights packed before any run", c.name)
			case op.build != nil:
				lazy++
			case len(op.packed) == 0 || &op.packed[0] != &bases[k].packed[0]:
				t.Fatalf("%s: a fused Conv that folds nothing does not share the Conv's packing", c.name)
			default:
				shared++
			}
		}
		mustRun(t, s, x, Capture(c.capVal)) // runs unfused
		for _, op := range ops {
			if op.build != nil && op.packed != nil {
				t.Fatalf("%s: a run of the unfused program built the fused weights", c.name)
			}
		}
		var wg sync.WaitGroup
		got := make([]*Tensor, 4)
		for g := range got {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out, err := s.Run(map[string]*Tensor{"x": x})
				if err != nil {
					t.Error(err)
					return
				}
				got[g] = out["y"]
			}()
		}
		wg.Wait()
		for g, y := range got {
			if y == nil || !bitsEqual(y, want) {
				t.Fatalf("%s: concurrent first run %d differs from a fused session's", c.name, g)
			}
		}
		for _, op := range ops {
			if len(op.packed) != op.group {
				t.Fatalf("%s: after a fused run the Conv is not packed", c.name)
			}
		}
	}
	if lazy == 0 || shared == 0 {
		t.Fatalf("%d fused Convs built on first use, %d sharing the Conv's packing: the cases should have both", lazy, shared)
	}
}

package merge

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/activation"
	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/internal/modelform"
	"github.com/onnx-rebasin/onnx-rebasin/internal/ortref"
	"github.com/onnx-rebasin/onnx-rebasin/internal/testkit"
	"github.com/onnx-rebasin/onnx-rebasin/match"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
	"github.com/onnx-rebasin/onnx-rebasin/permute"
)

// A form rewrites a model into another form of the same computation.
type form struct {
	name    string
	convert func(*onnx.Model) (*onnx.Model, error)
}

var (
	asIs = form{"as exported", func(m *onnx.Model) (*onnx.Model, error) { return m.Clone(), nil }}
	fp16 = form{"fp16", func(m *onnx.Model) (*onnx.Model, error) { return modelform.HalfStorage(m, onnxpb.TensorProto_FLOAT16) }}
	bf16 = form{"bf16", func(m *onnx.Model) (*onnx.Model, error) { return modelform.HalfStorage(m, onnxpb.TensorProto_BFLOAT16) }}

	constants     = form{"constants", modelform.ConstantNodes}
	fp16Constants = form{"fp16 constants", func(m *onnx.Model) (*onnx.Model, error) {
		h, err := fp16.convert(m)
		if err != nil {
			return nil, err
		}
		return modelform.ConstantNodes(h)
	}}
)

func loadForm(t *testing.T, name string, f form) (*onnx.Model, *graph.Analysis) {
	t.Helper()
	m, _ := testkit.LoadAnalyze(t, modelPath(name))
	c, err := f.convert(m)
	if err != nil {
		t.Fatal(err)
	}
	g, err := graph.Analyze(c)
	if err != nil {
		t.Fatalf("%s (%s): %v", name, f.name, err)
	}
	return c, g
}

// modelPath is the path of a committed test model; testmodels/forms holds
// exports that differ from the others only in form.
func modelPath(name string) string { return filepath.Join("..", "testmodels", name+".onnx") }

func saveTemp(t *testing.T, m *onnx.Model, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), strings.ReplaceAll(name, " ", "_")+".onnx")
	if err := m.Save(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestFormsSelfRecovery permutes another form of a model (fp16 or bf16
// storage behind Casts, Constant nodes, the same weights exported at opset
// 13, where the transformer's LayerNorms are spelled out in elementary ops)
// at random and checks that weight matching against the model as
// exported finds the permutation back exactly, and that the permuted copy
// computes what the copy computes (ONNX Runtime).
func TestFormsSelfRecovery(t *testing.T) {
	ort := ortref.Require(t)
	type tc struct {
		a, b string
		f    form
	}
	var cases []tc
	for _, arch := range []string{"mlp32", "cnn_bn", "cnn_fold", "resnet", "transformer"} {
		for _, f := range []form{fp16, bf16, constants, fp16Constants} {
			cases = append(cases, tc{arch + "_s0", arch + "_s0", f})
		}
	}
	cases = append(cases, tc{"resnet_s0", "forms/resnet_s0_op13", asIs}, tc{"forms/resnet_s0_op13", "resnet_s0", fp16},
		tc{"resnet_s1", "forms/resnet_s1_fp16", asIs}, tc{"forms/resnet_s1_fp16", "resnet_s1", asIs},
		tc{"transformer_s0", "forms/transformer_s0_op13", asIs}, tc{"forms/transformer_s0_op13", "transformer_s0", fp16},
		// Tensors shared through permute.Identity behind a Cast: permute.Apply gives the
		// layers that need another placement copies in the type they read.
		tc{"forms/resnet_init", "forms/resnet_init", fp16}, tc{"forms/resnet_init", "forms/resnet_init", bf16})
	for _, c := range cases {
		t.Run(c.a+"/"+c.b+" "+c.f.name, func(t *testing.T) {
			a, ga := testkit.LoadAnalyze(t, modelPath(c.a))
			orig, gb := loadForm(t, c.b, c.f)
			if err := permute.SameArchitecture(a, orig, ga, gb); err != nil {
				t.Fatal(err)
			}
			b := orig.Clone()
			p := permute.Random(ga, 21)
			if err := permute.Apply(b, ga, p); err != nil {
				t.Fatal(err)
			}
			res, err := match.Weights(a, b, ga, match.Options{Seed: 3})
			if err != nil {
				t.Fatal(err)
			}
			// Applying res.Perms to b must undo p: unit i of the result is
			// unit res[i] of b, which is unit p[res[i]] of the original.
			for g := range p {
				for i, j := range res.Perms[g] {
					if p[g][j] != i {
						t.Fatalf("group %d (%d units): unit %d not recovered (objective %g -> %g)", g, len(p[g]), i, res.ObjectiveBefore, res.ObjectiveAfter)
					}
				}
			}
			if err := ort.CompareModels(saveTemp(t, orig, "orig"), saveTemp(t, b, "permuted"), testkit.RandomInputs(t, orig, 2, 5), 1e-4, 1e-3); err != nil {
				t.Fatalf("the permuted copy computes something else: %v", err)
			}
		})
	}
}

// TestFormsAlignAndMerge aligns and merges pairs of models trained apart
// whose files differ in form: a trained model and an untrained export of
// its class (PyTorch aliases the untrained model's equal BatchNorm vectors
// through 36 permute.Identity nodes; it is resnet_s0's initialisation, which
// resnet_s0 aligns to without moving, so the pairs use resnet_s1), exports at opset 17 and 13, and fp16/bf16 or
// Constant-node storage of one of the two, in both directions. The aligned
// model computes what B computes (ONNX Runtime) and keeps B's graph and
// element types; the merged model keeps A's, and aligning B in another
// form finds the permutations that B as exported gets.
func TestFormsAlignAndMerge(t *testing.T) {
	ort := ortref.Require(t)
	type tc struct {
		a, b   string
		fa, fb form
	}
	cases := []tc{
		{"resnet_s1", "forms/resnet_init", asIs, asIs},
		{"forms/resnet_init", "resnet_s1", asIs, asIs},
		{"resnet_s1", "forms/resnet_s0_op13", asIs, asIs},
		{"forms/resnet_s0_op13", "resnet_s1", asIs, asIs},
		{"transformer_s1", "forms/transformer_s0_op13", asIs, asIs},
		{"forms/transformer_s0_op13", "transformer_s1", asIs, fp16},
		{"resnet_s1", "forms/resnet_init", fp16, asIs},
		{"forms/resnet_init", "resnet_s1", asIs, fp16},
		{"forms/resnet_init", "resnet_s1", bf16, constants},
	}
	for _, arch := range []string{"mlp32", "cnn_bn", "resnet", "transformer"} {
		cases = append(cases,
			tc{arch + "_s0", arch + "_s1", asIs, fp16},
			tc{arch + "_s0", arch + "_s1", fp16, asIs},
			tc{arch + "_s0", arch + "_s1", asIs, bf16},
			tc{arch + "_s0", arch + "_s1", constants, fp16Constants})
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s %s/%s %s", c.a, c.fa.name, c.b, c.fb.name), func(t *testing.T) {
			a, ga := loadForm(t, c.a, c.fa)
			b, gb := loadForm(t, c.b, c.fb)
			if err := permute.SameArchitecture(a, b, ga, gb); err != nil {
				t.Fatal(err)
			}
			res, err := match.Weights(a, b, ga, match.Options{Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			moved := 0
			for _, p := range res.Perms {
				moved += len(p) - fixedPoints(p)
			}
			if moved == 0 {
				t.Fatal("nothing moved: models trained apart should need permuting")
			}
			if c.fa.name == asIs.name && c.fb.name != asIs.name && !strings.Contains(c.fb.name, "16") {
				// A lossless form of b aligns as b itself does.
				plain, _ := loadForm(t, c.b, asIs)
				ref, err := match.Weights(a, plain, ga, match.Options{Seed: 1})
				if err != nil {
					t.Fatal(err)
				}
				if !samePerms(ref.Perms, res.Perms) {
					t.Error("b in another form aligns differently from b as exported")
				}
			}
			aligned := b.Clone()
			if err := permute.Apply(aligned, ga, res.Perms); err != nil {
				t.Fatal(err)
			}
			keepsGraph(t, b, aligned)
			if err := ort.CompareModels(saveTemp(t, b, "b"), saveTemp(t, aligned, "aligned"), testkit.RandomInputs(t, b, 2, 9), 1e-4, 1e-3); err != nil {
				t.Fatalf("the aligned model computes something else than b: %v", err)
			}
			merged, err := Aligned([]*onnx.Model{a, b}, ga, []permute.Perms{permute.Identity(ga), res.Perms}, nil)
			if err != nil {
				t.Fatal(err)
			}
			keepsGraph(t, a, merged)
			// The merged model runs, and at λ = 0 merging gives back a's function.
			if _, err := ort.Run(saveTemp(t, merged, "merged"), testkit.RandomInputs(t, a, 2, 9)); err != nil {
				t.Fatalf("the merged model does not run: %v", err)
			}
			endpoint, err := Aligned([]*onnx.Model{a, b}, ga, []permute.Perms{permute.Identity(ga), res.Perms}, []float64{1, 0})
			if err != nil {
				t.Fatal(err)
			}
			if err := ort.CompareModels(saveTemp(t, a, "a"), saveTemp(t, endpoint, "endpoint"), testkit.RandomInputs(t, a, 2, 9), 1e-4, 1e-3); err != nil {
				t.Fatalf("merging with weights 1, 0 does not give a: %v", err)
			}
		})
	}
}

func fixedPoints(p []int) int {
	n := 0
	for i, j := range p {
		if i == j {
			n++
		}
	}
	return n
}

// keepsGraph checks that out has ref's nodes (op types, in order) and that
// every initializer ref has keeps its element type in out.
func keepsGraph(t *testing.T, ref, out *onnx.Model) {
	t.Helper()
	rn, on := ref.Proto.Graph.Node, out.Proto.Graph.Node
	if len(rn) != len(on) {
		t.Fatalf("%d nodes, want %d", len(on), len(rn))
	}
	for i := range rn {
		if rn[i].GetOpType() != on[i].GetOpType() {
			t.Fatalf("node %d is %s, want %s", i, on[i].GetOpType(), rn[i].GetOpType())
		}
	}
	ow := out.Weights()
	for name, w := range ref.Weights() {
		if o := ow[name]; o == nil || onnx.DataType(o) != onnx.DataType(w) {
			t.Fatalf("weight %q: %v in the output, %v in the reference", name, o.GetDataType(), w.GetDataType())
		}
	}
}

// TestFormsRepair runs REPAIR on models that store their weights in fp16
// behind Casts and whose first layer has no bias: the bias REPAIR adds must
// be of the type the layer reads (float32), and the model must run.
func TestFormsRepair(t *testing.T) {
	ort := ortref.Require(t)
	var models []*onnx.Model
	for _, name := range []string{"mlp32_s0", "mlp32_s1"} {
		m, _ := testkit.LoadAnalyze(t, modelPath(name))
		if n := m.Proto.Graph.Node[1]; n.GetOpType() != "Gemm" {
			t.Fatalf("%s: node 1 is %s, want the first Gemm", name, n.GetOpType())
		}
		m.Proto.Graph.Node[1].Input = m.Proto.Graph.Node[1].Input[:2] // drop its bias
		h, err := fp16.convert(m)
		if err != nil {
			t.Fatal(err)
		}
		models = append(models, h)
	}
	ga, err := graph.Analyze(models[0])
	if err != nil {
		t.Fatal(err)
	}
	res, err := match.Weights(models[0], models[1], ga, match.Options{})
	if err != nil {
		t.Fatal(err)
	}
	perms := []permute.Perms{permute.Identity(ga), res.Perms}
	merged, err := Aligned(models, ga, perms, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, b := models[0].Clone(), models[1].Clone()
	if err := permute.Apply(a, ga, perms[0]); err != nil {
		t.Fatal(err)
	}
	if err := permute.Apply(b, ga, perms[1]); err != nil {
		t.Fatal(err)
	}
	rep, err := activation.PrepareRepair(a, b, ga, testkit.LoadData(t, "fashion_train_x.npy", ""), activation.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Apply(merged, 0.5); err != nil {
		t.Fatal(err)
	}
	added := 0
	for _, w := range merged.Proto.Graph.Initializer {
		if strings.HasSuffix(w.GetName(), "_repair_bias") {
			added++
			if onnx.DataType(w) != onnxpb.TensorProto_FLOAT {
				t.Errorf("REPAIR's bias %q is %v, the layer reads float32", w.GetName(), onnx.DataType(w))
			}
		}
	}
	if added != 1 {
		t.Fatalf("REPAIR added %d biases, want 1", added)
	}
	if _, err := ort.Run(saveTemp(t, merged, "repaired"), testkit.RandomInputs(t, merged, 2, 3)); err != nil {
		t.Fatalf("the repaired model does not run: %v", err)
	}
}

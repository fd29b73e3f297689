package graph_test

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/internal/testreq"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
)

func loadModel(t *testing.T, path string) *onnx.Model {
	t.Helper()
	m, err := onnx.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// bn lists the four BatchNormalization parameters of prefix.
func bn(prefix string) string {
	return prefix + ".weight#0 " + prefix + ".bias#0 " + prefix + ".running_mean#0 " + prefix + ".running_var#0"
}

// Expected groups of the committed test models, worked out from their
// architectures (testmodels/make_models.py).
var modelGroups = map[string][]string{
	// Flatten, 784-512-512-512-10: the three hidden layers.
	"mlp_s0": {
		"512: net.1.weight#0 net.1.bias#0 net.3.weight#1",
		"512: net.3.weight#0 net.3.bias#0 net.5.weight#1",
		"512: net.5.weight#0 net.5.bias#0 net.7.weight#1",
	},
	"mlp32_s0": {
		"32: net.1.weight#0 net.1.bias#0 net.3.weight#1",
		"32: net.3.weight#0 net.3.bias#0 net.5.weight#1",
		"32: net.5.weight#0 net.5.bias#0 net.7.weight#1",
	},
	// conv 32, conv 64 (flattened over 7×7 into fc1), fc 128.
	"cnn_bn_s0": {
		"32: features.0.weight#0 features.0.bias#0 " + bn("features.1") + " features.4.weight#1",
		"64: features.4.weight#0 features.4.bias#0 " + bn("features.5") + " classifier.1.weight#1/b49",
		"128: classifier.1.weight#0 classifier.1.bias#0 classifier.3.weight#1",
	},
	"cnn_fold_s0": {
		"32: onnx::Conv_32#0 onnx::Conv_33#0 onnx::Conv_35#1",
		"64: onnx::Conv_35#0 onnx::Conv_36#0 classifier.1.weight#1/b49",
		"128: classifier.1.weight#0 classifier.1.bias#0 classifier.3.weight#1",
	},
	// Stem + stage 1 is one residual stream of 16 (identity shortcuts);
	// each block's inner 16; stage 2's stream of 32 joins the downsample
	// shortcut, both blocks' outputs and the classifier; inner 32s. The
	// exporter shares layer2.0.bn2.bias with the downsample BN through an
	// Identity node.
	"resnet_s0": {
		"16: stem.0.weight#0 " + bn("stem.1") + " layer1.0.conv1.weight#1 layer1.0.conv2.weight#0 " + bn("layer1.0.bn2") +
			" layer1.1.conv1.weight#1 layer1.1.conv2.weight#0 " + bn("layer1.1.bn2") +
			" layer2.0.downsample.0.weight#1 layer2.0.conv1.weight#1",
		"16: layer1.0.conv1.weight#0 " + bn("layer1.0.bn1") + " layer1.0.conv2.weight#1",
		"16: layer1.1.conv1.weight#0 " + bn("layer1.1.bn1") + " layer1.1.conv2.weight#1",
		"32: layer2.0.downsample.0.weight#0 layer2.0.downsample.1.weight#0 layer2.0.downsample.1.bias>layer2.0.bn2.bias#0 " +
			"layer2.0.downsample.1.running_mean#0 layer2.0.downsample.1.running_var#0 layer2.0.conv2.weight#0 " + bn("layer2.0.bn2") +
			" layer2.1.conv1.weight#1 layer2.1.conv2.weight#0 " + bn("layer2.1.bn2") + " fc.weight#1",
		"32: layer2.0.conv1.weight#0 " + bn("layer2.0.bn1") + " layer2.0.conv2.weight#1",
		"32: layer2.1.conv1.weight#0 " + bn("layer2.1.bn1") + " layer2.1.conv2.weight#1",
	},
	// The residual stream of 64 runs from the patch projection (and the
	// positional embedding) through both layers' LayerNorms, attention
	// output projections and MLP outputs to the final norm and the head;
	// each MLP has a hidden group of 128. Each attention has a Q·K group
	// and a V·O group of 4 heads × 16 (block groups sharing the head
	// permutation).
	"transformer_s0": {
		"64: onnx::MatMul_146#1 patch.bias#0 pos#2 layers.0.ln1.weight#0 layers.0.ln1.bias#0 onnx::MatMul_147#0 " +
			"onnx::MatMul_148#0 onnx::MatMul_149#0 onnx::MatMul_150#1 layers.0.o.bias#0 layers.0.ln2.weight#0 " +
			"layers.0.ln2.bias#0 onnx::MatMul_151#0 onnx::MatMul_152#1 layers.0.fc2.bias#0 layers.1.ln1.weight#0 " +
			"layers.1.ln1.bias#0 onnx::MatMul_153#0 onnx::MatMul_154#0 onnx::MatMul_155#0 onnx::MatMul_156#1 " +
			"layers.1.o.bias#0 layers.1.ln2.weight#0 layers.1.ln2.bias#0 onnx::MatMul_157#0 onnx::MatMul_158#1 " +
			"layers.1.fc2.bias#0 norm.weight#0 norm.bias#0 head.weight#1",
		"64 (4 blocks): onnx::MatMul_147#1 layers.0.q.bias#0 onnx::MatMul_148#1 layers.0.k.bias#0",
		"64 (4 blocks): onnx::MatMul_149#1 layers.0.v.bias#0 onnx::MatMul_150#0",
		"128: onnx::MatMul_151#1 layers.0.fc1.bias#0 onnx::MatMul_152#0",
		"64 (4 blocks): onnx::MatMul_153#1 layers.1.q.bias#0 onnx::MatMul_154#1 layers.1.k.bias#0",
		"64 (4 blocks): onnx::MatMul_155#1 layers.1.v.bias#0 onnx::MatMul_156#0",
		"128: onnx::MatMul_157#1 layers.1.fc1.bias#0 onnx::MatMul_158#0",
	},
}

// Expected frozen entries ("value#axis(size)", reason checked loosely).
var modelFrozen = map[string][]string{
	"mlp_s0":      {`input#2(28)~graph input "input"`, `logits#1(10)~graph output "logits"`},
	"mlp32_s0":    {`input#2(28)~graph input "input"`, `logits#1(10)~graph output "logits"`},
	"cnn_bn_s0":   {`logits#1(10)~graph output "logits"`},
	"cnn_fold_s0": {`logits#1(10)~graph output "logits"`},
	"resnet_s0":   {`logits#1(10)~graph output "logits"`},
	"transformer_s0": {
		`/Reshape_output_0#1(4)~splits 28 channels into 4 heads × 7`, `/Reshape_output_0#2(7)~splits 28 channels into 4 heads × 7`,
		`logits#1(10)~graph output "logits"`,
	},
}

var modelSummary = map[string]string{
	"mlp":         "groups: 3 (1536 permutable units / 1536 hidden units), frozen: 2 axes",
	"mlp32":       "groups: 3 (96 permutable units / 96 hidden units), frozen: 2 axes",
	"cnn_bn":      "groups: 3 (224 permutable units / 224 hidden units), frozen: 1 axis",
	"cnn_fold":    "groups: 3 (224 permutable units / 224 hidden units), frozen: 1 axis",
	"resnet":      "groups: 6 (144 permutable units / 144 hidden units), frozen: 1 axis",
	"transformer": "groups: 7 (576 permutable units / 576 hidden units), frozen: 3 axes",
}

func TestTestModels(t *testing.T) {
	for arch, summary := range modelSummary {
		for _, seed := range []string{"_s0", "_s1"} {
			name := arch + seed
			path := filepath.Join("..", "testmodels", name+".onnx")
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			t.Run(name, func(t *testing.T) {
				a, err := graph.Analyze(loadModel(t, path))
				if err != nil {
					t.Fatal(err)
				}
				if got := a.Summary(); got != summary {
					t.Errorf("summary %q, want %q", got, summary)
				}
				checkCounts(t, a)
				if want, ok := modelGroups[name]; ok {
					if got := describeGroups(a); !slices.Equal(got, want) {
						t.Errorf("groups:\n got %q\nwant %q", got, want)
					}
					checkFrozen(t, a, modelFrozen[name])
				}
				for _, g := range a.Groups {
					if len(g.Activations) == 0 || len(g.Reasons) == 0 {
						t.Errorf("group %d: %d activation sites, %d reasons", g.ID, len(g.Activations), len(g.Reasons))
					}
				}
			})
		}
	}
}

// TestLargeModels analyses the structure models of testmodels/large (not
// committed; make_models.py --large writes them) and logs the summaries.
func TestLargeModels(t *testing.T) {
	paths := testreq.LargeModels(t, "../testmodels/large")
	if len(paths) == 0 {
		testreq.Missing(t, "testmodels/large is empty; generate it with %s", testreq.LargeHint)
	}
	for _, path := range paths {
		name := strings.TrimSuffix(filepath.Base(path), ".onnx")
		t.Run(name, func(t *testing.T) {
			m := loadModel(t, path)
			start := time.Now()
			a, err := graph.Analyze(m)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s (%v)", a.Summary(), time.Since(start).Round(time.Millisecond))
			for _, f := range a.Frozen {
				t.Logf("  frozen %s axis %d (%d): %s", f.Value, f.Axis, f.Size, f.Reason)
			}
			checkCounts(t, a)
			if a.PermutableUnits == 0 {
				t.Error("nothing permutable")
			}
			b, err := graph.Analyze(m)
			if err != nil || !reflect.DeepEqual(a, b) {
				t.Error("a second analysis differs from the first")
			}
		})
	}
}

// TestBlockModels checks the summaries and block structure of the
// committed random-init attention and grouped-conv models: every attention
// of the multi-head forms (separate q/k/v, torch's MultiheadAttention and
// TransformerEncoder with packed in_proj) is a Q·K and a V·O group of 4
// heads × 8 sharing σ; rotary embeddings keep the Q·K units in place
// within the heads; grouped-query attention is a K·Q and a V·O group of
// 2 K/V heads × 8 whose query sites repeat every K/V head twice, and
// multi-query attention two plain groups of 8 (one K/V head) whose query
// sites repeat it 4 times (TestRepeatedSites); a grouped conv's
// input channels (and a grouped ConvTranspose's output channels) move alike
// in every block.
func TestBlockModels(t *testing.T) {
	for _, tc := range []struct {
		name, summary string
		blockGroups   int // groups with Blocks > 1
		fixed, shared int // of which FixedWithin, SharedWithin
		sets          int
	}{
		{"attn_qkv", "groups: 7 (256 permutable units / 256 hidden units), frozen: 3 axes", 4, 0, 0, 2},
		{"attn_mha", "groups: 7 (256 permutable units / 256 hidden units), frozen: 3 axes", 4, 0, 0, 2},
		{"attn_encoder", "groups: 7 (256 permutable units / 256 hidden units), frozen: 2 axes", 4, 0, 0, 2},
		{"attn_rotary", "groups: 7 (256 permutable units / 256 hidden units), frozen: 9 axes", 4, 2, 0, 2},
		{"attn_gqa", "groups: 7 (256 permutable units / 256 hidden units), frozen: 19 axes", 4, 0, 0, 2},
		{"attn_mqa", "groups: 7 (224 permutable units / 224 hidden units), frozen: 11 axes", 0, 0, 0, 0},
		{"gconv", "groups: 4 (76 permutable units / 76 hidden units), frozen: 2 axes", 4, 0, 2, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := graph.Analyze(loadModel(t, filepath.Join("..", "testmodels", tc.name+".onnx")))
			if err != nil {
				t.Fatal(err)
			}
			if got := a.Summary(); got != tc.summary {
				t.Errorf("summary %q, want %q", got, tc.summary)
			}
			blocks, fixed, shared := 0, 0, 0
			for _, g := range a.Groups {
				if g.Blocks > 1 {
					blocks++
					if g.Size%g.Blocks != 0 {
						t.Errorf("group %d: %d units in %d blocks", g.ID, g.Size, g.Blocks)
					}
				}
				if g.FixedWithin {
					fixed++
				}
				if g.SharedWithin {
					shared++
				}
			}
			if blocks != tc.blockGroups || fixed != tc.fixed || shared != tc.shared || len(a.BlockSets) != tc.sets {
				t.Errorf("%d block groups (%d fixed within, %d shared) in %d sets, want %d (%d, %d) in %d",
					blocks, fixed, shared, len(a.BlockSets), tc.blockGroups, tc.fixed, tc.shared, tc.sets)
			}
		})
	}
}

// TestRepeatedSites checks where the query side of grouped-query (attn_gqa:
// 4 query heads, 2 K/V heads of 8) and multi-query attention (attn_mqa: 1
// K/V head) goes: in each attention the query projection (weight and bias,
// its output values) is in the K group with every K/V head repeated g
// times, the output projection's input in the V group likewise, and the
// query units count as permutable units (Group.Repeated).
func TestRepeatedSites(t *testing.T) {
	for _, tc := range []struct {
		name   string
		repeat int
	}{{"attn_gqa", 2}, {"attn_mqa", 4}} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := graph.Analyze(loadModel(t, filepath.Join("..", "testmodels", tc.name+".onnx")))
			if err != nil {
				t.Fatal(err)
			}
			for _, layer := range []string{"attn.0", "attn.1"} {
				// group of each site's tensor (or value), and its Repeat
				where := func(node string, weight bool) (int, int) {
					for _, g := range a.Groups {
						if weight {
							for _, s := range g.Weights {
								if s.Tensor == layer+"."+node+".bias" {
									return g.ID, s.Repeat
								}
							}
							continue
						}
						for _, s := range g.Activations {
							if s.Value == "/"+layer+"/"+node+"/MatMul_output_0" {
								return g.ID, s.Repeat
							}
						}
					}
					return -1, 0
				}
				qg, qr := where("q", true)
				kg, kr := where("k", true)
				qa, qar := where("q", false)
				if qg < 0 || qg != kg || qa != kg || qr != tc.repeat || qar != tc.repeat || kr > 1 {
					t.Errorf("%s: q bias in group %d (repeat %d), its output in %d (repeat %d), k bias in %d (repeat %d); want one group, q repeated %d times",
						layer, qg, qr, qa, qar, kg, kr, tc.repeat)
					continue
				}
				if g := a.Groups[kg]; g.Repeated != 32 || !slices.ContainsFunc(g.Reasons, func(r string) bool {
					return strings.Contains(r, "query heads move with their K/V head, in order")
				}) {
					t.Errorf("%s: K group %d: %d repeated units, reasons %q", layer, kg, g.Repeated, g.Reasons)
				}
				vg, _ := where("v", true)
				og := -1
				for _, s := range a.Groups[vg].Weights {
					if s.Repeat == tc.repeat && s.Axis == 0 {
						og = vg // the output projection's input rows
					}
				}
				if og < 0 {
					t.Errorf("%s: V group %d has no repeated output-projection rows", layer, vg)
				}
			}
		})
	}
}

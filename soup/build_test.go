package soup

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/activation"
	"github.com/onnx-rebasin/onnx-rebasin/eval"
	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/internal/ortref"
	"github.com/onnx-rebasin/onnx-rebasin/match"
	"github.com/onnx-rebasin/onnx-rebasin/merge"
	"github.com/onnx-rebasin/onnx-rebasin/npy"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
	"github.com/onnx-rebasin/onnx-rebasin/permute"
)

const testModels = "../testmodels"

// soupDir copies the soup test models into a fresh folder, where recipes
// and outputs go.
func soupDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, m := range []string{"base", "ft0", "ft1", "ft2", "ft3", "task_shift", "task_noise"} {
		b, err := os.ReadFile(filepath.Join(testModels, "soup", m+".onnx"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, m+".onnx"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// build writes recipe into dir and builds it to dir/name.onnx.
func build(t *testing.T, dir, name, recipe string) (string, *Result) {
	t.Helper()
	rp := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(rp, []byte(recipe), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := ReadRecipe(rp)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name+".onnx")
	res, err := Build(r, out, Options{Version: "test"})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return out, res
}

// task is a test slice: inputs as float32 for ONNX Runtime, and labels.
type task struct {
	name string
	x    *npy.Array
	y    []int64
}

func loadTasks(t *testing.T) []task {
	t.Helper()
	ya, err := npy.ReadFile(filepath.Join(testModels, "fashion_test_y.npy"))
	if err != nil {
		t.Fatal(err)
	}
	y, _ := ya.Int64()
	var tasks []task
	for _, c := range [][2]string{{"clean", "fashion_test_x.npy"}, {"shift", "soup/shift_test_x.npy"}, {"noise", "soup/noise_test_x.npy"}} {
		a, err := npy.ReadFile(filepath.Join(testModels, c[1]))
		if err != nil {
			t.Fatal(err)
		}
		f, err := a.Float32()
		if err != nil {
			t.Fatal(err)
		}
		x, err := npy.FromFloat32(a.Shape, f)
		if err != nil {
			t.Fatal(err)
		}
		tasks = append(tasks, task{c[0], x, y})
	}
	return tasks
}

// ortAccuracies runs the model at path in ONNX Runtime on every task.
func ortAccuracies(t *testing.T, ort *ortref.Runner, path string, tasks []task) map[string]float64 {
	t.Helper()
	acc := map[string]float64{}
	for _, tk := range tasks {
		out, err := ort.Run(path, map[string]*npy.Array{"input": tk.x})
		if err != nil {
			t.Fatalf("ONNX Runtime on %s: %v", path, err)
		}
		logits, err := out["logits"].Float32()
		if err != nil {
			t.Fatal(err)
		}
		correct := 0
		for i, label := range tk.y {
			row := logits[i*10 : (i+1)*10]
			if int64(slices.Index(row, slices.Max(row))) == label {
				correct++
			}
		}
		acc[tk.name] = float64(correct) / float64(len(tk.y))
	}
	return acc
}

const tasksRecipe = `base_model: base.onnx
models:
  - model: task_shift.onnx
    parameters: {weight: 1}
  - model: task_noise.onnx
    parameters: {weight: 1}
`

// TestSoupQuality builds every method on the real test models, loads each
// output in ONNX Runtime and checks the accuracy floors measured in
// bench/soup/README.md (less a small margin), and the shape the methods
// promise: the greedy soup is no worse than its best ingredient on the
// held-out data, and a task-vector merge beats every single model on the
// worse of its two tasks.
func TestSoupQuality(t *testing.T) {
	ort := ortref.Require(t)
	dir := soupDir(t)
	tasks := loadTasks(t)
	worst := func(a map[string]float64) float64 { return min(a["shift"], a["noise"]) }
	bestSingleWorst := 0.0
	for _, m := range []string{"base", "task_shift", "task_noise"} {
		bestSingleWorst = max(bestSingleWorst, worst(ortAccuracies(t, ort, filepath.Join(dir, m+".onnx"), tasks)))
	}
	fts := "models: [{model: ft0.onnx}, {model: ft1.onnx}, {model: ft2.onnx}, {model: ft3.onnx}]\n"
	heldOut, _ := filepath.Abs(filepath.Join(testModels, "fashion_train_x.npy"))
	heldOutY, _ := filepath.Abs(filepath.Join(testModels, "fashion_train_y.npy"))
	const margin = 0.02
	for _, c := range []struct {
		name, recipe string
		clean, worst float64 // floors as measured
		beatsSingles bool
	}{
		{"uniform", "merge_method: linear\n" + fts, 0.885, 0, false},
		{"greedy", "merge_method: greedy\n" + fts + fmt.Sprintf("eval: {data: %s, labels: %s}\n", heldOut, heldOutY), 0.888, 0, false},
		{"model_stock", "merge_method: model_stock\nbase_model: base.onnx\n" + fts, 0.886, 0, false},
		{"task_arithmetic", tasksRecipe + "merge_method: task_arithmetic\nparameters: {lambda: 0.7}\n", 0.760, 0.417, true},
		{"dare_linear", tasksRecipe + "merge_method: dare_linear\nparameters: {density: 0.5, lambda: 0.7}\nseed: 1\n", 0.762, 0.416, true},
		{"dare_ties", tasksRecipe + "merge_method: dare_ties\nparameters: {density: 0.5, lambda: 0.7}\nseed: 1\n", 0.773, 0.393, true},
		{"ties", tasksRecipe + "merge_method: ties\nparameters: {density: 0.5, lambda: 1.4}\n", 0.719, 0.095, false},
		{"slerp", "merge_method: slerp\nbase_model: task_shift.onnx\nmodels: [{model: task_shift.onnx}, {model: task_noise.onnx}]\nparameters: {t: 0.5}\n", 0.812, 0.359, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, res := build(t, dir, c.name, c.recipe)
			acc := ortAccuracies(t, ort, out, tasks)
			t.Logf("%s: clean %.3f shift %.3f noise %.3f", c.name, acc["clean"], acc["shift"], acc["noise"])
			if acc["clean"] < c.clean-margin {
				t.Errorf("clean accuracy %.3f below the floor %.3f", acc["clean"], c.clean-margin)
			}
			if worst(acc) < c.worst-margin {
				t.Errorf("worse task accuracy %.3f below the floor %.3f", worst(acc), c.worst-margin)
			}
			if c.beatsSingles && worst(acc) <= bestSingleWorst {
				t.Errorf("worse task accuracy %.3f does not beat the best single model's %.3f", worst(acc), bestSingleWorst)
			}
			if c.name == "greedy" {
				if len(res.Greedy) != 4 || !res.Greedy[0].Kept {
					t.Fatalf("greedy table %+v", res.Greedy)
				}
				final := 0.0
				for _, s := range res.Greedy {
					if s.Kept {
						final = s.SoupAccuracy
					}
				}
				if final < res.Greedy[0].Accuracy {
					t.Errorf("greedy soup %.4f below its best ingredient %.4f on the held-out data", final, res.Greedy[0].Accuracy)
				}
			}
		})
	}
}

// TestSoupDeterministicAndProvenance rebuilds recipes and compares bytes,
// and checks what the output's metadata records.
func TestSoupDeterministicAndProvenance(t *testing.T) {
	dir := soupDir(t)
	for _, recipe := range []string{
		tasksRecipe + "merge_method: dare_ties\nparameters: {density: 0.3}\nseed: 5\n",
		tasksRecipe + "merge_method: ties\nparameters: {density: 0.4}\n",
		"merge_method: linear\nmodels: [{model: ft0.onnx}, {model: ft1.onnx}]\nalign: {method: weight}\n",
	} {
		a, res := build(t, dir, "a", recipe)
		first, _ := os.ReadFile(a)
		b, _ := build(t, dir, "b", recipe)
		second, _ := os.ReadFile(b)
		if !bytes.Equal(first, second) {
			t.Errorf("recipe %q: two builds differ", recipe)
		}
		m, err := onnx.Load(a)
		if err != nil {
			t.Fatal(err)
		}
		p := Provenance(m)
		if p[MetaVersion] != "test" {
			t.Errorf("version %q", p[MetaVersion])
		}
		r, _ := ParseRecipe([]byte(recipe))
		if p[MetaRecipe] != r.Canonical() {
			t.Errorf("recipe recorded %s, want %s", p[MetaRecipe], r.Canonical())
		}
		var hashes map[string]string
		if err := json.Unmarshal([]byte(p[MetaInputs]), &hashes); err != nil {
			t.Fatal(err)
		}
		if len(hashes) != len(res.Inputs) || len(hashes) < 2 {
			t.Errorf("inputs recorded %v, build used %v", hashes, res.Inputs)
		}
		for f, h := range hashes {
			if got, err := hashFile(filepath.Join(dir, f)); err != nil || got != h {
				t.Errorf("input %s: recorded sha256 %s, file has %s (%v)", f, h, got, err)
			}
		}
	}
	// A different seed gives different DARE drops.
	a, _ := build(t, dir, "a", tasksRecipe+"merge_method: dare_linear\nparameters: {density: 0.3}\nseed: 1\n")
	first, _ := os.ReadFile(a)
	b, _ := build(t, dir, "b", tasksRecipe+"merge_method: dare_linear\nparameters: {density: 0.3}\nseed: 2\n")
	second, _ := os.ReadFile(b)
	if bytes.Equal(first, second) {
		t.Error("dare_linear with seeds 1 and 2 built the same model")
	}
}

// weightsOf returns every weight of the model at path as float64s.
func weightsOf(t *testing.T, path string) map[string][]float64 {
	t.Helper()
	m, err := onnx.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]float64{}
	for name, w := range m.Weights() {
		if onnx.IsFloat(onnx.DataType(w)) {
			if out[name], err = m.Float64s(w); err != nil {
				t.Fatal(err)
			}
		}
	}
	return out
}

// TestSoupMatchesMerge checks that linear is merge's engine: without
// alignment the streamed average equals merge.Average's to the byte, and
// with alignment the soup equals merge.Aligned of match.Weights.
func TestSoupMatchesMerge(t *testing.T) {
	dir := soupDir(t)
	out, res := build(t, dir, "lin", "merge_method: linear\nmodels: [{model: ft0.onnx, parameters: {weight: 1}}, {model: ft2.onnx, parameters: {weight: 3}}]\n")
	if !res.Streamed {
		t.Error("linear without alignment was not streamed")
	}
	a, _ := onnx.Load(filepath.Join(dir, "ft0.onnx"))
	b, _ := onnx.Load(filepath.Join(dir, "ft2.onnx"))
	avg, err := merge.Average([]*onnx.Model{a, b}, []float64{1, 3})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := onnx.Load(out)
	got.Proto.MetadataProps = nil
	gb, _ := got.Marshal()
	wb, _ := avg.Marshal()
	if !bytes.Equal(gb, wb) {
		t.Error("streamed linear soup differs from merge.Average")
	}

	// Independently trained models, aligned.
	for _, m := range []string{"mlp_s0", "mlp_s1"} {
		b, _ := os.ReadFile(filepath.Join(testModels, m+".onnx"))
		if err := os.WriteFile(filepath.Join(dir, m+".onnx"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, res = build(t, dir, "aligned", "merge_method: linear\nmodels: [{model: mlp_s0.onnx}, {model: mlp_s1.onnx}]\nalign: {method: weight}\nseed: 2\n")
	if res.Streamed {
		t.Error("aligned soup claims to be streamed")
	}
	m0, _ := onnx.Load(filepath.Join(dir, "mlp_s0.onnx"))
	m1, _ := onnx.Load(filepath.Join(dir, "mlp_s1.onnx"))
	ga, err := graph.Analyze(m0)
	if err != nil {
		t.Fatal(err)
	}
	mr, err := match.Weights(m0, m1, ga, match.Options{Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	want, err := merge.Aligned([]*onnx.Model{m0, m1}, ga, []permute.Perms{permute.Identity(ga), mr.Perms}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = onnx.Load(out)
	got.Proto.MetadataProps = nil
	gb, _ = got.Marshal()
	wb, _ = want.Marshal()
	if !bytes.Equal(gb, wb) {
		t.Error("aligned linear soup differs from merge.Aligned")
	}
	// Task arithmetic on aligned independent models runs (alignment first)
	// and its task vectors are taken against the aligned models.
	build(t, dir, "ta", "merge_method: task_arithmetic\nbase_model: mlp_s0.onnx\nmodels: [{model: mlp_s1.onnx, parameters: {weight: 0.5}}]\nalign: {method: weight}\nseed: 2\n")
	ws := weightsOf(t, filepath.Join(dir, "ta.onnx"))
	wm := weightsOf(t, filepath.Join(dir, "aligned.onnx"))
	for name, w := range wm {
		for i := range w {
			if d := w[i] - ws[name][i]; d > 1e-6 || d < -1e-6 {
				t.Fatalf("task arithmetic λ=1 w=0.5 on aligned models ≠ their midpoint at %s[%d]: %v vs %v", name, i, ws[name][i], w[i])
			}
		}
	}
}

func TestSoupRefusals(t *testing.T) {
	dir := soupDir(t)
	if err := os.Symlink("ft1.onnx", filepath.Join(dir, "link.onnx")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(testModels, "mlp_s0.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "mlp.onnx"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ recipe, want string }{
		{"merge_method: linear\nmodels: [{model: ft0.onnx}, {model: missing.onnx}]\n", "missing.onnx"},
		{"merge_method: linear\nmodels: [{model: ft0.onnx}, {model: ../../../etc/passwd}]\n", "passwd"},
		{"merge_method: linear\nmodels: [{model: ft0.onnx}, {model: link.onnx}]\n", "not a regular file"},
		{"merge_method: linear\nmodels: [{model: ft0.onnx}, {model: mlp.onnx}]\n", "has no weight"},
		{"merge_method: linear\nmodels: [{model: ft0.onnx, parameters: {weight: 1}}, {model: ft1.onnx, parameters: {weight: -1}}]\n", "sum to zero"},
	} {
		rp := filepath.Join(dir, "r.yaml")
		if err := os.WriteFile(rp, []byte(c.recipe), 0o644); err != nil {
			t.Fatal(err)
		}
		r, err := ReadRecipe(rp)
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "out.onnx")
		_, err = Build(r, out, Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.recipe, err, c.want)
		}
		if _, serr := os.Stat(out); serr == nil {
			t.Errorf("%q: failed build left %s", c.recipe, out)
		}
	}
	// The output never replaces an input.
	r, _ := ParseRecipe([]byte("merge_method: linear\nmodels: [{model: ft0.onnx}, {model: ft1.onnx}]\n"))
	r.dir = dir
	before, _ := os.ReadFile(filepath.Join(dir, "ft1.onnx"))
	if _, err := Build(r, filepath.Join(dir, "ft1.onnx"), Options{}); err == nil || !strings.Contains(err.Error(), "overwrite") {
		t.Errorf("output = input: error %v", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "ft1.onnx"))
	if !bytes.Equal(before, after) {
		t.Error("input changed")
	}
}

// savedBytes marshals m without its metadata, to compare weights and graph.
func savedBytes(t *testing.T, m *onnx.Model) []byte {
	t.Helper()
	m.Proto.MetadataProps = nil
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSoupDataSteps checks the steps that use data against the library
// calls `merge` makes: activation alignment, BN reset, REPAIR.
func TestSoupDataSteps(t *testing.T) {
	dir := t.TempDir()
	for _, m := range []string{"cnn_bn_s0", "cnn_bn_s1", "mlp32_s0", "mlp32_s1"} {
		b, err := os.ReadFile(filepath.Join(testModels, m+".onnx"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, m+".onnx"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fitPath, _ := filepath.Abs(filepath.Join(testModels, "fashion_train_x.npy"))
	fit, err := eval.Load(fitPath, "")
	if err != nil {
		t.Fatal(err)
	}
	load := func(name string) (*onnx.Model, *graph.Analysis) {
		m, err := onnx.Load(filepath.Join(dir, name+".onnx"))
		if err != nil {
			t.Fatal(err)
		}
		a, err := graph.Analyze(m)
		if err != nil {
			t.Fatal(err)
		}
		return m, a
	}
	opts := activation.Options{Batch: 256}

	// Activation matching, then BN reset.
	out, _ := build(t, dir, "act", fmt.Sprintf("merge_method: linear\nmodels: [{model: cnn_bn_s0.onnx}, {model: cnn_bn_s1.onnx}]\nalign: {method: activation, data: %s}\nreset_bn: %s\n", fitPath, fitPath))
	a, ga := load("cnn_bn_s0")
	b, _ := load("cnn_bn_s1")
	perms, err := activation.Match(a, b, ga, fit, opts)
	if err != nil {
		t.Fatal(err)
	}
	want, err := merge.Aligned([]*onnx.Model{a, b}, ga, []permute.Perms{permute.Identity(ga), perms}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := activation.ResetBatchNorm(want, fit, opts); err != nil {
		t.Fatal(err)
	}
	got, _ := onnx.Load(out)
	if !bytes.Equal(savedBytes(t, got), savedBytes(t, want)) {
		t.Error("activation-aligned soup with reset_bn differs from activation.Match + merge.Aligned + activation.ResetBatchNorm")
	}

	// Weight matching, then REPAIR at weights 1:3.
	out, _ = build(t, dir, "rep", fmt.Sprintf("merge_method: linear\nmodels: [{model: mlp32_s0.onnx, parameters: {weight: 1}}, {model: mlp32_s1.onnx, parameters: {weight: 3}}]\nalign: {method: weight}\nrepair: %s\n", fitPath))
	a, ga = load("mlp32_s0")
	b, _ = load("mlp32_s1")
	mr, err := match.Weights(a, b, ga, match.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bAligned := b.Clone()
	if err := permute.Apply(bAligned, ga, mr.Perms); err != nil {
		t.Fatal(err)
	}
	want, err = merge.Average([]*onnx.Model{a, bAligned}, []float64{1, 3})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := activation.PrepareRepair(a, bAligned, ga, fit, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Apply(want, 0.75); err != nil {
		t.Fatal(err)
	}
	got, _ = onnx.Load(out)
	if !bytes.Equal(savedBytes(t, got), savedBytes(t, want)) {
		t.Error("soup with repair differs from match.Weights + merge.Average + REPAIR at λ = 0.75")
	}
}

// TestSoupDtype: the recipe's dtype stores the output's float weights in
// that type, each read through a Cast back to the type the graph computes
// in, on the streamed path (no alignment) and the in-memory one (aligned):
// the values are the float32 build's rounded once, and ONNX Runtime scores
// the output as it scores the float32 build, within rounding.
func TestSoupDtype(t *testing.T) {
	ort := ortref.Require(t)
	dir := soupDir(t)
	tasks := loadTasks(t)[:1]
	for _, c := range []struct{ name, extra, dtype string }{
		{"streamed", "", "float16"},
		{"aligned", "align: {method: weight}\n", "bfloat16"},
	} {
		t.Run(c.name, func(t *testing.T) {
			recipe := "merge_method: linear\nmodels: [{model: ft0.onnx}, {model: ft1.onnx}]\n" + c.extra
			ref, _ := build(t, dir, c.name+"_f32", recipe)
			out, _ := build(t, dir, c.name+"_"+c.dtype, recipe+"dtype: "+c.dtype+"\n")
			want := weightsOf(t, ref)
			m, err := onnx.Load(out)
			if err != nil {
				t.Fatal(err)
			}
			stored := map[string]onnxpb.TensorProto_DataType{"float16": onnxpb.TensorProto_FLOAT16, "bfloat16": onnxpb.TensorProto_BFLOAT16}[c.dtype]
			casts := 0
			for _, n := range m.Proto.Graph.Node {
				if n.GetOpType() == "Cast" {
					casts++
				}
			}
			if casts != len(want) {
				t.Errorf("%d Cast nodes for %d float weights", casts, len(want))
			}
			for _, tp := range m.Proto.Graph.Initializer {
				if onnx.DataType(tp) != stored {
					t.Errorf("weight %q is %v, want %v", tp.GetName(), onnx.DataType(tp), stored)
					continue
				}
				got, err := m.Float64s(tp)
				if err != nil {
					t.Fatal(err)
				}
				name := strings.TrimSuffix(tp.GetName(), "_"+c.dtype)
				w := want[name]
				if len(w) != len(got) {
					t.Fatalf("weight %q: %d values, want %d", name, len(got), len(w))
				}
				rounded := encodeFloats(nil, w, stored)
				back := make([]float64, len(w))
				if err := decodeFloats(back, rounded, stored); err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(back, got) {
					t.Errorf("weight %q is not the float32 build's rounded to %s", name, c.dtype)
				}
			}
			a32, a16 := ortAccuracies(t, ort, ref, tasks)["clean"], ortAccuracies(t, ort, out, tasks)["clean"]
			if math.Abs(a32-a16) > 0.01 {
				t.Errorf("accuracy %.3f in %s against %.3f in float32", a16, c.dtype, a32)
			}
		})
	}
}

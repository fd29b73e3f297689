package soup

import (
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnx-rebasin/onnx-rebasin/internal/ortref"
	"github.com/onnx-rebasin/onnx-rebasin/npy"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

// writeAddModel writes Y = X + W (X, W of shape rows×cols and type dt) with
// W in an external data file (name.data) and a small inline bias-like
// tensor and an int64 tensor the graph does not read.
func writeAddModel(t *testing.T, path string, dt onnxpb.TensorProto_DataType, w []float64, rows, cols, tag int64) {
	t.Helper()
	raw := encodeFloats(nil, w, dt)
	dataName := filepath.Base(path) + ".data"
	pad := make([]byte, 13) // W does not start at offset 0
	if err := os.WriteFile(path+".data", append(pad, raw...), 0o644); err != nil {
		t.Fatal(err)
	}
	vi := func(name string) *onnxpb.ValueInfoProto {
		return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
			ElemType: proto.Int32(int32(dt)),
			Shape: &onnxpb.TensorShapeProto{Dim: []*onnxpb.TensorShapeProto_Dimension{
				{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: rows}},
				{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: cols}}}}}}}}
	}
	shape := make([]byte, 16)
	binary.LittleEndian.PutUint64(shape, uint64(rows))
	binary.LittleEndian.PutUint64(shape[8:], uint64(cols+tag))
	m := &onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(17)}},
		Graph: &onnxpb.GraphProto{
			Name: proto.String("add"),
			Node: []*onnxpb.NodeProto{{OpType: proto.String("Add"), Input: []string{"X", "W"}, Output: []string{"Y"}}},
			Initializer: []*onnxpb.TensorProto{
				{Name: proto.String("W"), DataType: proto.Int32(int32(dt)), Dims: []int64{rows, cols},
					DataLocation: onnxpb.TensorProto_EXTERNAL.Enum(),
					ExternalData: []*onnxpb.StringStringEntryProto{
						{Key: proto.String("location"), Value: proto.String(dataName)},
						{Key: proto.String("offset"), Value: proto.String("13")},
						{Key: proto.String("length"), Value: proto.String(strconv.Itoa(len(raw)))}}},
				{Name: proto.String("small"), DataType: proto.Int32(int32(dt)), Dims: []int64{2}, RawData: encodeFloats(nil, w[:2], dt)},
				{Name: proto.String("shape"), DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)), Dims: []int64{2}, RawData: shape},
			},
			Input:  []*onnxpb.ValueInfoProto{vi("X")},
			Output: []*onnxpb.ValueInfoProto{vi("Y")},
		},
	}
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestStreamedExternalHalf builds task arithmetic over external-data
// models in float32, float16 and bfloat16: the output keeps its type and
// external data, and every value is the float64 result rounded once.
func TestStreamedExternalHalf(t *testing.T) {
	const rows, cols = 40, 300
	for _, dt := range []onnxpb.TensorProto_DataType{onnxpb.TensorProto_FLOAT, onnxpb.TensorProto_FLOAT16, onnxpb.TensorProto_BFLOAT16} {
		t.Run(dt.String(), func(t *testing.T) {
			dir := t.TempDir()
			rng := rand.New(rand.NewPCG(1, uint64(dt)))
			models := make([][]float64, 3)
			for i := range models {
				w := make([]float64, rows*cols)
				for k := range w {
					w[k] = rng.NormFloat64()
				}
				// What the file holds: the values rounded to dt.
				if err := decodeFloats(w, encodeFloats(nil, w, dt), dt); err != nil {
					t.Fatal(err)
				}
				models[i] = w
				writeAddModel(t, filepath.Join(dir, []string{"base", "a", "b"}[i]+".onnx"), dt, w, rows, cols, 0)
			}
			out, res := build(t, dir, "ta", "merge_method: task_arithmetic\nbase_model: base.onnx\nmodels: [{model: a.onnx, parameters: {weight: 1}}, {model: b.onnx, parameters: {weight: 0.5}}]\nparameters: {lambda: 0.8}\n")
			if !res.Streamed {
				t.Fatal("not streamed")
			}
			// Rebuilt under the same name elsewhere: the same two files.
			r, err := ReadRecipe(filepath.Join(dir, "ta.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(filepath.Join(dir, "again"), 0o755); err != nil {
				t.Fatal(err)
			}
			again := filepath.Join(dir, "again", "ta.onnx")
			if _, err := Build(r, again, Options{Version: "test"}); err != nil {
				t.Fatal(err)
			}
			dataA, _ := filepath.Glob(out + ".*.data")
			dataB, _ := filepath.Glob(again + ".*.data")
			if len(dataA) != 1 || len(dataB) != 1 || filepath.Base(dataA[0]) != filepath.Base(dataB[0]) {
				t.Fatalf("data files %v and %v: want one each, named alike (after their content)", dataA, dataB)
			}
			for _, pair := range [][2]string{{out, again}, {dataA[0], dataB[0]}} {
				a, _ := os.ReadFile(pair[0])
				b, _ := os.ReadFile(pair[1])
				if len(a) == 0 || !slices.Equal(a, b) {
					t.Errorf("rebuild: %s differs (%d vs %d bytes)", filepath.Base(pair[0]), len(a), len(b))
				}
			}
			want := make([]float64, rows*cols)
			for k := range want {
				b := models[0][k]
				want[k] = b + 0.8*(1*(models[1][k]-b)+0.5*(models[2][k]-b))
			}
			m, err := onnx.Load(out)
			if err != nil {
				t.Fatal(err)
			}
			if !m.HasExternalData() {
				t.Error("the output of external-data models is not external")
			}
			w := m.Weights()
			if onnx.DataType(w["W"]) != dt {
				t.Fatalf("output type %v, want %v", onnx.DataType(w["W"]), dt)
			}
			got, _ := m.TensorBytes(w["W"])
			if !slices.Equal(got, encodeFloats(nil, want, dt)) {
				t.Error("W is not the float64 result rounded once to the type")
			}
			small, _ := m.TensorBytes(w["small"])
			if !slices.Equal(small, encodeFloats(nil, want[:2], dt)) {
				t.Error("inline tensor wrong")
			}
			if dt != onnxpb.TensorProto_FLOAT {
				return
			}
			ort := ortref.Require(t)
			x := make([]float32, rows*cols)
			xa, _ := npy.FromFloat32([]int{rows, cols}, x)
			y, err := ort.Run(out, map[string]*npy.Array{"X": xa})
			if err != nil {
				t.Fatalf("ONNX Runtime: %v", err)
			}
			yf, _ := y["Y"].Float32()
			for k := range yf {
				if yf[k] != float32(want[k]) {
					t.Fatalf("ONNX Runtime Y[%d] = %v, want %v", k, yf[k], float32(want[k]))
				}
			}
		})
	}
}

// TestStreamedRefusesDifferentIntegers checks that integer tensors are
// copied, never averaged: models that disagree on one are refused.
func TestStreamedRefusesDifferentIntegers(t *testing.T) {
	dir := t.TempDir()
	w := make([]float64, 4*300)
	writeAddModel(t, filepath.Join(dir, "base.onnx"), onnxpb.TensorProto_FLOAT, w, 4, 300, 0)
	writeAddModel(t, filepath.Join(dir, "a.onnx"), onnxpb.TensorProto_FLOAT, w, 4, 300, 1)
	rp := filepath.Join(dir, "r.yaml")
	if err := os.WriteFile(rp, []byte("merge_method: task_arithmetic\nbase_model: base.onnx\nmodels: [{model: a.onnx}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := ReadRecipe(rp)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Build(r, filepath.Join(dir, "out.onnx"), Options{})
	if err == nil || !strings.Contains(err.Error(), `weight "shape" (INT64) differs`) {
		t.Errorf("error %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "out.onnx")); err == nil {
		t.Error("refused build left an output")
	}
}

// TestStreamedTIESReadsTwice checks the memory design of the consensus
// methods: two passes over the models, not N copies kept.
func TestStreamedTIESReadsTwice(t *testing.T) {
	src := &sliceSource{base: []float64{0, 0}, models: [][]float64{{1, -1}, {2, 1}, {-1, 3}}}
	gta(t, src, gtaOptions{weights: ones(3), densities: ones(3), sparsify: "magnitude", consensus: true, normalize: true, lambda: 1})
	if src.reads != 6 {
		t.Errorf("%d model reads for 3 models, want 6", src.reads)
	}
}

// TestStreamedChunks checks that combining tensors in chunks changes
// nothing for linear, task arithmetic, slerp and model_stock (the last two
// sum over the chunks in element order, as over the whole tensor), and
// that chunked DARE still drops the right share, deterministically.
func TestStreamedChunks(t *testing.T) {
	dir := soupDir(t)
	recipes := map[string]string{
		"linear": "merge_method: linear\nmodels: [{model: ft0.onnx, parameters: {weight: 2}}, {model: ft1.onnx}, {model: ft2.onnx}]\n",
		"ta":     tasksRecipe + "merge_method: task_arithmetic\nparameters: {lambda: 0.7}\n",
		"dare":   tasksRecipe + "merge_method: dare_ties\nparameters: {density: 0.3}\nseed: 4\n",
		"slerp":  "merge_method: slerp\nbase_model: task_shift.onnx\nmodels: [{model: task_shift.onnx}, {model: task_noise.onnx}]\nparameters: {t: 0.3}\n",
		"stock":  "merge_method: model_stock\nbase_model: base.onnx\nmodels: [{model: ft0.onnx}, {model: ft1.onnx}, {model: ft2.onnx}]\n",
		"stockf": "merge_method: model_stock\nbase_model: base.onnx\nmodels: [{model: ft0.onnx}, {model: ft1.onnx}]\nparameters: {filter_wise: true}\n",
	}
	whole := map[string][]byte{}
	for name, r := range recipes {
		out, _ := build(t, dir, name, r)
		whole[name], _ = os.ReadFile(out)
	}
	defer func(c int) { chunkElems = c }(chunkElems)
	chunkElems = 777 // several chunks in the large tensors, a ragged last one
	for name, r := range recipes {
		out, _ := build(t, dir, name+"_chunked", r)
		got, _ := os.ReadFile(out)
		again, _ := build(t, dir, name+"_chunked_again", r)
		if b, _ := os.ReadFile(again); !slices.Equal(got, b) {
			t.Errorf("%s: chunked builds differ", name)
		}
		if name != "dare" && !slices.Equal(got, whole[name]) {
			t.Errorf("%s: chunked build differs from the whole-tensor build", name)
		}
		if name == "dare" {
			if slices.Equal(got, whole[name]) {
				t.Error("dare: chunks drew the same entries as the whole tensor (seeds per chunk not used?)")
			}
			// The share of entries of the largest tensor left at the base's
			// value is the same as without chunks (drops at density 0.3 and
			// entries neither fine-tune moved).
			if err := os.WriteFile(filepath.Join(dir, "whole.onnx"), whole[name], 0o644); err != nil {
				t.Fatal(err)
			}
			base := weightsOf(t, filepath.Join(dir, "base.onnx"))
			var largest string
			for n, w := range base {
				if largest == "" || len(w) > len(base[largest]) {
					largest = n
				}
			}
			unchanged := func(path string) float64 {
				same := 0
				w := weightsOf(t, path)[largest]
				for i, v := range w {
					if v == base[largest][i] {
						same++
					}
				}
				return float64(same) / float64(len(w))
			}
			fc, fw := unchanged(out), unchanged(filepath.Join(dir, "whole.onnx"))
			if fc < fw-0.02 || fc > fw+0.02 || fc < 0.49-0.03 {
				t.Errorf("dare: %.3f of %s unchanged in chunks, %.3f whole; want the same, at least (1-0.3)² = 0.49", fc, largest, fw)
			}
		}
	}
}

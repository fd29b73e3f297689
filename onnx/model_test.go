package onnx

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/onnx-rebasin/onnx-rebasin/internal/half"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/onnx-rebasin/onnx-rebasin/internal/testreq"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

// backendTestData is where Debian's libonnx-testdata puts ONNX's own backend
// test models.
const backendTestData = "/usr/share/libonnx-testdata/data"

// requireDir skips when dir is missing, except under CI where the data must be installed.
func requireDir(t *testing.T, dir, install string) {
	t.Helper()
	if _, err := os.Stat(dir); err != nil {
		testreq.Missing(t, "%s missing; install with: %s", dir, install)
	}
}

func roundTripFile(t *testing.T, path string) {
	t.Helper()
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(orig, path, filepath.Dir(path))
	if err != nil {
		t.Fatalf("%v", err)
	}
	got, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, orig) {
		t.Errorf("%s: round trip changed the bytes (%d -> %d bytes)", path, len(orig), len(got))
	}
	if m.HasExternalData() {
		return
	}
	var streamed bytes.Buffer
	if err := writeModel(&streamed, m.Proto); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(streamed.Bytes(), orig) {
		t.Errorf("%s: writeModel changed the bytes (%d -> %d bytes)", path, len(orig), streamed.Len())
	}
}

// TestWriteModelMatchesMarshal checks the streaming encoder against
// proto.Marshal on a model with large and small initializers, a tensor
// without raw_data among them, fields after the ones it splits at, and
// unknown fields (which proto.Marshal writes last) numbered below and
// above those.
func TestWriteModelMatchesMarshal(t *testing.T) {
	mp := tinyModel()
	unknown := func(num protowire.Number, s string) []byte {
		return protowire.AppendString(protowire.AppendTag(nil, num, protowire.BytesType), s)
	}
	big := func(name string, n int) *onnxpb.TensorProto {
		raw := make([]byte, n)
		for i := range raw {
			raw[i] = byte(i * 7)
		}
		return &onnxpb.TensorProto{Name: proto.String(name), Dims: []int64{int64(n / 4)}, DataType: proto.Int32(1), RawData: raw,
			DocString: proto.String("after raw_data")}
	}
	b1, b2 := big("B1", separateRawData), big("B2", 3*separateRawData+4)
	b2.ProtoReflect().SetUnknown(append(unknown(15, "tensor, below nothing"), unknown(3000, "tensor, high")...))
	typed := &onnxpb.TensorProto{Name: proto.String("T"), Dims: []int64{2}, DataType: proto.Int32(1), FloatData: []float32{1, 2}}
	mp.Graph.Initializer = append(mp.Graph.Initializer, b1, typed, b2, big("small", separateRawData-4))
	mp.Graph.DocString = proto.String("after the initializers")
	mp.Graph.ProtoReflect().SetUnknown(unknown(3, "graph, below initializer"))
	mp.ProtoReflect().SetUnknown(append(unknown(9, "model, after graph"), unknown(1000, "model, high")...))
	mp.DocString = proto.String("before the graph")
	want := marshal(t, mp)
	var got bytes.Buffer
	if err := writeModel(&got, mp); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("writeModel wrote %d bytes that differ from proto.Marshal's %d", got.Len(), len(want))
	}
	// Nothing known after the initializers: the graph's unknown field
	// still goes after them.
	bare := &onnxpb.ModelProto{IrVersion: proto.Int64(8), Graph: &onnxpb.GraphProto{
		Node: mp.Graph.Node, Initializer: []*onnxpb.TensorProto{b1}}}
	bare.Graph.ProtoReflect().SetUnknown(unknown(3, "graph, below initializer"))
	got.Reset()
	if err := writeModel(&got, bare); err != nil || !bytes.Equal(got.Bytes(), marshal(t, bare)) {
		t.Fatalf("writeModel with only unknown fields after the initializers: %v, or bytes differ", err)
	}
	// The models it leaves to proto.Marshal: no large tensor, no graph.
	for _, mp := range []*onnxpb.ModelProto{tinyModel(), {IrVersion: proto.Int64(8)}} {
		got.Reset()
		if err := writeModel(&got, mp); err != nil || !bytes.Equal(got.Bytes(), marshal(t, mp)) {
			t.Fatalf("writeModel without large tensors: %v, or bytes differ", err)
		}
	}
}

func TestRoundTripBackendModels(t *testing.T) {
	requireDir(t, backendTestData, "apt-get install libonnx-testdata")
	count := 0
	err := filepath.WalkDir(backendTestData, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".onnx") {
			return err
		}
		count++
		roundTripFile(t, path)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if count < 1000 {
		t.Fatalf("found only %d backend test models", count)
	}
	t.Logf("%d backend test models round-tripped byte-identically", count)
}

func TestRoundTripTestModels(t *testing.T) {
	paths := testreq.Glob(t, "../testmodels/*.onnx")
	large := testreq.LargeModels(t, "../testmodels/large") // generated, not committed
	paths = append(paths, large...)
	for _, p := range paths {
		roundTripFile(t, p)
	}
	t.Logf("%d test models (%d committed, %d large) round-tripped byte-identically", len(paths), len(paths)-len(large), len(large))
}

// TestSaveUnchanged checks that Save (not just Marshal) gives back the input bytes.
func TestSaveUnchanged(t *testing.T) {
	orig := marshal(t, tinyModel())
	in := filepath.Join(t.TempDir(), "in.onnx")
	if err := os.WriteFile(in, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := Load(in)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out.onnx")
	if err := m.Save(out); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out)
	if !bytes.Equal(got, orig) {
		t.Fatal("saved bytes differ from the input")
	}
}

// TestUnknownFieldsSurvive appends fields this schema does not know (as a
// newer IR version would write them) at several nesting levels.
func TestUnknownFieldsSurvive(t *testing.T) {
	mp := tinyModel()
	unknown := func(num protowire.Number, s string) []byte {
		b := protowire.AppendTag(nil, num, protowire.BytesType)
		return protowire.AppendString(b, s)
	}
	mp.ProtoReflect().SetUnknown(unknown(1000, "model-level future field"))
	mp.Graph.ProtoReflect().SetUnknown(unknown(999, "graph-level"))
	mp.Graph.Node[0].ProtoReflect().SetUnknown(unknown(500, "node-level"))
	mp.Graph.Initializer[0].ProtoReflect().SetUnknown(unknown(777, "tensor-level"))
	orig := marshal(t, mp)
	m, err := Parse(orig, "future.onnx", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetFloat32s(m.Proto.Graph.Initializer[0], []float32{9, 8, 7, 6}); err != nil {
		t.Fatal(err)
	}
	got, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"model-level future field", "graph-level", "node-level", "tensor-level"} {
		if !bytes.Contains(got, []byte(s)) {
			t.Errorf("unknown field %q lost", s)
		}
	}
	back := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(got, back); err != nil {
		t.Fatal(err)
	}
	if len(back.Graph.Initializer[0].ProtoReflect().GetUnknown()) == 0 {
		t.Error("tensor unknown field not attached to the tensor after the rewrite")
	}
}

// tensorForms builds the same values in every storage form a float tensor can take.
func tensorForms(t testing.TB, dt onnxpb.TensorProto_DataType, vals []float32) map[string]*onnxpb.TensorProto {
	dims := []int64{int64(len(vals))}
	raw := &onnxpb.TensorProto{Name: proto.String("raw"), Dims: dims, DataType: proto.Int32(int32(dt))}
	typed := &onnxpb.TensorProto{Name: proto.String("typed"), Dims: dims, DataType: proto.Int32(int32(dt))}
	tmp := &Model{}
	raw.RawData = make([]byte, len(vals)*ElemSize(dt))
	if err := tmp.SetFloat32s(raw, vals); err != nil {
		t.Fatal(err)
	}
	switch dt {
	case onnxpb.TensorProto_FLOAT:
		typed.FloatData = []float32{}
	case onnxpb.TensorProto_DOUBLE:
		typed.DoubleData = []float64{}
	}
	if err := tmp.SetFloat32s(typed, vals); err != nil {
		t.Fatal(err)
	}
	return map[string]*onnxpb.TensorProto{"raw": raw, "typed": typed}
}

func TestFloatViewsAllDtypesAndForms(t *testing.T) {
	vals := []float32{0, 1, -2.5, 0.1, 65504, 1e-6, -0}
	for _, dt := range []onnxpb.TensorProto_DataType{onnxpb.TensorProto_FLOAT, onnxpb.TensorProto_FLOAT16, onnxpb.TensorProto_BFLOAT16, onnxpb.TensorProto_DOUBLE} {
		for form, tp := range tensorForms(t, dt, vals) {
			m := &Model{}
			if err := checkTensor(tp); err != nil {
				t.Fatalf("%v %s: %v", dt, form, err)
			}
			got, err := m.Float32s(tp)
			if err != nil {
				t.Fatalf("%v %s: %v", dt, form, err)
			}
			for i, v := range vals {
				want := v
				switch dt {
				case onnxpb.TensorProto_FLOAT16:
					want = half.Float16ToFloat32(half.Float32ToFloat16(v))
				case onnxpb.TensorProto_BFLOAT16:
					want = half.BFloat16ToFloat32(half.Float32ToBFloat16(v))
				}
				if got[i] != want {
					t.Errorf("%v %s [%d]: got %v want %v", dt, form, i, got[i], want)
				}
			}
			// Write-back keeps the storage form.
			hadRaw := tp.RawData != nil
			if err := m.SetFloat32s(tp, []float32{1, 2, 3, 4, 5, 6, 7}); err != nil {
				t.Fatal(err)
			}
			if (tp.RawData != nil) != hadRaw {
				t.Errorf("%v %s: storage form changed", dt, form)
			}
			f64, _ := m.Float64s(tp)
			if f64[6] != 7 {
				t.Errorf("%v %s: write-back lost, got %v", dt, form, f64)
			}
			if err := m.SetFloat32s(tp, []float32{1}); err == nil {
				t.Errorf("%v %s: wrong length accepted", dt, form)
			}
		}
	}
}

func TestDoubleKeepsPrecision(t *testing.T) {
	tp := &onnxpb.TensorProto{Dims: []int64{1}, DataType: proto.Int32(int32(onnxpb.TensorProto_DOUBLE)), RawData: make([]byte, 8)}
	m := &Model{}
	x := math.Pi
	if err := m.SetFloat64s(tp, []float64{x}); err != nil {
		t.Fatal(err)
	}
	got, _ := m.Float64s(tp)
	if got[0] != x {
		t.Fatalf("got %v want %v", got[0], x)
	}
}

func TestWeightsIncludeConstants(t *testing.T) {
	mp := tinyModel()
	c := &onnxpb.TensorProto{Name: proto.String("cval"), Dims: []int64{2}, DataType: proto.Int32(1), FloatData: []float32{1, 2}}
	mp.Graph.Node = append(mp.Graph.Node, &onnxpb.NodeProto{OpType: proto.String("Constant"), Output: []string{"c"},
		Attribute: []*onnxpb.AttributeProto{{Name: proto.String("value"), Type: onnxpb.AttributeProto_TENSOR.Enum(), T: c}}})
	m := &Model{Proto: mp}
	w := m.Weights()
	if w["W"] == nil || w["c"] != c {
		t.Fatalf("weights = %v", w)
	}
}

// tinyModel is Y = X·W with W a 2×2 FLOAT initializer in raw_data.
func tinyModel() *onnxpb.ModelProto {
	w := &onnxpb.TensorProto{Name: proto.String("W"), Dims: []int64{2, 2}, DataType: proto.Int32(1), RawData: make([]byte, 16)}
	if err := (&Model{}).SetFloat32s(w, []float32{1, 2, 3, 4}); err != nil {
		panic(err) // a fixed FLOAT tensor of the right size
	}
	vi := func(name string) *onnxpb.ValueInfoProto {
		return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
			ElemType: proto.Int32(1),
			Shape: &onnxpb.TensorShapeProto{Dim: []*onnxpb.TensorShapeProto_Dimension{
				{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: 1}},
				{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: 2}}}},
		}}}}
	}
	return &onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(17)}},
		Graph: &onnxpb.GraphProto{
			Name:        proto.String("tiny"),
			Node:        []*onnxpb.NodeProto{{OpType: proto.String("MatMul"), Input: []string{"X", "W"}, Output: []string{"Y"}, Name: proto.String("mm")}},
			Initializer: []*onnxpb.TensorProto{w},
			Input:       []*onnxpb.ValueInfoProto{vi("X")},
			Output:      []*onnxpb.ValueInfoProto{vi("Y")},
		},
	}
}

func marshal(t testing.TB, mp *onnxpb.ModelProto) []byte {
	t.Helper()
	b, err := proto.Marshal(mp)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBadInput(t *testing.T) {
	good := marshal(t, tinyModel())
	mutate := func(f func(mp *onnxpb.ModelProto)) []byte {
		mp := tinyModel()
		f(mp)
		return marshal(t, mp)
	}
	cases := []struct {
		name, want string
		data       []byte
	}{
		{"truncated", "not an ONNX model", good[:len(good)-7]},
		{"text file", "not an ONNX model", []byte("hello, this is not a model\n")},
		{"empty", "not an ONNX model", nil},
		{"dims overflow", "overflows", mutate(func(mp *onnxpb.ModelProto) {
			mp.Graph.Initializer[0].Dims = []int64{1 << 40, 1 << 40}
		})},
		{"negative dim", "negative dimension", mutate(func(mp *onnxpb.ModelProto) { mp.Graph.Initializer[0].Dims = []int64{-1, 2} })},
		{"raw_data length", "raw_data has 16 bytes", mutate(func(mp *onnxpb.ModelProto) { mp.Graph.Initializer[0].Dims = []int64{3, 2} })},
		{"typed length", "holds 3 values", mutate(func(mp *onnxpb.ModelProto) {
			w := mp.Graph.Initializer[0]
			w.RawData, w.FloatData = nil, []float32{1, 2, 3}
		})},
		{"missing external file", "no such file", mutate(func(mp *onnxpb.ModelProto) { setExternal(mp.Graph.Initializer[0], "w.bin", 0, 16) })},
		{"absolute external", "absolute or leaves", mutate(func(mp *onnxpb.ModelProto) { setExternal(mp.Graph.Initializer[0], "/etc/passwd", 0, 16) })},
		{"climbing external", "absolute or leaves", mutate(func(mp *onnxpb.ModelProto) { setExternal(mp.Graph.Initializer[0], "../../x.bin", 0, 16) })},
		{"bad external offset", "not a valid byte count", mutate(func(mp *onnxpb.ModelProto) {
			setExternal(mp.Graph.Initializer[0], "w.bin", 0, 16)
			mp.Graph.Initializer[0].ExternalData[1].Value = proto.String("-5")
		})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "bad.onnx")
			if err := os.WriteFile(path, c.data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path)
			if err == nil {
				t.Fatal("loaded without error")
			}
			msg := err.Error()
			if !strings.Contains(msg, path) || !strings.Contains(msg, c.want) || strings.Contains(msg, "\n") {
				t.Fatalf("error %q should be one line naming %s and saying %q", msg, path, c.want)
			}
		})
	}
}

func setExternal(t *onnxpb.TensorProto, loc string, off, length int) {
	t.RawData = nil
	t.DataLocation = onnxpb.TensorProto_EXTERNAL.Enum()
	t.ExternalData = []*onnxpb.StringStringEntryProto{
		{Key: proto.String("location"), Value: proto.String(loc)},
		{Key: proto.String("offset"), Value: proto.String(itoa(off))},
		{Key: proto.String("length"), Value: proto.String(itoa(length))},
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestExternalData(t *testing.T) {
	dir := t.TempDir()
	mp := tinyModel()
	// Put W at offset 8 of a shared file with junk around it.
	data := make([]byte, 8, 40)
	w := []float32{1.5, -2, 3, 4.25}
	tmp := &onnxpb.TensorProto{Dims: []int64{4}, DataType: proto.Int32(1), RawData: make([]byte, 16)}
	if err := (&Model{}).SetFloat32s(tmp, w); err != nil {
		t.Fatal(err)
	}
	data = append(data, tmp.RawData...)
	data = append(data, "trailing junk"...)
	if err := os.WriteFile(filepath.Join(dir, "weights.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	setExternal(mp.Graph.Initializer[0], "weights.bin", 8, 16)
	if err := os.WriteFile(filepath.Join(dir, "m.onnx"), marshal(t, mp), 0o644); err != nil {
		t.Fatal(err)
	}

	m, err := Load(filepath.Join(dir, "m.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.Float32s(m.Proto.Graph.Initializer[0])
	if err != nil || !slices.Equal(got, w) {
		t.Fatalf("external read: %v %v", got, err)
	}
	// Change it and save elsewhere: stays external, the input data file is untouched.
	if err := m.SetFloat32s(m.Proto.Graph.Initializer[0], []float32{5, 6, 7, 8}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "sub", "out.onnx")
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := m.Save(out); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "weights.bin")); !bytes.Equal(after, data) {
		t.Fatal("input external data file changed")
	}
	m2, err := Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if !m2.HasExternalData() {
		t.Fatal("saved model lost its external data")
	}
	got, _ = m2.Float32s(m2.Proto.Graph.Initializer[0])
	if !slices.Equal(got, []float32{5, 6, 7, 8}) {
		t.Fatalf("after save: %v", got)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(out), m2.Proto.Graph.Initializer[0].ExternalData[0].GetValue())); err != nil {
		t.Fatal(err)
	}
	// Marshal inlines the data; the proto is left as it was.
	inline, _ := m2.Marshal()
	m3, err := Parse(inline, "inline", "")
	if err != nil || m3.HasExternalData() {
		t.Fatalf("inline marshal: %v", err)
	}
	if m2.Proto.Graph.Initializer[0].GetDataLocation() != onnxpb.TensorProto_EXTERNAL {
		t.Fatal("Marshal changed the model")
	}
	// Length mismatch with the file is an error.
	setExternal(mp.Graph.Initializer[0], "weights.bin", 30, 16)
	if err := os.WriteFile(filepath.Join(dir, "short.onnx"), marshal(t, mp), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(filepath.Join(dir, "short.onnx")); err == nil || !strings.Contains(err.Error(), "short.onnx") {
		t.Fatalf("out-of-range external data: %v", err)
	}
}

// TestLargeModelGoesExternal lowers the inline limit to exercise the >2 GiB path.
func TestLargeModelGoesExternal(t *testing.T) {
	defer func(old int) { maxInlineBytes = old }(maxInlineBytes)
	maxInlineBytes = 1000
	mp := tinyModel()
	big := &onnxpb.TensorProto{Name: proto.String("big"), Dims: []int64{1000}, DataType: proto.Int32(1), FloatData: make([]float32, 1000)}
	for i := range big.FloatData {
		big.FloatData[i] = float32(i)
	}
	mp.Graph.Initializer = append(mp.Graph.Initializer, big)
	m := &Model{Proto: mp, Name: "big"}
	out := filepath.Join(t.TempDir(), "big.onnx")
	if err := m.Save(out); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(out)
	if fi.Size() > 1000 {
		t.Fatalf("model file is %d bytes, expected tensors moved out", fi.Size())
	}
	m2, err := Load(out)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := m2.Float32s(m2.Proto.Graph.Initializer[1])
	if got[999] != 999 || m2.Proto.Graph.Initializer[1].GetDataLocation() != onnxpb.TensorProto_EXTERNAL {
		t.Fatal("big tensor not restored from external data")
	}
	// The small tensor stays inline.
	if m2.Proto.Graph.Initializer[0].GetDataLocation() == onnxpb.TensorProto_EXTERNAL {
		t.Fatal("small tensor moved out")
	}
}

func TestSaveFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	m := &Model{Proto: tinyModel()}
	err := m.Save(filepath.Join(dir, "missing-dir", "out.onnx"))
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("save into a missing folder: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Fatalf("left files behind: %v", entries)
	}
}

func TestNumElements(t *testing.T) {
	for _, c := range []struct {
		dims []int64
		n    int
		ok   bool
	}{
		{nil, 1, true}, {[]int64{0, 5}, 0, true}, {[]int64{3, 4}, 12, true},
		{[]int64{-1}, 0, false}, {[]int64{1 << 32, 1 << 32}, 0, false}, {[]int64{1 << 62, 4}, 0, false},
	} {
		n, err := NumElements(c.dims)
		if (err == nil) != c.ok || n != c.n {
			t.Errorf("NumElements(%v) = %d, %v", c.dims, n, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	// Each input is a model and the bytes of the data file w.bin in its
	// folder. The folder also holds what external data must not reach: a
	// FIFO, links to /dev/zero and to a folder outside with a file whose
	// size (4243) no error may give.
	outside := f.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret.bin"), make([]byte, 4243), 0o644); err != nil {
		f.Fatal(err)
	}
	withExternal := func(loc string, off, length int) []byte {
		mp := tinyModel()
		setExternal(mp.Graph.Initializer[0], loc, off, length)
		return marshal(f, mp)
	}
	w := make([]byte, 24)
	f.Add(marshal(f, tinyModel()), w)
	f.Add([]byte{}, w)
	f.Add([]byte("\x08\x07\x3a\x02\x0a\x00"), w)
	for _, loc := range []string{"w.bin", "fifo", "zero", "up/secret.bin", "../secret.bin", "/dev/zero", "sub/../w.bin"} {
		f.Add(withExternal(loc, 0, 16), w)
	}
	f.Add(withExternal("w.bin", 8, 16), w)
	f.Add(withExternal("w.bin", 16, 16), w)
	f.Add(withExternal("w.bin", 0, -1), w[:16])
	separateRawData = 1 // every raw_data through unmarshalModel's own copy
	f.Fuzz(func(t *testing.T, data, wbin []byte) {
		if err := sameAsUnmarshal(data); err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "w.bin"), wbin, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := makeFIFO(filepath.Join(dir, "fifo")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("/dev/zero", filepath.Join(dir, "zero")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outside, filepath.Join(dir, "up")); err != nil {
			t.Fatal(err)
		}
		m, err := Parse(data, "fuzz.onnx", dir)
		if err != nil {
			msg := err.Error()
			if !strings.HasPrefix(msg, "fuzz.onnx: ") || strings.Contains(msg, "\n") {
				t.Fatalf("error is not one line naming the file: %v", err)
			}
			if strings.Contains(msg, "4243") {
				t.Fatalf("error gives the size of a file outside the folder: %v", err)
			}
			return
		}
		// Anything accepted must be readable and re-encodable, external
		// data from w.bin only.
		for _, tp := range tensors(m.Proto.Graph) {
			if IsFloat(DataType(tp)) {
				if _, err := m.Float32s(tp); err != nil {
					t.Fatalf("accepted tensor unreadable: %v", err)
				}
			}
			if tp.GetDataLocation() == onnxpb.TensorProto_EXTERNAL {
				b, err := m.TensorBytes(tp)
				if err != nil {
					t.Fatal(err)
				}
				if len(b) > 0 && !bytes.Contains(wbin, b) {
					t.Fatalf("external tensor %q holds bytes not in w.bin", tp.GetName())
				}
			}
		}
		out, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(out, "again", ""); err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if m.HasExternalData() {
			// Saved with its data beside it, it loads back the same.
			saved := filepath.Join(t.TempDir(), "out.onnx")
			if err := m.Save(saved); err != nil {
				t.Fatal(err)
			}
			m2, err := Load(saved)
			if err != nil {
				t.Fatalf("load after save: %v", err)
			}
			again, err := m2.Marshal()
			if err != nil || !bytes.Equal(again, out) {
				t.Fatalf("saved and loaded model differs (%v)", err)
			}
		}
	})
}

// TestParseMatchesUnmarshal checks the loader's separate copying of large
// raw_data (unmarshalModel) against proto.Unmarshal, with every tensor's
// raw_data taken that way, on a model with unknown fields and tensors
// without raw_data, and on encodings it must leave to proto.Unmarshal:
// a repeated graph field (merged), a repeated raw_data field (the last
// wins), a raw_data field with the wrong wire type, and truncations.
func TestParseMatchesUnmarshal(t *testing.T) {
	defer func(old int) { separateRawData = old }(separateRawData)
	separateRawData = 1
	mp := tinyModel()
	mp.Graph.Initializer = append(mp.Graph.Initializer,
		&onnxpb.TensorProto{Name: proto.String("T"), Dims: []int64{2}, DataType: proto.Int32(1), FloatData: []float32{1, 2}},
		&onnxpb.TensorProto{Name: proto.String("R"), Dims: []int64{1}, DataType: proto.Int32(1), RawData: []byte{1, 2, 3, 4}, DocString: proto.String("after")})
	mp.Graph.Initializer[2].ProtoReflect().SetUnknown(protowire.AppendString(protowire.AppendTag(nil, 15, protowire.BytesType), "x"))
	mp.ProtoReflect().SetUnknown(protowire.AppendString(protowire.AppendTag(nil, 1000, protowire.BytesType), "y"))
	plain := marshal(t, mp)
	graphField := func(g *onnxpb.GraphProto) []byte {
		b, err := proto.Marshal(g)
		if err != nil {
			t.Fatal(err)
		}
		return protowire.AppendBytes(protowire.AppendTag(nil, modelGraphField, protowire.BytesType), b)
	}
	rawField := func(b []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, tensorRawDataField, protowire.BytesType), b)
	}
	twoRaw, err := proto.Marshal(&onnxpb.TensorProto{Name: proto.String("W2"), DataType: proto.Int32(1), Dims: []int64{1}})
	if err != nil {
		t.Fatal(err)
	}
	twoRaw = append(append(twoRaw, rawField([]byte{0, 0, 0, 0})...), rawField([]byte{0, 0, 128, 63})...)
	// plain with more fields appended inside its one graph field
	withInGraph := func(extra []byte) []byte {
		g, err := proto.Marshal(mp.Graph)
		if err != nil {
			t.Fatal(err)
		}
		noGraph := proto.Clone(mp).(*onnxpb.ModelProto)
		noGraph.Graph = nil
		return append(marshal(t, noGraph), protowire.AppendBytes(protowire.AppendTag(nil, modelGraphField, protowire.BytesType), append(g, extra...))...)
	}
	initializer := func(content []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, graphInitializerField, protowire.BytesType), content)
	}
	repeatedRaw := withInGraph(initializer(twoRaw))
	wrongType := withInGraph(initializer(protowire.AppendVarint(protowire.AppendTag(nil, tensorRawDataField, protowire.VarintType), 5)))
	cases := map[string][]byte{
		"plain":           plain,
		"repeated graph":  append(slices.Clone(plain), graphField(&onnxpb.GraphProto{Name: proto.String("merged")})...),
		"repeated raw":    repeatedRaw,
		"wrong wire type": wrongType,
		"truncated":       plain[:len(plain)-3],
		"cut in raw_data": plain[:bytes.Index(plain, []byte{1, 2, 3, 4})+2],
	}
	for name, data := range cases {
		if err := sameAsUnmarshal(data); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, refs := withoutLargeRawData(plain); len(refs) != 2 {
		t.Errorf("plain: %d raw_data fields taken out, want 2 (W and R)", len(refs))
	}
}

// sameAsUnmarshal decodes data with unmarshalModel and with proto.Unmarshal
// and says how they differ.
func sameAsUnmarshal(data []byte) error {
	got, want := &onnxpb.ModelProto{}, &onnxpb.ModelProto{}
	err := unmarshalModel(data, got, func(buf []byte, off int64) error {
		copy(buf, data[off:])
		return nil
	})
	wantErr := proto.Unmarshal(data, want)
	switch {
	case (err != nil) != (wantErr != nil):
		return fmt.Errorf("unmarshalModel: %v; proto.Unmarshal: %v", err, wantErr)
	case err == nil && !proto.Equal(got, want):
		return errors.New("unmarshalModel decoded another model than proto.Unmarshal")
	}
	return nil
}

// TestLoadFileShrinks: a model file cut short while it is being read gives
// an error, not a crash (Load maps files into memory where it can).
func TestLoadFileShrinks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.onnx")
	if err := os.WriteFile(path, make([]byte, 3*65536), 0o644); err != nil {
		t.Fatal(err)
	}
	err := withFileBytes(path, func(data []byte, _ func([]byte, int64) error) error {
		if err := os.Truncate(path, 0); err != nil {
			return err
		}
		var sum byte
		for i := 0; i < len(data); i += 4096 {
			sum += data[i]
		}
		if sum != 0 {
			return errors.New("read non-zero bytes")
		}
		return nil
	})
	if runtime.GOOS == "linux" && (err == nil || !strings.Contains(err.Error(), "changed while being read")) {
		t.Fatalf("got %v, want a 'changed while being read' error", err)
	}
	// The same through the function that reads tensor data.
	if err := os.WriteFile(path, make([]byte, 3*65536), 0o644); err != nil {
		t.Fatal(err)
	}
	err = withFileBytes(path, func(data []byte, readAt func([]byte, int64) error) error {
		if err := os.Truncate(path, 65536); err != nil {
			return err
		}
		return readAt(make([]byte, 65536), 2*65536)
	})
	if runtime.GOOS == "linux" && (err == nil || !strings.Contains(err.Error(), "changed while being read")) {
		t.Fatalf("readAt: got %v, want a 'changed while being read' error", err)
	}
}

package eval

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/infer"
	"github.com/onnx-rebasin/onnx-rebasin/internal/half"
	"github.com/onnx-rebasin/onnx-rebasin/npy"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
)

// writeNPY writes a float .npy file by hand: dtype descr ('<f4', '>f8',
// '<f2', ...) and the values encoded in it.
func writeNPY(t *testing.T, path, descr string, shape []int, vals []float32) {
	t.Helper()
	size := int(descr[2] - '0')
	be := descr[0] == '>'
	var order binary.AppendByteOrder = binary.LittleEndian
	if be {
		order = binary.BigEndian
	}
	data := make([]byte, 0, len(vals)*size)
	for _, v := range vals {
		switch size {
		case 2:
			data = order.AppendUint16(data, half.Float32ToFloat16(v))
		case 4:
			data = order.AppendUint32(data, math.Float32bits(v))
		case 8:
			data = order.AppendUint64(data, math.Float64bits(float64(v)))
		}
	}
	dims := ""
	for _, d := range shape {
		dims += fmt.Sprintf("%d, ", d)
	}
	h := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, dims)
	for (10+len(h)+1)%64 != 0 {
		h += " "
	}
	h += "\n"
	b := append([]byte("\x93NUMPY\x01\x00"), byte(len(h)), byte(len(h)>>8))
	b = append(append(b, h...), data...)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Read in batches of every size (one sample to more than the data set),
// a file-backed Dataset gives exactly the values of the whole file read at
// once, for every float dtype and byte order; Head and Select agree too.
func TestBatchesEqualWholeFile(t *testing.T) {
	dir := t.TempDir()
	const n, per = 23, 6
	vals := make([]float32, n*per)
	for i := range vals {
		vals[i] = float32(math.Sin(float64(i)*0.37)) * float32(i%7+1)
	}
	for _, descr := range []string{"<f4", ">f4", "<f2", ">f2", "<f8", ">f8"} {
		path := filepath.Join(dir, strings.NewReplacer("<", "le", ">", "be").Replace(descr)+".npy")
		writeNPY(t, path, descr, []int{n, 2, 3}, vals)
		whole, err := npy.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		want, err := whole.Float32()
		if err != nil {
			t.Fatal(err)
		}
		ds, err := Load(path, "")
		if err != nil {
			t.Fatal(err)
		}
		if ds.X != nil || ds.N() != n {
			t.Fatalf("%s: X held in memory or N %d", descr, ds.N())
		}
		for _, batch := range []int{1, 4, 7, n, n + 5} {
			rd := ds.NewReader()
			var got []float32
			for from := 0; from < n; from += batch {
				to := min(from+batch, n)
				x, err := rd.Batch(from, to)
				if err != nil {
					t.Fatal(err)
				}
				if x.Shape[0] != to-from || x.Shape[1] != 2 || x.Shape[2] != 3 {
					t.Fatalf("%s: batch shape %v", descr, x.Shape)
				}
				got = append(got, x.F...)
			}
			if !sameBits(got, want) {
				t.Fatalf("%s, batch %d: batches differ from the whole file", descr, batch)
			}
		}
		h := ds.Head(10)
		x, err := h.Batch(0, h.N())
		if err != nil || h.N() != 10 || !sameBits(x.F, want[:10*per]) {
			t.Fatalf("%s: Head(10): %v", descr, err)
		}
		pick := []int{3, 4, 5, 0, 22, 9}
		sel := ds.Select(pick)
		x, err = sel.Batch(0, sel.N())
		if err != nil {
			t.Fatal(err)
		}
		for k, i := range pick {
			if !sameBits(x.F[k*per:(k+1)*per], want[i*per:(i+1)*per]) {
				t.Fatalf("%s: Select: sample %d is not row %d", descr, k, i)
			}
		}
		if err := ds.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// A truncated file is refused when opened, and one cut short after it was
// opened fails the batch that reaches the missing data: one error naming
// the file, no panic.
func TestTruncatedData(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.npy")
	writeNPY(t, path, "<f4", []int{10, 4}, make([]float32, 40))
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(dir, "short.npy")
	for _, cut := range []int{1, 4, 160, len(raw) - 5, 3} {
		if err := os.WriteFile(short, raw[:len(raw)-cut], 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load(short, "")
		if err == nil || !strings.Contains(err.Error(), short) || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("cut %d bytes: %v", cut, err)
		}
	}
	ds, err := Load(path, "")
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	if err := os.Truncate(path, int64(len(raw)-4*4*3)); err != nil { // the last three samples
		t.Fatal(err)
	}
	if _, err := ds.Batch(0, 6); err != nil {
		t.Fatalf("samples before the cut: %v", err)
	}
	_, err = ds.Batch(5, 10)
	if err == nil || !strings.Contains(err.Error(), path) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("samples after the cut: %v", err)
	}
	if _, err := ds.Batch(8, 11); err == nil {
		t.Fatal("batch beyond the data set accepted")
	}
}

// Evaluating the data streamed from the file scores exactly as evaluating
// the same samples held in memory.
func TestRunStreamedEqualsInMemory(t *testing.T) {
	ds, err := Load("../testmodels/fashion_test_x.npy", "../testmodels/fashion_test_y.npy")
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	ds = ds.Head(600)
	whole, err := npy.ReadFile("../testmodels/fashion_test_x.npy")
	if err != nil {
		t.Fatal(err)
	}
	x, err := whole.Float32()
	if err != nil {
		t.Fatal(err)
	}
	mem := &Dataset{X: x[:600*784], Shape: ds.Shape, Y: ds.Y}
	m, err := onnx.Load("../testmodels/mlp_s0.onnx")
	if err != nil {
		t.Fatal(err)
	}
	sess, err := infer.NewSession(m)
	if err != nil {
		t.Fatal(err)
	}
	a, err := Run(sess, ds, 256, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Run(sess, mem, 256, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.Accuracy != b.Accuracy || a.Loss != b.Loss || a.Samples != 600 {
		t.Fatalf("streamed %+v, in memory %+v", a, b)
	}
}

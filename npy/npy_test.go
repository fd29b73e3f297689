package npy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/internal/testreq"
)

// Files in testdata/ are written by testdata/gen.py with numpy.
func TestReadNumpyFiles(t *testing.T) {
	inf := math.Inf(1)
	tests := []struct {
		file  string
		dtype DType
		shape []int
		f64   []float64 // expected Float64()
		i64   []int64   // expected Int64(), nil for float arrays
		exact bool      // our writer reproduces the file byte for byte
	}{
		{"f4_2x3.npy", Float32, []int{2, 3}, []float64{-1, -0.5, 0, 0.5, 1, 1.5}, nil, true},
		{"f4_2x3x4.npy", Float32, []int{2, 3, 4}, seq(24), nil, true},
		{"f4_0x3.npy", Float32, []int{0, 3}, []float64{}, nil, true},
		{"f8_3.npy", Float64, []int{3}, []float64{0.1, -2.5, 1e300}, nil, true},
		{"f8_scalar.npy", Float64, []int{}, []float64{3.25}, nil, true},
		{"f2_6.npy", Float16, []int{6}, []float64{0, 1, -2.5, 65504, math.Ldexp(1, -24), inf}, nil, true},
		{"i8_2x2.npy", Int64, []int{2, 2}, []float64{-1, 1 << 40, 3, -(1 << 62)}, []int64{-1, 1 << 40, 3, -(1 << 62)}, true},
		{"i4_4.npy", Int32, []int{4}, []float64{math.MinInt32, -1, 0, math.MaxInt32}, []int64{math.MinInt32, -1, 0, math.MaxInt32}, true},
		{"i2_2.npy", Int16, []int{2}, []float64{-32768, 7}, []int64{-32768, 7}, true},
		{"i1_2.npy", Int8, []int{2}, []float64{-128, 127}, []int64{-128, 127}, true},
		{"u1_5.npy", Uint8, []int{5}, []float64{0, 1, 127, 128, 255}, []int64{0, 1, 127, 128, 255}, true},
		{"u2_2.npy", Uint16, []int{2}, []float64{0, 65535}, []int64{0, 65535}, true},
		{"u4_2.npy", Uint32, []int{2}, []float64{1, math.MaxUint32}, []int64{1, math.MaxUint32}, true},
		{"u8_2.npy", Uint64, []int{2}, []float64{5, math.MaxInt64}, []int64{5, math.MaxInt64}, true},
		{"b1_3.npy", Bool, []int{3}, []float64{1, 0, 1}, []int64{1, 0, 1}, true},
		{"f4_v2.npy", Float32, []int{4}, seq(4), nil, false},
		{"f4_v3.npy", Float32, []int{4}, seq(4), nil, false},
		{"f4_be_3.npy", Float32, []int{3}, []float64{1.5, -2, 3}, nil, false},
		{"i8_be_2.npy", Int64, []int{2}, []float64{1, -2}, []int64{1, -2}, false},
		{"f2_be_2.npy", Float16, []int{2}, []float64{1, -2.5}, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata", tc.file)
			a, err := ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if a.DType != tc.dtype || !reflect.DeepEqual(a.Shape, tc.shape) {
				t.Fatalf("got %s%v, want %s%v", a.DType, a.Shape, tc.dtype, tc.shape)
			}
			f64, err := a.Float64()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(f64, tc.f64) {
				t.Errorf("Float64() = %v, want %v", f64, tc.f64)
			}
			f32, err := a.Float32()
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range f32 {
				if want := float32(tc.f64[i]); v != want && tc.dtype != Int64 && tc.dtype != Uint64 {
					t.Errorf("Float32()[%d] = %v, want %v", i, v, want)
				}
			}
			i64, err := a.Int64()
			if tc.i64 == nil {
				if err == nil {
					t.Errorf("Int64() on %s: no error", tc.dtype)
				}
			} else if err != nil {
				t.Errorf("Int64(): %v", err)
			} else if !reflect.DeepEqual(i64, tc.i64) {
				t.Errorf("Int64() = %v, want %v", i64, tc.i64)
			}
			// The same through Read on a reader that hides its length.
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			b, err := Read(io.MultiReader(bytes.NewReader(raw)))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(a, b) {
				t.Errorf("Read and ReadFile disagree: %v vs %v", a, b)
			}
			var buf bytes.Buffer
			if err := Write(&buf, a); err != nil {
				t.Fatal(err)
			}
			if tc.exact && !bytes.Equal(buf.Bytes(), raw) {
				t.Errorf("Write output differs from numpy's:\n got %q\nwant %q", buf.Bytes(), raw)
			}
			c, err := Read(&buf)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(a, c) {
				t.Errorf("round trip: got %v %v, want %v %v", c, c.Data, a, a.Data)
			}
		})
	}
}

func seq(n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = float64(i)
	}
	return s
}

func TestRejectedNumpyFiles(t *testing.T) {
	tests := []struct {
		file string
		msg  string
	}{
		{"bad_fortran.npy", "fortran_order"},
		{"bad_structured.npy", "structured"},
		{"bad_complex.npy", "unsupported dtype"},
	}
	for _, tc := range tests {
		_, err := ReadFile(filepath.Join("testdata", tc.file))
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: got error %v, want one mentioning %q", tc.file, err, tc.msg)
		}
	}
	_, err := ReadFile(filepath.Join("testdata", "bad_fortran.npy"))
	if !errors.Is(err, ErrFortranOrder) {
		t.Errorf("fortran error %v is not ErrFortranOrder", err)
	}
}

// makeNPY builds a file with the given version, header dictionary (padded
// with spaces and a newline unless raw) and data.
func makeNPY(major byte, dict string, data []byte) []byte {
	b := []byte(magic)
	b = append(b, major, 0)
	h := dict + "\n"
	if major == 1 {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(h)))
	} else {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(h)))
	}
	b = append(b, h...)
	return append(b, data...)
}

func dict(descr, shape string) string {
	return "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }"
}

func TestReadErrors(t *testing.T) {
	four := make([]byte, 4)
	good := makeNPY(1, dict("<f4", "(1,)"), four)
	hugeHeader := append([]byte(magic), 2, 0, 0xff, 0xff, 0xff, 0xff)
	tests := []struct {
		name string
		in   []byte
		msg  string
	}{
		{"empty", nil, "empty"},
		{"short magic", []byte("\x93NU"), "magic"},
		{"bad magic", []byte("PK\x03\x04aaaaaaaaaaaaaaaa"), "bad magic"},
		{"no header length", []byte(magic + "\x01\x00\x10"), "header length"},
		{"version 4", makeNPY(4, dict("<f4", "(1,)"), four), "version 4.0"},
		{"version 1.1", append([]byte(magic+"\x01\x01"), good[8:]...), "version 1.1"},
		{"huge header", hugeHeader, "exceeds"},
		{"header beyond input", append([]byte(magic), 1, 0, 0xff, 0x7f, '{'), "header"},
		{"truncated header", good[:20], "header"},
		{"not a dict", makeNPY(1, "[1, 2]", nil), "expected '{'"},
		{"missing shape", makeNPY(1, "{'descr': '<f4', 'fortran_order': False}", four), "missing key"},
		{"unknown key", makeNPY(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", four), "unexpected key"},
		{"duplicate key", makeNPY(1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", four), "duplicate"},
		{"trailing garbage", makeNPY(1, dict("<f4", "(1,)")+"x", four), "trailing"},
		{"bad bool", makeNPY(1, "{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}", four), "True or False"},
		{"unterminated string", makeNPY(1, "{'descr': '<f4", nil), "unterminated"},
		{"negative dim", makeNPY(1, dict("<f4", "(-1,)"), nil), "non-negative"},
		{"float dim", makeNPY(1, dict("<f4", "(1.5,)"), nil), "expected ','"},
		{"dim overflow", makeNPY(1, dict("<f4", "(99999999999999999999,)"), nil), "too large"},
		{"product overflow", makeNPY(1, dict("<f4", "(4294967296, 4294967296)"), nil), "too many elements"},
		{"bytes overflow", makeNPY(1, dict("<f8", "(2305843009213693952,)"), nil), "too large"},
		{"too many dims", makeNPY(1, dict("<f4", "("+strings.Repeat("1, ", 65)+")"), nil), "dimensions"},
		{"unsupported dtype", makeNPY(1, dict("<f3", "(1,)"), four), "unsupported dtype"},
		{"object dtype", makeNPY(1, dict("|O", "(1,)"), four), "unsupported dtype"},
		{"string dtype", makeNPY(1, dict("<U4", "(1,)"), four), "unsupported dtype"},
		{"no byte order", makeNPY(1, dict("|f4", "(1,)"), four), "byte order"},
		{"short data", makeNPY(1, dict("<f4", "(2,)"), four), "data bytes"},
		{"huge claimed data", makeNPY(1, dict("<f4", "(1099511627776,)"), four), "data bytes"},
		{"non-ascii v1", makeNPY(1, "{'descr': '<f4\xe9', 'fortran_order': False, 'shape': (1,)}", four), "non-ASCII"},
		{"fortran", makeNPY(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (1,)}", four), "fortran"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Once with a reader whose size is known, once without.
			for _, r := range []io.Reader{bytes.NewReader(tc.in), io.MultiReader(bytes.NewReader(tc.in))} {
				a, err := Read(r)
				if err == nil {
					t.Fatalf("no error, got %v", a)
				}
				if !strings.Contains(err.Error(), tc.msg) {
					t.Errorf("error %q does not mention %q", err, tc.msg)
				}
			}
		})
	}
}

func TestTruncatedIsUnexpectedEOF(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "f4_2x3.npy"))
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n < len(raw); n++ {
		for _, r := range []io.Reader{bytes.NewReader(raw[:n]), io.MultiReader(bytes.NewReader(raw[:n]))} {
			_, err := Read(r)
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("prefix of %d bytes: error %v, want io.ErrUnexpectedEOF", n, err)
			}
		}
	}
}

// A header that promises a terabyte must fail without allocating it, even
// when the reader's size is unknown.
func TestHugeClaimDoesNotAllocate(t *testing.T) {
	in := makeNPY(1, dict("<f4", "(1099511627776,)"), make([]byte, 100))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < 5; i++ {
		if _, err := Read(io.MultiReader(bytes.NewReader(in))); err == nil {
			t.Fatal("no error")
		}
	}
	runtime.ReadMemStats(&after)
	if d := after.TotalAlloc - before.TotalAlloc; d > 5*4*chunkSize {
		t.Errorf("allocated %d bytes for 5 failed reads", d)
	}
}

// Data larger than one chunk arriving from a reader of unknown size.
func TestReadLargeUnknownSize(t *testing.T) {
	n := 3*chunkSize/4 + 12345 // > 2 chunks of float32 data
	data := make([]float32, n)
	for i := range data {
		data[i] = float32(i) * 0.25
	}
	var buf bytes.Buffer
	if err := WriteFloat32(&buf, []int{n}, data); err != nil {
		t.Fatal(err)
	}
	a, err := Read(io.MultiReader(&buf))
	if err != nil {
		t.Fatal(err)
	}
	got, err := a.Float32()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, data) {
		t.Fatal("data differs")
	}
}

func TestReadFileErrors(t *testing.T) {
	dir := t.TempDir()
	raw, err := os.ReadFile(filepath.Join("testdata", "f4_2x3.npy"))
	if err != nil {
		t.Fatal(err)
	}
	trailing := filepath.Join(dir, "trailing.npy")
	if err := os.WriteFile(trailing, append(raw, 0), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(trailing); err == nil || !strings.Contains(err.Error(), "trailing") {
		t.Errorf("trailing data: %v", err)
	}
	short := filepath.Join(dir, "short.npy")
	if err := os.WriteFile(short, raw[:len(raw)-1], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(short); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated file: %v", err)
	}
	if _, err := ReadFile(filepath.Join(dir, "missing.npy")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	mk := func(a *Array, err error) *Array {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	f16, _ := New(Float16, []int{3}, []byte{0x00, 0x3c, 0x00, 0xc1, 0xff, 0x7b}) // 1, -2.5, 65504
	arrays := []*Array{
		mk(FromFloat32([]int{2, 2}, []float32{1, -0, float32(math.Inf(-1)), float32(math.NaN())})),
		mk(FromFloat32(nil, []float32{7})),
		mk(FromFloat32([]int{0}, nil)),
		mk(FromFloat64([]int{1, 3}, []float64{math.Pi, -1e-310, math.MaxFloat64})),
		mk(FromInt64([]int{3, 1, 1}, []int64{math.MinInt64, 0, math.MaxInt64})),
		mk(FromInt32([]int{2}, []int32{math.MinInt32, 5})),
		mk(FromUint8([]int{4}, []uint8{0, 1, 200, 255})),
		mk(FromBool([]int{2}, []bool{false, true})),
		f16,
		mk(Zeros(Uint64, []int{2, 0, 5})),
	}
	for i, a := range arrays {
		var buf bytes.Buffer
		if err := Write(&buf, a); err != nil {
			t.Fatalf("%d %v: %v", i, a, err)
		}
		if hl := int(binary.LittleEndian.Uint16(buf.Bytes()[8:])); (10+hl)%64 != 0 {
			t.Errorf("%v: header not 64-byte aligned", a)
		}
		b, err := Read(&buf)
		if err != nil {
			t.Fatalf("%v: %v", a, err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("round trip: %v %v -> %v %v", a, a.Data, b, b.Data)
		}
		path := filepath.Join(dir, "a.npy")
		if err := WriteFile(path, a); err != nil {
			t.Fatal(err)
		}
		c, err := ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a, c) {
			t.Errorf("file round trip: %v -> %v", a, c)
		}
	}
	// Several arrays back to back in one stream.
	var buf bytes.Buffer
	for _, a := range arrays {
		if err := Write(&buf, a); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range arrays {
		b, err := Read(&buf)
		if err != nil || !reflect.DeepEqual(a, b) {
			t.Fatalf("stream: %v %v, want %v", b, err, a)
		}
	}
	if buf.Len() != 0 {
		t.Errorf("%d bytes left", buf.Len())
	}
}

func TestWriteHelpers(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteInt64(&buf, []int{2}, []int64{-3, 4}); err != nil {
		t.Fatal(err)
	}
	a, err := Read(&buf)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := a.Int64()
	if a.DType != Int64 || !reflect.DeepEqual(got, []int64{-3, 4}) {
		t.Errorf("got %v %v", a, got)
	}
	if err := WriteFloat32(&buf, []int{3}, []float32{1, 2}); err == nil {
		t.Error("shape/data mismatch accepted")
	}
	if _, err := FromFloat32([]int{-1}, nil); err == nil {
		t.Error("negative shape accepted")
	}
	if err := Write(&buf, &Array{Shape: []int{2}, DType: Float32, Data: make([]byte, 4)}); err == nil {
		t.Error("short data accepted by Write")
	}
	if err := Write(&buf, &Array{Shape: []int{1}, DType: "<c8", Data: make([]byte, 8)}); err == nil {
		t.Error("bad dtype accepted by Write")
	}
	if err := Write(&buf, nil); err == nil {
		t.Error("nil array accepted by Write")
	}
}

func TestConversions(t *testing.T) {
	u, _ := FromUint8([]int{1}, []uint8{255})
	big := &Array{Shape: []int{1}, DType: Uint64, Data: binary.LittleEndian.AppendUint64(nil, math.MaxUint64)}
	if _, err := big.Int64(); err == nil {
		t.Error("uint64 overflow not reported")
	}
	if f, _ := big.Float64(); f[0] != math.MaxUint64 {
		t.Errorf("Float64 of MaxUint64 = %v", f[0])
	}
	if v, _ := u.Float32(); v[0] != 255 {
		t.Errorf("Float32 of uint8 255 = %v", v[0])
	}
	// int64 -> float32 rounds once, like numpy's astype.
	i, _ := FromInt64([]int{1}, []int64{1<<53 + 1<<29 + 1})
	if v, _ := i.Float32(); v[0] != float32(int64(1<<53+1<<29+1)) {
		t.Errorf("Float32 of int64 double-rounded: %v", v[0])
	}
	d, _ := FromFloat64([]int{2}, []float64{0.1, 1e300})
	if v, _ := d.Float32(); v[0] != float32(0.1) || !math.IsInf(float64(v[1]), 1) {
		t.Errorf("Float32 of float64 = %v", v)
	}
	if _, err := (&Array{Shape: []int{3}, DType: Float32, Data: nil}).Float32(); err == nil {
		t.Error("Float32 on inconsistent array: no error")
	}
}

// TestFloat16 reads float16 arrays as float32 and float64 (the conversion
// itself is tested on every bit pattern in internal/half).
func TestFloat16(t *testing.T) {
	halves := []uint16{0x0000, 0x3c00, 0xc000, 0x7bff, 0x0001, 0x8000, 0x3555, 0x7c00, 0xfc00}
	want := []float32{0, 1, -2, 65504, float32(math.Ldexp(1, -24)), float32(math.Copysign(0, -1)), 0.33325195, float32(math.Inf(1)), float32(math.Inf(-1))}
	data := make([]byte, 2*len(halves))
	for i, h := range halves {
		binary.LittleEndian.PutUint16(data[2*i:], h)
	}
	a, err := New(Float16, []int{len(halves)}, data)
	if err != nil {
		t.Fatal(err)
	}
	got32, err := a.Float32()
	if err != nil {
		t.Fatal(err)
	}
	got64, err := a.Float64()
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if math.Float32bits(got32[i]) != math.Float32bits(want[i]) || math.Float64bits(got64[i]) != math.Float64bits(float64(want[i])) {
			t.Errorf("%#04x: float32 %v, float64 %v, want %v", halves[i], got32[i], got64[i], want[i])
		}
	}
}

func FuzzRead(f *testing.F) {
	files := testreq.Glob(f, filepath.Join("testdata", "*.npy"))
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add(makeNPY(2, dict("<f4", "(1099511627776,)"), nil))
	f.Add(makeNPY(3, dict(">i2", "(2, 1)"), []byte{1, 2, 3, 4}))
	f.Fuzz(func(t *testing.T, in []byte) {
		a, err := Read(bytes.NewReader(in))
		b, err2 := Read(io.MultiReader(bytes.NewReader(in)))
		if (err == nil) != (err2 == nil) {
			t.Fatalf("known-size and unknown-size reads disagree: %v vs %v", err, err2)
		}
		// A File (read in pieces) opens exactly when the whole input is
		// one array, and gives the same values.
		file, errF := NewFile(bytes.NewReader(in), int64(len(in)), "fuzz")
		_, used, errR := read(bytes.NewReader(in), int64(len(in)))
		if (errF == nil) != (errR == nil && used == int64(len(in))) {
			t.Fatalf("NewFile: %v, but read: %v with %d of %d bytes", errF, errR, used, len(in))
		}
		if errF == nil {
			got := make([]float32, file.Len())
			if err := file.ReadFloat32(got, 0); err != nil {
				t.Fatal(err)
			}
			want, err := a.Float32()
			if err != nil {
				t.Fatal(err)
			}
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("element %d: File %v, Read %v", i, got[i], want[i])
				}
			}
			if len(got) > 1 {
				part := got[:len(got)/2]
				if err := file.ReadFloat32(part, len(got)-len(part)); err != nil {
					t.Fatal(err)
				}
				for i, v := range part {
					if math.Float32bits(v) != math.Float32bits(want[len(want)-len(part)+i]) {
						t.Fatalf("element %d read at an offset differs", len(want)-len(part)+i)
					}
				}
			}
		}
		if err != nil {
			return
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("reads disagree: %v vs %v", a, b)
		}
		if err := a.Validate(); err != nil {
			t.Fatalf("Read returned an invalid array: %v", err)
		}
		if _, err := a.Float64(); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Float32(); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := Write(&buf, a); err != nil {
			t.Fatal(err)
		}
		c, err := Read(&buf)
		if err != nil {
			t.Fatalf("re-reading written array: %v", err)
		}
		if !reflect.DeepEqual(a, c) {
			t.Fatalf("round trip: %v -> %v", a, c)
		}
	})
}

func TestDTypeName(t *testing.T) {
	for d, want := range map[DType]string{Bool: "bool", Uint8: "uint8", Int64: "int64", Float16: "float16", Float32: "float32", "<c8": "<c8"} {
		if got := d.Name(); got != want {
			t.Errorf("%s.Name() = %q, want %q", d, got, want)
		}
	}
}

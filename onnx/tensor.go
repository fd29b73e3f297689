package onnx

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/onnx-rebasin/onnx-rebasin/internal/half"
	"math"
	"math/bits"
	"unsafe"

	"google.golang.org/protobuf/proto"

	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

// maxElements bounds a tensor's element count so that size arithmetic never
// overflows and absurd dims are refused before anything is allocated.
const maxElements = 1 << 40

// ElemSize is the size in bytes of one element of dtype in raw_data, or 0 for
// types without a fixed size (STRING, UNDEFINED, unknown).
func ElemSize(dt onnxpb.TensorProto_DataType) int {
	switch dt {
	case onnxpb.TensorProto_FLOAT, onnxpb.TensorProto_INT32, onnxpb.TensorProto_UINT32:
		return 4
	case onnxpb.TensorProto_DOUBLE, onnxpb.TensorProto_INT64, onnxpb.TensorProto_UINT64, onnxpb.TensorProto_COMPLEX64:
		return 8
	case onnxpb.TensorProto_COMPLEX128:
		return 16
	case onnxpb.TensorProto_FLOAT16, onnxpb.TensorProto_BFLOAT16, onnxpb.TensorProto_INT16, onnxpb.TensorProto_UINT16:
		return 2
	case onnxpb.TensorProto_INT8, onnxpb.TensorProto_UINT8, onnxpb.TensorProto_BOOL:
		return 1
	}
	return 0
}

// IsFloat reports whether dtype is one of the floating-point types whose
// values this package converts to and from float32/float64.
func IsFloat(dt onnxpb.TensorProto_DataType) bool {
	switch dt {
	case onnxpb.TensorProto_FLOAT, onnxpb.TensorProto_FLOAT16, onnxpb.TensorProto_BFLOAT16, onnxpb.TensorProto_DOUBLE:
		return true
	}
	return false
}

// NumElements returns the product of dims, or an error when a dim is negative
// or the product is implausibly large (which also rules out overflow).
func NumElements(dims []int64) (int, error) {
	n := uint64(1)
	for _, d := range dims {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension in %v", dims)
		}
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 || lo > maxElements {
			return 0, fmt.Errorf("dims %v: element count overflows", dims)
		}
		n = lo
	}
	return int(n), nil
}

// typedLen returns how many values t keeps in its typed field for its dtype.
func typedLen(t *onnxpb.TensorProto) int {
	switch DataType(t) {
	case onnxpb.TensorProto_FLOAT:
		return len(t.FloatData)
	case onnxpb.TensorProto_COMPLEX64:
		return len(t.FloatData) / 2
	case onnxpb.TensorProto_DOUBLE:
		return len(t.DoubleData)
	case onnxpb.TensorProto_COMPLEX128:
		return len(t.DoubleData) / 2
	case onnxpb.TensorProto_INT64:
		return len(t.Int64Data)
	case onnxpb.TensorProto_UINT32, onnxpb.TensorProto_UINT64:
		return len(t.Uint64Data)
	case onnxpb.TensorProto_STRING:
		return len(t.StringData)
	}
	return len(t.Int32Data) // INT32, INT16, INT8, UINT16, UINT8, BOOL, FLOAT16, BFLOAT16
}

// checkTensor verifies that t's data agrees with its dims, so that later
// accessors can index without further checks.
func checkTensor(t *onnxpb.TensorProto) error {
	n, err := NumElements(t.Dims)
	if err != nil {
		return err
	}
	if t.Segment != nil {
		return errors.New("segmented tensors are not supported")
	}
	es := ElemSize(DataType(t))
	if t.GetDataLocation() == onnxpb.TensorProto_EXTERNAL {
		if es == 0 {
			return fmt.Errorf("external data of type %v is not supported", DataType(t))
		}
		return nil // checked against the file when it is read
	}
	if t.RawData != nil {
		if es == 0 {
			return fmt.Errorf("raw_data for type %v", DataType(t))
		}
		if want := uint64(n) * uint64(es); uint64(len(t.RawData)) != want {
			return fmt.Errorf("raw_data has %d bytes, dims %v × %d bytes need %d", len(t.RawData), t.Dims, es, want)
		}
		return nil
	}
	if got := typedLen(t); got != n {
		return fmt.Errorf("holds %d values of type %v, dims %v need %d", got, DataType(t), t.Dims, n)
	}
	return nil
}

// TensorBytes returns t's elements in the little-endian raw_data encoding,
// whatever form they are stored in. Use it to compare tensors exactly.
func (m *Model) TensorBytes(t *onnxpb.TensorProto) ([]byte, error) {
	if b, ok := m.external[t]; ok {
		return b, nil
	}
	if t.RawData != nil {
		return t.RawData, nil
	}
	es := ElemSize(DataType(t))
	if es == 0 {
		return nil, fmt.Errorf("tensor %q: type %v has no fixed-size encoding", t.GetName(), DataType(t))
	}
	n := typedLen(t)
	out := make([]byte, n*es)
	switch DataType(t) {
	case onnxpb.TensorProto_FLOAT, onnxpb.TensorProto_COMPLEX64:
		for i, v := range t.FloatData {
			binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
		}
	case onnxpb.TensorProto_DOUBLE, onnxpb.TensorProto_COMPLEX128:
		for i, v := range t.DoubleData {
			binary.LittleEndian.PutUint64(out[8*i:], math.Float64bits(v))
		}
	case onnxpb.TensorProto_INT64:
		for i, v := range t.Int64Data {
			binary.LittleEndian.PutUint64(out[8*i:], uint64(v))
		}
	case onnxpb.TensorProto_UINT64:
		for i, v := range t.Uint64Data {
			binary.LittleEndian.PutUint64(out[8*i:], v)
		}
	case onnxpb.TensorProto_UINT32:
		for i, v := range t.Uint64Data {
			binary.LittleEndian.PutUint32(out[4*i:], uint32(v))
		}
	case onnxpb.TensorProto_INT32:
		for i, v := range t.Int32Data {
			binary.LittleEndian.PutUint32(out[4*i:], uint32(v))
		}
	case onnxpb.TensorProto_INT16, onnxpb.TensorProto_UINT16, onnxpb.TensorProto_FLOAT16, onnxpb.TensorProto_BFLOAT16:
		for i, v := range t.Int32Data {
			binary.LittleEndian.PutUint16(out[2*i:], uint16(v))
		}
	default: // one byte each: INT8, UINT8, BOOL
		for i, v := range t.Int32Data {
			out[i] = byte(v)
		}
	}
	return out, nil
}

// Float64s returns t's elements as float64. t must be FLOAT, FLOAT16,
// BFLOAT16 or DOUBLE.
func (m *Model) Float64s(t *onnxpb.TensorProto) ([]float64, error) {
	f32, err := m.float32sOrNil(t)
	if err != nil {
		return nil, err
	}
	if f32 != nil {
		out := make([]float64, len(f32))
		for i, v := range f32 {
			out[i] = float64(v)
		}
		return out, nil
	}
	if t.GetDataLocation() != onnxpb.TensorProto_EXTERNAL && t.RawData == nil {
		return append([]float64(nil), t.DoubleData...), nil
	}
	raw, err := m.TensorBytes(t)
	if err != nil {
		return nil, err
	}
	out := make([]float64, len(raw)/8)
	for i := range out {
		out[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
	}
	return out, nil
}

// Float32View is Float32s without the copy when t holds FLOAT values in
// raw form (raw_data or external data), 4-byte aligned, on a little-endian
// machine: the result then shares t's memory, so callers must only read it,
// and it stays valid until t's data is replaced. Otherwise it returns what
// Float32s does.
func (m *Model) Float32View(t *onnxpb.TensorProto) ([]float32, error) {
	if DataType(t) == onnxpb.TensorProto_FLOAT && nativeLittleEndian {
		raw, ok := m.external[t]
		if !ok {
			raw = t.RawData
		}
		if len(raw) > 0 && len(raw)%4 == 0 && uintptr(unsafe.Pointer(&raw[0]))%4 == 0 {
			return unsafe.Slice((*float32)(unsafe.Pointer(&raw[0])), len(raw)/4), nil
		}
	}
	return m.Float32s(t)
}

var nativeLittleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// Float32s returns t's elements converted to float32 (DOUBLE is rounded).
// t must be FLOAT, FLOAT16, BFLOAT16 or DOUBLE.
func (m *Model) Float32s(t *onnxpb.TensorProto) ([]float32, error) {
	f32, err := m.float32sOrNil(t)
	if err != nil || f32 != nil {
		return f32, err
	}
	f64, err := m.Float64s(t)
	if err != nil {
		return nil, err
	}
	out := make([]float32, len(f64))
	for i, v := range f64 {
		out[i] = float32(v)
	}
	return out, nil
}

// float32sOrNil decodes the types that widen exactly to float32 and returns
// nil, nil for DOUBLE.
func (m *Model) float32sOrNil(t *onnxpb.TensorProto) ([]float32, error) {
	dt := DataType(t)
	if !IsFloat(dt) {
		return nil, fmt.Errorf("tensor %q: type %v is not a floating-point type", t.GetName(), dt)
	}
	if dt == onnxpb.TensorProto_DOUBLE {
		return nil, nil
	}
	if dt == onnxpb.TensorProto_FLOAT && t.RawData == nil && t.GetDataLocation() != onnxpb.TensorProto_EXTERNAL {
		return append([]float32{}, t.FloatData...), nil
	}
	raw, err := m.TensorBytes(t)
	if err != nil {
		return nil, err
	}
	switch dt {
	case onnxpb.TensorProto_FLOAT:
		out := make([]float32, len(raw)/4)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		return out, nil
	case onnxpb.TensorProto_FLOAT16:
		out := make([]float32, len(raw)/2)
		for i := range out {
			out[i] = half.Float16ToFloat32(binary.LittleEndian.Uint16(raw[2*i:]))
		}
		return out, nil
	default: // BFLOAT16
		out := make([]float32, len(raw)/2)
		for i := range out {
			out[i] = half.BFloat16ToFloat32(binary.LittleEndian.Uint16(raw[2*i:]))
		}
		return out, nil
	}
}

// SetFloat32s replaces t's elements with v, converted to t's element type
// (round-to-nearest-even for FLOAT16 and BFLOAT16) and stored in the form t
// already uses: raw_data, a typed field or external data.
func (m *Model) SetFloat32s(t *onnxpb.TensorProto, v []float32) error {
	return m.setFloats(t, len(v), func(i int) float64 { return float64(v[i]) }, func(i int) float32 { return v[i] })
}

// SetFloat64s is SetFloat32s for float64 values; DOUBLE tensors keep full precision.
func (m *Model) SetFloat64s(t *onnxpb.TensorProto, v []float64) error {
	return m.setFloats(t, len(v), func(i int) float64 { return v[i] }, func(i int) float32 { return float32(v[i]) })
}

func (m *Model) setFloats(t *onnxpb.TensorProto, n int, at64 func(int) float64, at32 func(int) float32) error {
	dt := DataType(t)
	if !IsFloat(dt) {
		return fmt.Errorf("tensor %q: type %v is not a floating-point type", t.GetName(), dt)
	}
	raw := make([]byte, n*ElemSize(dt))
	for i := 0; i < n; i++ {
		switch dt {
		case onnxpb.TensorProto_FLOAT:
			binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(at32(i)))
		case onnxpb.TensorProto_DOUBLE:
			binary.LittleEndian.PutUint64(raw[8*i:], math.Float64bits(at64(i)))
		case onnxpb.TensorProto_FLOAT16:
			binary.LittleEndian.PutUint16(raw[2*i:], half.Float32ToFloat16(at32(i)))
		case onnxpb.TensorProto_BFLOAT16:
			binary.LittleEndian.PutUint16(raw[2*i:], half.Float32ToBFloat16(at32(i)))
		}
	}
	return m.SetTensorBytes(t, raw)
}

// SetTensorBytes replaces t's elements with raw, given in the little-endian
// raw_data encoding (as TensorBytes returns it), and stores them in the form
// t already uses: raw_data, a typed field or external data. It works for
// every fixed-size element type, so permuting elements through
// TensorBytes/SetTensorBytes is exact.
func (m *Model) SetTensorBytes(t *onnxpb.TensorProto, raw []byte) error {
	dt := DataType(t)
	es := ElemSize(dt)
	if es == 0 {
		return fmt.Errorf("tensor %q: type %v has no fixed-size encoding", t.GetName(), dt)
	}
	n, err := NumElements(t.Dims)
	if err != nil {
		return fmt.Errorf("tensor %q: %w", t.GetName(), err)
	}
	if len(raw) != n*es {
		return fmt.Errorf("tensor %q: got %d values, dims %v need %d", t.GetName(), len(raw)/es, t.Dims, n)
	}
	if _, ok := m.external[t]; ok {
		m.external[t] = raw
		return nil
	}
	if t.RawData != nil {
		t.RawData = raw
		return nil
	}
	switch dt {
	case onnxpb.TensorProto_FLOAT, onnxpb.TensorProto_COMPLEX64:
		t.FloatData = make([]float32, len(raw)/4)
		for i := range t.FloatData {
			t.FloatData[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case onnxpb.TensorProto_DOUBLE, onnxpb.TensorProto_COMPLEX128:
		t.DoubleData = make([]float64, len(raw)/8)
		for i := range t.DoubleData {
			t.DoubleData[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
		}
	case onnxpb.TensorProto_INT64:
		t.Int64Data = make([]int64, n)
		for i := range t.Int64Data {
			t.Int64Data[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
		}
	case onnxpb.TensorProto_UINT64:
		t.Uint64Data = make([]uint64, n)
		for i := range t.Uint64Data {
			t.Uint64Data[i] = binary.LittleEndian.Uint64(raw[8*i:])
		}
	case onnxpb.TensorProto_UINT32:
		t.Uint64Data = make([]uint64, n)
		for i := range t.Uint64Data {
			t.Uint64Data[i] = uint64(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case onnxpb.TensorProto_INT32:
		t.Int32Data = make([]int32, n)
		for i := range t.Int32Data {
			t.Int32Data[i] = int32(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case onnxpb.TensorProto_INT16:
		t.Int32Data = make([]int32, n)
		for i := range t.Int32Data {
			t.Int32Data[i] = int32(int16(binary.LittleEndian.Uint16(raw[2*i:])))
		}
	case onnxpb.TensorProto_UINT16, onnxpb.TensorProto_FLOAT16, onnxpb.TensorProto_BFLOAT16:
		t.Int32Data = make([]int32, n)
		for i := range t.Int32Data {
			t.Int32Data[i] = int32(binary.LittleEndian.Uint16(raw[2*i:]))
		}
	case onnxpb.TensorProto_INT8:
		t.Int32Data = make([]int32, n)
		for i := range t.Int32Data {
			t.Int32Data[i] = int32(int8(raw[i]))
		}
	default: // UINT8, BOOL
		t.Int32Data = make([]int32, n)
		for i := range t.Int32Data {
			t.Int32Data[i] = int32(raw[i])
		}
	}
	return nil
}

// CopyTensor returns a deep copy of t named name, in the same element type
// and storage form, and appends it to the graph's initializers.
func (m *Model) CopyTensor(t *onnxpb.TensorProto, name string) *onnxpb.TensorProto {
	c := proto.Clone(t).(*onnxpb.TensorProto)
	c.Name = proto.String(name)
	if b, ok := m.external[t]; ok {
		m.external[c] = bytes.Clone(b)
	}
	m.Proto.Graph.Initializer = append(m.Proto.Graph.Initializer, c)
	return c
}

// Int64s returns the elements of an integer tensor (INT64, INT32, INT16,
// INT8, UINT8, UINT16, UINT32, BOOL) as int64, e.g. shape constants.
func (m *Model) Int64s(t *onnxpb.TensorProto) ([]int64, error) {
	dt := DataType(t)
	if t.RawData == nil && t.GetDataLocation() != onnxpb.TensorProto_EXTERNAL {
		switch dt {
		case onnxpb.TensorProto_INT64:
			return append([]int64{}, t.Int64Data...), nil
		case onnxpb.TensorProto_INT32, onnxpb.TensorProto_INT16, onnxpb.TensorProto_INT8,
			onnxpb.TensorProto_UINT8, onnxpb.TensorProto_UINT16, onnxpb.TensorProto_BOOL:
			out := make([]int64, len(t.Int32Data))
			for i, v := range t.Int32Data {
				out[i] = int64(v)
			}
			return out, nil
		case onnxpb.TensorProto_UINT32:
			out := make([]int64, len(t.Uint64Data))
			for i, v := range t.Uint64Data {
				out[i] = int64(v)
			}
			return out, nil
		}
		return nil, fmt.Errorf("tensor %q: type %v is not an integer type", t.GetName(), dt)
	}
	raw, err := m.TensorBytes(t)
	if err != nil {
		return nil, err
	}
	es := ElemSize(dt)
	var out []int64
	switch dt {
	case onnxpb.TensorProto_INT64:
		out = make([]int64, len(raw)/es)
		for i := range out {
			out[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
		}
	case onnxpb.TensorProto_INT32:
		out = make([]int64, len(raw)/es)
		for i := range out {
			out[i] = int64(int32(binary.LittleEndian.Uint32(raw[4*i:])))
		}
	case onnxpb.TensorProto_UINT32:
		out = make([]int64, len(raw)/es)
		for i := range out {
			out[i] = int64(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case onnxpb.TensorProto_INT16:
		out = make([]int64, len(raw)/es)
		for i := range out {
			out[i] = int64(int16(binary.LittleEndian.Uint16(raw[2*i:])))
		}
	case onnxpb.TensorProto_UINT16:
		out = make([]int64, len(raw)/es)
		for i := range out {
			out[i] = int64(binary.LittleEndian.Uint16(raw[2*i:]))
		}
	case onnxpb.TensorProto_INT8:
		out = make([]int64, len(raw))
		for i, b := range raw {
			out[i] = int64(int8(b))
		}
	case onnxpb.TensorProto_UINT8, onnxpb.TensorProto_BOOL:
		out = make([]int64, len(raw))
		for i, b := range raw {
			out[i] = int64(b)
		}
	default:
		return nil, fmt.Errorf("tensor %q: type %v is not an integer type", t.GetName(), dt)
	}
	return out, nil
}

// DataType returns t's element type (the schema stores it as a plain int32).
func DataType(t *onnxpb.TensorProto) onnxpb.TensorProto_DataType {
	return onnxpb.TensorProto_DataType(t.GetDataType())
}

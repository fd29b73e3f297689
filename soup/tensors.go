package soup

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"

	"github.com/onnx-rebasin/onnx-rebasin/internal/half"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

// modelReader gives one model's weights by name, read on demand.
type modelReader interface {
	path() string
	weights() map[string]*onnxpb.TensorProto
	// bytes returns t's raw little-endian encoding; the result may share a
	// buffer that the next call reuses.
	bytes(t *onnxpb.TensorProto) ([]byte, error)
	// bytesRange is bytes for n bytes at offset off of the encoding.
	bytesRange(t *onnxpb.TensorProto, off, n int) ([]byte, error)
}

// lazyReader reads a model opened with onnx.OpenLazy, one tensor at a time.
type lazyReader struct {
	l   *onnx.Lazy
	w   map[string]*onnxpb.TensorProto
	buf *[]byte // shared by the readers of one build: bytes are decoded at once
}

func newLazyReader(l *onnx.Lazy, buf *[]byte) *lazyReader {
	return &lazyReader{l: l, w: l.Model.Weights(), buf: buf}
}

func (r *lazyReader) path() string                            { return r.l.Model.Name }
func (r *lazyReader) weights() map[string]*onnxpb.TensorProto { return r.w }
func (r *lazyReader) bytes(t *onnxpb.TensorProto) ([]byte, error) {
	if !r.l.OnDisk(t) {
		return r.l.Model.TensorBytes(t)
	}
	b, err := r.l.ReadTensor(t, *r.buf)
	if err == nil {
		*r.buf = b
	}
	return b, err
}

func (r *lazyReader) bytesRange(t *onnxpb.TensorProto, off, n int) ([]byte, error) {
	if !r.l.OnDisk(t) {
		return r.l.ReadTensorRange(t, nil, int64(off), int64(n))
	}
	b, err := r.l.ReadTensorRange(t, *r.buf, int64(off), int64(n))
	if err == nil {
		*r.buf = b
	}
	return b, err
}

// memReader reads a model held in memory.
type memReader struct {
	m *onnx.Model
	w map[string]*onnxpb.TensorProto
}

func newMemReader(m *onnx.Model) *memReader { return &memReader{m: m, w: m.Weights()} }

func (r *memReader) path() string                                { return r.m.Name }
func (r *memReader) weights() map[string]*onnxpb.TensorProto     { return r.w }
func (r *memReader) bytes(t *onnxpb.TensorProto) ([]byte, error) { return r.m.TensorBytes(t) }
func (r *memReader) bytesRange(t *onnxpb.TensorProto, off, n int) ([]byte, error) {
	b, err := r.m.TensorBytes(t)
	if err != nil {
		return nil, err
	}
	return b[off : off+n], nil
}

// decodeFloats converts raw (little-endian, of type dt) into dst.
func decodeFloats(dst []float64, raw []byte, dt onnxpb.TensorProto_DataType) error {
	es := onnx.ElemSize(dt)
	if !onnx.IsFloat(dt) || len(raw) != len(dst)*es {
		return fmt.Errorf("cannot read %d bytes of %v as %d floats", len(raw), dt, len(dst))
	}
	switch dt {
	case onnxpb.TensorProto_FLOAT:
		for i := range dst {
			dst[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])))
		}
	case onnxpb.TensorProto_DOUBLE:
		for i := range dst {
			dst[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
		}
	case onnxpb.TensorProto_FLOAT16:
		for i := range dst {
			dst[i] = float64(half.Float16ToFloat32(binary.LittleEndian.Uint16(raw[2*i:])))
		}
	case onnxpb.TensorProto_BFLOAT16:
		for i := range dst {
			dst[i] = float64(half.BFloat16ToFloat32(binary.LittleEndian.Uint16(raw[2*i:])))
		}
	default:
		return fmt.Errorf("type %v is not supported", dt)
	}
	return nil
}

// encodeFloats converts v to dt's little-endian encoding into dst (grown
// as needed); FLOAT16 and BFLOAT16 round to nearest even from float32.
func encodeFloats(dst []byte, v []float64, dt onnxpb.TensorProto_DataType) []byte {
	n := len(v) * onnx.ElemSize(dt)
	if cap(dst) < n {
		dst = make([]byte, n)
	}
	dst = dst[:n]
	switch dt {
	case onnxpb.TensorProto_FLOAT:
		for i, x := range v {
			binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(float32(x)))
		}
	case onnxpb.TensorProto_DOUBLE:
		for i, x := range v {
			binary.LittleEndian.PutUint64(dst[8*i:], math.Float64bits(x))
		}
	case onnxpb.TensorProto_FLOAT16:
		for i, x := range v {
			binary.LittleEndian.PutUint16(dst[2*i:], half.Float32ToFloat16(float32(x)))
		}
	case onnxpb.TensorProto_BFLOAT16:
		for i, x := range v {
			binary.LittleEndian.PutUint16(dst[2*i:], half.Float32ToBFloat16(float32(x)))
		}
	}
	return dst
}

// readerSource is the tensorSource of one tensor name over model readers:
// the elements [off, off+len(dst)) of that tensor in each model.
type readerSource struct {
	tensor string
	off    int           // first element read
	base   modelReader   // nil for methods without a base
	models []modelReader // the models combined
}

func (s *readerSource) numModels() int { return len(s.models) }

// name identifies the tensor and, for a chunk after the first, the chunk:
// DARE's drops are seeded per chunk.
func (s *readerSource) name() string {
	if s.off == 0 {
		return s.tensor
	}
	return s.tensor + "@" + strconv.Itoa(s.off)
}
func (s *readerSource) readBase(dst []float64) error {
	return readFloats(s.base, s.tensor, s.off, dst)
}
func (s *readerSource) readModel(i int, dst []float64) error {
	return readFloats(s.models[i], s.tensor, s.off, dst)
}

func readFloats(r modelReader, name string, off int, dst []float64) error {
	t := r.weights()[name]
	dt := onnx.DataType(t)
	es := onnx.ElemSize(dt)
	raw, err := r.bytesRange(t, off*es, len(dst)*es)
	if err != nil {
		return err
	}
	if err := decodeFloats(dst, raw, dt); err != nil {
		return fmt.Errorf("%s: weight %q: %w", r.path(), name, err)
	}
	return nil
}

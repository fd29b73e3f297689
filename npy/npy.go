// Package npy reads and writes NumPy .npy files.
//
// It understands format versions 1.0, 2.0 and 3.0, C-ordered arrays of the
// numeric types listed as DType constants (booleans, signed and unsigned
// integers of 1 to 8 bytes, and 2-, 4- and 8-byte floats), in either byte
// order. Fortran-ordered arrays, structured dtypes and object arrays are
// rejected with an error.
//
// An Array keeps its elements as raw little-endian bytes (big-endian input is
// byte-swapped on reading); Float32, Float64 and Int64 convert them to Go
// slices, and FromFloat32, FromInt64 and friends build arrays from Go slices.
// Files written by this package are byte-for-byte what numpy.save writes for
// the same array.
//
// Reading is defensive: truncated or corrupt input, absurd header lengths,
// shapes whose element count overflows and headers promising more data than
// the input holds all give errors, and memory for the data is only allocated
// as the data actually arrives (or after the input's size has been checked).
package npy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/onnx-rebasin/onnx-rebasin/internal/half"
	"io"
	"math"
	"os"
	"strings"
)

// Array is an n-dimensional array in C (row-major) order.
type Array struct {
	// Shape holds the dimensions; an empty Shape is a scalar (one element).
	Shape []int
	// DType is the element type.
	DType DType
	// Data holds the elements as little-endian bytes; its length is
	// Len() * DType.ItemSize().
	Data []byte
}

const (
	magic = "\x93NUMPY"
	// MaxHeaderLen is the largest header accepted by Read. numpy's own
	// default limit is 10000 bytes; this is more generous but still bounded
	// so that a corrupt length field cannot make Read allocate gigabytes.
	MaxHeaderLen = 1 << 20
	// arrayAlign is the alignment numpy pads the header to.
	arrayAlign = 64
	// chunkSize bounds the memory allocated for array data before the data
	// has been seen to exist, when the input's size is unknown.
	chunkSize = 1 << 20
)

// ErrFortranOrder is returned (wrapped) for arrays stored in Fortran order.
var ErrFortranOrder = errors.New("npy: fortran_order=True arrays are not supported")

// NumElements returns the number of elements of an array with the given
// shape, or an error if a dimension is negative or the count overflows int.
func NumElements(shape []int) (int, error) {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("npy: negative dimension in shape %v", shape)
		}
		if d != 0 && n > math.MaxInt/d {
			return 0, fmt.Errorf("npy: shape %v has too many elements", shape)
		}
		n *= d
	}
	return n, nil
}

// byteSize returns the data size of an array, checking for overflow.
func byteSize(d DType, shape []int) (int, error) {
	if !d.Valid() {
		return 0, fmt.Errorf("npy: unsupported dtype %q", d)
	}
	n, err := NumElements(shape)
	if err != nil {
		return 0, err
	}
	size := d.ItemSize()
	if n > math.MaxInt/size {
		return 0, fmt.Errorf("npy: shape %v of %s is too large", shape, d)
	}
	return n * size, nil
}

// Len returns the number of elements (1 for a scalar). It returns 0 for an
// array whose shape is invalid.
func (a *Array) Len() int {
	n, err := NumElements(a.Shape)
	if err != nil {
		return 0
	}
	return n
}

// Validate checks that the dtype is supported and that Data has exactly the
// size the shape calls for.
func (a *Array) Validate() error {
	if a == nil {
		return errors.New("npy: nil array")
	}
	if len(a.Shape) > maxDims {
		return fmt.Errorf("npy: %d dimensions, at most %d are supported", len(a.Shape), maxDims)
	}
	n, err := byteSize(a.DType, a.Shape)
	if err != nil {
		return err
	}
	if len(a.Data) != n {
		return fmt.Errorf("npy: %s array of shape %v needs %d data bytes, has %d", a.DType, a.Shape, n, len(a.Data))
	}
	return nil
}

// String returns a short description such as "<f4[2 3]".
func (a *Array) String() string {
	return fmt.Sprintf("%s%v", a.DType, a.Shape)
}

// New returns an array of the given type and shape holding data, which must
// be little-endian bytes of exactly the right length. The slices are used,
// not copied.
func New(d DType, shape []int, data []byte) (*Array, error) {
	a := &Array{Shape: shape, DType: d, Data: data}
	if a.Shape == nil {
		a.Shape = []int{}
	}
	if err := a.Validate(); err != nil {
		return nil, err
	}
	return a, nil
}

// Zeros returns a zero-filled array of the given type and shape.
func Zeros(d DType, shape []int) (*Array, error) {
	n, err := byteSize(d, shape)
	if err != nil {
		return nil, err
	}
	return New(d, append([]int{}, shape...), make([]byte, n))
}

func checkLen(shape []int, n int) error {
	want, err := NumElements(shape)
	if err != nil {
		return err
	}
	if want != n {
		return fmt.Errorf("npy: shape %v needs %d elements, got %d", shape, want, n)
	}
	return nil
}

// FromFloat32 returns a float32 array of the given shape holding a copy of
// data.
func FromFloat32(shape []int, data []float32) (*Array, error) {
	if err := checkLen(shape, len(data)); err != nil {
		return nil, err
	}
	b := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return New(Float32, append([]int{}, shape...), b)
}

// FromFloat64 returns a float64 array of the given shape holding a copy of
// data.
func FromFloat64(shape []int, data []float64) (*Array, error) {
	if err := checkLen(shape, len(data)); err != nil {
		return nil, err
	}
	b := make([]byte, 8*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(v))
	}
	return New(Float64, append([]int{}, shape...), b)
}

// FromInt64 returns an int64 array of the given shape holding a copy of data.
func FromInt64(shape []int, data []int64) (*Array, error) {
	if err := checkLen(shape, len(data)); err != nil {
		return nil, err
	}
	b := make([]byte, 8*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(v))
	}
	return New(Int64, append([]int{}, shape...), b)
}

// FromInt32 returns an int32 array of the given shape holding a copy of data.
func FromInt32(shape []int, data []int32) (*Array, error) {
	if err := checkLen(shape, len(data)); err != nil {
		return nil, err
	}
	b := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(v))
	}
	return New(Int32, append([]int{}, shape...), b)
}

// FromUint8 returns a uint8 array of the given shape holding a copy of data.
func FromUint8(shape []int, data []uint8) (*Array, error) {
	if err := checkLen(shape, len(data)); err != nil {
		return nil, err
	}
	return New(Uint8, append([]int{}, shape...), append([]byte{}, data...))
}

// FromBool returns a bool array of the given shape holding a copy of data.
func FromBool(shape []int, data []bool) (*Array, error) {
	if err := checkLen(shape, len(data)); err != nil {
		return nil, err
	}
	b := make([]byte, len(data))
	for i, v := range data {
		if v {
			b[i] = 1
		}
	}
	return New(Bool, append([]int{}, shape...), b)
}

// Float64 returns the elements converted to float64. Every supported dtype
// converts (64-bit integers beyond 2^53 lose precision; booleans become 0 or
// 1; float16 is widened exactly).
func (a *Array) Float64() ([]float64, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	n := a.Len()
	out := make([]float64, n)
	b := a.Data
	le := binary.LittleEndian
	switch a.DType {
	case Float64:
		for i := range out {
			out[i] = math.Float64frombits(le.Uint64(b[8*i:]))
		}
	case Float32:
		for i := range out {
			out[i] = float64(math.Float32frombits(le.Uint32(b[4*i:])))
		}
	case Float16:
		for i := range out {
			out[i] = float64(half.Float16ToFloat32(le.Uint16(b[2*i:])))
		}
	default:
		for i := range out {
			iv, uv, signed := a.intAt(i)
			if signed {
				out[i] = float64(iv)
			} else {
				out[i] = float64(uv)
			}
		}
	}
	return out, nil
}

// Float32 returns the elements converted to float32. Every supported dtype
// converts; float64 and large integers are rounded to the nearest float32.
func (a *Array) Float32() ([]float32, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	out := make([]float32, a.Len())
	decodeFloat32(out, a.DType, a.Data)
	return out, nil
}

// decodeFloat32 converts len(dst) little-endian elements of dtype d in b
// to float32; float64 and large integers round to the nearest float32.
func decodeFloat32(dst []float32, d DType, b []byte) {
	le := binary.LittleEndian
	switch d {
	case Float32:
		for i := range dst {
			dst[i] = math.Float32frombits(le.Uint32(b[4*i:]))
		}
	case Float16:
		for i := range dst {
			dst[i] = half.Float16ToFloat32(le.Uint16(b[2*i:]))
		}
	case Float64:
		for i := range dst {
			dst[i] = float32(math.Float64frombits(le.Uint64(b[8*i:])))
		}
	default: // integers and booleans
		a := Array{DType: d, Data: b}
		for i := range dst {
			iv, uv, signed := a.intAt(i)
			if signed {
				dst[i] = float32(iv)
			} else {
				dst[i] = float32(uv)
			}
		}
	}
}

// Int64 returns the elements of an integer or boolean array as int64. It
// fails for floating-point arrays and for uint64 values above MaxInt64.
func (a *Array) Int64() ([]int64, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	if dtypes[a.DType].kind == 'f' {
		return nil, fmt.Errorf("npy: cannot convert %s array to int64", a.DType)
	}
	out := make([]int64, a.Len())
	for i := range out {
		iv, uv, signed := a.intAt(i)
		if !signed {
			if uv > math.MaxInt64 {
				return nil, fmt.Errorf("npy: element %d (%d) overflows int64", i, uv)
			}
			iv = int64(uv)
		}
		out[i] = iv
	}
	return out, nil
}

// intAt decodes element i of an integer or boolean array.
func (a *Array) intAt(i int) (iv int64, uv uint64, signed bool) {
	b := a.Data
	le := binary.LittleEndian
	switch a.DType {
	case Bool, Uint8:
		return 0, uint64(b[i]), false
	case Int8:
		return int64(int8(b[i])), 0, true
	case Int16:
		return int64(int16(le.Uint16(b[2*i:]))), 0, true
	case Uint16:
		return 0, uint64(le.Uint16(b[2*i:])), false
	case Int32:
		return int64(int32(le.Uint32(b[4*i:]))), 0, true
	case Uint32:
		return 0, uint64(le.Uint32(b[4*i:])), false
	case Int64:
		return int64(le.Uint64(b[8*i:])), 0, true
	case Uint64:
		return 0, le.Uint64(b[8*i:]), false
	}
	panic("npy: intAt on " + string(a.DType))
}

// Read reads one array from r. It reads exactly the header and the data, so
// several arrays written one after another can be read in turn.
func Read(r io.Reader) (*Array, error) {
	remaining := int64(-1)
	if l, ok := r.(interface{ Len() int }); ok {
		remaining = int64(l.Len())
	}
	a, _, err := read(r, remaining)
	return a, err
}

// ReadFile reads the .npy file at path. Data after the array is an error.
func ReadFile(path string) (*Array, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	a, used, err := read(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if used != st.Size() {
		return nil, fmt.Errorf("%s: npy: %d bytes of trailing data after the array", path, st.Size()-used)
	}
	return a, nil
}

// read reads one array. remaining is the number of bytes r holds, or -1 if
// unknown; it is used to reject oversized claims before allocating. read
// returns the number of bytes consumed.
func read(r io.Reader, remaining int64) (*Array, int64, error) {
	hi, err := readHeader(r, remaining)
	if err != nil {
		return nil, 0, err
	}
	d, h, bigEndian, nbytes, used := hi.dtype, hi, hi.bigEndian, hi.nbytes, hi.offset
	data, err := readData(r, nbytes, remaining >= 0)
	if err != nil {
		return nil, 0, fmt.Errorf("npy: reading %d data bytes (%s%v): %w", nbytes, d, h.shape, err)
	}
	used += int64(nbytes)
	if bigEndian {
		swapBytes(data, d.ItemSize())
	}
	return &Array{Shape: h.shape, DType: d, Data: data}, used, nil
}

// readHeader reads the magic, version and header of one array and checks
// that the data it promises fits in remaining bytes (if known, ≥ 0).
func readHeader(r io.Reader, remaining int64) (*headerInfo, error) {
	var pre [12]byte
	if _, err := io.ReadFull(r, pre[:8]); err != nil {
		if err == io.EOF {
			return nil, fmt.Errorf("npy: empty input: %w", io.ErrUnexpectedEOF)
		}
		return nil, fmt.Errorf("npy: reading magic: %w", eof(err))
	}
	if string(pre[:6]) != magic {
		return nil, errors.New("npy: not a .npy file (bad magic)")
	}
	major, minor := pre[6], pre[7]
	var hlen, used int64
	switch major {
	case 1:
		if _, err := io.ReadFull(r, pre[8:10]); err != nil {
			return nil, fmt.Errorf("npy: reading header length: %w", eof(err))
		}
		hlen, used = int64(binary.LittleEndian.Uint16(pre[8:])), 10
	case 2, 3:
		if _, err := io.ReadFull(r, pre[8:12]); err != nil {
			return nil, fmt.Errorf("npy: reading header length: %w", eof(err))
		}
		hlen, used = int64(binary.LittleEndian.Uint32(pre[8:])), 12
	default:
		return nil, fmt.Errorf("npy: unsupported format version %d.%d", major, minor)
	}
	if minor != 0 {
		return nil, fmt.Errorf("npy: unsupported format version %d.%d", major, minor)
	}
	if hlen > MaxHeaderLen {
		return nil, fmt.Errorf("npy: header length %d exceeds limit %d", hlen, MaxHeaderLen)
	}
	if remaining >= 0 && used+hlen > remaining {
		return nil, fmt.Errorf("npy: header length %d exceeds input size: %w", hlen, io.ErrUnexpectedEOF)
	}
	hbuf := make([]byte, hlen)
	if _, err := io.ReadFull(r, hbuf); err != nil {
		return nil, fmt.Errorf("npy: reading header: %w", eof(err))
	}
	used += hlen
	hs := string(hbuf)
	if major < 3 && strings.ContainsFunc(hs, func(c rune) bool { return c >= 0x80 }) {
		// Versions 1 and 2 are latin-1; nothing valid needs non-ASCII.
		return nil, errors.New("npy: non-ASCII header")
	}
	h, err := parseHeader(hs)
	if err != nil {
		return nil, err
	}
	if h.fortranOrder {
		return nil, ErrFortranOrder
	}
	d, bigEndian, err := parseDescr(h.descr)
	if err != nil {
		return nil, err
	}
	nbytes, err := byteSize(d, h.shape)
	if err != nil {
		return nil, err
	}
	if remaining >= 0 && int64(nbytes) > remaining-used {
		return nil, fmt.Errorf("npy: header promises %d data bytes (%s%v) but only %d remain: %w",
			nbytes, d, h.shape, remaining-used, io.ErrUnexpectedEOF)
	}
	return &headerInfo{shape: h.shape, dtype: d, bigEndian: bigEndian, nbytes: nbytes, offset: used}, nil
}

// headerInfo is what the header of a .npy file says about its data.
type headerInfo struct {
	shape     []int
	dtype     DType
	bigEndian bool
	nbytes    int   // data size
	offset    int64 // where the data starts
}

func eof(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readData reads exactly n bytes. Unless the size has been checked, memory
// grows with the data received, so a lying header cannot cause a huge
// allocation.
func readData(r io.Reader, n int, sizeChecked bool) ([]byte, error) {
	if sizeChecked || n <= chunkSize {
		buf := make([]byte, n)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, eof(err)
		}
		return buf, nil
	}
	buf := make([]byte, 0, chunkSize)
	for len(buf) < n {
		want := min(n-len(buf), max(chunkSize, len(buf)))
		if cap(buf)-len(buf) < want {
			nb := make([]byte, len(buf), len(buf)+want)
			copy(nb, buf)
			buf = nb
		}
		m, err := io.ReadFull(r, buf[len(buf):len(buf)+want])
		buf = buf[:len(buf)+m]
		if err != nil {
			return nil, eof(err)
		}
	}
	return buf, nil
}

func swapBytes(b []byte, size int) {
	switch size {
	case 2:
		for i := 0; i+1 < len(b); i += 2 {
			b[i], b[i+1] = b[i+1], b[i]
		}
	case 4:
		for i := 0; i+3 < len(b); i += 4 {
			b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
		}
	case 8:
		for i := 0; i+7 < len(b); i += 8 {
			binary.LittleEndian.PutUint64(b[i:], binary.BigEndian.Uint64(b[i:]))
		}
	}
}

// Write writes a as a .npy file, byte-for-byte as numpy.save would. The
// header always fits format version 1.0 because Validate bounds the number
// of dimensions.
func Write(w io.Writer, a *Array) error {
	if err := a.Validate(); err != nil {
		return err
	}
	h := formatHeader(a.DType, a.Shape)
	const pre = len(magic) + 4 // magic, version, 2-byte header length
	hlen := paddedLen(len(h), pre)
	if hlen > math.MaxUint16 {
		return fmt.Errorf("npy: header of %d bytes is too long", hlen)
	}
	buf := make([]byte, 0, pre+hlen)
	buf = append(buf, magic...)
	buf = append(buf, 1, 0)
	buf = binary.LittleEndian.AppendUint16(buf, uint16(hlen))
	buf = append(buf, h...)
	for len(buf) < pre+hlen-1 {
		buf = append(buf, ' ')
	}
	buf = append(buf, '\n')
	if _, err := w.Write(buf); err != nil {
		return err
	}
	_, err := w.Write(a.Data)
	return err
}

// paddedLen returns the header length (dictionary, padding and newline) that
// numpy uses for a dictionary of n bytes after a preamble of pre bytes.
func paddedLen(n, pre int) int {
	n++ // newline
	return n + arrayAlign - (pre+n)%arrayAlign
}

// WriteFloat32 writes a float32 array with the given shape and data to w.
func WriteFloat32(w io.Writer, shape []int, data []float32) error {
	a, err := FromFloat32(shape, data)
	if err != nil {
		return err
	}
	return Write(w, a)
}

// WriteInt64 writes an int64 array with the given shape and data to w.
func WriteInt64(w io.Writer, shape []int, data []int64) error {
	a, err := FromInt64(shape, data)
	if err != nil {
		return err
	}
	return Write(w, a)
}

// WriteFile writes a to the file at path (mode 0644), replacing any
// existing file.
func WriteFile(path string, a *Array) error {
	if err := a.Validate(); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = Write(f, a)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

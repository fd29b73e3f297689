package onnx

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"google.golang.org/protobuf/proto"

	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

// Lazy is a model whose large tensors stay on disk until asked for: its
// Model holds everything but the large initializers' raw_data and the
// external data, which ReadTensor reads one tensor at a time. Use it to
// stream through models larger than memory; Close releases its files.
type Lazy struct {
	// Model is the model without its large tensors' bytes. Its Proto must
	// not be saved as it is; read tensors through ReadTensor.
	Model *Model
	refs  map[*onnxpb.TensorProto]lazyRef
	files map[string]*os.File // by path: the model file and the external data files
	// ext opens the external data files, inside the model's folder only
	// (as Load does); it owns them.
	ext externalFiles
	// Files lists the files the model reads: the model file first, then
	// its external data files in the order first met.
	Files []string
}

// lazyRef says where a tensor's bytes are: n bytes at off in file.
type lazyRef struct {
	file string
	off  int64
	n    int64
}

// OpenLazy reads the structure of the model at path, leaving the bytes of
// its large initializers (raw_data of at least 64 KiB in the model file,
// and external data) where they are.
func OpenLazy(path string) (*Lazy, error) {
	l := &Lazy{refs: map[*onnxpb.TensorProto]lazyRef{}, files: map[string]*os.File{}, Files: []string{path}}
	ok := false
	defer func() {
		if !ok {
			_ = l.Close() // the open error is the one to report
		}
	}()
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	l.files[path] = f
	mp := &onnxpb.ModelProto{}
	var refs []rawDataRef
	err = withFileBytes(path, func(data []byte, _ func([]byte, int64) error) error {
		skeleton, rs := withoutLargeRawData(data)
		if rs == nil {
			skeleton = data
		}
		refs = rs
		if err := proto.Unmarshal(skeleton, mp); err != nil {
			return fmt.Errorf("%s: %w: %v", path, ErrNotONNX, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if mp.Graph == nil || mp.GetIrVersion() <= 0 {
		return nil, fmt.Errorf("%s: %w: no graph or IR version", path, ErrNotONNX)
	}
	init := mp.Graph.Initializer
	for _, r := range refs {
		if r.initializer >= len(init) {
			return nil, fmt.Errorf("%s: %w: initializer %d out of range", path, ErrNotONNX, r.initializer)
		}
		l.refs[init[r.initializer]] = lazyRef{path, int64(r.off), int64(r.n)}
	}
	l.Model = &Model{Proto: mp, Name: path, Dir: filepath.Dir(path)}
	l.ext.dir = l.Model.Dir
	for where, t := range tensors(mp.Graph) {
		if ref, ok := l.refs[t]; ok {
			if err := checkLazy(t, ref.n); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			continue
		}
		if err := checkTensor(t); err != nil {
			return nil, fmt.Errorf("%s: %s %q: %w", path, where, t.GetName(), err)
		}
		if t.GetDataLocation() != onnxpb.TensorProto_EXTERNAL {
			continue
		}
		ref, err := l.external(t)
		if err != nil {
			return nil, fmt.Errorf("%s: %s %q: %w", path, where, t.GetName(), err)
		}
		l.refs[t] = ref
	}
	ok = true
	return l, nil
}

// checkLazy checks a raw_data length against the tensor's dims and type.
func checkLazy(t *onnxpb.TensorProto, n int64) error {
	es := ElemSize(DataType(t))
	count, err := NumElements(t.Dims)
	if err != nil || es == 0 || int64(count)*int64(es) != n {
		return fmt.Errorf("initializer %q: raw_data has %d bytes for dims %v of type %v", t.GetName(), n, t.Dims, DataType(t))
	}
	return nil
}

// external opens (once) the data file of an external tensor and checks
// that it holds the tensor's bytes.
func (l *Lazy) external(t *onnxpb.TensorProto) (lazyRef, error) {
	ef, location, offset, length, err := l.ext.extent(t)
	if err != nil {
		return lazyRef{}, err
	}
	path := filepath.Join(l.Model.Dir, location)
	if _, ok := l.files[path]; !ok {
		l.files[path] = ef.f
		l.Files = append(l.Files, path)
	}
	return lazyRef{path, offset, length}, nil
}

// ReadTensor returns t's elements in the little-endian raw_data encoding
// (as Model.TensorBytes does), read into buf if it is large enough. t must
// be a tensor of l.Model.
func (l *Lazy) ReadTensor(t *onnxpb.TensorProto, buf []byte) ([]byte, error) {
	ref, ok := l.refs[t]
	if !ok {
		return l.Model.TensorBytes(t)
	}
	return l.ReadTensorRange(t, buf, 0, ref.n)
}

// ReadTensorRange is ReadTensor for the n bytes at offset off of t's
// encoding only.
func (l *Lazy) ReadTensorRange(t *onnxpb.TensorProto, buf []byte, off, n int64) ([]byte, error) {
	ref, ok := l.refs[t]
	if !ok {
		b, err := l.Model.TensorBytes(t)
		if err != nil {
			return nil, err
		}
		if off < 0 || n < 0 || off+n > int64(len(b)) {
			return nil, fmt.Errorf("tensor %q: bytes %d..%d out of range", t.GetName(), off, off+n)
		}
		return b[off : off+n], nil
	}
	if off < 0 || n < 0 || off+n > ref.n {
		return nil, fmt.Errorf("tensor %q: bytes %d..%d out of range", t.GetName(), off, off+n)
	}
	if int64(cap(buf)) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	_, err := l.files[ref.file].ReadAt(buf, ref.off+off)
	if errors.Is(err, io.EOF) {
		err = errors.New("file changed while being read")
	}
	if err != nil {
		return nil, fmt.Errorf("%s: tensor %q: %w", ref.file, t.GetName(), err)
	}
	return buf, nil
}

// OnDisk reports whether ReadTensor reads t from a file (rather than
// returning bytes that l.Model holds).
func (l *Lazy) OnDisk(t *onnxpb.TensorProto) bool {
	_, ok := l.refs[t]
	return ok
}

// NumOnDisk is the number of tensors ReadTensor reads from a file.
func (l *Lazy) NumOnDisk() int { return len(l.refs) }

// Close closes the model's files.
func (l *Lazy) Close() error {
	var first error
	if f := l.files[l.Files[0]]; f != nil {
		first = f.Close()
	}
	l.ext.close() // read-only files: closing loses nothing
	l.files = nil
	return first
}

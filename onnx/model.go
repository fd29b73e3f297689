// Package onnx reads and writes ONNX model files losslessly and gives typed
// access to their weight tensors.
//
// A model loaded with Load and saved unchanged with Save gives back the same
// bytes: the bindings in onnx/onnxpb use the proto2 onnx-ml schema and keep
// fields they do not know. Tensor data stored as raw_data, in the typed
// fields (float_data, int32_data, double_data, ...) or in external files is
// read through one API (Model.Float32s, Model.Float64s) and written back in
// the tensor's own element type and storage form (Model.SetFloat32s).
package onnx

import (
	"bytes"
	"errors"
	"fmt"
	"iter"
	"path/filepath"

	"google.golang.org/protobuf/proto"

	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

// Model is an ONNX model in memory.
type Model struct {
	// Proto is the decoded model. Callers may change it; Save writes what it holds.
	Proto *onnxpb.ModelProto
	// Name is how errors refer to the model, normally the path it came from.
	Name string
	// Dir is the folder that external data locations are relative to.
	Dir string

	// external holds the bytes of tensors stored in external files, read at
	// load time so that saving never depends on (or overwrites) the inputs.
	external map[*onnxpb.TensorProto][]byte
}

// ErrNotONNX is wrapped by errors for input that is not an ONNX model at all.
var ErrNotONNX = errors.New("not an ONNX model")

// Load reads an ONNX model file, with any external data files it names.
func Load(path string) (*Model, error) {
	var m *Model
	err := withFileBytes(path, func(data []byte, readAt func([]byte, int64) error) error {
		var err error
		m, err = parse(data, path, filepath.Dir(path), readAt)
		return err
	})
	return m, err
}

// Parse decodes a model from data. name is used in error messages and dir is
// the folder that external data locations are relative to.
func Parse(data []byte, name, dir string) (*Model, error) {
	return parse(data, name, dir, func(buf []byte, off int64) error {
		copy(buf, data[off:])
		return nil
	})
}

// parse is Parse with a way to read data's bytes other than from data (see
// unmarshalModel).
func parse(data []byte, name, dir string, readAt func([]byte, int64) error) (*Model, error) {
	if name == "" {
		name = "model"
	}
	mp := &onnxpb.ModelProto{}
	if err := unmarshalModel(data, mp, readAt); err != nil {
		var readErr *readError
		if errors.As(err, &readErr) {
			return nil, fmt.Errorf("%s: %w", name, readErr.err)
		}
		return nil, fmt.Errorf("%s: %w: %v", name, ErrNotONNX, err)
	}
	if mp.Graph == nil || mp.GetIrVersion() <= 0 {
		return nil, fmt.Errorf("%s: %w: no graph or IR version", name, ErrNotONNX)
	}
	m := &Model{Proto: mp, Name: name, Dir: dir}
	if err := m.loadTensors(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return m, nil
}

// loadTensors checks every tensor's size bookkeeping and reads external data.
func (m *Model) loadTensors() error {
	ext := &externalFiles{dir: m.Dir}
	defer ext.close()
	for where, t := range tensors(m.Proto.Graph) {
		if err := checkTensor(t); err != nil {
			return fmt.Errorf("%s %q: %w", where, t.GetName(), err)
		}
		if t.GetDataLocation() != onnxpb.TensorProto_EXTERNAL {
			continue
		}
		b, err := readExternal(t, ext)
		if err != nil {
			return fmt.Errorf("%s %q: %w", where, t.GetName(), err)
		}
		if m.external == nil {
			m.external = map[*onnxpb.TensorProto][]byte{}
		}
		m.external[t] = b
	}
	return nil
}

// tensors yields every tensor held by g, with where it is: initializers,
// tensor attributes of nodes (Constant values among them) and, recursively,
// those of subgraphs.
func tensors(g *onnxpb.GraphProto) iter.Seq2[string, *onnxpb.TensorProto] {
	return func(yield func(string, *onnxpb.TensorProto) bool) { yieldTensors(g, yield) }
}

// yieldTensors is tensors' walk; it reports whether to go on.
func yieldTensors(g *onnxpb.GraphProto, yield func(string, *onnxpb.TensorProto) bool) bool {
	if g == nil {
		return true
	}
	for _, t := range g.Initializer {
		if !yield("initializer", t) {
			return false
		}
	}
	for _, sp := range g.SparseInitializer {
		for _, t := range []*onnxpb.TensorProto{sp.GetValues(), sp.GetIndices()} {
			if t != nil && !yield("sparse initializer", t) {
				return false
			}
		}
	}
	for _, n := range g.Node {
		for _, a := range n.Attribute {
			where := fmt.Sprintf("node %q attribute %s", n.GetName(), a.GetName())
			if a.T != nil && !yield(where, a.T) {
				return false
			}
			for _, t := range a.Tensors {
				if !yield(where, t) {
					return false
				}
			}
			if !yieldTensors(a.G, yield) {
				return false
			}
			for _, sg := range a.Graphs {
				if !yieldTensors(sg, yield) {
					return false
				}
			}
		}
	}
	return true
}

// Marshal encodes the model. Tensors that were loaded from external files are
// written inline; use Save to keep them external.
func (m *Model) Marshal() ([]byte, error) {
	restore := m.inlineExternal()
	defer restore()
	return proto.Marshal(m.Proto)
}

// Clone returns a deep copy of m that shares nothing with it.
func (m *Model) Clone() *Model {
	c := &Model{Proto: proto.Clone(m.Proto).(*onnxpb.ModelProto), Name: m.Name, Dir: m.Dir}
	if len(m.external) == 0 {
		return c
	}
	// Map old tensors to their clones by walking both trees in step.
	var olds, news []*onnxpb.TensorProto
	for _, t := range tensors(m.Proto.Graph) {
		olds = append(olds, t)
	}
	for _, t := range tensors(c.Proto.Graph) {
		news = append(news, t)
	}
	c.external = map[*onnxpb.TensorProto][]byte{}
	for i, t := range olds {
		if b, ok := m.external[t]; ok {
			c.external[news[i]] = bytes.Clone(b)
		}
	}
	return c
}

// inlineExternal temporarily puts external tensors' bytes into raw_data and
// returns a function that undoes it.
func (m *Model) inlineExternal() (restore func()) {
	type saved struct {
		t   *onnxpb.TensorProto
		loc *onnxpb.TensorProto_DataLocation
		ext []*onnxpb.StringStringEntryProto
	}
	var undo []saved
	for t, b := range m.external {
		undo = append(undo, saved{t, t.DataLocation, t.ExternalData})
		t.RawData, t.DataLocation, t.ExternalData = b, nil, nil
	}
	return func() {
		for _, s := range undo {
			s.t.RawData, s.t.DataLocation, s.t.ExternalData = nil, s.loc, s.ext
		}
	}
}

package onnx

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/onnx-rebasin/onnx-rebasin/internal/atomicfile"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

// maxInlineBytes is the largest model Save writes as one protobuf message;
// protobuf messages cannot exceed 2 GiB. A variable so tests can lower it.
var maxInlineBytes = 2<<30 - 1

// externalThreshold is the smallest tensor Save moves to the external data
// file when a model is too large to be written inline (onnx's own default).
const externalThreshold = 1024

// externalInfo is the parsed external_data of a tensor.
type externalInfo struct {
	location       string
	offset, length int64 // length -1: to the end of the file
}

func parseExternal(t *onnxpb.TensorProto) (externalInfo, error) {
	info := externalInfo{length: -1}
	for _, kv := range t.ExternalData {
		var err error
		switch kv.GetKey() {
		case "location":
			info.location = kv.GetValue()
		case "offset":
			info.offset, err = strconv.ParseInt(kv.GetValue(), 10, 64)
		case "length":
			info.length, err = strconv.ParseInt(kv.GetValue(), 10, 64)
		}
		if err != nil || info.offset < 0 || (kv.GetKey() == "length" && info.length < 0) {
			return info, fmt.Errorf("external data %s %q is not a valid byte count", kv.GetKey(), kv.GetValue())
		}
	}
	if info.location == "" {
		return info, errors.New("external data has no location")
	}
	// Refuse anything that could read outside the model's folder.
	if filepath.IsAbs(info.location) || !filepath.IsLocal(info.location) {
		return info, fmt.Errorf("external data location %q is absolute or leaves the model's folder", info.location)
	}
	return info, nil
}

// readExternal returns the bytes of an external tensor; files holds the
// contents of files already read.
func (m *Model) readExternal(t *onnxpb.TensorProto, files map[string][]byte) ([]byte, error) {
	info, err := parseExternal(t)
	if err != nil {
		return nil, err
	}
	data, ok := files[info.location]
	if !ok {
		path := filepath.Join(m.Dir, info.location)
		fi, err := os.Lstat(path)
		if err != nil {
			return nil, fmt.Errorf("external data: %w", err)
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			return nil, fmt.Errorf("external data location %q is a symbolic link", info.location)
		}
		if data, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("external data: %w", err)
		}
		files[info.location] = data
	}
	n, _ := NumElements(t.Dims) // checked by checkTensor
	want := int64(n) * int64(ElemSize(DataType(t)))
	length := info.length
	if length < 0 {
		length = int64(len(data)) - info.offset
	}
	if length != want {
		return nil, fmt.Errorf("external data length %d, dims %v need %d bytes", length, t.Dims, want)
	}
	if info.offset > int64(len(data)) || int64(len(data))-info.offset < length {
		return nil, fmt.Errorf("external data %q has %d bytes, tensor needs bytes %d..%d", info.location, len(data), info.offset, info.offset+length)
	}
	return data[info.offset : info.offset+length : info.offset+length], nil
}

// alignUp rounds an external data offset up to 64 bytes, so that every
// tensor in the data file is aligned for memory mapping.
func alignUp(off int64) int64 { return (off + 63) / 64 * 64 }

// HasExternalData reports whether some tensor of m lives in an external file.
func (m *Model) HasExternalData() bool { return len(m.external) > 0 }

// Save writes the model to path. If the model had external data, or is too
// large for one protobuf message (2 GiB), tensor data goes to path+".data"
// beside it. Both files are written to temporary names and renamed into
// place, so a failed save leaves no partial output.
func (m *Model) Save(path string) error {
	externalize := map[*onnxpb.TensorProto]bool{}
	for t := range m.external {
		externalize[t] = true
	}
	if len(externalize) == 0 && proto.Size(m.Proto) > maxInlineBytes {
		// Too large inline: move every sizeable tensor out, as onnx's
		// convert_model_to_external_data does.
		for _, t := range tensors(m.Proto.Graph) {
			if es := ElemSize(DataType(t)); es > 0 {
				if n, _ := NumElements(t.Dims); n*es >= externalThreshold {
					externalize[t] = true
				}
			}
		}
	}
	if len(externalize) == 0 {
		return atomicfile.Write(path, func(w io.Writer) error {
			if err := writeModel(w, m.Proto); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			return nil
		})
	}
	return m.saveExternal(path, externalize)
}

func (m *Model) saveExternal(path string, externalize map[*onnxpb.TensorProto]bool) (err error) {
	dataName := filepath.Base(path) + ".data"
	dataPath := filepath.Join(filepath.Dir(path), dataName)
	// Collect in graph order so the data file's layout is deterministic.
	var order []*onnxpb.TensorProto
	for _, t := range tensors(m.Proto.Graph) {
		if externalize[t] {
			order = append(order, t)
		}
	}
	type saved struct {
		raw       []byte
		float32s  []float32
		float64s  []float64
		int32s    []int32
		int64s    []int64
		uint64s   []uint64
		location  *onnxpb.TensorProto_DataLocation
		externals []*onnxpb.StringStringEntryProto
	}
	undo := make([]saved, len(order))
	blobs := make([][]byte, len(order))
	for i, t := range order {
		if blobs[i], err = m.TensorBytes(t); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		undo[i] = saved{t.RawData, t.FloatData, t.DoubleData, t.Int32Data, t.Int64Data, t.Uint64Data, t.DataLocation, t.ExternalData}
	}
	defer func() {
		if err == nil {
			return
		}
		for i, t := range order {
			s := undo[i]
			t.RawData, t.FloatData, t.DoubleData, t.Int32Data, t.Int64Data, t.Uint64Data = s.raw, s.float32s, s.float64s, s.int32s, s.int64s, s.uint64s
			t.DataLocation, t.ExternalData = s.location, s.externals
		}
	}()
	var offset int64
	for i, t := range order {
		offset = alignUp(offset)
		t.RawData, t.FloatData, t.DoubleData, t.Int32Data, t.Int64Data, t.Uint64Data = nil, nil, nil, nil, nil, nil
		t.DataLocation = onnxpb.TensorProto_EXTERNAL.Enum()
		t.ExternalData = []*onnxpb.StringStringEntryProto{
			{Key: proto.String("location"), Value: proto.String(dataName)},
			{Key: proto.String("offset"), Value: proto.String(strconv.FormatInt(offset, 10))},
			{Key: proto.String("length"), Value: proto.String(strconv.Itoa(len(blobs[i])))},
		}
		offset += int64(len(blobs[i]))
	}
	model, err := proto.Marshal(m.Proto)
	if err != nil {
		return fmt.Errorf("%s: encoding model: %w", path, err)
	}
	err = atomicfile.Write(dataPath, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		var off int64
		pad := make([]byte, 64)
		for _, b := range blobs {
			if gap := alignUp(off) - off; gap > 0 {
				if _, err := bw.Write(pad[:gap]); err != nil {
					return fmt.Errorf("%s: %w", dataPath, err)
				}
				off += gap
			}
			if _, err := bw.Write(b); err != nil {
				return fmt.Errorf("%s: %w", dataPath, err)
			}
			off += int64(len(b))
		}
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("%s: %w", dataPath, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err = atomicfile.WriteBytes(path, model); err != nil {
		os.Remove(dataPath)
		return err
	}
	// The model now refers to the new data file.
	m.Dir = filepath.Dir(path)
	if m.external == nil {
		m.external = map[*onnxpb.TensorProto][]byte{}
	}
	for i, t := range order {
		m.external[t] = blobs[i]
	}
	return nil
}

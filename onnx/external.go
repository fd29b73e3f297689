package onnx

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

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
	// A first, textual check; externalFiles.open enforces it on the real
	// path, symbolic links resolved.
	if filepath.IsAbs(info.location) || !filepath.IsLocal(info.location) {
		return info, fmt.Errorf("external data location %q is absolute or leaves the model's folder", info.location)
	}
	return info, nil
}

// externalFiles opens the external data files of one model, each once,
// inside the model's folder only.
type externalFiles struct {
	dir   string
	root  *os.Root // nil until the first file is opened
	files map[string]*externalFile
}

type externalFile struct {
	f    *os.File
	size int64
}

// open returns the opened file at location. The file must resolve, with
// every symbolic link followed, to a regular file inside the folder:
// os.Root refuses any path or link that leads out of it, and the file
// is opened without blocking (a FIFO would wait for a writer forever)
// and refused unless regular (a device such as /dev/zero never ends).
func (e *externalFiles) open(location string) (*externalFile, error) {
	if ef, ok := e.files[location]; ok {
		return ef, nil
	}
	if e.root == nil {
		dir := e.dir
		if dir == "" {
			dir = "."
		}
		root, err := os.OpenRoot(dir)
		if err != nil {
			return nil, fmt.Errorf("external data: model folder: %w", err)
		}
		e.root, e.files = root, map[string]*externalFile{}
	}
	f, err := e.root.OpenFile(location, os.O_RDONLY|openNonblock, 0)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is named below, relative to the folder
		}
		return nil, fmt.Errorf("external data location %q: %w", location, err)
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = errors.New("not a regular file")
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("external data location %q: %w", location, err)
	}
	ef := &externalFile{f, fi.Size()}
	e.files[location] = ef
	return ef, nil
}

func (e *externalFiles) close() {
	for _, ef := range e.files {
		ef.f.Close()
	}
	if e.root != nil {
		_ = e.root.Close() // read-only: closing loses nothing
	}
}

// extent opens the file that holds external tensor t and returns it with
// t's location and byte range in it, checked against the file's size
// before anything is allocated or read.
func (e *externalFiles) extent(t *onnxpb.TensorProto) (ef *externalFile, location string, offset, length int64, err error) {
	info, err := parseExternal(t)
	if err != nil {
		return nil, "", 0, 0, err
	}
	if ef, err = e.open(info.location); err != nil {
		return nil, "", 0, 0, err
	}
	n, _ := NumElements(t.Dims) // checked by checkTensor
	want := int64(n) * int64(ElemSize(DataType(t)))
	length = info.length
	if length < 0 {
		length = ef.size - info.offset
	}
	if length != want {
		return nil, "", 0, 0, fmt.Errorf("external data length %d, dims %v need %d bytes", length, t.Dims, want)
	}
	if info.offset > ef.size || ef.size-info.offset < length {
		return nil, "", 0, 0, fmt.Errorf("external data %q has %d bytes, tensor needs bytes %d..%d", info.location, ef.size, info.offset, info.offset+length)
	}
	return ef, info.location, info.offset, length, nil
}

// readExternal returns the bytes of an external tensor, read from files.
func readExternal(t *onnxpb.TensorProto, files *externalFiles) ([]byte, error) {
	ef, location, offset, length, err := files.extent(t)
	if err != nil {
		return nil, err
	}
	data := make([]byte, length)
	if _, err := ef.f.ReadAt(data, offset); err != nil {
		if err == io.EOF {
			err = errors.New("file changed while being read")
		}
		return nil, fmt.Errorf("external data %q: %w", location, err)
	}
	return data, nil
}

// alignUp rounds an external data offset up to 64 bytes, so that every
// tensor in the data file is aligned for memory mapping.
func alignUp(off int64) int64 { return (off + 63) / 64 * 64 }

// HasExternalData reports whether some tensor of m lives in an external file.
func (m *Model) HasExternalData() bool { return len(m.external) > 0 }

// Save is SaveContext without a context.
func (m *Model) Save(path string) error { return m.SaveContext(context.Background(), path) }

// SaveContext writes the model to path. If the model had external data,
// or is too large for one protobuf message (2 GiB), tensor data goes to a
// file beside it named after path and its content, path.<hash>.data.
//
// The files are written under temporary names and renamed into place, the
// data file first and the model last, in the folder's lock (see
// atomicfile.LockDir); then the data files of earlier saves to path (named
// path.<hash>.data) go. So a reader of path never sees a model with
// another save's data, concurrent saves to one path leave one of them
// whole, and a save that fails or is cancelled (ctx) leaves the previous
// output as it was and no file of its own.
func (m *Model) SaveContext(ctx context.Context, path string) error {
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
		f, err := m.writeModelFile(ctx, path)
		if err != nil {
			return err
		}
		defer f.Abort()
		return commitModel(path, f, nil, "")
	}
	return m.saveExternal(ctx, path, externalize)
}

// dataFileHash is how many bytes of the data's SHA-256 name a data file:
// 64 bits, in hex.
const dataFileHash = 8

// isDataFileOf reports whether name is the name of a data file that Save
// wrote for a model named base: base.<hash>.data.
func isDataFileOf(name, base string) bool {
	rest, ok1 := strings.CutPrefix(name, base+".")
	hash, ok2 := strings.CutSuffix(rest, ".data")
	if !ok1 || !ok2 || len(hash) != 2*dataFileHash {
		return false
	}
	_, err := hex.DecodeString(hash)
	return err == nil && strings.ToLower(hash) == hash
}

// commitModel puts the written model f (and its data file, if any, as
// dataName) in place in the folder's lock, then removes the data files of
// earlier saves to path.
func commitModel(path string, f, data *atomicfile.File, dataName string) error {
	dir, base := filepath.Dir(path), filepath.Base(path)
	unlock, err := atomicfile.LockDir(dir)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer unlock()
	if data != nil {
		dataPath := filepath.Join(dir, dataName)
		// Same name, same content: an earlier save's file that the
		// model in place may use. Replaced by identical bytes, and kept
		// if this save fails.
		_, statErr := os.Lstat(dataPath)
		existed := statErr == nil
		if err := data.CommitAs(dataPath); err != nil {
			return err
		}
		if err := f.Commit(); err != nil {
			if !existed {
				os.Remove(dataPath)
			}
			return err
		}
	} else if err := f.Commit(); err != nil {
		return err
	}
	// No model refers to the earlier saves' data files now: path has
	// been replaced, and other savers wait for the lock.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != dataName && isDataFileOf(e.Name(), base) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	return nil
}

func (m *Model) saveExternal(ctx context.Context, path string, externalize map[*onnxpb.TensorProto]bool) (err error) {
	// Collect in graph order so the data file's layout is deterministic.
	var order []*onnxpb.TensorProto
	for _, t := range tensors(m.Proto.Graph) {
		if externalize[t] {
			order = append(order, t)
		}
	}
	blobs := make([][]byte, len(order))
	for i, t := range order {
		if blobs[i], err = m.TensorBytes(t); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	// SaveStreamed makes the tensors external ones; a failed save puts
	// them back as they were.
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
	for i, t := range order {
		undo[i] = saved{t.RawData, t.FloatData, t.DoubleData, t.Int32Data, t.Int64Data, t.Uint64Data, t.DataLocation, t.ExternalData}
	}
	err = m.SaveStreamed(ctx, path, order, func(i int, w io.Writer) error {
		_, err := w.Write(blobs[i])
		return err
	})
	if err != nil {
		for i, t := range order {
			s := undo[i]
			t.RawData, t.FloatData, t.DoubleData, t.Int32Data, t.Int64Data, t.Uint64Data = s.raw, s.float32s, s.float64s, s.int32s, s.int64s, s.uint64s
			t.DataLocation, t.ExternalData = s.location, s.externals
		}
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

// SaveStreamed writes m to path, the bytes of the tensors in streamed going
// to a data file beside it as writeData(i, w) writes tensor i's bytes to w,
// for models whose tensors are computed one at a time and never held
// together (soup builds). The tensors are laid out as Save lays them out
// and become external tensors of the saved model, and the two files are
// committed as Save commits them: the data file is named after its
// content, the model replaces path last, and a failure leaves path as it
// was. The bytes written for a tensor must be exactly its dims' worth.
// m's Proto is saved as it is apart from the streamed tensors, whose other
// data fields are cleared (even when the save fails); m cannot read them
// back afterwards.
func (m *Model) SaveStreamed(ctx context.Context, path string, streamed []*onnxpb.TensorProto, writeData func(i int, w io.Writer) error) error {
	data, err := atomicfile.Create(ctx, path)
	if err != nil {
		return err
	}
	defer data.Abort()
	hash := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(data, hash), 1<<20)
	cw := &countingWriter{w: bw}
	offsets, lengths := make([]int64, len(streamed)), make([]int64, len(streamed))
	pad := make([]byte, 64)
	for i, t := range streamed {
		if gap := alignUp(cw.n) - cw.n; gap > 0 {
			if _, err := cw.Write(pad[:gap]); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
		}
		offsets[i] = cw.n
		if err := writeData(i, cw); err != nil {
			return fmt.Errorf("%s: tensor %q: %w", path, t.GetName(), err)
		}
		n, err := NumElements(t.Dims)
		if err != nil {
			return fmt.Errorf("%s: tensor %q: %w", path, t.GetName(), err)
		}
		lengths[i] = int64(n) * int64(ElemSize(DataType(t)))
		if cw.n-offsets[i] != lengths[i] {
			return fmt.Errorf("%s: tensor %q: %d bytes written, dims %v need %d", path, t.GetName(), cw.n-offsets[i], t.Dims, lengths[i])
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	dataName := fmt.Sprintf("%s.%x.data", filepath.Base(path), hash.Sum(nil)[:dataFileHash])
	for i, t := range streamed {
		t.RawData, t.FloatData, t.DoubleData, t.Int32Data, t.Int64Data, t.Uint64Data = nil, nil, nil, nil, nil, nil
		t.DataLocation = onnxpb.TensorProto_EXTERNAL.Enum()
		t.ExternalData = []*onnxpb.StringStringEntryProto{
			{Key: proto.String("location"), Value: proto.String(dataName)},
			{Key: proto.String("offset"), Value: proto.String(strconv.FormatInt(offsets[i], 10))},
			{Key: proto.String("length"), Value: proto.String(strconv.FormatInt(lengths[i], 10))},
		}
	}
	f, err := m.writeModelFile(ctx, path)
	if err != nil {
		return err
	}
	defer f.Abort()
	if err := data.Close(); err != nil { // sync outside the lock
		return err
	}
	return commitModel(path, f, data, dataName)
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writeModelFile writes m's proto to a new temporary file for path, which
// the caller commits or aborts.
func (m *Model) writeModelFile(ctx context.Context, path string) (*atomicfile.File, error) {
	f, err := atomicfile.Create(ctx, path)
	if err != nil {
		return nil, err
	}
	if err := writeModel(f, m.Proto); err != nil {
		f.Abort()
		return nil, fmt.Errorf("%s: encoding model: %w", path, err)
	}
	return f, nil
}

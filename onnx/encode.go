package onnx

import (
	"bufio"
	"io"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

// Field numbers of the path from a model to its initializers' bytes.
const (
	modelGraphField       = 7 // ModelProto.graph
	graphInitializerField = 5 // GraphProto.initializer
	tensorRawDataField    = 9 // TensorProto.raw_data
)

// separateRawData is the smallest raw_data that writeModel writes straight
// from the tensor rather than through an encoding buffer, and that loading
// copies into memory of its own (see unmarshalModel). A variable so that
// tests can send every tensor that way.
var separateRawData = 1 << 16

// writeModel writes mp to w byte for byte as proto.Marshal encodes it, but
// without building the whole encoding in memory: the main graph's large
// initializers' raw_data go to w straight from the tensors. On a large
// model the encoding buffer was as large as the weights and all fresh
// memory, which cost more than the encoding itself.
func writeModel(w io.Writer, mp *onnxpb.ModelProto) error {
	g := mp.GetGraph()
	if g == nil || !hasStreamedTensor(g) {
		data, err := proto.Marshal(mp)
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	}
	model, err := splitAt(mp, modelGraphField)
	if err != nil {
		return err
	}
	graph, err := splitAt(g, graphInitializerField)
	if err != nil {
		return err
	}
	tensors := make([]split, len(g.Initializer))
	graphSize := graph.size()
	for i, t := range g.Initializer {
		if len(t.RawData) >= separateRawData {
			if tensors[i], err = splitAt(t, tensorRawDataField); err != nil {
				return err
			}
			tensors[i].inner = t.RawData
		} else if tensors[i].head, err = proto.Marshal(t); err != nil {
			return err
		}
		graphSize += fieldSize(graphInitializerField, tensors[i].size())
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	write := func(b []byte) {
		if err == nil {
			_, err = bw.Write(b)
		}
	}
	prefix := func(field protowire.Number, n int) {
		write(protowire.AppendVarint(protowire.AppendTag(nil, field, protowire.BytesType), uint64(n)))
	}
	write(model.head)
	prefix(modelGraphField, graphSize)
	write(graph.head)
	for _, t := range tensors {
		prefix(graphInitializerField, t.size())
		write(t.head)
		if t.inner != nil {
			prefix(t.field, len(t.inner))
			write(t.inner)
			write(t.tail)
		}
	}
	write(graph.tail)
	write(model.tail)
	if err != nil {
		return err
	}
	return bw.Flush()
}

// hasStreamedTensor reports whether some initializer of g is large enough
// for writeModel to stream.
func hasStreamedTensor(g *onnxpb.GraphProto) bool {
	for _, t := range g.Initializer {
		if len(t.RawData) >= separateRawData {
			return true
		}
	}
	return false
}

// split is a message's encoding with one length-delimited field taken out:
// the fields before it (head) and after it (tail). If inner is not nil, it
// is the field's content, written between them.
type split struct {
	head, tail []byte
	field      protowire.Number
	inner      []byte
}

// size is the length of the whole encoding with inner in place.
func (s split) size() int {
	n := len(s.head) + len(s.tail)
	if s.inner != nil {
		n += fieldSize(s.field, len(s.inner))
	}
	return n
}

// fieldSize is the encoded size of a length-delimited field of n bytes.
func fieldSize(field protowire.Number, n int) int {
	return protowire.SizeTag(field) + protowire.SizeBytes(n)
}

// splitAt encodes m without field and splits the encoding where proto.Marshal
// would put that field: before the first known field with a larger number,
// or before the unknown fields, which proto.Marshal writes last.
func splitAt(m proto.Message, field protowire.Number) (split, error) {
	src := m.ProtoReflect()
	dst := src.New()
	src.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Number() != field {
			dst.Set(fd, v) // shallow: lists and messages are shared
		}
		return true
	})
	unknown := src.GetUnknown()
	dst.SetUnknown(unknown)
	enc, err := proto.Marshal(dst.Interface())
	if err != nil {
		return split{}, err
	}
	known := enc[:len(enc)-len(unknown)]
	at := len(known)
	for off := 0; off < len(known); {
		num, _, n := protowire.ConsumeField(known[off:])
		if n < 0 {
			return split{}, protowire.ParseError(n)
		}
		if num > field {
			at = off
			break
		}
		off += n
	}
	return split{head: enc[:at], tail: enc[at:], field: field}, nil
}

package onnx

import (
	"sync"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/onnx-rebasin/onnx-rebasin/internal/hugepage"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

// rawDataRef locates one initializer's raw_data in an encoded model.
type rawDataRef struct {
	initializer int // index in the main graph's initializers
	off, n      int // the bytes, in the encoding
}

// unmarshalModel decodes data into mp as proto.Unmarshal does, except that
// the main graph's large initializers' raw_data are read into one buffer
// on huge-page boundaries (see package hugepage) by readAt, which must fill
// its buffer from data at the offset given (a read from the file spares
// mapping those pages). Those bytes are most of a model: one read into one
// buffer, rather than a decoded copy per tensor.
func unmarshalModel(data []byte, mp *onnxpb.ModelProto, readAt func(buf []byte, off int64) error) error {
	skeleton, refs := withoutLargeRawData(data)
	if refs == nil {
		return proto.Unmarshal(data, mp)
	}
	if err := proto.Unmarshal(skeleton, mp); err != nil {
		return err
	}
	init := mp.GetGraph().GetInitializer()
	// One buffer for all of them, so that only its end is not a whole
	// huge page; each tensor's part starts 64-byte aligned.
	total := 0
	for _, r := range refs {
		total += (r.n + 63) &^ 63
	}
	for _, r := range refs {
		if r.initializer >= len(init) || init[r.initializer].RawData != nil {
			// Cannot happen for what withoutLargeRawData accepts; decode
			// the plain way rather than trust it.
			proto.Reset(mp)
			return proto.Unmarshal(data, mp)
		}
	}
	arena := hugepage.Make[byte](total)
	bufs := make([][]byte, len(refs))
	for i, r := range refs {
		bufs[i], arena = arena[:r.n:r.n], arena[(r.n+63)&^63:]
	}
	// Two readers: most of the time goes to the page faults of the fresh
	// buffer, which the kernel serves on both cores at once.
	errs := make([]error, len(refs))
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(refs); i += 2 {
				errs[i] = readAt(bufs[i], int64(refs[i].off))
			}
		}()
	}
	wg.Wait()
	for i, r := range refs {
		if errs[i] != nil {
			return &readError{errs[i]}
		}
		init[r.initializer].RawData = bufs[i]
	}
	return nil
}

// withoutLargeRawData returns data with the raw_data fields of at least
// separateRawData bytes of the main graph's initializers taken out, and
// where they were; nil refs when there are none or the encoding is
// anything but plain (a repeated graph or raw_data field, a malformed
// field), which proto.Unmarshal then decodes or rejects as usual.
func withoutLargeRawData(data []byte) (skeleton []byte, refs []rawDataRef) {
	gStart, gEnd, gContent, ok := onlyField(data, 0, len(data), modelGraphField)
	if !ok || gStart < 0 {
		return nil, nil
	}
	// Pieces of the graph's content to keep, with the initializers whose
	// raw_data goes re-encoded around the gap.
	type edit struct {
		fieldStart, fieldEnd int // the initializer field, tag to end
		content              int // start of its content
		rawStart, rawEnd     int // its raw_data field, tag to end
	}
	var edits []edit
	index := 0
	for off := gContent; off < gEnd; {
		num, typ, n := protowire.ConsumeField(data[off:gEnd])
		if n < 0 {
			return nil, nil
		}
		if num == graphInitializerField && typ == protowire.BytesType {
			_, _, tagLen := protowire.ConsumeTag(data[off:])
			_, lenLen := protowire.ConsumeVarint(data[off+tagLen:])
			content := off + tagLen + lenLen
			rs, re, rc, ok := onlyField(data, content, off+n, tensorRawDataField)
			if !ok {
				return nil, nil
			}
			if rs >= 0 && re-rc >= separateRawData {
				edits = append(edits, edit{off, off + n, content, rs, re})
				refs = append(refs, rawDataRef{index, rc, re - rc})
			}
			index++
		}
		off += n
	}
	if len(edits) == 0 {
		return nil, nil
	}
	// Assemble: the model up to the graph field, the graph with the
	// edited initializers, the model after it.
	var graph []byte
	last := gContent
	for _, e := range edits {
		graph = append(graph, data[last:e.fieldStart]...)
		size := (e.fieldEnd - e.content) - (e.rawEnd - e.rawStart)
		graph = protowire.AppendTag(graph, graphInitializerField, protowire.BytesType)
		graph = protowire.AppendVarint(graph, uint64(size))
		graph = append(graph, data[e.content:e.rawStart]...)
		graph = append(graph, data[e.rawEnd:e.fieldEnd]...)
		last = e.fieldEnd
	}
	graph = append(graph, data[last:gEnd]...)
	skeleton = append(skeleton, data[:gStart]...)
	skeleton = protowire.AppendTag(skeleton, modelGraphField, protowire.BytesType)
	skeleton = protowire.AppendBytes(skeleton, graph)
	skeleton = append(skeleton, data[gEnd:]...)
	return skeleton, refs
}

// onlyField finds the length-delimited field num among the fields in
// data[from:to]: where the field starts (its tag), ends, and its content
// starts; start = -1 if it is absent. ok is false if the fields do not
// parse, num occurs more than once, or with another wire type.
func onlyField(data []byte, from, to int, num protowire.Number) (start, end, content int, ok bool) {
	start = -1
	for off := from; off < to; {
		n, typ, l := protowire.ConsumeField(data[off:to])
		if l < 0 {
			return 0, 0, 0, false
		}
		if n == num {
			if start >= 0 || typ != protowire.BytesType {
				return 0, 0, 0, false
			}
			_, _, tagLen := protowire.ConsumeTag(data[off:])
			_, lenLen := protowire.ConsumeVarint(data[off+tagLen:])
			start, end, content = off, off+l, off+tagLen+lenLen
		}
		off += l
	}
	return start, end, content, true
}

// readError is a failure to read a model's bytes, not a fault in them.
type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

package npy

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// File is a .npy file whose header has been read and whose elements are
// read in pieces when they are needed (ReadFloat32), so that a data set
// larger than memory can be streamed. The header is checked as by Read,
// and the file must hold exactly the data it promises.
type File struct {
	// Shape and DType are the array's, as in Array.
	Shape []int
	DType DType

	name      string
	r         io.ReaderAt
	closer    io.Closer // nil for NewFile
	offset    int64
	bigEndian bool
	mu        sync.Mutex
	buf       []byte // reused by ReadFloat32, under mu
}

// Open opens the .npy file at path and reads its header. Only regular
// files are accepted: a FIFO or a device could block or never end. The
// file stays open until Close; errors name the path.
func Open(path string) (*File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|openNonblock, 0)
	if err != nil {
		return nil, err
	}
	name := path
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = errors.New("not a regular file")
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	nf, err := NewFile(f, st.Size(), name)
	if err != nil {
		f.Close()
		return nil, err
	}
	nf.closer = f
	return nf, nil
}

// NewFile reads the header of the .npy data of size bytes held by r;
// name is used in errors.
func NewFile(r io.ReaderAt, size int64, name string) (*File, error) {
	h, err := readHeader(io.NewSectionReader(r, 0, size), size)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if end := h.offset + int64(h.nbytes); end != size {
		return nil, fmt.Errorf("%s: npy: %d bytes of trailing data after the array", name, size-end)
	}
	return &File{Shape: h.shape, DType: h.dtype, name: name, r: r, offset: h.offset, bigEndian: h.bigEndian}, nil
}

// Len returns the number of elements.
func (f *File) Len() int {
	n, _ := NumElements(f.Shape) // checked by the header's reading
	return n
}

// ReadFloat32 reads elements [off, off+len(dst)) into dst, converted to
// float32 as Array.Float32 converts them.
func (f *File) ReadFloat32(dst []float32, off int) error {
	if off < 0 || len(dst) > f.Len()-off {
		return fmt.Errorf("%s: npy: elements %d-%d of %d", f.name, off, off+len(dst)-1, f.Len())
	}
	if len(dst) == 0 {
		return nil // ReadAt at the end of the data would say io.EOF
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	size := f.DType.ItemSize()
	n := len(dst) * size
	if cap(f.buf) < n {
		f.buf = make([]byte, n)
	}
	b := f.buf[:n]
	if _, err := f.r.ReadAt(b, f.offset+int64(off)*int64(size)); err != nil {
		// The size was checked when the header was read: the file has
		// changed since.
		return fmt.Errorf("%s: npy: reading elements %d-%d: %w", f.name, off, off+len(dst)-1, eof(err))
	}
	if f.bigEndian {
		swapBytes(b, size)
	}
	decodeFloat32(dst, f.DType, b)
	return nil
}

// Close closes the file opened by Open.
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	return f.closer.Close()
}

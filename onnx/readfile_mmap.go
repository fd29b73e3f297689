//go:build linux || darwin || freebsd || netbsd || openbsd

package onnx

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"syscall"
)

// withFileBytes calls fn with the contents of path, mapped into memory
// rather than read, so that a large model costs no copy of the file, and
// with a function that reads the file's bytes at an offset (which spares
// mapping pages that are only copied). fn must not keep the slice
// (proto.Unmarshal copies what it keeps). If the file shrinks while
// mapped, the fault becomes an error, not a crash.
func withFileBytes(path string, fn func(data []byte, readAt func([]byte, int64) error) error) (err error) {
	f, err := os.Open(path)
	if err != nil {
		return err // *PathError already names the file
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	if !st.Mode().IsRegular() || size == 0 || size != int64(int(size)) {
		return readWhole(path, fn)
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return readWhole(path, fn)
	}
	defer syscall.Munmap(data)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: file changed while being read: %v", path, r)
		}
	}()
	return fn(data, func(buf []byte, off int64) error {
		_, err := f.ReadAt(buf, off)
		if err == io.EOF {
			err = errors.New("file changed while being read")
		}
		return err
	})
}

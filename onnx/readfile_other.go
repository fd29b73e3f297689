//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package onnx

// withFileBytes calls fn with the contents of path and a function that
// reads them at an offset.
func withFileBytes(path string, fn func(data []byte, readAt func([]byte, int64) error) error) error {
	return readWhole(path, fn)
}

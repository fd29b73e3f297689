//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package onnx

import "os"

// withFileBytes calls fn with the contents of path.
func withFileBytes(path string, fn func(data []byte) error) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err // *PathError already names the file
	}
	return fn(data)
}

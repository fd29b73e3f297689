package onnx

import "os"

// readWhole is withFileBytes by reading the whole file into memory.
func readWhole(path string, fn func(data []byte, readAt func([]byte, int64) error) error) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err // *PathError already names the file
	}
	return fn(data, func(buf []byte, off int64) error {
		copy(buf, data[off:])
		return nil
	})
}

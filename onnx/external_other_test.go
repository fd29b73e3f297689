//go:build !unix

package onnx

import "os"

// makeFIFO makes a plain file where there are no FIFOs.
func makeFIFO(path string) error { return os.WriteFile(path, nil, 0o644) }

//go:build !unix

package onnx

// openNonblock is not needed where there are no FIFOs to open.
const openNonblock = 0

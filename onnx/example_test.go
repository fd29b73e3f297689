package onnx_test

import (
	"bytes"
	"fmt"
	"log"
	"os"

	"github.com/onnx-rebasin/onnx-rebasin/onnx"
)

// Load a model and read a weight as float32, whatever its element type and
// storage. An unchanged model encodes to the bytes it was read from.
func ExampleLoad() {
	const path = "../testmodels/mlp_s0.onnx"
	m, err := onnx.Load(path)
	if err != nil {
		log.Fatal(err)
	}
	s := onnx.Summarize(m)
	fmt.Printf("%d nodes, %d parameters\n", s.Nodes, s.Params)
	w := m.Proto.Graph.Initializer[0]
	vals, err := m.Float32s(w)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: dims %v, %d values\n", w.GetName(), w.GetDims(), len(vals))
	out, err := m.Marshal()
	if err != nil {
		log.Fatal(err)
	}
	orig, err := os.ReadFile(path)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("same bytes:", bytes.Equal(out, orig))
	// Output:
	// 8 nodes, 932362 parameters
	// net.1.weight: dims [512 784], 401408 values
	// same bytes: true
}

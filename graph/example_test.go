package graph_test

import (
	"fmt"
	"log"

	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
)

// Infer the permutation groups of an MLP: one group per hidden layer; the
// input pixels and the output classes stay frozen.
func ExampleAnalyze() {
	m, err := onnx.Load("../testmodels/mlp_s0.onnx")
	if err != nil {
		log.Fatal(err)
	}
	a, err := graph.Analyze(m)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(a.Summary())
	for _, g := range a.Groups {
		fmt.Printf("group %d: %d units, %d weight sites\n", g.ID, g.Size, len(g.Weights))
	}
	for _, f := range a.Frozen {
		fmt.Printf("frozen: %s axis %d: %s\n", f.Value, f.Axis, f.Reason)
	}
	// Output:
	// groups: 3 (1536 permutable units / 1536 hidden units), frozen: 2 axes
	// group 0: 512 units, 3 weight sites
	// group 1: 512 units, 3 weight sites
	// group 2: 512 units, 3 weight sites
	// frozen: input axis 2: graph input "input"
	// frozen: logits axis 1: graph output "logits"
}

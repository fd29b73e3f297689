package match_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/match"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/permute"
)

// align is the README's library snippet: b's hidden units reordered to
// match a's by weight matching, written to out.
func align(pathA, pathB, out string) (*match.Result, error) {
	a, err := onnx.Load(pathA)
	if err != nil {
		return nil, err
	}
	b, err := onnx.Load(pathB)
	if err != nil {
		return nil, err
	}
	ga, err := graph.Analyze(a)
	if err != nil {
		return nil, err
	}
	res, err := match.Weights(a, b, ga, match.Options{Seed: 1})
	if err != nil {
		return nil, err
	}
	if err := permute.Apply(b, ga, res.Perms); err != nil {
		return nil, err
	}
	return res, b.Save(out)
}

// Align one MLP to another trained from a different seed. Weight matching
// raises the objective Σ⟨W_a, P W_b Pᵀ⟩ from the
// identity's.
func ExampleWeights() {
	dir, err := os.MkdirTemp("", "permute-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	res, err := align("../testmodels/mlp32_s0.onnx", "../testmodels/mlp32_s1.onnx", filepath.Join(dir, "b_aligned.onnx"))
	if err != nil {
		log.Fatal(err)
	}
	for g, p := range res.Perms {
		fmt.Printf("group %d: %d units\n", g, len(p))
	}
	fmt.Println("objective raised:", res.ObjectiveAfter > res.ObjectiveBefore)
	// Output:
	// group 0: 32 units
	// group 1: 32 units
	// group 2: 32 units
	// objective raised: true
}

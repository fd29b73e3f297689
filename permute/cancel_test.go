package permute

import (
	"context"
	"errors"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/eval"
	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
)

// TestCancelled checks that the long loops stop with the context's error
// when it is cancelled.
func TestCancelled(t *testing.T) {
	a, err := onnx.Load("../testmodels/mlp32_s0.onnx")
	if err != nil {
		t.Fatal(err)
	}
	b, err := onnx.Load("../testmodels/mlp32_s1.onnx")
	if err != nil {
		t.Fatal(err)
	}
	ga, err := graph.Analyze(a)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ds := &eval.Dataset{X: make([]float32, 4*784), Shape: []int{4, 1, 28, 28}}
	tests := []struct {
		name string
		run  func() error
	}{
		{"WeightMatch", func() error { _, err := WeightMatch(a, b, ga, MatchOptions{Context: ctx}); return err }},
		{"MergeMany", func() error {
			_, err := MergeMany([]*onnx.Model{a, b}, ga, MatchOptions{Context: ctx}, nil)
			return err
		}},
		{"ActivationMatch", func() error { _, err := ActivationMatch(a, b, ga, ds, DataOptions{Context: ctx}); return err }},
		{"ResetBatchNorm", func() error { return ResetBatchNorm(a.Clone(), ds, DataOptions{Context: ctx}) }},
		{"PrepareRepair", func() error { _, err := PrepareRepair(a, b, ga, ds, DataOptions{Context: ctx}); return err }},
	}
	for _, tt := range tests {
		if err := tt.run(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s: %v, want %v", tt.name, err, context.Canceled)
		}
	}
}

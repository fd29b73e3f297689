package merge

import (
	"context"
	"errors"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/activation"
	"github.com/onnx-rebasin/onnx-rebasin/eval"
	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/match"
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
		{"match.Weights", func() error { _, err := match.Weights(a, b, ga, match.Options{Context: ctx}); return err }},
		{"Many", func() error {
			_, err := Many([]*onnx.Model{a, b}, ga, match.Options{Context: ctx}, nil)
			return err
		}},
		{"activation.Match", func() error { _, err := activation.Match(a, b, ga, ds, activation.Options{Context: ctx}); return err }},
		{"activation.ResetBatchNorm", func() error { return activation.ResetBatchNorm(a.Clone(), ds, activation.Options{Context: ctx}) }},
		{"activation.PrepareRepair", func() error {
			_, err := activation.PrepareRepair(a, b, ga, ds, activation.Options{Context: ctx})
			return err
		}},
	}
	for _, tt := range tests {
		if err := tt.run(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s: %v, want %v", tt.name, err, context.Canceled)
		}
	}
}

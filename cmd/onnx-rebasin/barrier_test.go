package main

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// TestBarrierPlotIsPNG decodes the plot the barrier command writes.
func TestBarrierPlotIsPNG(t *testing.T) {
	out := filepath.Join(t.TempDir(), "b.png")
	var stdout, stderr bytes.Buffer
	err := run([]string{"barrier", "-q", "../../testmodels/mlp32_s0.onnx", "../../testmodels/mlp32_s1.onnx",
		"--data", "../../testmodels/fashion_test_x.npy", "--labels", "../../testmodels/fashion_test_y.npy",
		"--steps", "3", "--plot", out}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("plot is not a valid PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 200 || b.Dy() < 100 {
		t.Fatalf("plot is only %v", b)
	}
}

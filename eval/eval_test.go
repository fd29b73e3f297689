package eval

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/infer"
	"github.com/onnx-rebasin/onnx-rebasin/npy"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
)

func TestScoreAgainstHandComputed(t *testing.T) {
	logits := infer.NewFloat32([]int{2, 3}, []float32{0, 1, 2, 5, 0, 0})
	correct, loss, err := score(logits, []int64{2, 1})
	if err != nil {
		t.Fatal(err)
	}
	want := (math.Log(1+math.E+math.E*math.E) - 2) + (math.Log(math.Exp(5)+2) - 0)
	if correct != 1 || math.Abs(loss-want) > 1e-12 {
		t.Fatalf("correct %d loss %v, want 1 and %v", correct, loss, want)
	}
	if _, _, err := score(logits, []int64{3, 0}); err == nil {
		t.Fatal("out-of-range label accepted")
	}
}

func TestRunOnTestModel(t *testing.T) {
	ds, err := Load("../testmodels/fashion_test_x.npy", "../testmodels/fashion_test_y.npy")
	if err != nil {
		t.Fatal(err)
	}
	m, err := onnx.Load("../testmodels/mlp_s0.onnx")
	if err != nil {
		t.Fatal(err)
	}
	sess, err := infer.NewSession(m)
	if err != nil {
		t.Fatal(err)
	}
	var last int
	res, err := Run(sess, ds.Head(300), 128, func(done, total int) { last = done })
	if err != nil {
		t.Fatal(err)
	}
	// The first 300 test images, scored by torch when the model was made.
	if res.Samples != 300 || last != 300 || res.Accuracy < 0.8 || res.Loss <= 0 || res.Loss > 1 {
		t.Fatalf("result %+v, progress %d", res, last)
	}
	full, _ := Run(sess, ds, 1000, nil)
	batched, _ := Run(sess, ds, 77, nil)
	if full.Accuracy != batched.Accuracy || math.Abs(full.Loss-batched.Loss) > 1e-9 {
		t.Fatalf("batch size changed the result: %+v vs %+v", full, batched)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	x := filepath.Join(dir, "x.npy")
	y := filepath.Join(dir, "y.npy")
	xa, _ := npy.FromFloat32([]int{3, 2}, make([]float32, 6))
	if err := npy.WriteFile(x, xa); err != nil {
		t.Fatal(err)
	}
	ya, _ := npy.FromInt64([]int{2}, []int64{0, 1})
	if err := npy.WriteFile(y, ya); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(x, y); err == nil || !strings.Contains(err.Error(), "2 labels") {
		t.Fatalf("label count mismatch: %v", err)
	}
	// Raw uint8 pixels are refused, not cast (the models want pixels/255).
	pixels := filepath.Join(dir, "pixels.npy")
	pa, _ := npy.FromUint8([]int{3, 2}, []uint8{0, 255, 1, 2, 3, 4})
	if err := npy.WriteFile(pixels, pa); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(pixels, ""); err == nil || !strings.Contains(err.Error(), pixels) || !strings.Contains(err.Error(), "dtype uint8") {
		t.Fatalf("uint8 inputs: %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.npy"), ""); err == nil {
		t.Fatal("missing file accepted")
	}
}

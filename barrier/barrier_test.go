package barrier_test

import (
	"math"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/barrier"
	"github.com/onnx-rebasin/onnx-rebasin/eval"
	"github.com/onnx-rebasin/onnx-rebasin/graph"
	"github.com/onnx-rebasin/onnx-rebasin/match"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
)

func load(t *testing.T, path string) *onnx.Model {
	t.Helper()
	m, err := onnx.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestMeasureMLP measures the naive and the aligned path between the two
// shipped MLPs: the endpoints of both paths are the two models (aligning b
// does not change its function), every barrier is at least |L(0) − L(1)|/2,
// and alignment lowers the barrier (Ainsworth et al.'s claim, here 1.29 →
// 0.04 on the 1000-image slice).
func TestMeasureMLP(t *testing.T) {
	a, b := load(t, "../testmodels/mlp_s0.onnx"), load(t, "../testmodels/mlp_s1.onnx")
	test, err := eval.Load("../testmodels/fashion_test_x.npy", "../testmodels/fashion_test_y.npy")
	if err != nil {
		t.Fatal(err)
	}
	test = test.Head(500)
	ga, err := graph.Analyze(a)
	if err != nil {
		t.Fatal(err)
	}
	res, err := match.Weights(a, b, ga, match.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	paths, err := barrier.Measure(a, b, ga, test, []barrier.Variant{barrier.Naive(ga), barrier.Aligned("aligned", res.Perms)}, barrier.Options{Steps: 5})
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 2 {
		t.Fatalf("%d paths, want 2", len(paths))
	}
	naive, aligned := paths[0], paths[1]
	for _, p := range paths {
		if len(p.Lambda) != 5 || p.Lambda[0] != 0 || p.Lambda[4] != 1 || p.Lambda[2] != 0.5 {
			t.Errorf("%s: lambda %v", p.Name, p.Lambda)
		}
		if lo := math.Abs(p.Loss[0]-p.Loss[4]) / 2; p.Barrier < lo-1e-12 {
			t.Errorf("%s: barrier %v below |L(0) − L(1)|/2 = %v", p.Name, p.Barrier, lo)
		}
		t.Logf("%s: barrier %.4f, accuracy %v", p.Name, p.Barrier, p.Accuracy)
	}
	for _, i := range []int{0, 4} {
		if math.Abs(naive.Loss[i]-aligned.Loss[i]) > 1e-4 || naive.Accuracy[i] != aligned.Accuracy[i] {
			t.Errorf("endpoint %d: naive loss %v acc %v, aligned loss %v acc %v", i, naive.Loss[i], naive.Accuracy[i], aligned.Loss[i], aligned.Accuracy[i])
		}
	}
	if aligned.Barrier >= naive.Barrier/4 {
		t.Errorf("aligned barrier %.4f is not well below the naive %.4f", aligned.Barrier, naive.Barrier)
	}
	if _, accN := naive.Midpoint(); accN >= aligned.Accuracy[2] {
		t.Errorf("naive midpoint accuracy %.3f ≥ aligned %.3f", accN, aligned.Accuracy[2])
	}
}

func TestMeasureBadInput(t *testing.T) {
	a := load(t, "../testmodels/mlp32_s0.onnx")
	ga, err := graph.Analyze(a)
	if err != nil {
		t.Fatal(err)
	}
	labelled, err := eval.Load("../testmodels/fashion_test_x.npy", "../testmodels/fashion_test_y.npy")
	if err != nil {
		t.Fatal(err)
	}
	defer labelled.Close()
	unlabelledCopy := *labelled // the same samples, read from the same file
	unlabelledCopy.Y = nil
	unlabelled := &unlabelledCopy
	for _, c := range []struct {
		name  string
		test  *eval.Dataset
		steps int
	}{{"one step", labelled, 1}, {"no labels", unlabelled, 3}} {
		if _, err := barrier.Measure(a, a, ga, c.test, []barrier.Variant{barrier.Naive(ga)}, barrier.Options{Steps: c.steps}); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
}

package infer

import (
	"fmt"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/internal/ortref"
	"github.com/onnx-rebasin/onnx-rebasin/internal/testreq"
	"github.com/onnx-rebasin/onnx-rebasin/npy"
	"github.com/onnx-rebasin/onnx-rebasin/onnx"
)

const testModelDir = "../testmodels"

// smallModels lists the trained Fashion-MNIST models committed in
// testmodels/.
func smallModels(t testing.TB) []string {
	var paths []string
	for _, p := range testreq.Glob(t, filepath.Join(testModelDir, "*.onnx")) {
		if !isStructureModel(p) {
			paths = append(paths, p)
		}
	}
	if len(paths) == 0 {
		t.Fatalf("no trained models in %s", testModelDir)
	}
	return paths
}

// isStructureModel reports whether path is one of the committed
// random-init structure models (attention, grouped convolutions): they have
// no torch logits beside them and do not read Fashion-MNIST images.
func isStructureModel(path string) bool {
	_, err := os.Stat(strings.TrimSuffix(path, ".onnx") + "_logits.npy")
	return err != nil
}

// structureModels lists the committed random-init structure models.
func structureModels(t testing.TB) []string {
	var paths []string
	for _, p := range testreq.Glob(t, filepath.Join(testModelDir, "*.onnx")) {
		if isStructureModel(p) {
			paths = append(paths, p)
		}
	}
	if len(paths) == 0 {
		t.Fatalf("no structure models in %s", testModelDir)
	}
	return paths
}

// largeModels lists the models of testmodels/large (generated, git-ignored:
// required under CI, may be absent elsewhere).
func largeModels(t testing.TB) []string {
	return testreq.LargeModels(t, filepath.Join(testModelDir, "large"))
}

func modelName(path string) string { return strings.TrimSuffix(filepath.Base(path), ".onnx") }

// fashion returns the first n test images (N,1,28,28) and labels.
func fashion(t testing.TB, split string, n int) (*Tensor, []int64) {
	xa, err := npy.ReadFile(filepath.Join(testModelDir, "fashion_"+split+"_x.npy"))
	if err != nil {
		t.Fatal(err)
	}
	ya, err := npy.ReadFile(filepath.Join(testModelDir, "fashion_"+split+"_y.npy"))
	if err != nil {
		t.Fatal(err)
	}
	x, err := xa.Float32()
	if err != nil {
		t.Fatal(err)
	}
	y, err := ya.Int64()
	if err != nil {
		t.Fatal(err)
	}
	if n > xa.Shape[0] {
		n = xa.Shape[0]
	}
	per := len(x) / xa.Shape[0]
	shape := append([]int{n}, xa.Shape[1:]...)
	return NewFloat32(shape, x[:n*per]), y[:n]
}

// batchOf returns rows [lo, hi) of x.
func batchOf(x *Tensor, lo, hi int) *Tensor {
	per := numel(x.Shape[1:])
	return NewFloat32(append([]int{hi - lo}, x.Shape[1:]...), x.F[lo*per:hi*per])
}

func loadSession(t testing.TB, path string, opts ...Option) (*onnx.Model, *Session) {
	m, err := onnx.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSession(m, opts...)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m, s
}

// predict runs x through s in batches and returns the logits.
func predict(t testing.TB, s *Session, x *Tensor, batch int, opts ...RunOption) *Tensor {
	n := x.Shape[0]
	var out []float32
	var cols int
	for lo := 0; lo < n; lo += batch {
		hi := min(lo+batch, n)
		res, err := s.Run(map[string]*Tensor{s.Inputs()[0].Name: batchOf(x, lo, hi)}, opts...)
		if err != nil {
			t.Fatal(err)
		}
		y := res[s.Outputs()[0].Name]
		cols = numel(y.Shape[1:])
		out = append(out, y.F...)
	}
	return NewFloat32([]int{n, cols}, out)
}

func accuracy(logits *Tensor, labels []int64) float64 {
	cols := logits.Shape[1]
	right := 0
	for i, want := range labels {
		row := logits.F[i*cols : (i+1)*cols]
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		if int64(best) == want {
			right++
		}
	}
	return float64(right) / float64(len(labels))
}

// TestModelAccuracy runs the trained models on the 1000-image test slice:
// top-1 accuracy must be high and the logits must match torch's.
func TestModelAccuracy(t *testing.T) {
	paths := smallModels(t)
	x, y := fashion(t, "test", 1000)
	for _, path := range paths {
		name := modelName(path)
		t.Run(name, func(t *testing.T) {
			_, s := loadSession(t, path)
			logits := predict(t, s, x, 250)
			acc := accuracy(logits, y)
			t.Logf("%s: top-1 accuracy %.3f on %d test images", name, acc, len(y))
			if acc < 0.80 {
				t.Errorf("accuracy %.3f < 0.80", acc)
			}
			ref, err := npy.ReadFile(strings.TrimSuffix(path, ".onnx") + "_logits.npy")
			if err != nil {
				t.Fatalf("torch logits (committed beside the model): %v", err)
			}
			want, _ := ref.Float32()
			if err := compareTensors(logits, NewFloat32(ref.Shape, want), 1e-3, 1e-4); err != nil {
				t.Errorf("logits vs torch: %v", err)
			}
		})
	}
}

// randomInput returns a reproducible input for s at batch n, filling dynamic
// dims other than the batch with 8.
func randomInput(s *Session, n int, seed int64) (map[string]*Tensor, error) {
	rng := rand.New(rand.NewSource(seed))
	in := map[string]*Tensor{}
	for _, info := range s.Inputs() {
		if info.DType != Float32 {
			return nil, fmt.Errorf("input %q is %v", info.Name, info.DType)
		}
		shape := append([]int{}, info.Shape...)
		for i, d := range shape {
			if d < 0 {
				shape[i] = 8
				if i == 0 {
					shape[i] = n
				}
			}
		}
		x := NewFloat32(shape, nil)
		for i := range x.F {
			x.F[i] = float32(rng.NormFloat64())
		}
		in[info.Name] = x
	}
	return in, nil
}

func toNpy(t testing.TB, x *Tensor) *npy.Array {
	a, err := npy.FromFloat32(x.Shape, x.F)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestModelsMatchORT compares with ONNX Runtime on the test models at batch
// 1 and 64 (the random-init structure models, committed or in
// testmodels/large when present, at batch 1 and 4), atol 1e-4 rtol 1e-3.
func TestModelsMatchORT(t *testing.T) {
	paths := smallModels(t)
	r := ortref.Require(t)
	type job struct {
		path    string
		batches []int
		random  bool // random inputs, not Fashion-MNIST images
	}
	var jobs []job
	x, _ := fashion(t, "test", 64)
	for _, p := range paths {
		jobs = append(jobs, job{p, []int{1, 64}, false})
	}
	for _, p := range append(structureModels(t), largeModels(t)...) {
		jobs = append(jobs, job{p, []int{1, 4}, true})
	}
	for _, j := range jobs {
		name := modelName(j.path)
		_, s := loadSession(t, j.path)
		for _, n := range j.batches {
			t.Run(fmt.Sprintf("%s/batch%d", name, n), func(t *testing.T) {
				var in map[string]*Tensor
				if j.random {
					var err error
					if in, err = randomInput(s, n, int64(n)); err != nil {
						t.Fatal(err)
					}
				} else {
					in = map[string]*Tensor{s.Inputs()[0].Name: batchOf(x, 0, n)}
				}
				got, err := s.Run(in)
				if err != nil {
					t.Fatal(err)
				}
				nin := map[string]*npy.Array{}
				for k, v := range in {
					nin[k] = toNpy(t, v)
				}
				want, err := r.Run(j.path, nin)
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range s.Outputs() {
					w, ok := want[o.Name]
					if !ok {
						t.Fatalf("ORT did not return %q", o.Name)
					}
					if err := ortref.CheckClose(toNpy(t, got[o.Name]), w, 1e-4, 1e-3); err != nil {
						t.Errorf("output %q: %v", o.Name, err)
					}
				}
			})
		}
	}
}

// TestDeterministicThreads checks that results are bit-identical whatever
// the number of threads (and GOMAXPROCS, which the GEMM kernel uses).
func TestDeterministicThreads(t *testing.T) {
	paths := smallModels(t)
	x, _ := fashion(t, "test", 16)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, path := range paths {
		if !strings.Contains(path, "_s0") {
			continue
		}
		var ref *Tensor
		for _, threads := range []int{1, 2, 3, 8} {
			runtime.GOMAXPROCS(threads)
			_, s := loadSession(t, path, Threads(threads))
			got := predict(t, s, x, 16)
			if ref == nil {
				ref = got
				continue
			}
			for i := range ref.F {
				if math.Float32bits(ref.F[i]) != math.Float32bits(got.F[i]) {
					t.Fatalf("%s: %d threads: logit %d = %v, with 1 thread %v", modelName(path), threads, i, got.F[i], ref.F[i])
				}
			}
		}
	}
}

// TestCaptureAndOnValue checks that intermediate values are reported and
// captured, and that capturing does not change the outputs.
func TestCaptureAndOnValue(t *testing.T) {
	path := testreq.File(t, filepath.Join(testModelDir, "cnn_bn_s0.onnx"))
	// Unfused, so that the hooked run (always node by node) must give the
	// plain run's bits; TestFusion covers the fused session.
	m, s := loadSession(t, path, Fusion(false))
	x, _ := fashion(t, "test", 8)
	plain, err := s.Run(map[string]*Tensor{"input": x})
	if err != nil {
		t.Fatal(err)
	}
	// The outputs of every Relu node.
	var relus []string
	for _, n := range m.Proto.GetGraph().GetNode() {
		if n.GetOpType() == "Relu" {
			relus = append(relus, n.GetOutput()[0])
		}
	}
	seen := map[string][]int{}
	var sums = map[string]float64{}
	res, err := s.Run(map[string]*Tensor{"input": x}, Capture(relus...), OnValue(func(name string, v *Tensor) {
		seen[name] = append([]int{}, v.Shape...)
		if v.DType == Float32 {
			var sum float64
			for _, f := range v.F {
				sum += float64(f)
			}
			sums[name] = sum
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := compareTensors(res["logits"], plain["logits"], 0, 0); err != nil {
		t.Errorf("logits changed by capturing: %v", err)
	}
	for _, name := range relus {
		c := res[name]
		if c == nil {
			t.Fatalf("%s not captured", name)
		}
		if !slices.Equal(c.Shape, seen[name]) {
			t.Errorf("%s: captured shape %v, OnValue saw %v", name, c.Shape, seen[name])
		}
		var sum float64
		for _, f := range c.F {
			if f < 0 {
				t.Fatalf("%s: negative value after Relu", name)
			}
			sum += float64(f)
		}
		if sum != sums[name] {
			t.Errorf("%s: captured tensor was overwritten (sum %v, was %v)", name, sum, sums[name])
		}
	}
	if len(seen) < len(m.Proto.GetGraph().GetNode()) {
		t.Errorf("OnValue saw %d values for %d nodes", len(seen), len(m.Proto.GetGraph().GetNode()))
	}
	if _, err := s.Run(map[string]*Tensor{"input": x}, Capture("no such value")); err == nil {
		t.Error("capturing an unknown value succeeded")
	}
}

// TestConcurrentRuns runs one session from several goroutines (each run has
// its own buffers) and checks that inputs are never written to.
func TestConcurrentRuns(t *testing.T) {
	paths := smallModels(t)
	x, _ := fashion(t, "test", 32)
	orig := x.Clone()
	for _, path := range paths {
		if !strings.Contains(path, "_s0") {
			continue
		}
		_, s := loadSession(t, path)
		want := predict(t, s, x, 8)
		errs := make(chan error, 4)
		for g := 0; g < 4; g++ {
			go func() {
				for lo := 0; lo < 32; lo += 8 {
					res, err := s.Run(map[string]*Tensor{s.Inputs()[0].Name: batchOf(x, lo, lo+8)})
					if err == nil {
						w := batchOf(want, lo, lo+8)
						err = compareTensors(res[s.Outputs()[0].Name], w, 0, 0)
					}
					if err != nil {
						errs <- fmt.Errorf("%s: %v", modelName(path), err)
						return
					}
				}
				errs <- nil
			}()
		}
		for g := 0; g < 4; g++ {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
	}
	if err := compareTensors(x, orig, 0, 0); err != nil {
		t.Errorf("input modified: %v", err)
	}
}

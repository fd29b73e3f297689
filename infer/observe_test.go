package infer

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnx-rebasin/onnx-rebasin/internal/testreq"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

// TestObserveSeesCapturedValues: on a trained CNN (fused session), Observe
// reports each named value once, with the bits Capture returns for it, and
// the outputs stay those of a plain run.
func TestObserveSeesCapturedValues(t *testing.T) {
	path := testreq.File(t, filepath.Join(testModelDir, "cnn_bn_s0.onnx"))
	m, s := loadSession(t, path)
	x, _ := fashion(t, "test", 8)
	var names []string
	for _, n := range m.Proto.GetGraph().GetNode() {
		if op := n.GetOpType(); op == "Relu" || op == "BatchNormalization" || op == "Gemm" {
			names = append(names, n.GetOutput()[0])
		}
	}
	captured, err := s.Run(map[string]*Tensor{"input": x}, Capture(names...))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]*Tensor{}
	res, err := s.Run(map[string]*Tensor{"input": x}, Observe(names, func(name string, v *Tensor) error {
		if seen[name] != nil {
			t.Errorf("%s reported twice", name)
		}
		seen[name] = v.Clone()
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if seen[name] == nil {
			t.Fatalf("%s not reported", name)
		}
		if err := compareTensors(seen[name], captured[name], 0, 0); err != nil {
			t.Errorf("%s: observed value differs from the captured one: %v", name, err)
		}
	}
	if err := compareTensors(res["logits"], captured["logits"], 0, 0); err != nil {
		t.Errorf("logits changed by observing: %v", err)
	}
}

// TestObserveWrites: a value an observer changes is what later nodes
// read, and changing a value that shares storage with another value still
// to be read (a Flatten of it) leaves that other value alone.
func TestObserveWrites(t *testing.T) {
	// r = Relu(x); f = Flatten(r); n = Neg(r): f and r share storage, and
	// Neg reads r after f is computed.
	m := opModel("Relu", 17, nil, []DType{Float32}, 1)
	g := m.Proto.Graph
	g.Node = append(g.Node,
		&onnxpb.NodeProto{OpType: proto.String("Flatten"), Name: proto.String("flat"), Input: []string{"out0"}, Output: []string{"f"}},
		&onnxpb.NodeProto{OpType: proto.String("Neg"), Name: proto.String("neg"), Input: []string{"out0"}, Output: []string{"n"}},
		&onnxpb.NodeProto{OpType: proto.String("Sigmoid"), Name: proto.String("sig"), Input: []string{"f"}, Output: []string{"s"}})
	g.Output = []*onnxpb.ValueInfoProto{{Name: proto.String("n")}, {Name: proto.String("s")}}
	s, err := NewSession(m)
	if err != nil {
		t.Fatal(err)
	}
	x := NewFloat32([]int{2, 3}, []float32{-1, 2, 3, -4, 5, 6})
	out, err := s.Run(map[string]*Tensor{"in0": x}, Observe([]string{"f"}, func(_ string, v *Tensor) error {
		for i := range v.F {
			v.F[i] = 0
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if want := []float32{0, -2, -3, 0, -5, -6}; !slices.Equal(out["n"].F, want) {
		t.Errorf("Neg of the Relu output: %v, want %v (changed through the Flatten)", out["n"].F, want)
	}
	for i, v := range out["s"].F {
		if v != 0.5 {
			t.Errorf("Sigmoid of the zeroed Flatten output, element %d: %v, want 0.5", i, v)
		}
	}
	if !slices.Equal(x.F, []float32{-1, 2, 3, -4, 5, 6}) {
		t.Errorf("input changed: %v", x.F)
	}
}

// TestObserveErrors: an observer's error stops the run and is returned;
// names that no node computes are refused.
func TestObserveErrors(t *testing.T) {
	m := opModel("Relu", 17, nil, []DType{Float32}, 1)
	s, err := NewSession(m)
	if err != nil {
		t.Fatal(err)
	}
	x := NewFloat32([]int{2}, []float32{-1, 2})
	stop := errors.New("enough")
	if _, err := s.Run(map[string]*Tensor{"in0": x}, Observe([]string{"out0"}, func(string, *Tensor) error { return stop })); !errors.Is(err, stop) {
		t.Errorf("got %v, want the observer's error", err)
	}
	for _, name := range []string{"in0", "nonesuch"} {
		if _, err := s.Run(map[string]*Tensor{"in0": x}, Observe([]string{name}, func(string, *Tensor) error { return nil })); err == nil {
			t.Errorf("observing %q: no error", name)
		}
	}
}

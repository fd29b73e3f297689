//go:build unix

package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

// bigMLP writes an MLP of about 84 MB (1024 → 4096 → 4096 → 10) to path,
// big enough that a save takes long enough to be interrupted.
func bigMLP(t *testing.T, path string) {
	t.Helper()
	m := &onnx.Model{Name: "big", Proto: &onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(17)}},
		Graph:       &onnxpb.GraphProto{Name: proto.String("big")},
	}}
	g := m.Proto.Graph
	seed := uint32(1)
	weight := func(name string, dims ...int64) string {
		n, _ := onnx.NumElements(dims)
		v := make([]float32, n)
		for i := range v {
			seed = seed*1664525 + 1013904223
			v[i] = float32(int32(seed)) / (1 << 31) / 32
		}
		tp := &onnxpb.TensorProto{Name: proto.String(name), Dims: dims, DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), RawData: make([]byte, 4*n)}
		if err := m.SetFloat32s(tp, v); err != nil {
			t.Fatal(err)
		}
		g.Initializer = append(g.Initializer, tp)
		return name
	}
	value := func(name string, dims ...int64) *onnxpb.ValueInfoProto {
		var shape []*onnxpb.TensorShapeProto_Dimension
		for _, d := range dims {
			shape = append(shape, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}})
		}
		return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
			ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), Shape: &onnxpb.TensorShapeProto{Dim: shape}}}}}
	}
	gemm := func(name, x, w, b, y string) *onnxpb.NodeProto {
		return &onnxpb.NodeProto{Name: proto.String(name), OpType: proto.String("Gemm"), Input: []string{x, w, b}, Output: []string{y},
			Attribute: []*onnxpb.AttributeProto{{Name: proto.String("transB"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(1)}}}
	}
	relu := func(x, y string) *onnxpb.NodeProto {
		return &onnxpb.NodeProto{Name: proto.String(y), OpType: proto.String("Relu"), Input: []string{x}, Output: []string{y}}
	}
	g.Node = []*onnxpb.NodeProto{
		gemm("fc1", "X", weight("W1", 4096, 1024), weight("b1", 4096), "h1"), relu("h1", "r1"),
		gemm("fc2", "r1", weight("W2", 4096, 4096), weight("b2", 4096), "h2"), relu("h2", "r2"),
		gemm("fc3", "r2", weight("W3", 10, 4096), weight("b3", 10), "Y"),
	}
	g.Input = []*onnxpb.ValueInfoProto{value("X", 1, 1024)}
	g.Output = []*onnxpb.ValueInfoProto{value("Y", 1, 10)}
	if err := m.Save(path); err != nil {
		t.Fatal(err)
	}
}

// TestSignalDuringSaveLeavesNothing builds the command, starts a permute
// of a large model, and sends SIGINT or SIGTERM once the output's
// temporary file exists (mid-save): the command must fail (exit 1) with
// one line saying it was interrupted, and leave no file but its input,
// unchanged.
func TestSignalDuringSaveLeavesNothing(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("go tool not found: %v", err)
		}
		t.Skipf("go tool not found: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "onnx-rebasin")
	if out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	bigMLP(t, filepath.Join(dir, "big.onnx"))
	before := snapshot(t, dir)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			// The signal must land while the temporary file exists; a
			// run that finished first is undone and tried again.
			for try := 1; ; try++ {
				if try > 10 {
					t.Fatal("could not interrupt a save in 10 tries")
				}
				os.Remove(filepath.Join(dir, "out.onnx"))
				cmd := exec.Command(bin, "permute", "big.onnx", "-o", "out.onnx", "--seed", "3")
				cmd.Dir = dir
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				exited := make(chan error, 1)
				go func() { exited <- cmd.Wait() }()
				if !waitForTemp(dir, exited) {
					continue
				}
				cmd.Process.Signal(sig)
				err := <-exited
				var ee *exec.ExitError
				if err == nil {
					continue // the rename beat the signal
				}
				if !errors.As(err, &ee) || ee.ExitCode() != 1 {
					t.Fatalf("exit %v, want status 1; stderr:\n%s", err, stderr.String())
				}
				msg := strings.TrimSpace(stderr.String())
				if !strings.Contains(msg, "interrupted") || strings.Contains(msg, "\n") {
					t.Fatalf("stderr %q, want one line saying interrupted", msg)
				}
				sameFiles(t, dir, before)
				t.Logf("interrupted on try %d: %s", try, msg)
				return
			}
		})
	}
}

// waitForTemp polls dir until a temporary output file appears (true) or
// the process exits (false; its status is put back for the caller).
func waitForTemp(dir string, exited chan error) bool {
	for {
		select {
		case err := <-exited:
			exited <- err
			return false
		default:
		}
		tmps, _ := filepath.Glob(filepath.Join(dir, ".out.onnx.tmp-*"))
		if len(tmps) > 0 {
			return true
		}
		time.Sleep(200 * time.Microsecond)
	}
}

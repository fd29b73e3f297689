package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
)

// runCLI runs the command line in process and returns its exit status
// (as mainExit maps errors) and stderr.
func runCLI(t *testing.T, dir string, args ...string) (int, string) {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	var stdout, stderr bytes.Buffer
	err = run(args, &stdout, &stderr)
	var ue usageError
	switch {
	case err == nil:
		return 0, stderr.String()
	case errors.As(err, &ue):
		return 2, err.Error()
	}
	return 1, err.Error()
}

// sameFiles checks that dir holds exactly the files of before, unchanged.
func sameFiles(t *testing.T, dir string, before map[string][32]byte) {
	t.Helper()
	after := snapshot(t, dir)
	for path := range after {
		if _, ok := before[path]; !ok {
			t.Errorf("new file %s", path)
		}
	}
	for path, sum := range before {
		if got, ok := after[path]; !ok || got != sum {
			t.Errorf("%s changed or is gone", path)
		}
	}
}

// checkFailure checks a failed run: the exit status, a one-line message
// that contains want.
func checkFailure(t *testing.T, code int, msg string, wantCode int, want string) {
	t.Helper()
	if code != wantCode || !strings.Contains(msg, want) || strings.Contains(strings.TrimSpace(msg), "\n") {
		t.Errorf("exit %d, message %q; want exit %d and one line saying %q", code, msg, wantCode, want)
	}
}

// testModel copies the committed test model name into dir, changed by
// edit if not nil, and returns its path.
func testModel(t *testing.T, dir, name string, edit func(m *onnx.Model)) string {
	t.Helper()
	m, err := onnx.Load(filepath.Join("../../testmodels", name))
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(m)
	}
	path := filepath.Join(dir, name)
	if err := m.Save(path); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestVerifyBoundsRandomInputs: --verify draws random inputs of the
// model's declared dims; absurd dims must give an error (exit 1, one
// line, no output), not run out of memory (1e8) or wrap around (2^62).
func TestVerifyBoundsRandomInputs(t *testing.T) {
	tests := []struct {
		name string
		dims []int64 // declared dims of the input
	}{
		{"batch 1e8", []int64{1e8, 1, 28, 28}},
		{"batch 2^62 (the product wraps)", []int64{1 << 62, 1, 28, 28}},
		{"batch 2^63-1", []int64{1<<63 - 1, 1, 28, 28}},
		{"2^15 samples, over 2^24 values", []int64{1 << 15, 1, 28, 28}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			testModel(t, dir, "mlp32_s0.onnx", func(m *onnx.Model) {
				dims := m.Proto.Graph.Input[0].Type.GetTensorType().Shape.Dim
				for i, d := range tt.dims {
					dims[i].Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}
				}
			})
			before := snapshot(t, dir)
			for _, args := range [][]string{
				{"permute", "mlp32_s0.onnx", "-o", "out.onnx", "--verify"},
				{"align", "mlp32_s0.onnx", "mlp32_s0.onnx", "-o", "out.onnx", "--verify", "-q"},
			} {
				code, msg := runCLI(t, dir, args...)
				checkFailure(t, code, msg, 1, "--verify: input input declares dims")
				sameFiles(t, dir, before)
			}
		})
	}
}

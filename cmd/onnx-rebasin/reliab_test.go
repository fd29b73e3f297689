//go:build unix

package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/onnx-rebasin/onnx-rebasin/internal/testreq"
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
	defer func() {
		if err := os.Chdir(wd); err != nil {
			t.Fatal(err)
		}
	}()
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

// mustDo fails the test on a setup step's error.
func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
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

// externalModel writes mlp32_s0 to dir/name with its first weight in the
// external file location (relative to dir), and that weight's bytes to
// dataPath (if not empty).
func externalModel(t *testing.T, dir, name, location, dataPath string) {
	t.Helper()
	m, err := onnx.Load("../../testmodels/mlp32_s0.onnx")
	if err != nil {
		t.Fatal(err)
	}
	w := m.Proto.Graph.Initializer[0]
	b, err := m.TensorBytes(w)
	if err != nil {
		t.Fatal(err)
	}
	if dataPath != "" {
		if err := os.WriteFile(dataPath, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w.RawData, w.FloatData = nil, nil
	w.DataLocation = onnxpb.TensorProto_EXTERNAL.Enum()
	w.ExternalData = []*onnxpb.StringStringEntryProto{
		{Key: proto.String("location"), Value: proto.String(location)},
		{Key: proto.String("offset"), Value: proto.String("0")},
		{Key: proto.String("length"), Value: proto.String(strconv.Itoa(len(b)))},
	}
	enc, err := proto.Marshal(m.Proto)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), enc, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestExternalDataOutsideFolder runs permute and align on models whose
// external data lies outside the model's folder (through links, ../ or an
// absolute path) or is a device or a FIFO: exit 1, one line naming the
// model, no output, nothing changed, and the bytes outside never copied.
func TestExternalDataOutsideFolder(t *testing.T) {
	outside := t.TempDir()
	externalModel(t, outside, "ok.onnx", "w.bin", filepath.Join(outside, "w.bin"))
	tests := []struct {
		name, location string
		setup          func(t *testing.T, dir string)
		want           string
	}{
		{"linked folder", "outside/w.bin", func(t *testing.T, dir string) { mustDo(t, os.Symlink(outside, filepath.Join(dir, "outside"))) }, "escapes"},
		{"linked file", "w.bin", func(t *testing.T, dir string) {
			mustDo(t, os.Symlink(filepath.Join(outside, "w.bin"), filepath.Join(dir, "w.bin")))
		}, "escapes"},
		{"linked /dev", "devlink/zero", func(t *testing.T, dir string) { mustDo(t, os.Symlink("/dev", filepath.Join(dir, "devlink"))) }, "escapes"},
		{"link to /dev/zero", "zero", func(t *testing.T, dir string) { mustDo(t, os.Symlink("/dev/zero", filepath.Join(dir, "zero"))) }, "escapes"},
		{"FIFO", "fifo", func(t *testing.T, dir string) {
			if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
				testreq.Missing(t, "no FIFOs here: %v", err)
			}
		}, "not a regular file"},
		{"../", "../" + filepath.Base(outside) + "/w.bin", nil, "leaves the model's folder"},
		{"absolute", filepath.Join(outside, "w.bin"), nil, "absolute"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.setup != nil {
				tt.setup(t, dir)
			}
			externalModel(t, dir, "m.onnx", tt.location, "")
			testModel(t, dir, "mlp32_s1.onnx", nil)
			before, beforeOutside := snapshot(t, dir), snapshot(t, outside)
			for _, args := range [][]string{
				{"permute", "m.onnx", "-o", "out.onnx"},
				{"align", "mlp32_s1.onnx", "m.onnx", "-o", "out.onnx", "-q"},
				{"inspect", "m.onnx"},
			} {
				code, msg := runCLI(t, dir, args...)
				checkFailure(t, code, msg, 1, "m.onnx: ")
				checkFailure(t, code, msg, 1, tt.want)
				sameFiles(t, dir, before)
				sameFiles(t, outside, beforeOutside)
			}
		})
	}
}

// TestOutputMode checks that a new output gets 0666 less the umask and
// that an output replacing a file keeps that file's mode.
func TestOutputMode(t *testing.T) {
	old := syscall.Umask(0o027)
	defer syscall.Umask(old)
	tests := []struct {
		name     string
		existing os.FileMode // mode of an existing out.onnx; 0: none
		want     os.FileMode
	}{
		{"new output", 0, 0o640},
		{"replaces 0600", 0o600, 0o600},
		{"replaces read-only 0444", 0o444, 0o444},
		{"replaces 0664", 0o664, 0o664},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			testModel(t, dir, "mlp32_s0.onnx", nil)
			out := filepath.Join(dir, "out.onnx")
			if tt.existing != 0 {
				if err := os.WriteFile(out, []byte("old"), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(out, tt.existing); err != nil {
					t.Fatal(err)
				}
			}
			if code, msg := runCLI(t, dir, "permute", "mlp32_s0.onnx", "-o", "out.onnx"); code != 0 {
				t.Fatalf("exit %d: %s", code, msg)
			}
			fi, err := os.Stat(out)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != tt.want || fi.Size() < 100 {
				t.Fatalf("out.onnx: mode %v, %d bytes; want mode %v and the model", fi.Mode().Perm(), fi.Size(), tt.want)
			}
		})
	}
}

// TestMismatchedWidths aligns and merges models of different widths (the
// case that panicked in the library): exit 1, one line, no output.
func TestMismatchedWidths(t *testing.T) {
	dir := t.TempDir()
	testModel(t, dir, "mlp_s0.onnx", nil)
	testModel(t, dir, "mlp32_s0.onnx", nil)
	before := snapshot(t, dir)
	for _, args := range [][]string{
		{"align", "mlp_s0.onnx", "mlp32_s0.onnx", "-o", "out.onnx", "-q"},
		{"merge", "mlp_s0.onnx", "mlp32_s0.onnx", "-o", "out.onnx", "-q"},
		{"merge", "--no-align", "mlp32_s0.onnx", "mlp_s0.onnx", "-o", "out.onnx", "-q"},
	} {
		code, msg := runCLI(t, dir, args...)
		checkFailure(t, code, msg, 1, "in mlp32_s0.onnx")
		sameFiles(t, dir, before)
	}
}

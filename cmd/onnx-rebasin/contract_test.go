package main

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onnx-rebasin/onnx-rebasin/onnx"
	"github.com/onnx-rebasin/onnx-rebasin/onnx/onnxpb"
	"google.golang.org/protobuf/proto"
)

// TestProgressOnlyOnTerminal: the redrawn progress bar (\r frames) goes to
// a terminal only, never into a log or pipe, and -q silences it.
func TestProgressOnlyOnTerminal(t *testing.T) {
	args := []string{"eval", testModels + "mlp32_s0.onnx", "--data", testModels + "fashion_test_x.npy", "--batch", "100"}
	for _, tc := range []struct {
		terminal, quiet, wantBar bool
	}{{true, false, true}, {false, false, false}, {true, true, false}} {
		var stdout, stderr bytes.Buffer
		a := args
		if tc.quiet {
			a = append([]string{"eval", "-q"}, args[1:]...)
		}
		if err := runWith(&cmdContext{ctx: context.Background(), stdout: &stdout, stderr: &stderr, stderrIsTerminal: tc.terminal}, a); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(stderr.String(), "\r"); got != tc.wantBar {
			t.Errorf("terminal %v, -q %v: stderr %q", tc.terminal, tc.quiet, stderr.String())
		}
		if tc.wantBar && !strings.Contains(stderr.String(), "1000/1000\n") {
			t.Errorf("the bar does not end at 1000/1000: %q", stderr.String())
		}
	}
}

// TestIsTerminal: a regular file and the null device are not terminals.
func TestIsTerminal(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	if isTerminal(f) || isTerminal(null) {
		t.Errorf("isTerminal(file) = %v, isTerminal(%s) = %v; want false", isTerminal(f), os.DevNull, isTerminal(null))
	}
}

// TestVersion: -ldflags wins; without it the build information gives a
// version, never an empty string.
func TestVersion(t *testing.T) {
	defer func(v string) { version = v }(version)
	version = "v1.2.3"
	var out bytes.Buffer
	if err := run([]string{"version"}, &out, &out); err != nil || out.String() != "onnx-rebasin v1.2.3\n" {
		t.Errorf("with -ldflags: %q, %v", out.String(), err)
	}
	version = ""
	if v := versionString(); v == "" || strings.Contains(v, "\n") {
		t.Errorf("without -ldflags: %q", v)
	}
}

// TestDoubleDash: "--" ends the flags, so a model named like a flag can be
// given, and a flag after "--" is an argument.
func TestDoubleDash(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "--json")
	data, err := os.ReadFile(testModels + "mlp32_s0.onnx")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(model, data, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	var out bytes.Buffer
	if err := run([]string{"inspect", "--", "--json"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "model:     --json\n") {
		t.Errorf("inspect -- --json printed %q", out.String())
	}
	// The value of -o may be "--" (not the end of the flags): rejected
	// for its name, not taken as a model.
	err = run([]string{"permute", "-o", "--", testModels + "mlp32_s0.onnx"}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "-o --: expected a file name") {
		t.Errorf("permute -o -- model: %v", err)
	}
}

// TestHelpExitsZero: --help prints the usage with the flags on stderr and
// is not an error.
func TestHelpExitsZero(t *testing.T) {
	for _, c := range commands {
		var stdout, stderr bytes.Buffer
		err := run([]string{c.name, "--help"}, &stdout, &stderr)
		if exitCode(err) != 0 || !strings.Contains(stderr.String(), "Usage: onnx-rebasin "+c.name) {
			t.Errorf("%s --help: %v, %q", c.name, err, stderr.String())
		}
	}
}

// TestWriteAllAllOrNothing: when one file of a set fails, none of the set
// is left, no temporary folder either, and files already there survive.
func TestWriteAllAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "p_0.onnx")
	if err := os.WriteFile(old, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	targets := []string{old, filepath.Join(dir, "p_1.onnx"), filepath.Join(dir, "p_2.onnx")}
	boom := errors.New("boom")
	err := writeAll(targets, func(i int, tmp string) error {
		if i == 2 {
			return boom
		}
		return os.WriteFile(tmp, []byte("new"), 0o644)
	})
	if !errors.Is(err, boom) {
		t.Fatalf("writeAll: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "p_0.onnx" {
		t.Errorf("after a failure the folder holds %v, want only the old p_0.onnx", entries)
	}
	if b, _ := os.ReadFile(old); string(b) != "old" {
		t.Errorf("p_0.onnx is %q, want the old content", b)
	}

	// Success: every file, with its companions, and no temporary folder.
	err = writeAll(targets, func(i int, tmp string) error {
		return errors.Join(os.WriteFile(tmp, []byte("new"), 0o644), os.WriteFile(tmp+".data", []byte("d"), 0o644))
	})
	if err != nil {
		t.Fatal(err)
	}
	entries, _ = os.ReadDir(dir)
	if len(entries) != 6 {
		t.Errorf("after success the folder holds %v, want 3 models and 3 data files", entries)
	}
	for _, p := range targets {
		if b, _ := os.ReadFile(p); string(b) != "new" {
			t.Errorf("%s is %q", p, b)
		}
	}
}

// TestInterpPaths: how -o names the steps.
func TestInterpPaths(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		out   string
		steps int
		first string
		last  string
	}{
		{"path", 3, "path_0.onnx", "path_2.onnx"},
		{"path.onnx", 11, "path_00.onnx", "path_10.onnx"},
		{dir, 2, filepath.Join(dir, "interp_0.onnx"), filepath.Join(dir, "interp_1.onnx")},
		{"new/", 2, "new/interp_0.onnx", "new/interp_1.onnx"},
	} {
		p := interpPaths(tc.out, tc.steps)
		if len(p) != tc.steps || p[0] != tc.first || p[len(p)-1] != tc.last {
			t.Errorf("interpPaths(%q, %d) = %v", tc.out, tc.steps, p)
		}
	}
}

// TestInfiniteMaskMerges: -Inf in a tensor no permutation group reads (an
// attention mask, say) is not an error; the same value merges to itself.
func TestInfiniteMaskMerges(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for _, name := range []string{"mlp32_s0", "mlp32_s1"} {
		m, err := onnx.Load(testModels + name + ".onnx")
		if err != nil {
			t.Fatal(err)
		}
		mask := &onnxpb.TensorProto{Name: proto.String("mask"), Dims: []int64{2}, DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT))}
		if err := m.SetFloat32s(mask, []float32{float32(math.Inf(-1)), 0}); err != nil {
			t.Fatal(err)
		}
		m.Proto.Graph.Initializer = append(m.Proto.Graph.Initializer, mask)
		p := filepath.Join(dir, name+".onnx")
		if err := m.Save(p); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	out := filepath.Join(dir, "merged.onnx")
	var stderr bytes.Buffer
	if err := run([]string{"merge", "-q", paths[0], paths[1], "-o", out}, &stderr, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	m, err := onnx.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	v, err := m.Float32s(m.Weights()["mask"])
	if err != nil || len(v) != 2 || !math.IsInf(float64(v[0]), -1) || v[1] != 0 {
		t.Errorf("merged mask %v, %v; want [-Inf 0]", v, err)
	}
}

// TestHasNonFinite: NaNs of any sign and payload and both infinities are
// found wherever they are; zeros, subnormals and the largest finite values
// are not.
func TestHasNonFinite(t *testing.T) {
	nonFinite := []float32{float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()),
		math.Float32frombits(0x7f800001), math.Float32frombits(0xffc00000), math.Float32frombits(0x7fffffff)}
	finite := []float32{0, float32(math.Copysign(0, -1)), 1, -1, math.MaxFloat32, -math.MaxFloat32,
		math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32, math.Float32frombits(0x7f7fffff), math.Float32frombits(0x007fffff)}
	if hasNonFinite(finite) || hasNonFinite(nil) {
		t.Fatalf("finite values %v reported as non-finite", finite)
	}
	for _, x := range nonFinite {
		for _, at := range []int{0, 5, 9} {
			v := append([]float32(nil), finite...)
			v[at] = x
			if !hasNonFinite(v) {
				t.Errorf("%v (bits %#x) at %d not found", x, math.Float32bits(x), at)
			}
		}
	}
}

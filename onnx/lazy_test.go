package onnx

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenLazyReadsWhatLoadReads compares every weight read lazily with
// the loaded model's, on a model with large inline raw_data and on the same
// model saved with external data.
func TestOpenLazyReadsWhatLoadReads(t *testing.T) {
	m, err := Load("../testmodels/mlp_s0.onnx")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ext := filepath.Join(dir, "ext.onnx")
	defer func(v int) { maxInlineBytes = v }(maxInlineBytes)
	maxInlineBytes = 1000 // force external data
	if err := m.Clone().Save(ext); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"../testmodels/mlp_s0.onnx", ext} {
		l, err := OpenLazy(path)
		if err != nil {
			t.Fatal(err)
		}
		onDisk := 0
		want := m.Weights()
		for name, tp := range l.Model.Weights() {
			if l.OnDisk(tp) {
				onDisk++
			}
			got, err := l.ReadTensor(tp, nil)
			if err != nil {
				t.Fatal(err)
			}
			wb, _ := m.TensorBytes(want[name])
			if !bytes.Equal(got, wb) {
				t.Errorf("%s: weight %q read lazily differs", path, name)
			}
		}
		if onDisk == 0 {
			t.Errorf("%s: no tensor left on disk", path)
		}
		if path == ext && len(l.Files) != 2 {
			t.Errorf("files %v, want the model and its data file", l.Files)
		}
		l.Close()
	}
	// A symbolic link as external data is refused.
	os.Rename(ext+".data", filepath.Join(dir, "real.data"))
	os.Symlink("real.data", ext+".data")
	if _, err := OpenLazy(ext); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("symlinked external data: error %v", err)
	}
}

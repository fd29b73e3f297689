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
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// External data is read inside the model's folder only, as Load reads
	// it: a data file reached through a link to another folder is refused.
	data, err := filepath.Glob(ext + ".*.data")
	if err != nil || len(data) != 1 {
		t.Fatalf("data files %v, %v; want one", data, err)
	}
	outside := t.TempDir()
	if err := os.Rename(data[0], filepath.Join(outside, filepath.Base(data[0]))); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, filepath.Base(data[0])), data[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenLazy(ext); err == nil || !strings.Contains(err.Error(), "escapes") {
		t.Errorf("external data linked from outside the folder: error %v", err)
	}
}

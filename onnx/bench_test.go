package onnx

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkLoadSave loads and saves the largest test model available,
// reporting MB/s of model file processed (load + save of the same bytes).
func BenchmarkLoadSave(b *testing.B) {
	var path string
	var size int64
	for _, pattern := range []string{"../testmodels/*.onnx", "../testmodels/large/*.onnx"} {
		paths, _ := filepath.Glob(pattern)
		for _, p := range paths {
			if fi, err := os.Stat(p); err == nil && fi.Size() > size {
				path, size = p, fi.Size()
			}
		}
	}
	if path == "" {
		b.Fatal("no test models in ../testmodels")
	}
	b.Logf("%s: %d bytes", path, size)
	out := filepath.Join(b.TempDir(), "out.onnx")
	b.SetBytes(size)
	for i := 0; i < b.N; i++ {
		m, err := Load(path)
		if err != nil {
			b.Fatal(err)
		}
		if err := m.Save(out); err != nil {
			b.Fatal(err)
		}
	}
}

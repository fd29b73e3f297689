package testreq

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// recorder is a testing.TB that records Fatal and Skip instead of stopping.
type recorder struct {
	testing.TB
	fatal, skipped bool
	logged         bool
}

func (r *recorder) Helper()               {}
func (r *recorder) Fatalf(string, ...any) { r.fatal = true }
func (r *recorder) Fatal(...any)          { r.fatal = true }
func (r *recorder) Skipf(string, ...any)  { r.skipped = true }
func (r *recorder) Logf(string, ...any)   { r.logged = true }

func TestMissing(t *testing.T) {
	for _, c := range []struct {
		ci          string
		fatal, skip bool
	}{{"true", true, false}, {"1", true, false}, {"", false, true}, {"false", false, true}, {"0", false, true}} {
		t.Setenv("CI", c.ci)
		r := &recorder{TB: t}
		Missing(r, "x")
		if r.fatal != c.fatal || r.skipped != c.skip {
			t.Errorf("CI=%q: fatal %v skipped %v, want %v %v", c.ci, r.fatal, r.skipped, c.fatal, c.skip)
		}
	}
}

func TestGlobAndFile(t *testing.T) {
	dir := t.TempDir()
	r := &recorder{TB: t}
	if Glob(r, filepath.Join(dir, "*.onnx")); !r.fatal {
		t.Error("empty glob did not fail")
	}
	if err := os.WriteFile(filepath.Join(dir, "a.onnx"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r = &recorder{TB: t}
	if got := Glob(r, filepath.Join(dir, "*.onnx")); r.fatal || len(got) != 1 {
		t.Errorf("glob: %v, fatal %v", got, r.fatal)
	}
	r = &recorder{TB: t}
	if File(r, filepath.Join(dir, "b.onnx")); !r.fatal {
		t.Error("missing file did not fail")
	}
}

func TestLargeModels(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{LargeNames[1], "extra"} {
		if err := os.WriteFile(filepath.Join(dir, name+".onnx"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("CI", "")
	r := &recorder{TB: t}
	want := []string{filepath.Join(dir, LargeNames[1]+".onnx"), filepath.Join(dir, "extra.onnx")}
	if got := LargeModels(r, dir); r.fatal || !r.logged || !slices.Equal(got, want) {
		t.Errorf("locally: %v, fatal %v, logged %v; want %v", got, r.fatal, r.logged, want)
	}
	t.Setenv("CI", "true")
	r = &recorder{TB: t}
	if LargeModels(r, dir); !r.fatal {
		t.Error("under CI, missing large models did not fail")
	}
}
